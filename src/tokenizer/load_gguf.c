/*
 * load_gguf.c - a tokenizer from GGUF metadata. The keys, as llama.cpp's
 * converter writes them:
 *   tokenizer.ggml.model        "llama" (SPM), "gpt2" (byte-level BPE), "bert" (WordPiece)
 *   tokenizer.ggml.pre          pre-tokenizer regex set name (gpt2 only)
 *   tokenizer.ggml.tokens       string[n]
 *   tokenizer.ggml.scores       f32[n] (SPM merge priority)
 *   tokenizer.ggml.token_type   i32[n] (rf_tok_attr values)
 *   tokenizer.ggml.merges       string[m], "left right" in rank order (gpt2)
 *   tokenizer.ggml.{bos,eos,eot,eom,unknown,seperator,padding}_token_id  u32
 *   tokenizer.ggml.add_{bos,eos}_token, tokenizer.ggml.add_space_prefix  bool
 *   tokenizer.chat_template     string
 * Defaults where a key is absent follow llama.cpp's loader.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tok-impl.h"

typedef struct model_def {
    const char *name;
    rf_tok_kind kind;
    int32_t bos, eos, unk, sep, pad; /* llama.cpp's defaults */
    bool add_bos;
} model_def;

static const model_def model_defs[] = {
    {"llama", RF_TOK_SPM, 1, 2, 0, -1, -1, true},
    {"gpt2", RF_TOK_BPE, 11, 11, -1, -1, -1, false},
    {"bert", RF_TOK_WPM, 101, -1, 100, 102, 0, true},
};

/* Known model names we do not implement, with the reason. */
static const struct { const char *name, *why; } unsupported_models[] = {
    {"t5", "Unigram (t5) tokenizers are not supported"},
    {"rwkv", "RWKV tokenizers are not supported"},
    {"plamo2", "PLaMo-2 tokenizers are not supported"},
    {"gemma4", "Gemma 4 BPE tokenizers are not supported"},
    {"no_vocab", "the file has no vocabulary"},
    {"none", "the file has no vocabulary"},
};

static rf_status get_arr(const rf_gguf *g, const char *key, bool required, uint32_t want_type,
                         rf_gguf_arr *a, bool *found, rf_error *err) {
    *found = false;
    const rf_gguf_value *v = rf_gguf_get(g, key);
    if (!v) {
        if (required) return rf_error_set(err, RF_E_FORMAT, "gguf tokenizer: missing %s", key);
        return RF_OK;
    }
    if (v->type != RF_GGUF_ARRAY)
        return rf_error_set(err, RF_E_FORMAT, "gguf tokenizer: %s is a %s, not an array", key,
                            rf_gguf_vtype_name(v->type));
    bool ok = want_type == RF_GGUF_STRING ? v->arr.elem_type == RF_GGUF_STRING
                                          : (v->arr.elem_type != RF_GGUF_STRING && v->arr.elem_type != RF_GGUF_ARRAY);
    if (!ok)
        return rf_error_set(err, RF_E_FORMAT, "gguf tokenizer: %s holds %s elements", key,
                            rf_gguf_vtype_name(v->arr.elem_type));
    *a = v->arr;
    *found = true;
    return RF_OK;
}

/* Reads an optional token id key; out-of-range ids are warned about and
 * ignored, as llama.cpp does. */
static void get_id(rf_tokenizer *t, const rf_gguf *g, const char *key, int32_t *id) {
    uint32_t v;
    rf_error e;
    rf_status st = rf_gguf_get_u32(g, key, &v, &e);
    if (st == RF_E_NOTFOUND) {
        if (*id >= t->n_vocab) *id = -1;
        return;
    }
    if (st != RF_OK || v >= (uint32_t)t->n_vocab) {
        RF_LOGW("%s: ignoring %s (%s)", t->name, key, st ? e.msg : "outside the vocabulary");
        if (*id >= t->n_vocab) *id = -1;
        return;
    }
    *id = (int32_t)v;
}

static void get_bool(const rf_gguf *g, const char *key, bool *b) {
    bool v;
    if (rf_gguf_get_bool(g, key, &v, NULL) == RF_OK) *b = v;
}

static char *dup_str(rf_str s) {
    return rf_strndup(s.ptr, (size_t)s.len);
}

static rf_status add_norm(rf_tokenizer *t, tok_norm_kind kind, const char *a, const char *b,
                          rf_error *err) {
    tok_norm_op *op = &t->norm[t->n_norm++];
    memset(op, 0, sizeof *op);
    op->kind = (uint8_t)kind;
    op->a = rf_strndup(a, strlen(a));
    op->alen = strlen(a);
    if (b) {
        op->b = rf_strndup(b, strlen(b));
        op->blen = strlen(b);
    }
    if (!op->a || (b && !op->b)) return rf_error_set(err, RF_E_NOMEM, "%s: out of memory", t->name);
    return RF_OK;
}

static rf_status load_merges(rf_tokenizer *t, const rf_gguf_arr *a, rf_error *err) {
    if (a->n > INT32_MAX) return rf_error_set(err, RF_E_FORMAT, "%s: too many merges", t->name);
    rf_status st = tok_merges_reserve(t, (uint32_t)a->n, err);
    if (st) return st;
    tok_buf cat = {0};
    for (uint64_t i = 0; i < a->n; i++) {
        rf_str m = rf_gguf_arr_str(a, i);
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!sp) {
            tok_buf_free(&cat);
            return rf_error_set(err, RF_E_FORMAT, "%s: tokenizer.ggml.merges[%llu] = '%.*s' is not 'left right'",
                                t->name, (unsigned long long)i, (int)(m.len > 64 ? 64 : m.len), m.ptr);
        }
        size_t ll = (size_t)(sp - m.ptr), rl = (size_t)m.len - ll - 1;
        int32_t l = tok_lookup(t, m.ptr, ll), r = tok_lookup(t, sp + 1, rl);
        cat.n = 0;
        int32_t mg = -1;
        if (l >= 0 && r >= 0) {
            if (!tok_buf_put(&cat, m.ptr, ll) || !tok_buf_put(&cat, sp + 1, rl)) {
                tok_buf_free(&cat);
                return rf_error_set(err, RF_E_NOMEM, "%s: out of memory", t->name);
            }
            mg = tok_lookup(t, cat.p, cat.n);
        }
        if (l < 0 || r < 0 || mg < 0) {
            const char *what = l < 0 ? m.ptr : r < 0 ? sp + 1 : cat.p;
            size_t wl = l < 0 ? ll : r < 0 ? rl : cat.n;
            st = rf_error_set(err, RF_E_FORMAT,
                              "%s: tokenizer.ggml.merges[%llu] = '%.*s': %s'%.*s' is not in the vocabulary",
                              t->name, (unsigned long long)i, (int)(m.len > 64 ? 64 : m.len), m.ptr,
                              l >= 0 && r >= 0 ? "the merged token " : "", (int)(wl > 64 ? 64 : wl), what);
            tok_buf_free(&cat);
            return st;
        }
        tok_merges_add(t, l, r, (int32_t)i, mg);
    }
    tok_buf_free(&cat);
    return RF_OK;
}

/* Per-model attribute fix-ups llama.cpp applies by general.name. */
static void fixups(rf_tokenizer *t, const rf_gguf *g) {
    rf_str name;
    if (rf_gguf_get_str(g, "general.name", &name, NULL) != RF_OK) return;
    char low[128];
    size_t n = name.len < sizeof low - 1 ? (size_t)name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name.ptr[i]);
    low[n] = '\0';
    if (strstr(low, "phi-3") || strstr(low, "phi3")) {
        for (int32_t id = 0; id < t->n_vocab; id++)
            if (t->tokens[id].flags & TF_MATCH) t->tokens[id].flags |= TF_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < RF_ARRAY_LEN(keep); i++) {
            int32_t id = tok_lookup(t, keep[i], strlen(keep[i]));
            if (id >= 0) t->tokens[id].flags &= (uint8_t)~TF_RSTRIP;
        }
        int32_t id = tok_lookup(t, "</s>", 4);
        if (id >= 0) t->tokens[id].flags |= TF_RSTRIP;
    }
}

/* Texts llama.cpp forces to control type when a GGUF marks them otherwise. */
static const char *const control_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "<|eom_id|>", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
};

static rf_status build(rf_tokenizer *t, const rf_gguf *g, const rf_tok_opts *o, rf_error *err) {
    rf_str model;
    rf_status st = rf_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (st == RF_E_NOTFOUND) return rf_error_set(err, RF_E_FORMAT, "gguf tokenizer: missing tokenizer.ggml.model");
    if (st) return st;
    const model_def *md = NULL;
    for (size_t i = 0; i < RF_ARRAY_LEN(model_defs); i++)
        if (rf_str_eq(model, model_defs[i].name)) md = &model_defs[i];
    if (!md) {
        for (size_t i = 0; i < RF_ARRAY_LEN(unsupported_models); i++)
            if (rf_str_eq(model, unsupported_models[i].name))
                return rf_error_set(err, RF_E_UNSUPPORTED, "gguf tokenizer: tokenizer.ggml.model '%s': %s",
                                    unsupported_models[i].name, unsupported_models[i].why);
        return rf_error_set(err, RF_E_UNSUPPORTED, "gguf tokenizer: unknown tokenizer.ggml.model '%.*s'",
                            (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    t->kind = md->kind;
    snprintf(t->name, sizeof t->name, "gguf tokenizer (%s)", md->name);

    rf_gguf_arr toks, scores, types;
    bool has_toks, has_scores, has_types;
    if ((st = get_arr(g, "tokenizer.ggml.tokens", true, RF_GGUF_STRING, &toks, &has_toks, err))) return st;
    if ((st = get_arr(g, "tokenizer.ggml.scores", false, RF_GGUF_F32, &scores, &has_scores, err))) return st;
    if ((st = get_arr(g, "tokenizer.ggml.token_type", false, RF_GGUF_I32, &types, &has_types, err))) return st;
    if (toks.n == 0 || toks.n > INT32_MAX)
        return rf_error_set(err, RF_E_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", t->name,
                            (unsigned long long)toks.n);
    if (has_scores && scores.n != toks.n)
        return rf_error_set(err, RF_E_FORMAT, "%s: tokenizer.ggml.scores has %llu entries but "
                            "tokenizer.ggml.tokens has %llu", t->name, (unsigned long long)scores.n,
                            (unsigned long long)toks.n);
    if (has_types && types.n != toks.n)
        return rf_error_set(err, RF_E_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries but "
                            "tokenizer.ggml.tokens has %llu", t->name, (unsigned long long)types.n,
                            (unsigned long long)toks.n);
    if (t->kind == RF_TOK_SPM && !has_scores)
        return rf_error_set(err, RF_E_FORMAT, "%s: missing tokenizer.ggml.scores", t->name);
    if ((st = tok_alloc_vocab(t, (int32_t)toks.n, err))) return st;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        rf_str s = rf_gguf_arr_str(&toks, (uint64_t)i);
        char empty[32];
        if (s.len == 0) { /* llama.cpp's placeholder keeps the map unique */
            s.len = (uint64_t)snprintf(empty, sizeof empty, "[EMPTY_%d]", i);
            s.ptr = empty;
        }
        if (s.len > UINT32_MAX) return rf_error_set(err, RF_E_FORMAT, "%s: token %d too long", t->name, i);
        uint32_t off = tok_pool_add(t, s.ptr, (size_t)s.len);
        if (off == UINT32_MAX) return rf_error_set(err, RF_E_NOMEM, "%s: out of memory", t->name);
        tok_entry *e = &t->tokens[i];
        e->text_off = off;
        e->text_len = (uint32_t)s.len;
        e->score = has_scores ? (float)rf_gguf_arr_f64(&scores, (uint64_t)i) : 0.0f;
        if (has_types) {
            int64_t ty = rf_gguf_arr_i64(&types, (uint64_t)i);
            if (ty < 0 || ty >= RF_TOKEN_ATTR_COUNT)
                return rf_error_set(err, RF_E_FORMAT, "%s: tokenizer.ggml.token_type[%d] = %lld is not a token type",
                                    t->name, i, (long long)ty);
            e->attr = (uint8_t)ty;
        }
    }
    if ((st = tok_build_map(t, err))) return st;
    for (size_t i = 0; i < RF_ARRAY_LEN(control_texts); i++) {
        int32_t id = tok_lookup(t, control_texts[i], strlen(control_texts[i]));
        if (id >= 0 && t->tokens[id].attr != RF_TOKEN_CONTROL) t->tokens[id].attr = RF_TOKEN_CONTROL;
    }
    for (int32_t i = 0; i < t->n_vocab; i++) {
        uint8_t a = t->tokens[i].attr;
        if (a == RF_TOKEN_CONTROL || a == RF_TOKEN_USER_DEFINED || a == RF_TOKEN_UNKNOWN)
            t->tokens[i].flags |= TF_MATCH;
    }

    /* special ids */
    t->bos = md->bos; t->eos = md->eos; t->unk = md->unk; t->sep = md->sep; t->pad = md->pad;
    get_id(t, g, "tokenizer.ggml.bos_token_id", &t->bos);
    if (t->kind == RF_TOK_WPM) get_id(t, g, "tokenizer.ggml.cls_token_id", &t->bos); /* [CLS] leads */
    get_id(t, g, "tokenizer.ggml.eos_token_id", &t->eos);
    get_id(t, g, "tokenizer.ggml.eot_token_id", &t->eot);
    get_id(t, g, "tokenizer.ggml.eom_token_id", &t->eom);
    get_id(t, g, "tokenizer.ggml.unknown_token_id", &t->unk);
    get_id(t, g, "tokenizer.ggml.seperator_token_id", &t->sep);
    get_id(t, g, "tokenizer.ggml.padding_token_id", &t->pad);

    /* model specifics */
    bool add_space_prefix = t->kind == RF_TOK_SPM;
    if (t->kind == RF_TOK_BPE) {
        rf_str pre;
        char prebuf[64] = "default";
        st = rf_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
        if (st == RF_E_NOTFOUND)
            RF_LOGW("%s: no tokenizer.ggml.pre: using the 'default' pre-tokenizer as llama.cpp does", t->name);
        else if (st)
            return st;
        else if (pre.len >= sizeof prebuf)
            return rf_error_set(err, RF_E_UNSUPPORTED, "%s: unknown pre-tokenizer '%.*s'", t->name,
                                (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        else {
            memcpy(prebuf, pre.ptr, (size_t)pre.len);
            prebuf[pre.len] = '\0';
        }
        if ((st = tok_pre_from_name(t, prebuf, o, err))) return st;
        rf_gguf_arr merges;
        bool has_merges;
        if ((st = get_arr(g, "tokenizer.ggml.merges", true, RF_GGUF_STRING, &merges, &has_merges, err))) return st;
        if ((st = load_merges(t, &merges, err))) return st;
        t->byte_level = true;
        t->gguf_bytes = true;
    } else {
        t->add_bos = md->add_bos;
    }
    if (t->kind == RF_TOK_WPM) {
        t->wpm_lower = true;
        get_bool(g, "tokenizer.ggml.normalizer.lowercase", &t->wpm_lower);
        t->wpm_strip_accents = t->wpm_lower;
        get_bool(g, "tokenizer.ggml.normalizer.strip_accents", &t->wpm_strip_accents);
    }
    get_bool(g, "tokenizer.ggml.add_space_prefix", &add_space_prefix);
    get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
    if (t->kind == RF_TOK_SPM) {
        if (add_space_prefix && (st = add_norm(t, TN_PREPEND, " ", NULL, err))) return st;
        if ((st = add_norm(t, TN_REPLACE, " ", "\xe2\x96\x81", err))) return st;
        t->byte_fallback = true;
    }
    t->strip_leading_space = (t->kind == RF_TOK_SPM && add_space_prefix) || t->kind == RF_TOK_WPM;

    if (t->kind == RF_TOK_WPM) {
        if (t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
        if (t->sep >= 0) t->suffix[t->n_suffix++] = t->sep;
    } else {
        if (t->add_bos) {
            if (t->bos < 0) return rf_error_set(err, RF_E_FORMAT, "%s: add_bos_token is true but there is no BOS token", t->name);
            t->prefix[t->n_prefix++] = t->bos;
        }
        if (t->add_eos) {
            if (t->eos < 0) return rf_error_set(err, RF_E_FORMAT, "%s: add_eos_token is true but there is no EOS token", t->name);
            t->suffix[t->n_suffix++] = t->eos;
        }
    }
    rf_str tmpl;
    if (rf_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL) == RF_OK) {
        t->chat_template = dup_str(tmpl);
        if (!t->chat_template) return rf_error_set(err, RF_E_NOMEM, "%s: out of memory", t->name);
    }
    fixups(t, g);
    if ((st = tok_pieces_gguf(t, err))) return st;
    return tok_finish(t, err);
}

rf_status rf_tokenizer_from_gguf(const rf_gguf *g, const rf_tok_opts *o, rf_tokenizer **out,
                                 rf_error *err) {
    *out = NULL;
    rf_tokenizer *t = tok_new();
    if (!t) return rf_error_set(err, RF_E_NOMEM, "gguf tokenizer: out of memory");
    snprintf(t->name, sizeof t->name, "gguf tokenizer");
    rf_status st = build(t, g, o, err);
    if (st) {
        rf_tokenizer_free(t);
        return st;
    }
    *out = t;
    return RF_OK;
}
