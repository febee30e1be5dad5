/*
 * cmd_info.c - `rocmforge info`: what a GGUF file holds. A summary by
 * default (architecture, parameters, size, quantization mix, context,
 * vocabulary, chat template); --metadata lists every key, --tensors the
 * tensor table, --json prints all of it machine-readable, --dump-tensor
 * writes one tensor dequantized to float32, --types lists the type table,
 * --cpu the CPU features and the kernel set the CPU backend chose, --gpu
 * the GPU plugins, devices, limits and the backend chosen (gpu_info.c).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/jsonw.h"
#include "cpu/cpu.h"
#include "gguf/gguf.h"
#include "gpu_opts.h"
#include "quant/quant.h"

enum { O_METADATA, O_TENSORS, O_JSON, O_DUMP, O_OUT, O_TYPES, O_CPU,
       O_GPU, O_COUNT };
static const rf_opt opts[O_COUNT] = {
    [O_METADATA] = {"--metadata", NULL, false},
    [O_TENSORS] = {"--tensors", NULL, false},
    [O_JSON] = {"--json", NULL, false},
    [O_DUMP] = {"--dump-tensor", NULL, true},
    [O_OUT] = {"--out", "-o", true},
    [O_TYPES] = {"--types", NULL, false},
    [O_CPU] = {"--cpu", NULL, false},
    [O_GPU] = {"--gpu", NULL, false},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: rocmforge info MODEL.gguf [--metadata] [--tensors] [--json]\n"
            "       rocmforge info MODEL.gguf --dump-tensor NAME --out FILE\n"
            "       rocmforge info --types\n"
            "       rocmforge info --cpu\n"
            "       rocmforge info --gpu\n\n"
            "  --metadata          print every metadata key and value\n"
            "  --tensors           print the tensor table (name, type, shape, bytes, offset)\n"
            "  --json              print summary, metadata and tensors as one JSON object\n"
            "  --dump-tensor NAME  write tensor NAME dequantized as little-endian float32 to --out\n"
            "  --types             list every tensor type: block size, bytes, quantizer present\n"
            "  --cpu               CPU model, detected features, kernel sets and the one chosen\n"
            "                      (ROCMFORGE_CPU=scalar|avx2|avx512|ref forces one)\n"
            "  --gpu               GPU plugins, devices (arch, memory, launch limits) and the backend\n"
            "                      --device auto would choose, or why it is the CPU\n");
}

/* ---- value printing ---------------------------------------------------- */

#define ARR_PREVIEW 8

static void print_str(FILE *f, rf_str s, uint64_t max) {
    fputc('"', f);
    for (uint64_t i = 0; i < s.len && i < max; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n') fputs("\\n", f);
        else if (c == '"' || c == '\\') { fputc('\\', f); fputc(c, f); }
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
    if (s.len > max) fprintf(f, "... (%" PRIu64 " bytes)", s.len);
}

static void print_value(FILE *f, const rf_gguf_value *v) {
    switch (v->type) {
    case RF_GGUF_U8: case RF_GGUF_U16: case RF_GGUF_U32: case RF_GGUF_U64:
        fprintf(f, "%" PRIu64, v->u64); break;
    case RF_GGUF_I8: case RF_GGUF_I16: case RF_GGUF_I32: case RF_GGUF_I64:
        fprintf(f, "%" PRId64, v->i64); break;
    case RF_GGUF_F32: case RF_GGUF_F64: fprintf(f, "%.9g", v->f64); break;
    case RF_GGUF_BOOL: fputs(v->u64 ? "true" : "false", f); break;
    case RF_GGUF_STRING: print_str(f, v->str, 120); break;
    case RF_GGUF_ARRAY: {
        const rf_gguf_arr *a = &v->arr;
        fprintf(f, "[%s x %" PRIu64 "] [", rf_gguf_vtype_name(a->elem_type), a->n);
        for (uint64_t i = 0; i < a->n && i < ARR_PREVIEW; i++) {
            if (i) fputs(", ", f);
            if (a->elem_type == RF_GGUF_STRING) print_str(f, rf_gguf_arr_str(a, i), 40);
            else if (a->elem_type == RF_GGUF_ARRAY) print_value(f, &((const rf_gguf_value *)a->data)[i]);
            else if (a->elem_type == RF_GGUF_F32 || a->elem_type == RF_GGUF_F64)
                fprintf(f, "%.9g", rf_gguf_arr_f64(a, i));
            else if (a->elem_type == RF_GGUF_BOOL) fputs(rf_gguf_arr_i64(a, i) ? "true" : "false", f);
            else if (a->elem_type == RF_GGUF_U64) fprintf(f, "%" PRIu64, (uint64_t)rf_gguf_arr_i64(a, i));
            else fprintf(f, "%" PRId64, rf_gguf_arr_i64(a, i));
        }
        fputs(a->n > ARR_PREVIEW ? ", ...]" : "]", f);
        break;
    }
    default: fputs("?", f);
    }
}

static void json_value(rf_jsonw *w, const rf_gguf_value *v);

static void json_arr(rf_jsonw *w, const rf_gguf_arr *a) {
    rf_jsonw_arr_begin(w);
    for (uint64_t i = 0; i < a->n; i++) {
        switch (a->elem_type) {
        case RF_GGUF_STRING: { rf_str s = rf_gguf_arr_str(a, i); rf_jsonw_str_n(w, s.ptr, s.len); break; }
        case RF_GGUF_ARRAY: json_value(w, &((const rf_gguf_value *)a->data)[i]); break;
        case RF_GGUF_F32: case RF_GGUF_F64: rf_jsonw_f64(w, rf_gguf_arr_f64(a, i)); break;
        case RF_GGUF_BOOL: rf_jsonw_bool(w, rf_gguf_arr_i64(a, i) != 0); break;
        case RF_GGUF_U64: rf_jsonw_u64(w, (uint64_t)rf_gguf_arr_i64(a, i)); break;
        default: rf_jsonw_i64(w, rf_gguf_arr_i64(a, i));
        }
    }
    rf_jsonw_arr_end(w);
}

static void json_value(rf_jsonw *w, const rf_gguf_value *v) {
    switch (v->type) {
    case RF_GGUF_U8: case RF_GGUF_U16: case RF_GGUF_U32: case RF_GGUF_U64: rf_jsonw_u64(w, v->u64); break;
    case RF_GGUF_I8: case RF_GGUF_I16: case RF_GGUF_I32: case RF_GGUF_I64: rf_jsonw_i64(w, v->i64); break;
    case RF_GGUF_F32: case RF_GGUF_F64: rf_jsonw_f64(w, v->f64); break;
    case RF_GGUF_BOOL: rf_jsonw_bool(w, v->u64 != 0); break;
    case RF_GGUF_STRING: rf_jsonw_str_n(w, v->str.ptr, v->str.len); break;
    case RF_GGUF_ARRAY: json_arr(w, &v->arr); break;
    default: rf_jsonw_null(w);
    }
}

/* ---- summary ----------------------------------------------------------- */

typedef struct summary {
    char arch[64];
    char name[128];
    double n_params;
    uint64_t bytes_by_type[RF_TYPE_COUNT];
    int64_t tensors_by_type[RF_TYPE_COUNT];
    int64_t ctx_len;   /* -1 unknown */
    int64_t vocab;     /* -1 none */
    char tok_model[32];
    char tok_pre[32];
    uint64_t template_len; /* 0 none */
} summary;

static void copy_str(char *dst, size_t n, rf_str s) {
    size_t len = s.len < n - 1 ? (size_t)s.len : n - 1;
    memcpy(dst, s.ptr, len);
    dst[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)dst[i] < 0x20) dst[i] = '?';
}

static void summarize(const rf_gguf *g, summary *s) {
    memset(s, 0, sizeof *s);
    rf_str str;
    strcpy(s->arch, "(none)");
    if (rf_gguf_get_str(g, "general.architecture", &str, NULL) == RF_OK) copy_str(s->arch, sizeof s->arch, str);
    if (rf_gguf_get_str(g, "general.name", &str, NULL) == RF_OK) copy_str(s->name, sizeof s->name, str);
    char key[128];
    snprintf(key, sizeof key, "%s.context_length", s->arch);
    s->ctx_len = -1;
    int64_t v;
    if (rf_gguf_get_i64(g, key, &v, NULL) == RF_OK) s->ctx_len = v;
    rf_gguf_arr arr;
    s->vocab = -1;
    if (rf_gguf_get_arr(g, "tokenizer.ggml.tokens", &arr, NULL) == RF_OK) s->vocab = (int64_t)arr.n;
    if (rf_gguf_get_str(g, "tokenizer.ggml.model", &str, NULL) == RF_OK) copy_str(s->tok_model, sizeof s->tok_model, str);
    if (rf_gguf_get_str(g, "tokenizer.ggml.pre", &str, NULL) == RF_OK) copy_str(s->tok_pre, sizeof s->tok_pre, str);
    if (rf_gguf_get_str(g, "tokenizer.chat_template", &str, NULL) == RF_OK) s->template_len = str.len;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        s->n_params += (double)rf_gguf_tensor_nelements(t);
        s->bytes_by_type[t->type] += t->nbytes;
        s->tensors_by_type[t->type]++;
    }
}

static void print_summary(const char *path, const rf_gguf *g, const summary *s) {
    char b1[32], b2[32];
    printf("file:          %s\n", path);
    if (rf_gguf_n_splits(g) > 1) printf("splits:        %u\n", rf_gguf_n_splits(g));
    printf("size:          %s (%" PRIu64 " bytes)\n", rf_fmt_bytes((double)rf_gguf_file_size(g), b1, sizeof b1),
           rf_gguf_file_size(g));
    printf("gguf version:  %u\n", rf_gguf_version(g));
    printf("architecture:  %s\n", s->arch);
    if (s->name[0]) printf("name:          %s\n", s->name);
    printf("parameters:    %s (%.0f)\n", rf_fmt_count(s->n_params, b1, sizeof b1), s->n_params);
    if (s->ctx_len >= 0) printf("context:       %" PRId64 "\n", s->ctx_len);
    else printf("context:       (not in metadata)\n");
    if (s->vocab >= 0)
        printf("vocabulary:    %" PRId64 " tokens, tokenizer %s%s%s%s\n", s->vocab,
               s->tok_model[0] ? s->tok_model : "(unknown)", s->tok_pre[0] ? " (pre: " : "", s->tok_pre,
               s->tok_pre[0] ? ")" : "");
    else printf("vocabulary:    none in file\n");
    if (s->template_len) printf("chat template: yes (%" PRIu64 " bytes)\n", s->template_len);
    else printf("chat template: no\n");
    printf("tensors:       %" PRId64 "\n", rf_gguf_n_tensors(g));
    double total = 0;
    for (int t = 0; t < RF_TYPE_COUNT; t++) total += (double)s->bytes_by_type[t];
    printf("quantization:\n");
    for (int t = 0; t < RF_TYPE_COUNT; t++) {
        if (!s->tensors_by_type[t]) continue;
        const rf_type_info *ti = rf_type_get((uint32_t)t);
        printf("  %-8s %5" PRId64 " tensors  %12s  %5.1f%%%s\n", rf_type_name((uint32_t)t), s->tensors_by_type[t],
               rf_fmt_bytes((double)s->bytes_by_type[t], b2, sizeof b2),
               total > 0 ? 100.0 * (double)s->bytes_by_type[t] / total : 0.0,
               ti && ti->is_quantized && !ti->from_float ? "  (dequantize-only type)" : "");
    }
    if (s->n_params > 0) printf("bits/weight:   %.2f\n", total * 8.0 / s->n_params);
}

static void print_shape(FILE *f, const rf_gguf_tensor *t) {
    fputc('[', f);
    for (uint32_t d = 0; d < t->n_dims; d++) fprintf(f, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    fputc(']', f);
}

static void print_json(const char *path, const rf_gguf *g, const summary *s) {
    rf_jsonw w;
    rf_jsonw_init(&w, stdout);
    rf_jsonw_obj_begin(&w);
    rf_jsonw_key(&w, "file"); rf_jsonw_str(&w, path);
    rf_jsonw_key(&w, "size"); rf_jsonw_u64(&w, rf_gguf_file_size(g));
    rf_jsonw_key(&w, "splits"); rf_jsonw_u64(&w, rf_gguf_n_splits(g));
    rf_jsonw_key(&w, "version"); rf_jsonw_u64(&w, rf_gguf_version(g));
    rf_jsonw_key(&w, "alignment"); rf_jsonw_u64(&w, rf_gguf_alignment(g));
    rf_jsonw_key(&w, "architecture"); rf_jsonw_str(&w, s->arch);
    rf_jsonw_key(&w, "parameters"); rf_jsonw_f64(&w, s->n_params);
    rf_jsonw_key(&w, "context_length"); rf_jsonw_i64(&w, s->ctx_len);
    rf_jsonw_key(&w, "vocab_size"); rf_jsonw_i64(&w, s->vocab);
    rf_jsonw_key(&w, "tokenizer"); rf_jsonw_str(&w, s->tok_model);
    rf_jsonw_key(&w, "chat_template"); rf_jsonw_bool(&w, s->template_len > 0);
    rf_jsonw_key(&w, "bytes_by_type");
    rf_jsonw_obj_begin(&w);
    for (int t = 0; t < RF_TYPE_COUNT; t++)
        if (s->tensors_by_type[t]) { rf_jsonw_key(&w, rf_type_name((uint32_t)t)); rf_jsonw_u64(&w, s->bytes_by_type[t]); }
    rf_jsonw_obj_end(&w);
    rf_jsonw_key(&w, "metadata");
    rf_jsonw_obj_begin(&w);
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        rf_jsonw_key_n(&w, kv->key.ptr, kv->key.len);
        json_value(&w, &kv->val);
    }
    rf_jsonw_obj_end(&w);
    rf_jsonw_key(&w, "tensors");
    rf_jsonw_arr_begin(&w);
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        rf_jsonw_obj_begin(&w);
        rf_jsonw_key(&w, "name"); rf_jsonw_str_n(&w, t->name.ptr, t->name.len);
        rf_jsonw_key(&w, "type"); rf_jsonw_str(&w, rf_type_name(t->type));
        rf_jsonw_key(&w, "shape");
        rf_jsonw_arr_begin(&w);
        for (uint32_t d = 0; d < t->n_dims; d++) rf_jsonw_i64(&w, t->ne[d]);
        rf_jsonw_arr_end(&w);
        rf_jsonw_key(&w, "offset"); rf_jsonw_u64(&w, t->offset);
        rf_jsonw_key(&w, "nbytes"); rf_jsonw_u64(&w, t->nbytes);
        rf_jsonw_key(&w, "split"); rf_jsonw_u64(&w, t->split);
        rf_jsonw_obj_end(&w);
    }
    rf_jsonw_arr_end(&w);
    rf_jsonw_obj_end(&w);
}

static int print_types(void) {
    printf("%-3s %-8s %6s %6s  %-10s %s\n", "id", "type", "block", "bytes", "quantize", "rmse budget");
    for (uint32_t t = 0; t < RF_TYPE_COUNT; t++) {
        const rf_type_info *ti = rf_type_get(t);
        if (!ti) continue;
        const char *q = ti->from_float ? "yes" : ti->to_float ? "dequant-only" : "raw ints";
        printf("%-3u %-8s %6" PRId64 " %6zu  %-12s", t, ti->name, ti->blck_size, ti->type_size, q);
        if (ti->from_float && ti->is_quantized) printf(" %.3f", ti->rmse_budget);
        putchar('\n');
    }
    return RF_EXIT_OK;
}

/* Dequantizes tensor NAME row by row into FILE as little-endian float32. */
static int dump_tensor(const rf_gguf *g, const char *name, const char *out_path) {
    const rf_gguf_tensor *t = rf_gguf_find_tensor(g, name);
    if (!t) {
        rf_cli_error("no tensor named '%s' (see --tensors)", name);
        return RF_EXIT_BADINPUT;
    }
    const rf_type_info *ti = rf_type_get(t->type);
    int64_t ne0 = t->ne[0], rows = rf_gguf_tensor_nelements(t) / (ne0 ? ne0 : 1);
    size_t row_bytes = rf_row_size(t->type, ne0);
    bool is_int = !ti->to_float;
    FILE *f = fopen(out_path, "wb");
    if (!f) {
        rf_cli_error("cannot open %s for writing", out_path);
        return RF_EXIT_BADINPUT;
    }
    float *row = rf_malloc((size_t)(ne0 ? ne0 : 1) * sizeof(float));
    if (!row) { fclose(f); rf_cli_error("out of memory"); return RF_EXIT_BADINPUT; }
    const uint8_t *src = t->data;
    for (int64_t r = 0; r < rows && ne0 > 0; r++, src += row_bytes) {
        if (is_int) {
            /* integer tensors convert value by value */
            for (int64_t i = 0; i < ne0; i++) {
                const uint8_t *p = src + (size_t)i * ti->type_size;
                int64_t v = 0;
                switch (t->type) {
                case RF_TYPE_I8: v = (int8_t)p[0]; break;
                case RF_TYPE_I16: { int16_t x; memcpy(&x, p, 2); v = x; break; }
                case RF_TYPE_I32: { int32_t x; memcpy(&x, p, 4); v = x; break; }
                default: { int64_t x; memcpy(&x, p, 8); v = x; break; }
                }
                row[i] = (float)v;
            }
        } else {
            rf_dequantize_row(t->type, src, row, ne0);
        }
        if (fwrite(row, sizeof(float), (size_t)ne0, f) != (size_t)ne0) {
            rf_free(row);
            fclose(f);
            rf_cli_error("write to %s failed", out_path);
            return RF_EXIT_BADINPUT;
        }
    }
    rf_free(row);
    if (fclose(f) != 0) { rf_cli_error("write to %s failed", out_path); return RF_EXIT_BADINPUT; }
    fprintf(stderr, "rocmforge: wrote %s (%s, %" PRId64 " floats) to %s\n", name, rf_type_name(t->type),
            rf_gguf_tensor_nelements(t), out_path);
    return RF_EXIT_OK;
}

static int run(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { usage(stdout); return RF_EXIT_OK; }
    if (a.val[O_TYPES]) return print_types();
    if (a.val[O_CPU]) { rf_cpu_print_info(stdout); return RF_EXIT_OK; }
    if (a.val[O_GPU]) { rf_cli_print_gpu_info(stdout); return RF_EXIT_OK; }
    if (a.n_pos != 1) {
        rf_cli_error(a.n_pos ? "info takes one model file" : "info needs a model file");
        usage(stderr);
        return RF_EXIT_USAGE;
    }
    if (a.val[O_DUMP] && !a.val[O_OUT]) {
        rf_cli_error("--dump-tensor needs --out FILE");
        return RF_EXIT_USAGE;
    }
    const char *path = a.pos[0];
    rf_gguf *g = NULL;
    rf_error err = {0};
    if (rf_gguf_open(path, &g, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        return RF_EXIT_BADINPUT;
    }
    if (a.val[O_DUMP]) {
        rc = dump_tensor(g, a.val[O_DUMP], a.val[O_OUT]);
        rf_gguf_close(g);
        return rc;
    }
    summary *s = rf_malloc(sizeof *s);
    if (!s) { rf_gguf_close(g); rf_cli_error("out of memory"); return RF_EXIT_BADINPUT; }
    summarize(g, s);
    if (a.val[O_JSON]) {
        print_json(path, g, s);
    } else {
        print_summary(path, g, s);
        if (a.val[O_METADATA]) {
            printf("\nmetadata (%" PRId64 " keys):\n", rf_gguf_n_kv(g));
            for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
                const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
                printf("  %.*s = ", (int)kv->key.len, kv->key.ptr);
                print_value(stdout, &kv->val);
                putchar('\n');
            }
        }
        if (a.val[O_TENSORS]) {
            printf("\ntensors (%" PRId64 "):\n", rf_gguf_n_tensors(g));
            for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
                const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
                printf("  %-40.*s %-8s ", (int)t->name.len, t->name.ptr, rf_type_name(t->type));
                print_shape(stdout, t);
                printf("  %" PRIu64 " bytes @ %" PRIu64 "\n", t->nbytes, t->offset);
            }
        }
    }
    rf_free(s);
    rf_gguf_close(g);
    return RF_EXIT_OK;
}

const rf_cmd rf_cmd_info = {"info", "describe a GGUF model: metadata, tensors, quantization", run, usage};
