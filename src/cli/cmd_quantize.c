/*
 * cmd_quantize.c - `rocmforge quantize IN.gguf OUT.gguf TYPE`: rewrite a
 * model with its weights in another type or llama.cpp-style mix (see
 * src/model/qpolicy.c for which tensor gets what). Metadata is copied;
 * general.file_type is updated. Tensors already in their target type are
 * copied byte for byte; quantized inputs are dequantized first (with a
 * warning: quantizing twice loses more than quantizing once).
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gguf/gguf.h"
#include "model/convert.h"
#include "model/qpolicy.h"

enum { O_THREADS, O_COUNT };
static const rf_opt opts[O_COUNT] = {[O_THREADS] = {"--threads", NULL, true}};

static void usage(FILE *out) {
    fprintf(out, "usage: rocmforge quantize IN.gguf OUT.gguf TYPE [--threads N]\n\n"
                 "TYPE is a plain type (every eligible weight gets exactly it) or a mix that keeps\n"
                 "sensitive tensors (output, attn_v, ffn_down) at higher precision:\n");
    rf_qtarget_list(out);
    fprintf(out, "1-D tensors (norms, biases) and the MoE router stay F32. A weight whose row\n"
                 "length is not a multiple of the type's block gets the nearest type that fits.\n");
}

typedef struct deq_src {
    const rf_gguf_tensor *t;
    size_t row_bytes;
} deq_src;

static void deq_row(void *ctx, int64_t row, float *dst) {
    const deq_src *d = ctx;
    const uint8_t *p = (const uint8_t *)d->t->data + (size_t)row * d->row_bytes;
    rf_status st = rf_dequantize_row(d->t->type, p, dst, d->t->ne[0]);
    RF_ASSERT(st == RF_OK);
}

typedef struct prog {
    rf_progress bar;
    uint64_t base;
} prog;

static void on_progress(void *ctx, uint64_t done) {
    prog *p = ctx;
    rf_progress_update(&p->bar, (double)(p->base + done));
}

static bool is_split_key(rf_str k) { return k.len >= 6 && memcmp(k.ptr, "split.", 6) == 0; }

static int run(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { usage(stdout); return RF_EXIT_OK; }
    if (a.n_pos != 3) { rf_cli_error("quantize needs IN.gguf OUT.gguf TYPE"); usage(stderr); return RF_EXIT_USAGE; }
    const char *in = a.pos[0], *out = a.pos[1];
    rf_error err = {0};
    rf_qtarget tgt;
    if (rf_qtarget_parse(a.pos[2], &tgt, &err) != RF_OK) { rf_cli_error("%s", err.msg); return RF_EXIT_USAGE; }
    long nth = rf_cpu_physical_cores();
    if (a.val[O_THREADS] && !rf_arg_long("--threads", a.val[O_THREADS], 1, 1024, &nth)) return RF_EXIT_USAGE;
    if (strcmp(in, out) == 0) { rf_cli_error("output must differ from input"); return RF_EXIT_USAGE; }

    rf_gguf *g = NULL;
    if (rf_gguf_open(in, &g, &err) != RF_OK) { rf_cli_error("%s", err.msg); return RF_EXIT_BADINPUT; }
    rc = RF_EXIT_BADINPUT;
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_threadpool *tp = rf_threadpool_create((int)nth);
    uint32_t *types = rf_calloc((size_t)rf_gguf_n_tensors(g) + 1, sizeof *types);
    if (!w || !tp || !types) { rf_cli_error("out of memory"); goto out; }

    /* metadata: everything but the split bookkeeping; new file type */
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        if (is_split_key(kv->key)) continue;
        if (rf_gguf_writer_set_value(w, kv->key, &kv->val) != RF_OK) { rf_cli_error("out of memory"); goto out; }
    }
    rf_gguf_writer_set_u32(w, "general.file_type", tgt.file_type);
    rf_gguf_writer_set_u32(w, "general.quantization_version", 2);

    rf_str arch = {"", 0};
    rf_gguf_get_str(g, "general.architecture", &arch, NULL);
    char key[96];
    snprintf(key, sizeof key, "%.*s.block_count", (int)(arch.len < 64 ? arch.len : 64), arch.ptr);
    uint32_t n_layer = 0;
    rf_gguf_get_u32(g, key, &n_layer, NULL);

    int n_requant = 0, n_fallback = 0;
    uint64_t total = 0;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        const rf_type_info *src = rf_type_get(t->type);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 255 ? t->name.len : 255), t->name.ptr);
        bool fb = false;
        uint32_t ty = rf_qpolicy_choose(&tgt, name, t->n_dims, t->ne, (int)n_layer, &fb);
        if (!src->to_float) ty = t->type; /* integer tensors are data, not weights */
        if (fb) { n_fallback++; RF_LOGI("%s: row length %" PRId64 " does not fit %s, using %s", name, t->ne[0], rf_type_name(tgt.base), rf_type_name(ty)); }
        if (ty != t->type && src->is_quantized) n_requant++;
        types[i] = ty;
        if (rf_gguf_writer_add_tensor(w, name, ty, t->n_dims, t->ne, NULL, &err) != RF_OK) {
            rf_cli_error("%s", err.msg);
            goto out;
        }
        total += rf_row_size(ty, t->ne[0]) * (uint64_t)(rf_gguf_tensor_nelements(t) / (t->ne[0] ? t->ne[0] : 1));
    }
    if (n_requant)
        RF_LOGW("%d tensors are already quantized: dequantizing them first (quality loss adds up; "
                "quantize from F32/F16/BF16 when you can)", n_requant);
    if (n_fallback) RF_LOGW("%d tensors use a fallback type (row length not a multiple of the block)", n_fallback);

    if (rf_gguf_writer_begin(w, out, &err) != RF_OK) { rf_cli_error("%s", err.msg); goto out; }
    prog p = {0};
    rf_progress_start(&p.bar, "quantize", (double)total);
    double t0 = rf_time_now();
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        int64_t rows = t->ne[0] ? rf_gguf_tensor_nelements(t) / t->ne[0] : 0;
        rf_status st;
        if (types[i] == t->type) {
            st = rf_gguf_writer_write_data(w, t->data, t->nbytes, &err);
            p.base += t->nbytes;
        } else {
            deq_src d = {t, rf_row_size(t->type, t->ne[0])};
            st = rf_convert_tensor(w, tp, (rf_type)types[i], t->ne[0], rows, deq_row, &d, on_progress, &p, &err);
            p.base += rf_row_size(types[i], t->ne[0]) * (uint64_t)rows;
        }
        if (st != RF_OK) { rf_cli_error("%s", err.msg); goto out; }
        rf_progress_update(&p.bar, (double)p.base);
    }
    if (rf_gguf_writer_finish(w, &err) != RF_OK) { rf_cli_error("%s", err.msg); goto out; }
    rf_progress_end(&p.bar);
    char b1[32], b2[32];
    fprintf(stderr, "rocmforge: %s (%s) -> %s (%s, %s) in %.1f s\n", in, rf_fmt_bytes((double)rf_gguf_file_size(g), b1, sizeof b1),
            out, tgt.name, rf_fmt_bytes((double)total, b2, sizeof b2), rf_time_now() - t0);
    rc = RF_EXIT_OK;
out:
    if (rc != RF_EXIT_OK) remove(out);
    rf_free(types);
    rf_threadpool_free(tp);
    rf_gguf_writer_free(w);
    rf_gguf_close(g);
    return rc;
}

const rf_cmd rf_cmd_quantize = {"quantize", "rewrite a model's weights in another type or mix", run, usage};
