/*
 * synth.c - the shape table, the generated vocabulary and the writer of
 * random-weight models.
 *
 * Weights: matrices are drawn from a zero-mean distribution with standard
 * deviation 1/sqrt(row length) (activations stay of order one through the
 * layers, so a forward pass over a synth model is numerically sane); norm
 * weights are 1 + small noise; biases small. Row r of tensor t is drawn from
 * a generator seeded by (seed, t, r), so a file does not depend on the
 * thread count. With a row pool (rf_synth_opts.row_pool, `synth --row-pool`)
 * each matrix holds that many distinct rows in a seeded order instead:
 * benchmark models of the K-quants are written in seconds, not minutes.
 */
#include "synth.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/convert.h"

/* ---- shapes ------------------------------------------------------------ */

/* Dimensions from the models' published configurations. */
static const rf_synth_shape shapes[] = {
    {.name = "smollm2-135m", .arch = "llama", .n_vocab = 49152, .n_embd = 576, .n_layer = 30, .n_head = 9,
     .n_head_kv = 3, .n_ff = 1536, .n_ctx = 8192, .rope_base = 100000.0f, .norm_eps = 1e-5f, .tied_embd = true},
    {.name = "llama-3.2-1b", .arch = "llama", .n_vocab = 128256, .n_embd = 2048, .n_layer = 16, .n_head = 32,
     .n_head_kv = 8, .n_ff = 8192, .n_ctx = 131072, .rope_base = 500000.0f, .norm_eps = 1e-5f, .tied_embd = true,
     .rope_scale_llama3 = 32.0f},
    {.name = "llama-3.1-8b", .arch = "llama", .n_vocab = 128256, .n_embd = 4096, .n_layer = 32, .n_head = 32,
     .n_head_kv = 8, .n_ff = 14336, .n_ctx = 131072, .rope_base = 500000.0f, .norm_eps = 1e-5f,
     .rope_scale_llama3 = 8.0f},
    {.name = "qwen2.5-7b", .arch = "qwen2", .n_vocab = 152064, .n_embd = 3584, .n_layer = 28, .n_head = 28,
     .n_head_kv = 4, .n_ff = 18944, .n_ctx = 32768, .rope_base = 1000000.0f, .norm_eps = 1e-6f, .qkv_bias = true},
    {.name = "qwen3-0.6b", .arch = "qwen3", .n_vocab = 151936, .n_embd = 1024, .n_layer = 28, .n_head = 16,
     .n_head_kv = 8, .n_ff = 3072, .n_ctx = 40960, .head_dim = 128, .rope_base = 1000000.0f, .norm_eps = 1e-6f,
     .tied_embd = true, .qk_norm = true},
    /* A Mixtral-style MoE small enough for tests and CPU benchmarks. */
    {.name = "mixtral-8x7b-mini", .arch = "llama", .n_vocab = 32000, .n_embd = 1024, .n_layer = 4, .n_head = 16,
     .n_head_kv = 4, .n_ff = 3584, .n_ctx = 32768, .rope_base = 1000000.0f, .norm_eps = 1e-5f, .n_expert = 8,
     .n_expert_used = 2},
    {.name = "gemma3-270m", .arch = "gemma3", .n_vocab = 262144, .n_embd = 640, .n_layer = 18, .n_head = 4,
     .n_head_kv = 1, .n_ff = 2048, .n_ctx = 32768, .head_dim = 256, .rope_base = 1000000.0f,
     .rope_base_swa = 10000.0f, .norm_eps = 1e-6f, .tied_embd = true, .qk_norm = true, .gemma_norms = true,
     .sliding_window = 512},
};

const rf_synth_shape *rf_synth_shapes(size_t *count) {
    *count = RF_ARRAY_LEN(shapes);
    return shapes;
}

const rf_synth_shape *rf_synth_find_shape(const char *name) {
    for (size_t i = 0; i < RF_ARRAY_LEN(shapes); i++)
        if (strcmp(shapes[i].name, name) == 0) return &shapes[i];
    return NULL;
}

rf_status rf_synth_load_config(const char *path, rf_synth_shape *s, char *name_buf, size_t name_n,
                               char *arch_buf, size_t arch_n, rf_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) return rf_error_set(err, RF_E_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    rf_status st = RF_OK;
    if (!json_is_object(root)) { st = rf_error_set(err, RF_E_FORMAT, "%s: expected a JSON object", path); goto out; }
    memset(s, 0, sizeof *s);
    static const struct { const char *key; size_t off; bool required; } ints[] = {
        {"n_vocab", offsetof(rf_synth_shape, n_vocab), true},   {"n_embd", offsetof(rf_synth_shape, n_embd), true},
        {"n_layer", offsetof(rf_synth_shape, n_layer), true},   {"n_head", offsetof(rf_synth_shape, n_head), true},
        {"n_head_kv", offsetof(rf_synth_shape, n_head_kv), false}, {"n_ff", offsetof(rf_synth_shape, n_ff), true},
        {"n_ctx", offsetof(rf_synth_shape, n_ctx), false},      {"head_dim", offsetof(rf_synth_shape, head_dim), false},
        {"n_expert", offsetof(rf_synth_shape, n_expert), false},
        {"n_expert_used", offsetof(rf_synth_shape, n_expert_used), false},
        {"sliding_window", offsetof(rf_synth_shape, sliding_window), false},
    };
    static const struct { const char *key; size_t off; } floats[] = {
        {"rope_base", offsetof(rf_synth_shape, rope_base)}, {"rope_base_swa", offsetof(rf_synth_shape, rope_base_swa)},
        {"norm_eps", offsetof(rf_synth_shape, norm_eps)},
        {"rope_scale_llama3", offsetof(rf_synth_shape, rope_scale_llama3)},
    };
    static const struct { const char *key; size_t off; } bools[] = {
        {"tied_embd", offsetof(rf_synth_shape, tied_embd)}, {"qkv_bias", offsetof(rf_synth_shape, qkv_bias)},
        {"qk_norm", offsetof(rf_synth_shape, qk_norm)},     {"gemma_norms", offsetof(rf_synth_shape, gemma_norms)},
    };
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        bool known = false;
        for (size_t i = 0; i < RF_ARRAY_LEN(ints); i++) {
            if (strcmp(key, ints[i].key)) continue;
            known = true;
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1ll << 40)) {
                st = rf_error_set(err, RF_E_FORMAT, "%s: \"%s\" must be a non-negative integer", path, key);
                goto out;
            }
            *(int64_t *)((char *)s + ints[i].off) = json_integer_value(v);
        }
        for (size_t i = 0; i < RF_ARRAY_LEN(floats); i++) {
            if (strcmp(key, floats[i].key)) continue;
            known = true;
            if (!json_is_number(v)) { st = rf_error_set(err, RF_E_FORMAT, "%s: \"%s\" must be a number", path, key); goto out; }
            *(float *)((char *)s + floats[i].off) = (float)json_number_value(v);
        }
        for (size_t i = 0; i < RF_ARRAY_LEN(bools); i++) {
            if (strcmp(key, bools[i].key)) continue;
            known = true;
            if (!json_is_boolean(v)) { st = rf_error_set(err, RF_E_FORMAT, "%s: \"%s\" must be true/false", path, key); goto out; }
            *(bool *)((char *)s + bools[i].off) = json_is_true(v);
        }
        if (!strcmp(key, "name") || !strcmp(key, "arch")) {
            known = true;
            if (!json_is_string(v)) { st = rf_error_set(err, RF_E_FORMAT, "%s: \"%s\" must be a string", path, key); goto out; }
            char *dst = key[0] == 'n' ? name_buf : arch_buf;
            snprintf(dst, key[0] == 'n' ? name_n : arch_n, "%s", json_string_value(v));
        }
        if (!known) { st = rf_error_set(err, RF_E_FORMAT, "%s: unknown key \"%s\"", path, key); goto out; }
    }
    for (size_t i = 0; i < RF_ARRAY_LEN(ints); i++) {
        if (ints[i].required && *(int64_t *)((char *)s + ints[i].off) <= 0) {
            st = rf_error_set(err, RF_E_FORMAT, "%s: \"%s\" is required and must be > 0", path, ints[i].key);
            goto out;
        }
    }
    if (!arch_buf[0]) snprintf(arch_buf, arch_n, "llama");
    if (!name_buf[0]) snprintf(name_buf, name_n, "custom");
    s->name = name_buf;
    s->arch = arch_buf;
    if (!s->n_head_kv) s->n_head_kv = s->n_head;
    if (!s->n_ctx) s->n_ctx = 4096;
    if (s->rope_base == 0) s->rope_base = 10000.0f;
    if (s->norm_eps == 0) s->norm_eps = 1e-5f;
out:
    json_decref(root);
    return st;
}

static rf_status check_shape(const rf_synth_shape *s, rf_error *err) {
    static const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3"};
    bool ok = false;
    for (size_t i = 0; i < RF_ARRAY_LEN(archs); i++) ok |= strcmp(s->arch, archs[i]) == 0;
    if (!ok) return rf_error_set(err, RF_E_UNSUPPORTED, "synth: architecture '%s' not supported (llama, qwen2, qwen3, gemma3)", s->arch);
    int64_t hd = s->head_dim ? s->head_dim : (s->n_head ? s->n_embd / s->n_head : 0);
    if (s->n_head <= 0 || s->n_head_kv <= 0 || s->n_head % s->n_head_kv || hd <= 0 || hd % 2)
        return rf_error_set(err, RF_E_INVAL, "synth: heads %lld/%lld with head_dim %lld do not fit together",
                            (long long)s->n_head, (long long)s->n_head_kv, (long long)hd);
    if (s->n_vocab < 259) return rf_error_set(err, RF_E_INVAL, "synth: vocabulary must hold at least 259 tokens");
    if (s->n_expert && (s->n_expert_used <= 0 || s->n_expert_used > s->n_expert))
        return rf_error_set(err, RF_E_INVAL, "synth: expert_used must be in 1..n_expert");
    return RF_OK;
}

/* ---- random numbers ---------------------------------------------------- */

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Approximately normal, unit variance: the sum of four 16-bit uniforms
 * (Irwin-Hall), centred and scaled. Cheap enough for billions of weights. */
static inline float randn_fast(uint64_t *s) {
    uint64_t r = splitmix64(s);
    float u = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
    return (u * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

typedef enum wkind { W_MATRIX, W_NORM, W_BIAS, W_ROPE_FREQS } wkind;

typedef struct row_gen {
    uint64_t seed;
    uint64_t tensor_id;
    int64_t ne0;
    wkind kind;
    float scale;
    float rope_base, rope_factor; /* W_ROPE_FREQS */
} row_gen;

/* Llama 3.x rope scaling as per-frequency divisors (rope_freqs.weight):
 * long wavelengths are slowed by `factor`, short ones kept, the band between
 * (original context 8192, low/high frequency factors 1 and 4) blended. */
static void rope_freqs_row(const row_gen *g, float *dst) {
    const float orig_ctx = 8192.0f, low_ff = 1.0f, high_ff = 4.0f;
    const float low_wl = orig_ctx / low_ff, high_wl = orig_ctx / high_ff;
    int64_t hd = g->ne0 * 2;
    for (int64_t i = 0; i < g->ne0; i++) {
        float freq = 1.0f / powf(g->rope_base, (float)(2 * i) / (float)hd);
        float wl = 2.0f * 3.14159265358979f / freq;
        if (wl < high_wl) dst[i] = 1.0f;
        else if (wl > low_wl) dst[i] = g->rope_factor;
        else {
            float smooth = (orig_ctx / wl - low_ff) / (high_ff - low_ff);
            dst[i] = 1.0f / ((1.0f - smooth) / g->rope_factor + smooth);
        }
    }
}

static void gen_row(void *ctx, int64_t row, float *dst) {
    const row_gen *g = ctx;
    if (g->kind == W_ROPE_FREQS) { rope_freqs_row(g, dst); return; }
    uint64_t s = g->seed ^ (g->tensor_id * 0xd1b54a32d192ed03ull) ^ ((uint64_t)row * 0x8cb92ba72f3d8dd7ull);
    splitmix64(&s);
    for (int64_t i = 0; i < g->ne0; i++) {
        float z = randn_fast(&s);
        dst[i] = g->kind == W_NORM ? 1.0f + 0.1f * z : g->scale * z;
    }
}

/* ---- vocabulary -------------------------------------------------------- */

/* Token types of tokenizer.ggml.token_type. */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_BYTE = 6 };

typedef struct vocab {
    char **tokens;
    float *scores;
    int32_t *types;
    int64_t n;
} vocab;

static void vocab_free(vocab *v) {
    if (v->tokens)
        for (int64_t i = 0; i < v->n; i++) rf_free(v->tokens[i]);
    rf_free(v->tokens);
    rf_free(v->scores);
    rf_free(v->types);
}

/* <unk> <s> </s>, the 256 byte tokens, the printable ASCII characters, then
 * unique filler pieces "▁" + base-26 letters, scored so shorter pieces win. */
static rf_status vocab_generate(vocab *v, int64_t n, rf_error *err) {
    v->n = n;
    v->tokens = rf_calloc((size_t)n, sizeof(char *));
    v->scores = rf_calloc((size_t)n, sizeof(float));
    v->types = rf_calloc((size_t)n, sizeof(int32_t));
    if (!v->tokens || !v->scores || !v->types) return rf_error_set(err, RF_E_NOMEM, "out of memory for the vocabulary");
    char buf[32];
    int64_t i = 0, filler = 0;
    for (; i < n; i++) {
        int type = TOK_NORMAL;
        if (i == 0) { strcpy(buf, "<unk>"); type = TOK_UNKNOWN; }
        else if (i == 1) { strcpy(buf, "<s>"); type = TOK_CONTROL; }
        else if (i == 2) { strcpy(buf, "</s>"); type = TOK_CONTROL; }
        else if (i < 3 + 256) { snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(i - 3)); type = TOK_BYTE; }
        else if (i < 3 + 256 + 95) { buf[0] = (char)(' ' + (i - 259)); buf[1] = 0; if (buf[0] == ' ') strcpy(buf, "\xe2\x96\x81"); }
        else {
            /* "▁" then filler in bijective base 26 (a..z, aa..): all distinct */
            char tmp[16];
            int len = 0;
            for (int64_t k = filler++ + 1; k > 0; k = (k - 1) / 26) tmp[len++] = (char)('a' + (k - 1) % 26);
            memcpy(buf, "\xe2\x96\x81", 3);
            for (int k = 0; k < len; k++) buf[3 + k] = tmp[len - 1 - k];
            buf[3 + len] = 0;
        }
        v->tokens[i] = rf_strndup(buf, strlen(buf));
        if (!v->tokens[i]) return rf_error_set(err, RF_E_NOMEM, "out of memory for the vocabulary");
        v->types[i] = type;
        v->scores[i] = type == TOK_NORMAL ? -(float)(i - 259) : 0.0f;
    }
    return RF_OK;
}

static rf_status write_generated_vocab(rf_gguf_writer *w, const vocab *v) {
    rf_status st = RF_OK;
    st = st ? st : rf_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    st = st ? st : rf_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
    st = st ? st : rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n);
    st = st ? st : rf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", RF_GGUF_F32, v->scores, (uint64_t)v->n);
    st = st ? st : rf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RF_GGUF_I32, v->types, (uint64_t)v->n);
    st = st ? st : rf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    st = st ? st : rf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    st = st ? st : rf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    st = st ? st : rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    st = st ? st : rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    return st;
}

/* Copies every tokenizer.* key of a real GGUF; returns its vocabulary size. */
static rf_status copy_vocab(rf_gguf_writer *w, const char *path, int64_t *n_vocab, rf_error *err) {
    rf_gguf *g = NULL;
    rf_status st = rf_gguf_open(path, &g, err);
    if (st != RF_OK) return st;
    rf_gguf_arr toks;
    st = rf_gguf_get_arr(g, "tokenizer.ggml.tokens", &toks, err);
    if (st != RF_OK) {
        if (st == RF_E_NOTFOUND) rf_error_set(err, st, "%s: no tokenizer.ggml.tokens to copy", path);
        goto out;
    }
    *n_vocab = (int64_t)toks.n;
    for (int64_t i = 0; i < rf_gguf_n_kv(g) && st == RF_OK; i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        if (kv->key.len >= 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0)
            st = rf_gguf_writer_set_value(w, kv->key, &kv->val);
    }
    if (st != RF_OK) rf_error_set(err, st, "copying the vocabulary of %s failed", path);
out:
    rf_gguf_close(g);
    return st;
}

/* ---- tensors ----------------------------------------------------------- */

typedef struct tdesc {
    char name[64];
    uint32_t n_dims;
    int64_t ne[3];
    wkind kind;
    rf_type type;
} tdesc;

typedef struct tlist {
    tdesc *v;
    size_t n, cap;
} tlist;

static rf_status add(tlist *l, wkind kind, int64_t ne0, int64_t ne1, int64_t ne2, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static rf_status add(tlist *l, wkind kind, int64_t ne0, int64_t ne1, int64_t ne2, const char *fmt, ...) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        tdesc *nv = rf_realloc(l->v, cap * sizeof *nv);
        if (!nv) return RF_E_NOMEM;
        l->v = nv;
        l->cap = cap;
    }
    tdesc *t = &l->v[l->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->kind = kind;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->n_dims = ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1;
    if (t->n_dims == 1 && kind == W_MATRIX) t->n_dims = 2;
    return RF_OK;
}

/* GGUF shapes list the contiguous dimension first: a weight mapping n_in to
 * n_out features is [n_in, n_out]. */
static rf_status build_tensors(const rf_synth_shape *s, int64_t n_layer, tlist *l) {
    int64_t hd = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
    int64_t q = s->n_head * hd, kv = s->n_head_kv * hd, E = s->n_embd;
    rf_status st = RF_OK;
#define ADD(...) do { if ((st = add(l, __VA_ARGS__)) != RF_OK) return st; } while (0)
    ADD(W_MATRIX, E, s->n_vocab, 1, "token_embd.weight");
    if (s->rope_scale_llama3 > 0) ADD(W_ROPE_FREQS, hd / 2, 1, 1, "rope_freqs.weight");
    for (int64_t i = 0; i < n_layer; i++) {
        ADD(W_NORM, E, 1, 1, "blk.%lld.attn_norm.weight", (long long)i);
        ADD(W_MATRIX, E, q, 1, "blk.%lld.attn_q.weight", (long long)i);
        ADD(W_MATRIX, E, kv, 1, "blk.%lld.attn_k.weight", (long long)i);
        ADD(W_MATRIX, E, kv, 1, "blk.%lld.attn_v.weight", (long long)i);
        if (s->qkv_bias) {
            ADD(W_BIAS, q, 1, 1, "blk.%lld.attn_q.bias", (long long)i);
            ADD(W_BIAS, kv, 1, 1, "blk.%lld.attn_k.bias", (long long)i);
            ADD(W_BIAS, kv, 1, 1, "blk.%lld.attn_v.bias", (long long)i);
        }
        if (s->qk_norm) {
            ADD(W_NORM, hd, 1, 1, "blk.%lld.attn_q_norm.weight", (long long)i);
            ADD(W_NORM, hd, 1, 1, "blk.%lld.attn_k_norm.weight", (long long)i);
        }
        ADD(W_MATRIX, q, E, 1, "blk.%lld.attn_output.weight", (long long)i);
        if (s->gemma_norms) ADD(W_NORM, E, 1, 1, "blk.%lld.post_attention_norm.weight", (long long)i);
        ADD(W_NORM, E, 1, 1, "blk.%lld.ffn_norm.weight", (long long)i);
        if (s->n_expert) {
            ADD(W_MATRIX, E, s->n_expert, 1, "blk.%lld.ffn_gate_inp.weight", (long long)i);
            ADD(W_MATRIX, E, s->n_ff, s->n_expert, "blk.%lld.ffn_gate_exps.weight", (long long)i);
            ADD(W_MATRIX, E, s->n_ff, s->n_expert, "blk.%lld.ffn_up_exps.weight", (long long)i);
            ADD(W_MATRIX, s->n_ff, E, s->n_expert, "blk.%lld.ffn_down_exps.weight", (long long)i);
        } else {
            ADD(W_MATRIX, E, s->n_ff, 1, "blk.%lld.ffn_gate.weight", (long long)i);
            ADD(W_MATRIX, E, s->n_ff, 1, "blk.%lld.ffn_up.weight", (long long)i);
            ADD(W_MATRIX, s->n_ff, E, 1, "blk.%lld.ffn_down.weight", (long long)i);
        }
        if (s->gemma_norms) ADD(W_NORM, E, 1, 1, "blk.%lld.post_ffw_norm.weight", (long long)i);
    }
    ADD(W_NORM, E, 1, 1, "output_norm.weight");
    if (!s->tied_embd) ADD(W_MATRIX, E, s->n_vocab, 1, "output.weight");
#undef ADD
    return st;
}

static rf_status write_metadata(rf_gguf_writer *w, const rf_synth_opts *o, int64_t n_layer) {
    const rf_synth_shape *s = &o->shape;
    int64_t hd = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
    char k[128], name[160];
    rf_status st = RF_OK;
#define KEY(suffix) (snprintf(k, sizeof k, "%s." suffix, s->arch), k)
    snprintf(name, sizeof name, "synth %s %s", s->name, o->target.name);
    st = st ? st : rf_gguf_writer_set_str(w, "general.architecture", s->arch);
    st = st ? st : rf_gguf_writer_set_str(w, "general.type", "model");
    st = st ? st : rf_gguf_writer_set_str(w, "general.name", name);
    st = st ? st : rf_gguf_writer_set_str(w, "general.description",
                                          "random weights of a real shape, written by rocmforge synth");
    st = st ? st : rf_gguf_writer_set_u32(w, "general.quantization_version", 2);
    st = st ? st : rf_gguf_writer_set_u32(w, "general.file_type", o->target.file_type);
    st = st ? st : rf_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)s->n_ctx);
    st = st ? st : rf_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)s->n_embd);
    st = st ? st : rf_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)n_layer);
    st = st ? st : rf_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)s->n_ff);
    st = st ? st : rf_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)s->n_head);
    st = st ? st : rf_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
    st = st ? st : rf_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), s->norm_eps);
    st = st ? st : rf_gguf_writer_set_f32(w, KEY("rope.freq_base"), s->rope_base);
    st = st ? st : rf_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hd);
    if (s->head_dim) {
        st = st ? st : rf_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)hd);
        st = st ? st : rf_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)hd);
    }
    if (s->n_expert) {
        st = st ? st : rf_gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)s->n_expert);
        st = st ? st : rf_gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)s->n_expert_used);
    }
    if (s->sliding_window) st = st ? st : rf_gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)s->sliding_window);
    /* Llama 3.x rope scaling travels as rope_freqs.weight (see build_tensors):
     * llama.cpp rejects a rope.scaling.type of "llama3", so none is written. */
#undef KEY
    return st;
}

/* ---- writing ----------------------------------------------------------- */

typedef struct progress_ctx {
    const rf_synth_opts *o;
    uint64_t base, total;
    double t0, last;
} progress_ctx;

static void on_progress(void *p, uint64_t done) {
    progress_ctx *pc = p;
    if (!pc->o->progress) return;
    double now = rf_time_now();
    if (now - pc->last < 0.2) return;
    pc->last = now;
    fprintf(stderr, "\rsynth: %5.1f%% of %.2f GiB", 100.0 * (double)(pc->base + done) / (double)pc->total,
            (double)pc->total / (1u << 30));
    fflush(stderr);
}

rf_status rf_synth_write(const rf_synth_opts *o, rf_error *err) {
    const rf_synth_shape *s = &o->shape;
    rf_status st = check_shape(s, err);
    if (st != RF_OK) return st;
    int64_t n_layer = o->n_layer_override > 0 ? o->n_layer_override : s->n_layer;
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_threadpool *tp = rf_threadpool_create(o->n_threads);
    tlist l = {0};
    vocab v = {0};
    if (!w || !tp) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto out; }

    rf_synth_shape shape = *s;
    if (o->vocab_path) {
        if ((st = copy_vocab(w, o->vocab_path, &shape.n_vocab, err)) != RF_OK) goto out;
    } else {
        if ((st = vocab_generate(&v, shape.n_vocab, err)) != RF_OK) goto out;
        if ((st = write_generated_vocab(w, &v)) != RF_OK) { rf_error_set(err, st, "writing the vocabulary failed"); goto out; }
    }
    rf_synth_opts oo = *o;
    oo.shape = shape;
    if ((st = write_metadata(w, &oo, n_layer)) != RF_OK) { rf_error_set(err, st, "writing metadata failed"); goto out; }
    if ((st = build_tensors(&shape, n_layer, &l)) != RF_OK) { rf_error_set(err, st, "out of memory"); goto out; }

    uint64_t total = 0;
    int n_fallback = 0;
    for (size_t i = 0; i < l.n; i++) {
        tdesc *t = &l.v[i];
        bool fb;
        t->type = rf_qpolicy_choose(&o->target, t->name, t->n_dims, t->ne, (int)n_layer, &fb);
        n_fallback += fb;
        if ((st = rf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL, err)) != RF_OK) goto out;
        total += rf_row_size(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2]);
    }
    if (n_fallback)
        RF_LOGW("synth: %d tensors have rows not a multiple of the %s block; they use a fitting type instead",
                n_fallback, rf_type_name(o->target.base));
    if ((st = rf_gguf_writer_begin(w, o->out_path, err)) != RF_OK) goto out;

    progress_ctx pc = {o, 0, total ? total : 1, rf_time_now(), 0};
    for (size_t i = 0; i < l.n; i++) {
        tdesc *t = &l.v[i];
        row_gen g = {o->seed, i, t->ne[0], t->kind, t->kind == W_BIAS ? 0.02f : 1.0f / sqrtf((float)t->ne[0]),
                     s->rope_base, s->rope_scale_llama3};
        int64_t rows = t->ne[1] * t->ne[2];
        st = t->kind == W_MATRIX && o->row_pool > 0
                 ? rf_convert_tensor_pooled(w, tp, t->type, t->ne[0], rows, o->row_pool, o->seed ^ (i * 0xa24baed4963ee407ull),
                                            gen_row, &g, on_progress, &pc, err)
                 : rf_convert_tensor(w, tp, t->type, t->ne[0], rows, gen_row, &g, on_progress, &pc, err);
        if (st != RF_OK) goto out;
        pc.base += rf_row_size(t->type, t->ne[0]) * (uint64_t)rows;
    }
    st = rf_gguf_writer_finish(w, err);
    if (o->progress) fprintf(stderr, "\r");
out:
    vocab_free(&v);
    rf_free(l.v);
    rf_threadpool_free(tp);
    rf_gguf_writer_free(w);
    return st;
}
