/*
 * load_json.c - a tokenizer from a Hugging Face tokenizer.json (and the
 * tokenizer_config.json beside it). Supported:
 *   model          BPE (vocab, merges as "a b" or [a, b], byte_fallback,
 *                  fuse_unk, unk_token, ignore_merges)
 *   normalizer     NFC NFD NFKC NFKD Lowercase Prepend Replace Strip Sequence
 *   pre_tokenizer  Split (String/Regex, every behaviour, invert) ByteLevel
 *                  Metaspace Digits Whitespace WhitespaceSplit Punctuation
 *                  BertPreTokenizer Sequence
 *   post_processor TemplateProcessing (single), Roberta/BertProcessing,
 *                  ByteLevel (no ids), Sequence
 *   decoder        ByteLevel Replace ByteFallback Fuse Strip Metaspace Sequence
 *   added_tokens   special or not; lstrip, rstrip, single_word, normalized
 * Anything else is RF_E_UNSUPPORTED naming the component, never ignored.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tok-impl.h"

typedef struct jctx {
    rf_tokenizer *t;
    rf_error *err;
    const char *path;
} jctx;

static rf_status bad(jctx *c, const char *what) {
    return rf_error_set(c->err, RF_E_FORMAT, "%s: %s", c->path, what);
}

static rf_status unsupported(jctx *c, const char *where, const char *type) {
    return rf_error_set(c->err, RF_E_UNSUPPORTED, "%s: %s '%s' is not supported", c->path, where, type);
}

static rf_status nomem(jctx *c) {
    return rf_error_set(c->err, RF_E_NOMEM, "%s: out of memory", c->path);
}

static const char *jstr(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jbool(const json_t *o, const char *key, bool dflt) {
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A pattern object {"String": s} or {"Regex": r}. */
static rf_status get_pattern(jctx *c, const json_t *o, const char **s, size_t *n, bool *is_re) {
    const json_t *p = json_object_get(o, "pattern");
    const json_t *v;
    if ((v = json_object_get(p, "String")) && json_is_string(v)) *is_re = false;
    else if ((v = json_object_get(p, "Regex")) && json_is_string(v)) *is_re = true;
    else return bad(c, "pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
    *s = json_string_value(v);
    *n = json_string_length(v);
    return RF_OK;
}

static char *dupn(const char *s, size_t n) { return rf_strndup(s, n); }

/* ---- normalizers -------------------------------------------------------------------- */

static const struct { const char *name; tok_norm_kind kind; } norm_simple[] = {
    {"NFC", TN_NFC}, {"NFD", TN_NFD}, {"NFKC", TN_NFKC}, {"NFKD", TN_NFKD}, {"Lowercase", TN_LOWER},
};

static rf_status add_normalizer(jctx *c, const json_t *o) {
    rf_tokenizer *t = c->t;
    if (json_is_null(o) || !o) return RF_OK;
    const char *type = jstr(o, "type");
    if (!type) return bad(c, "normalizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        const json_t *arr = json_object_get(o, "normalizers");
        size_t i;
        const json_t *v;
        json_array_foreach(arr, i, v) {
            rf_status st = add_normalizer(c, v);
            if (st) return st;
        }
        return RF_OK;
    }
    if (t->n_norm == TOK_MAX_OPS) return bad(c, "too many normalizers");
    tok_norm_op *op = &t->norm[t->n_norm];
    memset(op, 0, sizeof *op);
    for (size_t i = 0; i < RF_ARRAY_LEN(norm_simple); i++)
        if (strcmp(type, norm_simple[i].name) == 0) {
            op->kind = (uint8_t)norm_simple[i].kind;
            t->n_norm++;
            return RF_OK;
        }
    if (strcmp(type, "Prepend") == 0) {
        const json_t *p = json_object_get(o, "prepend");
        if (!json_is_string(p)) return bad(c, "Prepend without 'prepend'");
        op->kind = TN_PREPEND;
        op->alen = json_string_length(p);
        if (!(op->a = dupn(json_string_value(p), op->alen))) return nomem(c);
    } else if (strcmp(type, "Replace") == 0) {
        const char *s;
        size_t n;
        bool re;
        rf_status st = get_pattern(c, o, &s, &n, &re);
        if (st) return st;
        const json_t *ct = json_object_get(o, "content");
        if (!json_is_string(ct)) return bad(c, "Replace without 'content'");
        op->kind = re ? TN_REPLACE_RE : TN_REPLACE;
        op->blen = json_string_length(ct);
        if (!(op->b = dupn(json_string_value(ct), op->blen))) return nomem(c);
        if (re) {
            if ((st = tok_regex_compile(s, n, &op->re, c->err))) return st;
        } else {
            op->alen = n;
            if (!(op->a = dupn(s, n))) return nomem(c);
        }
    } else if (strcmp(type, "Strip") == 0) {
        op->kind = TN_STRIP;
        op->left = jbool(o, "strip_left", true);
        op->right = jbool(o, "strip_right", true);
    } else {
        return unsupported(c, "normalizer", type);
    }
    t->n_norm++;
    return RF_OK;
}

/* ---- pre-tokenizers -------------------------------------------------------------------- */

static const char *const behaviors[SB_COUNT] = {
    [SB_ISOLATED] = "Isolated", [SB_REMOVED] = "Removed", [SB_MERGED_PREV] = "MergedWithPrevious",
    [SB_MERGED_NEXT] = "MergedWithNext", [SB_CONTIGUOUS] = "Contiguous",
};

static rf_status add_split_re(jctx *c, const char *re, uint8_t beh, bool invert) {
    rf_tokenizer *t = c->t;
    if (t->n_pre == TOK_MAX_OPS) return bad(c, "too many pre-tokenizers");
    tok_pre_op *op = &t->pre[t->n_pre];
    memset(op, 0, sizeof *op);
    op->kind = TP_SPLIT_RE;
    op->behavior = beh;
    op->invert = invert;
    rf_status st = tok_regex_compile(re, strlen(re), &op->re, c->err);
    if (st) return st;
    t->n_pre++;
    return RF_OK;
}

static rf_status get_behavior(jctx *c, const json_t *o, uint8_t *beh) {
    const char *b = jstr(o, "behavior");
    if (!b) { *beh = SB_ISOLATED; return RF_OK; }
    for (int i = 0; i < SB_COUNT; i++)
        if (strcmp(b, behaviors[i]) == 0) { *beh = (uint8_t)i; return RF_OK; }
    return unsupported(c, "split behavior", b);
}

static uint8_t prepend_scheme(const json_t *o) {
    const char *s = jstr(o, "prepend_scheme");
    if (s) return strcmp(s, "always") == 0 ? 2 : strcmp(s, "first") == 0 ? 1 : 0;
    return jbool(o, "add_prefix_space", true) ? 2 : 0; /* legacy field */
}

static rf_status add_pretok(jctx *c, const json_t *o) {
    rf_tokenizer *t = c->t;
    if (!o || json_is_null(o)) return RF_OK;
    const char *type = jstr(o, "type");
    if (!type) return bad(c, "pre_tokenizer without a type");
    rf_status st;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *arr = json_object_get(o, "pretokenizers");
        size_t i;
        const json_t *v;
        json_array_foreach(arr, i, v) {
            if ((st = add_pretok(c, v))) return st;
        }
        return RF_OK;
    }
    if (strcmp(type, "Digits") == 0)
        return add_split_re(c, jbool(o, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", SB_ISOLATED, false);
    if (strcmp(type, "WhitespaceSplit") == 0) return add_split_re(c, "\\s+", SB_REMOVED, false);
    if (strcmp(type, "Whitespace") == 0) return add_split_re(c, "\\w+|[^\\w\\s]+", SB_REMOVED, true);
    if (strcmp(type, "Punctuation") == 0 || strcmp(type, "BertPreTokenizer") == 0) {
        uint8_t beh = SB_ISOLATED;
        if (type[0] == 'B') {
            if ((st = add_split_re(c, "\\s+", SB_REMOVED, false))) return st;
        } else if ((st = get_behavior(c, o, &beh))) {
            return st;
        }
        return add_split_re(c, "\\p{P}|[!-/:-@\\[-`{-~]", beh, false);
    }
    if (t->n_pre == TOK_MAX_OPS) return bad(c, "too many pre-tokenizers");
    tok_pre_op *op = &t->pre[t->n_pre];
    memset(op, 0, sizeof *op);
    if (strcmp(type, "Split") == 0) {
        const char *s;
        size_t n;
        bool re;
        if ((st = get_pattern(c, o, &s, &n, &re))) return st;
        if ((st = get_behavior(c, o, &op->behavior))) return st;
        op->invert = jbool(o, "invert", false);
        if (re) {
            op->kind = TP_SPLIT_RE;
            if ((st = tok_regex_compile(s, n, &op->re, c->err))) return st;
        } else {
            op->kind = TP_SPLIT_STR;
            op->slen = n;
            if (!(op->str = dupn(s, n))) return nomem(c);
        }
    } else if (strcmp(type, "ByteLevel") == 0) {
        op->kind = TP_BYTELEVEL;
        op->flag = jbool(o, "add_prefix_space", false);
        if (jbool(o, "use_regex", true) &&
            (st = tok_regex_compile(tok_gpt2_regex, strlen(tok_gpt2_regex), &op->re, c->err)))
            return st;
        t->byte_level = true;
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *r = jstr(o, "replacement");
        if (!r) r = "\xe2\x96\x81";
        op->kind = TP_METASPACE;
        op->slen = strlen(r);
        if (op->slen == 0) return bad(c, "Metaspace with an empty replacement");
        if (!(op->str = dupn(r, op->slen))) return nomem(c);
        op->prepend = prepend_scheme(o);
        op->flag = jbool(o, "split", true);
    } else {
        return unsupported(c, "pre_tokenizer", type);
    }
    t->n_pre++;
    return RF_OK;
}

/* ---- decoders -> pieces ------------------------------------------------------------------ */

enum { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_BYTELEVEL, DEC_METASPACE };
typedef struct dec_step {
    int kind;
    const char *a, *b; /* REPLACE: a -> b; METASPACE: a -> " " */
    size_t alen, blen;
    bool flag_first;   /* METASPACE: the first token drops `a` instead */
} dec_step;

static rf_status collect_decoders(jctx *c, const json_t *o, dec_step *steps, int *n) {
    if (!o || json_is_null(o)) return RF_OK;
    const char *type = jstr(o, "type");
    if (!type) return bad(c, "decoder without a type");
    if (*n >= TOK_MAX_OPS) return bad(c, "too many decoders");
    dec_step *s = &steps[*n];
    memset(s, 0, sizeof *s);
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(o, "decoders"), i, v) {
            rf_status st = collect_decoders(c, v, steps, n);
            if (st) return st;
        }
        return RF_OK;
    }
    if (strcmp(type, "Fuse") == 0) return RF_OK; /* pieces are concatenated anyway */
    if (strcmp(type, "Strip") == 0) {
        const char *ct = jstr(o, "content");
        json_int_t start = json_integer_value(json_object_get(o, "start"));
        json_int_t stop = json_integer_value(json_object_get(o, "stop"));
        if (!ct || strcmp(ct, " ") != 0 || start > 1 || stop != 0)
            return unsupported(c, "decoder", "Strip (other than one leading space)");
        if (start == 1) c->t->strip_leading_space = true;
        return RF_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        bool re;
        rf_status st = get_pattern(c, o, &s->a, &s->alen, &re);
        if (st) return st;
        if (re) return unsupported(c, "decoder", "Replace with a regex");
        s->b = jstr(o, "content");
        if (!s->b) return bad(c, "Replace decoder without 'content'");
        s->blen = strlen(s->b);
        s->kind = DEC_REPLACE;
    } else if (strcmp(type, "ByteFallback") == 0) {
        s->kind = DEC_BYTEFALLBACK;
    } else if (strcmp(type, "ByteLevel") == 0) {
        s->kind = DEC_BYTELEVEL;
    } else if (strcmp(type, "Metaspace") == 0) {
        s->kind = DEC_METASPACE;
        s->a = jstr(o, "replacement");
        if (!s->a) s->a = "\xe2\x96\x81";
        s->alen = strlen(s->a);
        s->flag_first = prepend_scheme(o) != 0;
    } else {
        return unsupported(c, "decoder", type);
    }
    (*n)++;
    return RF_OK;
}

/* Applies the per-token decoder steps to one token's text into *a. With
 * first set, a Metaspace step drops the replacement (HF: token 0). */
static bool decode_text(const dec_step *steps, int n_steps, bool first, tok_buf *a, tok_buf *b) {
    bool done = false; /* ByteFallback turned it into a byte: later steps leave it */
    for (int k = 0; k < n_steps && !done; k++) {
        const dec_step *s = &steps[k];
        b->n = 0;
        bool ok = true;
        if (s->kind == DEC_BYTEFALLBACK) {
            int v = tok_parse_byte_token(a->p, a->n);
            if (v < 0) continue;
            char ch = (char)v;
            ok = tok_buf_put(b, &ch, 1);
            done = true;
        } else if (s->kind == DEC_BYTELEVEL) {
            for (size_t i = 0; i < a->n && ok;) {
                uint32_t cp;
                size_t bd;
                size_t k2 = tok_utf8_decode((const uint8_t *)a->p + i, a->n - i, &cp, &bd);
                int v = k2 ? tok_cp_to_byte(cp) : -1;
                if (v < 0) { b->n = 0; ok = tok_buf_put(b, a->p, a->n); break; }
                char ch = (char)v;
                ok = tok_buf_put(b, &ch, 1);
                i += k2;
            }
        } else {
            bool drop = s->kind == DEC_METASPACE && first && s->flag_first;
            const char *from = s->a, *to = s->kind == DEC_REPLACE ? s->b : " ";
            size_t fl = s->alen, tl = s->kind == DEC_REPLACE ? s->blen : drop ? 0 : 1;
            for (size_t i = 0; i < a->n && ok;) {
                if (fl && a->n - i >= fl && memcmp(a->p + i, from, fl) == 0) { ok = tok_buf_put(b, to, tl); i += fl; }
                else { ok = tok_buf_put(b, a->p + i, 1); i++; }
            }
        }
        if (!ok) return false;
        tok_buf tmp = *a; *a = *b; *b = tmp;
    }
    return true;
}

/* Computes every token's piece (and first-position piece when a Metaspace
 * decoder asks for one). */
static rf_status make_pieces(jctx *c, const dec_step *steps, int n_steps) {
    rf_tokenizer *t = c->t;
    bool need_first = false;
    for (int k = 0; k < n_steps; k++) need_first |= steps[k].kind == DEC_METASPACE && steps[k].flag_first;
    if (need_first) {
        t->first_off = rf_malloc((size_t)t->n_vocab * sizeof(uint32_t));
        t->first_len = rf_malloc((size_t)t->n_vocab * sizeof(uint32_t));
        if (!t->first_off || !t->first_len) return nomem(c);
    }
    tok_buf a = {0}, b = {0};
    rf_status st = RF_OK;
    for (int32_t id = 0; id < t->n_vocab && st == RF_OK; id++) {
        for (int first = 0; first <= (int)need_first; first++) {
            tok_entry *e = &t->tokens[id];
            a.n = 0;
            if (!tok_buf_put(&a, t->pool + e->text_off, e->text_len) ||
                !decode_text(steps, n_steps, first, &a, &b)) { st = nomem(c); break; }
            uint32_t off = tok_pool_add(t, a.p ? a.p : "", a.n);
            if (off == UINT32_MAX) { st = nomem(c); break; }
            if (first) { t->first_off[id] = off; t->first_len[id] = (uint32_t)a.n; }
            else { e->piece_off = off; e->piece_len = (uint32_t)a.n; }
        }
    }
    tok_buf_free(&a);
    tok_buf_free(&b);
    return st;
}

/* ---- post-processor ------------------------------------------------------------------------ */

static rf_status add_template_id(jctx *c, bool before, int32_t id) {
    rf_tokenizer *t = c->t;
    if (id < 0 || id >= t->n_vocab) return bad(c, "post_processor names a token outside the vocabulary");
    int *n = before ? &t->n_prefix : &t->n_suffix;
    if (*n == TOK_MAX_TEMPLATE) return bad(c, "post_processor template too long");
    (before ? t->prefix : t->suffix)[(*n)++] = id;
    return RF_OK;
}

static rf_status post_processor(jctx *c, const json_t *o) {
    if (!o || json_is_null(o)) return RF_OK;
    const char *type = jstr(o, "type");
    if (!type) return bad(c, "post_processor without a type");
    rf_status st;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(o, "processors"), i, v) {
            if ((st = post_processor(c, v))) return st;
        }
        return RF_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return RF_OK; /* offsets only */
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        const json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
        if (!json_is_array(cls) || !json_is_array(sep)) return bad(c, "Roberta/BertProcessing without cls/sep");
        if ((st = add_template_id(c, true, (int32_t)json_integer_value(json_array_get(cls, 1))))) return st;
        return add_template_id(c, false, (int32_t)json_integer_value(json_array_get(sep, 1)));
    }
    if (strcmp(type, "TemplateProcessing") != 0) return unsupported(c, "post_processor", type);
    const json_t *single = json_object_get(o, "single"), *specials = json_object_get(o, "special_tokens");
    size_t i;
    const json_t *v;
    bool before = true;
    json_array_foreach(single, i, v) {
        const json_t *sp = json_object_get(v, "SpecialToken");
        if (json_object_get(v, "Sequence")) { before = false; continue; }
        const char *name = jstr(sp, "id");
        if (!name) return bad(c, "TemplateProcessing item is neither Sequence nor SpecialToken");
        const json_t *ids = json_object_get(json_object_get(specials, name), "ids");
        if (!json_is_array(ids)) {
            int32_t id = tok_lookup(c->t, name, strlen(name));
            if ((st = add_template_id(c, before, id))) return st;
            continue;
        }
        size_t j;
        const json_t *idv;
        json_array_foreach(ids, j, idv) {
            if ((st = add_template_id(c, before, (int32_t)json_integer_value(idv)))) return st;
        }
    }
    return RF_OK;
}

/* ---- model and vocabulary ------------------------------------------------------------------- */

static rf_status set_text(jctx *c, int32_t id, const char *s, size_t n) {
    uint32_t off = tok_pool_add(c->t, s, n);
    if (off == UINT32_MAX) return nomem(c);
    c->t->tokens[id].text_off = off;
    c->t->tokens[id].text_len = (uint32_t)n;
    return RF_OK;
}

static rf_status load_vocab(jctx *c, const json_t *model, const json_t *added) {
    rf_tokenizer *t = c->t;
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return bad(c, "model.vocab is not an object");
    json_int_t max_id = -1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX)
            return rf_error_set(c->err, RF_E_FORMAT, "%s: model.vocab['%.64s'] is not a valid id", c->path, key);
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        if (!json_is_integer(json_object_get(v, "id")) || id < 0 || id >= INT32_MAX || !jstr(v, "content"))
            return rf_error_set(c->err, RF_E_FORMAT, "%s: added_tokens[%zu] has no valid id/content", c->path, i);
        if (id > max_id) max_id = id;
    }
    rf_status st = tok_alloc_vocab(t, (int32_t)(max_id + 1), c->err);
    if (st) return st;
    for (int32_t id = 0; id < t->n_vocab; id++) t->tokens[id].text_off = UINT32_MAX;
    json_object_foreach((json_t *)vocab, key, v) {
        int32_t id = (int32_t)json_integer_value(v);
        if (t->tokens[id].text_off != UINT32_MAX)
            return rf_error_set(c->err, RF_E_FORMAT, "%s: id %d appears twice in model.vocab", c->path, id);
        if ((st = set_text(c, id, key, strlen(key)))) return st;
    }
    json_array_foreach(added, i, v) {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "id"));
        const json_t *ct = json_object_get(v, "content");
        tok_entry *e = &t->tokens[id];
        if (e->text_off == UINT32_MAX || e->text_len != json_string_length(ct) ||
            memcmp(t->pool + e->text_off, json_string_value(ct), e->text_len) != 0)
            if ((st = set_text(c, id, json_string_value(ct), json_string_length(ct)))) return st;
        bool special = jbool(v, "special", false);
        e->attr = special ? RF_TOKEN_CONTROL : RF_TOKEN_USER_DEFINED;
        e->flags |= TF_MATCH;
        if (jbool(v, "lstrip", false)) e->flags |= TF_LSTRIP;
        if (jbool(v, "rstrip", false)) e->flags |= TF_RSTRIP;
        if (jbool(v, "single_word", false)) e->flags |= TF_SINGLE_WORD;
        if (jbool(v, "normalized", !special)) e->flags |= TF_NORMALIZED;
    }
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tokens[id].text_off == UINT32_MAX) { /* a hole in the id space */
            char buf[32];
            int n = snprintf(buf, sizeof buf, "[EMPTY_%d]", id);
            if ((st = set_text(c, id, buf, (size_t)n))) return st;
            t->tokens[id].attr = RF_TOKEN_UNUSED;
        }
    return tok_build_map(t, c->err);
}

static rf_status load_merges(jctx *c, const json_t *merges) {
    rf_tokenizer *t = c->t;
    if (!json_is_array(merges)) return bad(c, "model.merges is not an array");
    size_t n = json_array_size(merges);
    if (n > INT32_MAX) return bad(c, "too many merges");
    rf_status st = tok_merges_reserve(t, (uint32_t)n, c->err);
    if (st) return st;
    tok_buf cat = {0};
    size_t i;
    const json_t *m;
    json_array_foreach(merges, i, m) {
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t sl = json_string_length(m);
            const char *sp = sl > 1 ? memchr(s + 1, ' ', sl - 1) : NULL;
            if (!sp) { tok_buf_free(&cat); return rf_error_set(c->err, RF_E_FORMAT, "%s: merges[%zu] = '%.64s' is not 'a b'", c->path, i, s); }
            a = s; al = (size_t)(sp - s); b = sp + 1; bl = sl - al - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)); al = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1)); bl = json_string_length(json_array_get(m, 1));
        } else {
            tok_buf_free(&cat);
            return rf_error_set(c->err, RF_E_FORMAT, "%s: merges[%zu] is neither \"a b\" nor [a, b]", c->path, i);
        }
        int32_t l = tok_lookup(t, a, al), r = tok_lookup(t, b, bl), mg = -1;
        cat.n = 0;
        if (!tok_buf_put(&cat, a, al) || !tok_buf_put(&cat, b, bl)) { tok_buf_free(&cat); return nomem(c); }
        if (l >= 0 && r >= 0) mg = tok_lookup(t, cat.p, cat.n);
        if (l < 0 || r < 0 || mg < 0) {
            const char *w = l < 0 ? a : r < 0 ? b : cat.p;
            size_t wl = l < 0 ? al : r < 0 ? bl : cat.n;
            st = rf_error_set(c->err, RF_E_FORMAT, "%s: merges[%zu]: '%.*s' is not in the vocabulary", c->path,
                              i, (int)(wl > 64 ? 64 : wl), w);
            tok_buf_free(&cat);
            return st;
        }
        tok_merges_add(t, l, r, (int32_t)i, mg);
    }
    tok_buf_free(&cat);
    return RF_OK;
}

/* ---- tokenizer_config.json ------------------------------------------------------------------------ */

static const char *token_name(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_string(v)) return json_string_value(v);
    return jstr(v, "content");
}

static int32_t name_id(const rf_tokenizer *t, const char *name) {
    return name ? tok_lookup(t, name, strlen(name)) : -1;
}

static rf_status read_config(jctx *c) {
    rf_tokenizer *t = c->t;
    char path[4096];
    const char *slash = strrchr(c->path, '/');
    int dl = slash ? (int)(slash - c->path + 1) : 0;
    if (snprintf(path, sizeof path, "%.*stokenizer_config.json", dl, c->path) >= (int)sizeof path) return RF_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return RF_OK; /* optional */
    fclose(f);
    json_error_t je;
    json_t *cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je); /* model_max_length overflows int64 */
    if (!cfg)
        return rf_error_set(c->err, RF_E_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    int32_t v;
    if ((v = name_id(t, token_name(cfg, "bos_token"))) >= 0) t->bos = v;
    if ((v = name_id(t, token_name(cfg, "eos_token"))) >= 0) t->eos = v;
    if ((v = name_id(t, token_name(cfg, "pad_token"))) >= 0) t->pad = v;
    if ((v = name_id(t, token_name(cfg, "unk_token"))) >= 0) t->unk = v;
    rf_status st = RF_OK;
    const json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");
    if (json_is_boolean(ab) || json_is_boolean(ae)) {
        /* transformers rebuilds the template from these flags */
        t->add_bos = json_is_boolean(ab) ? json_is_true(ab) : t->n_prefix > 0;
        t->add_eos = json_is_boolean(ae) ? json_is_true(ae) : t->n_suffix > 0;
        t->n_prefix = t->n_suffix = 0;
        if (t->add_bos && t->bos < 0) st = bad(c, "add_bos_token is true but bos_token is not a token");
        else if (t->add_bos) t->prefix[t->n_prefix++] = t->bos;
        if (!st && t->add_eos && t->eos < 0) st = bad(c, "add_eos_token is true but eos_token is not a token");
        else if (!st && t->add_eos) t->suffix[t->n_suffix++] = t->eos;
    }
    const json_t *tmpl = json_object_get(cfg, "chat_template");
    const char *ts = json_is_string(tmpl) ? json_string_value(tmpl) : NULL;
    if (json_is_array(tmpl)) { /* named templates: take "default", else the first */
        size_t i;
        const json_t *el;
        json_array_foreach(tmpl, i, el) {
            const char *nm = jstr(el, "name");
            if (!ts || (nm && strcmp(nm, "default") == 0)) ts = jstr(el, "template");
        }
    }
    if (!st && ts && !(t->chat_template = rf_strndup(ts, strlen(ts)))) st = nomem(c);
    json_decref(cfg);
    return st;
}

/* Keys of added tokens with normalized=true: their content normalized. */
static rf_status build_norm_matcher(jctx *c) {
    rf_tokenizer *t = c->t;
    uint32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->tokens[id].flags & (TF_MATCH | TF_NORMALIZED)) == (TF_MATCH | TF_NORMALIZED)) n++;
    if (n == 0) return RF_OK;
    int32_t *ids = rf_malloc(n * sizeof *ids);
    uint32_t *offs = rf_malloc(n * sizeof *offs), *lens = rf_malloc(n * sizeof *lens);
    rf_tok_ws *ws = rf_tok_ws_new();
    rf_status st = RF_OK;
    if (!ids || !offs || !lens || !ws) st = nomem(c);
    uint32_t k = 0;
    for (int32_t id = 0; id < t->n_vocab && !st; id++) {
        if ((t->tokens[id].flags & (TF_MATCH | TF_NORMALIZED)) != (TF_MATCH | TF_NORMALIZED)) continue;
        /* copy out: the pool may move while we add to it */
        uint32_t len;
        const char *txt = tok_text(t, id, &len);
        char *copy = rf_strndup(txt, len);
        if (!copy) { st = nomem(c); break; }
        const char *s = copy;
        size_t sn = len;
        st = tok_normalize_str(t, ws, &s, &sn, c->err);
        uint32_t off = st ? 0 : tok_pool_add(t, s, sn);
        rf_free(copy);
        if (st) break;
        if (off == UINT32_MAX) { st = nomem(c); break; }
        ids[k] = id; offs[k] = off; lens[k] = (uint32_t)sn;
        k++;
    }
    if (!st) st = tok_matcher_build(t, &t->match_norm, ids, offs, lens, k, c->err);
    rf_free(ids);
    rf_free(offs);
    rf_free(lens);
    rf_tok_ws_free(ws);
    return st;
}

static rf_status build(jctx *c, const json_t *root) {
    rf_tokenizer *t = c->t;
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return bad(c, "no 'model' object");
    const char *mtype = jstr(model, "type");
    if (!mtype && json_object_get(model, "merges")) mtype = "BPE";
    if (!mtype || strcmp(mtype, "BPE") != 0) return unsupported(c, "model", mtype ? mtype : "(no type)");
    t->kind = RF_TOK_BPE;
    const json_t *drop = json_object_get(model, "dropout");
    if (json_is_number(drop) && json_number_value(drop) > 0)
        return unsupported(c, "model option", "dropout (non-deterministic BPE)");
    const char *csp = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return unsupported(c, "model option", "continuing_subword_prefix / end_of_word_suffix");
    rf_status st = load_vocab(c, model, json_object_get(root, "added_tokens"));
    if (st) return st;
    if ((st = load_merges(c, json_object_get(model, "merges")))) return st;
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->fuse_unk = jbool(model, "fuse_unk", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        t->unk = name_id(t, unk);
        if (t->unk < 0) return bad(c, "model.unk_token is not in the vocabulary");
    }
    if ((st = add_normalizer(c, json_object_get(root, "normalizer")))) return st;
    if ((st = add_pretok(c, json_object_get(root, "pre_tokenizer")))) return st;
    if ((st = post_processor(c, json_object_get(root, "post_processor")))) return st;
    t->add_bos = t->n_prefix > 0;
    t->add_eos = t->n_suffix > 0;
    if (t->n_prefix == 1) t->bos = t->prefix[0];
    if (t->n_suffix == 1) t->eos = t->suffix[0];
    dec_step steps[TOK_MAX_OPS];
    int n_steps = 0;
    if ((st = collect_decoders(c, json_object_get(root, "decoder"), steps, &n_steps))) return st;
    if ((st = make_pieces(c, steps, n_steps))) return st;
    if ((st = read_config(c))) return st;
    if ((st = build_norm_matcher(c))) return st;
    return tok_finish(t, c->err);
}

rf_status rf_tokenizer_from_json(const char *tokenizer_json_path, const rf_tok_opts *o,
                                 rf_tokenizer **out, rf_error *err) {
    (void)o;
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(tokenizer_json_path, 0, &je);
    if (!root)
        return rf_error_set(err, RF_E_FORMAT, "%s:%d:%d: %s", tokenizer_json_path, je.line, je.column,
                            je.text);
    rf_tokenizer *t = tok_new();
    if (!t) {
        json_decref(root);
        return rf_error_set(err, RF_E_NOMEM, "%s: out of memory", tokenizer_json_path);
    }
    const char *base = strrchr(tokenizer_json_path, '/');
    snprintf(t->name, sizeof t->name, "%s", base ? base + 1 : tokenizer_json_path);
    jctx c = {t, err, tokenizer_json_path};
    rf_status st = build(&c, root);
    json_decref(root);
    if (st) {
        rf_tokenizer_free(t);
        return st;
    }
    *out = t;
    return RF_OK;
}
