/*
 * model.c - the architecture table, hyper-parameters from GGUF metadata and
 * weight binding.
 *
 * Each architecture is a row of flags; loading reads the hyper-parameters
 * the flags ask for and binds every tensor by name, checking type and exact
 * shape. Nothing is guessed: a missing key that has no documented default,
 * a missing tensor or a wrong shape stops the load with a message naming it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

enum {
    A_QKV_BIAS = 1 << 0,     /* q/k/v biases required (qwen2) */
    A_BIAS_OPT = 1 << 1,     /* q/k/v/o biases allowed (llama variants) */
    A_QK_NORM = 1 << 2,      /* per-head q/k RMSNorm (qwen3, gemma3) */
    A_POST_NORMS = 1 << 3,   /* post-attention / post-ffn norms (gemma3) */
    A_EMBD_SCALE = 1 << 4,   /* embeddings * sqrt(n_embd) (gemma) */
    A_MOE_OPT = 1 << 5,      /* MoE when expert_count > 0 (llama: Mixtral) */
    A_MOE = 1 << 6,          /* always MoE (qwen3moe) */
    A_FUSED_QKV = 1 << 7,    /* attn_qkv (phi3) */
    A_FUSED_UP = 1 << 8,     /* ffn_up holds [gate | up] (phi3) */
    A_SWA = 1 << 9,          /* interleaved sliding-window layers (gemma3) */
};

struct rf_arch {
    const char *name;
    rf_rope_style rope;
    rf_act act;
    unsigned flags;
    int swa_pattern;      /* every Nth layer global */
    float rope_base_swa;  /* rope base of local layers */
};

/* Facts of each family as llama.cpp and the HF configs define them. */
static const rf_arch archs[] = {
    {"llama", RF_ROPE_NORMAL, RF_ACT_SILU, A_BIAS_OPT | A_MOE_OPT, 0, 0},
    {"qwen2", RF_ROPE_NEOX, RF_ACT_SILU, A_QKV_BIAS, 0, 0},
    {"qwen3", RF_ROPE_NEOX, RF_ACT_SILU, A_QK_NORM, 0, 0},
    {"qwen3moe", RF_ROPE_NEOX, RF_ACT_SILU, A_QK_NORM | A_MOE, 0, 0},
    {"gemma3", RF_ROPE_NEOX, RF_ACT_GELU_TANH, A_QK_NORM | A_POST_NORMS | A_EMBD_SCALE | A_SWA, 6, 10000.0f},
    {"phi3", RF_ROPE_NEOX, RF_ACT_SILU, A_FUSED_QKV | A_FUSED_UP, 0, 0},
};

/* ---- metadata ---------------------------------------------------------- */

typedef struct loader {
    rf_gguf *g;
    rf_model *m;
    rf_error *err;
    float *conv;       /* next free float of m->converted */
} loader;

static rf_status key_i64(loader *L, const char *suffix, int64_t *out, bool required, int64_t dflt) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", L->m->hp.arch_name, suffix);
    rf_status st = rf_gguf_get_i64(L->g, k, out, L->err);
    if (st == RF_E_NOTFOUND && !required) { *out = dflt; return RF_OK; }
    if (st == RF_E_NOTFOUND) return rf_error_set(L->err, RF_E_FORMAT, "model: required key '%s' is missing", k);
    if (st == RF_OK && *out < 0) return rf_error_set(L->err, RF_E_FORMAT, "model: key '%s' is negative", k);
    return st;
}

static rf_status key_f32(loader *L, const char *suffix, float *out, float dflt) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", L->m->hp.arch_name, suffix);
    rf_status st = rf_gguf_get_f32(L->g, k, out, L->err);
    if (st == RF_E_NOTFOUND) { *out = dflt; return RF_OK; }
    if (st == RF_OK && !isfinite(*out)) return rf_error_set(L->err, RF_E_FORMAT, "model: key '%s' is not finite", k);
    return st;
}

static rf_status read_hparams(loader *L) {
    rf_hparams *hp = &L->m->hp;
    rf_str a;
    rf_status st = rf_gguf_get_str(L->g, "general.architecture", &a, L->err);
    if (st == RF_E_NOTFOUND) return rf_error_set(L->err, RF_E_FORMAT, "model: general.architecture is missing");
    if (st != RF_OK) return st;
    snprintf(hp->arch_name, sizeof hp->arch_name, "%.*s", (int)(a.len < 31 ? a.len : 31), a.ptr);
    for (size_t i = 0; i < RF_ARRAY_LEN(archs); i++)
        if (rf_str_eq(a, archs[i].name)) hp->arch = &archs[i];
    if (!hp->arch) {
        char list[256] = "";
        for (size_t i = 0; i < RF_ARRAY_LEN(archs); i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", archs[i].name);
        return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: architecture '%s' is not supported (supported: %s)",
                            hp->arch_name, list);
    }
    const rf_arch *ar = hp->arch;
    int64_t v;
    if ((st = key_i64(L, "embedding_length", &hp->n_embd, true, 0))) return st;
    if ((st = key_i64(L, "block_count", &hp->n_layer, true, 0))) return st;
    if ((st = key_i64(L, "attention.head_count", &hp->n_head, true, 0))) return st;
    if ((st = key_i64(L, "attention.head_count_kv", &hp->n_head_kv, false, hp->n_head))) return st;
    if ((st = key_i64(L, "feed_forward_length", &hp->n_ff, false, 0))) return st;
    if ((st = key_i64(L, "context_length", &hp->n_ctx_train, false, 4096))) return st;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv)
        return rf_error_set(L->err, RF_E_FORMAT, "model: inconsistent sizes (embd %lld, layers %lld, heads %lld/%lld)",
                            (long long)hp->n_embd, (long long)hp->n_layer, (long long)hp->n_head, (long long)hp->n_head_kv);
    /* head_dim: key_length when present, else n_embd / n_head (never 0) */
    if ((st = key_i64(L, "attention.key_length", &hp->head_dim, false, hp->n_embd / hp->n_head))) return st;
    if ((st = key_i64(L, "attention.value_length", &v, false, hp->head_dim))) return st;
    if (v != hp->head_dim || hp->head_dim <= 0 || hp->head_dim % 2)
        return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: head dims k=%lld v=%lld are not supported",
                            (long long)hp->head_dim, (long long)v);
    if ((st = key_i64(L, "rope.dimension_count", &hp->n_rot, false, hp->head_dim))) return st;
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return rf_error_set(L->err, RF_E_FORMAT, "model: rope.dimension_count %lld does not fit head_dim %lld",
                            (long long)hp->n_rot, (long long)hp->head_dim);
    if ((st = key_f32(L, "attention.layer_norm_rms_epsilon", &hp->norm_eps, 1e-5f))) return st;
    if ((st = key_f32(L, "rope.freq_base", &hp->rope_base, 10000.0f))) return st;
    hp->rope_base_swa = ar->rope_base_swa > 0 ? ar->rope_base_swa : hp->rope_base;
    /* rope scaling, as llama.cpp reads it: a factor without a type is linear;
     * "llama3" documents rope_freqs.weight; YaRN blends angles by frequency */
    float factor, attn_factor;
    if ((st = key_f32(L, "rope.scaling.factor", &factor, 0.0f))) return st;
    if (factor == 0.0f && (st = key_f32(L, "rope.scale_linear", &factor, 0.0f))) return st; /* older files */
    if ((st = key_f32(L, "rope.scaling.attn_factor", &attn_factor, 1.0f))) return st;
    if ((st = key_i64(L, "rope.scaling.original_context_length", &hp->n_ctx_orig, false, hp->n_ctx_train))) return st;
    if (hp->n_ctx_orig <= 0) hp->n_ctx_orig = hp->n_ctx_train > 0 ? hp->n_ctx_train : 4096;
    hp->rope_scale = factor > 0 ? 1.0f / factor : 1.0f;
    char k[128];
    snprintf(k, sizeof k, "%s.rope.scaling.type", hp->arch_name);
    rf_str stype;
    if (rf_gguf_get_str(L->g, k, &stype, NULL) == RF_OK) {
        if (rf_str_eq(stype, "none") || rf_str_eq(stype, "llama3")) hp->rope_scale = 1.0f;
        else if (rf_str_eq(stype, "yarn")) hp->rope_yarn = true;
        else if (!rf_str_eq(stype, "linear"))
            return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: rope scaling '%.*s' is not supported (none, linear, yarn)",
                                (int)(stype.len < 32 ? stype.len : 32), stype.ptr);
    }
    snprintf(k, sizeof k, "%s.rope.scaling.yarn_log_multiplier", hp->arch_name);
    float ylog = 0;
    if (rf_gguf_get_f32(L->g, k, &ylog, NULL) == RF_OK && ylog != 0.0f)
        return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: rope.scaling.yarn_log_multiplier is not supported");
    hp->rope_mscale = attn_factor;
    if (hp->rope_yarn && hp->rope_scale < 1.0f) hp->rope_mscale *= 0.1f * logf(1.0f / hp->rope_scale) + 1.0f;
    hp->rope_style = ar->rope;
    hp->act = ar->act;
    if ((st = key_i64(L, "expert_count", &hp->n_expert, false, 0))) return st;
    if ((st = key_i64(L, "expert_used_count", &hp->n_expert_used, false, 0))) return st;
    if ((ar->flags & A_MOE) && hp->n_expert == 0)
        return rf_error_set(L->err, RF_E_FORMAT, "model: %s needs %s.expert_count", hp->arch_name, hp->arch_name);
    if (hp->n_expert && (!(ar->flags & (A_MOE | A_MOE_OPT)) || hp->n_expert_used <= 0 || hp->n_expert_used > hp->n_expert))
        return rf_error_set(L->err, RF_E_FORMAT, "model: expert_count %lld / expert_used_count %lld invalid for %s",
                            (long long)hp->n_expert, (long long)hp->n_expert_used, hp->arch_name);
    if ((st = key_i64(L, "expert_gating_func", &v, false, 1))) return st;
    if (v != 1 && v != 2) return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: expert gating function %lld", (long long)v);
    hp->expert_gating = (int)v;
    hp->expert_norm = true; /* Mixtral and Qwen3-MoE renormalise the chosen experts' weights */
    if (hp->n_expert) {
        snprintf(k, sizeof k, "%s.expert_weights_norm", hp->arch_name);
        bool b;
        if (rf_gguf_get_bool(L->g, k, &b, NULL) == RF_OK) hp->expert_norm = b;
    }
    if (ar->flags & A_SWA) {
        if ((st = key_i64(L, "attention.sliding_window", &hp->sliding_window, true, 0))) return st;
        hp->swa_pattern = ar->swa_pattern;
        if ((st = key_f32(L, "rope.freq_base_swa", &hp->rope_base_swa, hp->rope_base_swa))) return st;
    }
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = (ar->flags & A_EMBD_SCALE) ? sqrtf((float)hp->n_embd) : 1.0f;
    return RF_OK;
}

/* ---- tensors ----------------------------------------------------------- */

static const rf_gguf_tensor *find(loader *L, const char *name) { return rf_gguf_find_tensor(L->g, name); }

static rf_status shape_error(loader *L, const rf_gguf_tensor *t, const char *name, int64_t e0, int64_t e1, int64_t e2) {
    return rf_error_set(L->err, RF_E_FORMAT, "model: tensor '%s' has shape [%lld, %lld, %lld], expected [%lld, %lld, %lld]",
                        name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)e0,
                        (long long)e1, (long long)e2);
}

/* Binds a 2-D weight [cols, rows]. */
static rf_status bind_w(loader *L, rf_wview *w, bool required, int64_t cols, int64_t rows, const char *fmt, int il) {
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    const rf_gguf_tensor *t = find(L, name);
    memset(w, 0, sizeof *w);
    if (!t) return required ? rf_error_set(L->err, RF_E_FORMAT, "model: tensor '%s' is missing (%s needs it)", name, L->m->hp.arch_name) : RF_OK;
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1) return shape_error(L, t, name, cols, rows, 1);
    const rf_type_info *ti = rf_type_get(t->type);
    if (!ti->to_float) return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: tensor '%s' has type %s, not a weight type", name, ti->name);
    *w = (rf_wview){t->data, t->type, cols, rows, rf_row_size(t->type, cols), RF_WLAYOUT_ROWS};
    return RF_OK;
}

static rf_status bind_stack(loader *L, rf_wstack *s, int64_t cols, int64_t rows, int64_t n, const char *fmt, int il) {
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    const rf_gguf_tensor *t = find(L, name);
    if (!t) return rf_error_set(L->err, RF_E_FORMAT, "model: tensor '%s' is missing (MoE layers need it)", name);
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != n || t->ne[3] != 1) return shape_error(L, t, name, cols, rows, n);
    if (!rf_type_get(t->type)->to_float) return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: tensor '%s' type", name);
    size_t rb = rf_row_size(t->type, cols);
    s->w = (rf_wview){t->data, t->type, cols, rows, rb, RF_WLAYOUT_ROWS};
    s->stride = rb * (size_t)rows;
    return RF_OK;
}

/* Binds a 1-D float vector of length n; F16/BF16 are converted once. */
static rf_status bind_vec(loader *L, const float **out, bool required, int64_t n, const char *fmt, int il) {
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    const rf_gguf_tensor *t = find(L, name);
    *out = NULL;
    if (!t) return required ? rf_error_set(L->err, RF_E_FORMAT, "model: tensor '%s' is missing (%s needs it)", name, L->m->hp.arch_name) : RF_OK;
    if (rf_gguf_tensor_nelements(t) != n || t->ne[0] != n) return shape_error(L, t, name, n, 1, 1);
    if (t->type == RF_TYPE_F32 && ((uintptr_t)t->data % 4) == 0) { *out = t->data; return RF_OK; }
    if (!rf_type_get(t->type)->to_float) return rf_error_set(L->err, RF_E_UNSUPPORTED, "model: tensor '%s' type", name);
    rf_dequantize_row(t->type, t->data, L->conv, n);
    *out = L->conv;
    L->conv += n;
    return RF_OK;
}

static rf_status bind_layer(loader *L, int il) {
    const rf_hparams *hp = &L->m->hp;
    rf_layer *ly = &L->m->layers[il];
    unsigned f = hp->arch->flags;
    int64_t E = hp->n_embd, q = hp->n_head * hp->head_dim, kv = hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    rf_status st;
#define TRY(x) do { if ((st = (x)) != RF_OK) return st; } while (0)
    TRY(bind_vec(L, &ly->attn_norm, true, E, "blk.%d.attn_norm.weight", il));
    if (f & A_FUSED_QKV) {
        TRY(bind_w(L, &ly->wqkv, true, E, q + 2 * kv, "blk.%d.attn_qkv.weight", il));
    } else {
        TRY(bind_w(L, &ly->wq, true, E, q, "blk.%d.attn_q.weight", il));
        TRY(bind_w(L, &ly->wk, true, E, kv, "blk.%d.attn_k.weight", il));
        TRY(bind_w(L, &ly->wv, true, E, kv, "blk.%d.attn_v.weight", il));
    }
    if (f & (A_QKV_BIAS | A_BIAS_OPT)) {
        bool req = (f & A_QKV_BIAS) != 0;
        TRY(bind_vec(L, &ly->bq, req, q, "blk.%d.attn_q.bias", il));
        TRY(bind_vec(L, &ly->bk, req, kv, "blk.%d.attn_k.bias", il));
        TRY(bind_vec(L, &ly->bv, req, kv, "blk.%d.attn_v.bias", il));
    }
    if (f & A_QK_NORM) {
        TRY(bind_vec(L, &ly->q_norm, true, hp->head_dim, "blk.%d.attn_q_norm.weight", il));
        TRY(bind_vec(L, &ly->k_norm, true, hp->head_dim, "blk.%d.attn_k_norm.weight", il));
    }
    TRY(bind_w(L, &ly->wo, true, q, E, "blk.%d.attn_output.weight", il));
    if (f & A_POST_NORMS) {
        TRY(bind_vec(L, &ly->post_attn_norm, true, E, "blk.%d.post_attention_norm.weight", il));
        TRY(bind_vec(L, &ly->post_ffn_norm, true, E, "blk.%d.post_ffw_norm.weight", il));
    }
    TRY(bind_vec(L, &ly->ffn_norm, true, E, "blk.%d.ffn_norm.weight", il));
    if (hp->n_expert) {
        /* expert FFN width: expert_feed_forward_length, else feed_forward_length */
        int64_t eff;
        TRY(key_i64(L, "expert_feed_forward_length", &eff, false, ff));
        TRY(bind_w(L, &ly->ffn_gate_inp, true, E, hp->n_expert, "blk.%d.ffn_gate_inp.weight", il));
        TRY(bind_stack(L, &ly->gate_exps, E, eff, hp->n_expert, "blk.%d.ffn_gate_exps.weight", il));
        TRY(bind_stack(L, &ly->up_exps, E, eff, hp->n_expert, "blk.%d.ffn_up_exps.weight", il));
        TRY(bind_stack(L, &ly->down_exps, eff, E, hp->n_expert, "blk.%d.ffn_down_exps.weight", il));
    } else if (f & A_FUSED_UP) {
        TRY(bind_w(L, &ly->ffn_up, true, E, 2 * ff, "blk.%d.ffn_up.weight", il));
        TRY(bind_w(L, &ly->ffn_down, true, ff, E, "blk.%d.ffn_down.weight", il));
    } else {
        TRY(bind_w(L, &ly->ffn_gate, true, E, ff, "blk.%d.ffn_gate.weight", il));
        TRY(bind_w(L, &ly->ffn_up, true, E, ff, "blk.%d.ffn_up.weight", il));
        TRY(bind_w(L, &ly->ffn_down, true, ff, E, "blk.%d.ffn_down.weight", il));
    }
#undef TRY
    /* gemma3: layers are local (sliding window) except the last of every group
     * of swa_pattern; attention.sliding_window_pattern may override the group
     * size or list the local layers one by one */
    ly->is_swa = hp->swa_pattern > 0 && (il + 1) % hp->swa_pattern != 0;
    if (f & A_SWA) {
        char k[96];
        snprintf(k, sizeof k, "%s.attention.sliding_window_pattern", hp->arch_name);
        const rf_gguf_value *pv = rf_gguf_get(L->g, k);
        if (pv && pv->type == RF_GGUF_ARRAY) {
            if (pv->arr.n != (uint64_t)hp->n_layer || (pv->arr.elem_type != RF_GGUF_BOOL && !rf_gguf_vtype_size(pv->arr.elem_type)))
                return rf_error_set(L->err, RF_E_FORMAT, "model: '%s' must list one flag per layer", k);
            ly->is_swa = rf_gguf_arr_i64(&pv->arr, (uint64_t)il) != 0;
        } else if (pv) {
            int64_t pat;
            if ((st = rf_gguf_get_i64(L->g, k, &pat, L->err)) != RF_OK) return st;
            ly->is_swa = pat == 0 || il % pat < pat - 1;
        }
        if (hp->sliding_window <= 0) ly->is_swa = false;
    }
    ly->rope_base = ly->is_swa ? hp->rope_base_swa : hp->rope_base;
    ly->rope_scale = ly->is_swa ? 1.0f : hp->rope_scale;
    return RF_OK;
}

rf_status rf_model_from_gguf(rf_gguf *g, rf_model **out, rf_error *err) {
    *out = NULL;
    rf_model *m = rf_calloc(1, sizeof *m);
    if (!m) { rf_gguf_close(g); return rf_error_set(err, RF_E_NOMEM, "model: out of memory"); }
    m->gguf = g;
    loader L = {g, m, err, NULL};
    rf_status st = read_hparams(&L);
    if (st != RF_OK) goto fail;
    rf_hparams *hp = &m->hp;
    /* 1-D tensors that need conversion: size the buffer for all of them */
    int64_t conv = 0;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        if (t->n_dims == 1) conv += t->ne[0];
    }
    m->converted = rf_malloc((size_t)(conv > 0 ? conv : 1) * sizeof(float));
    m->layers = rf_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->converted || !m->layers) { st = rf_error_set(err, RF_E_NOMEM, "model: out of memory"); goto fail; }
    L.conv = m->converted;

    const rf_gguf_tensor *te = find(&L, "token_embd.weight");
    if (!te) { st = rf_error_set(err, RF_E_FORMAT, "model: tensor 'token_embd.weight' is missing"); goto fail; }
    hp->n_vocab = te->ne[1];
    rf_gguf_arr toks;
    if (rf_gguf_get_arr(g, "tokenizer.ggml.tokens", &toks, NULL) == RF_OK && (int64_t)toks.n > hp->n_vocab) {
        st = rf_error_set(err, RF_E_FORMAT, "model: vocabulary has %llu tokens but token_embd has %lld rows",
                          (unsigned long long)toks.n, (long long)hp->n_vocab);
        goto fail;
    }
    if ((st = bind_w(&L, &m->tok_embd, true, hp->n_embd, hp->n_vocab, "token_embd.weight", 0))) goto fail;
    if ((st = bind_w(&L, &m->output, false, hp->n_embd, hp->n_vocab, "output.weight", 0))) goto fail;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    if ((st = bind_vec(&L, &m->output_norm, true, hp->n_embd, "output_norm.weight", 0))) goto fail;
    if ((st = bind_vec(&L, &m->rope_freqs, false, hp->n_rot / 2, "rope_freqs.weight", 0))) goto fail;
    if ((st = bind_vec(&L, &m->rope_short, false, hp->n_rot / 2, "rope_factors_short.weight", 0))) goto fail;
    if ((st = bind_vec(&L, &m->rope_long, false, hp->n_rot / 2, "rope_factors_long.weight", 0))) goto fail;
    if (!hp->n_ff && !hp->n_expert) { st = rf_error_set(err, RF_E_FORMAT, "model: feed_forward_length is missing"); goto fail; }
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = bind_layer(&L, il)) != RF_OK) goto fail;
    *out = m;
    return RF_OK;
fail:
    rf_model_free(m);
    return st;
}

rf_status rf_model_load(const char *path, rf_model **out, rf_error *err) {
    rf_gguf *g = NULL;
    rf_status st = rf_gguf_open(path, &g, err);
    if (st != RF_OK) return st;
    /* Weights copied into huge pages decode faster than read through the
     * file's 4 KiB pages (rf_gguf_copy_data); the mapping is the fallback,
     * and what ROCMFORGE_MMAP=1 asks for (less memory, slower decode). */
    const char *mm = getenv("ROCMFORGE_MMAP");
    rf_error cerr = {0};
    if (!(mm && strcmp(mm, "1") == 0) && rf_gguf_copy_data(g, &cerr) != RF_OK)
        rf_log(RF_LOG_WARN, "%s; running from the file mapping", cerr.msg);
    return rf_model_from_gguf(g, out, err);
}

void rf_model_free(rf_model *m) {
    if (!m) return;
    rf_gguf_close(m->gguf);
    rf_free(m->layers);
    rf_free(m->converted);
    rf_free(m);
}
