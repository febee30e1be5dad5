/*
 * test_tokenizer.c - the tokenizer's contracts that the reference vectors do
 * not reach: the streaming detokenizer (multi-byte characters split across
 * byte tokens, one id at a time == whole-sequence decode, U+FFFD rules),
 * special-token parsing on and off, add_special, end-of-generation ids,
 * and the error paths of both loaders (unknown pre-tokenizer, tokens/scores
 * length mismatch, merges naming unknown tokens, ...) plus allocation
 * failure injection. Runs from the repository root (../shared beside it).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "harness.h"
#include "tokenizer/tokenizer.h"

#define VOCAB "../shared/testdata/vocab/"

static rf_tokenizer *load_gguf(const char *path) {
    rf_gguf *g;
    rf_error err = {0};
    if (rf_gguf_open(path, &g, &err) != RF_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        return NULL;
    }
    rf_tokenizer *t = NULL;
    if (rf_tokenizer_from_gguf(g, NULL, &t, &err) != RF_OK) fprintf(stderr, "  %s\n", err.msg);
    rf_gguf_close(g);
    return t;
}

/* Decodes ids one push at a time; returns a malloc'd string. */
static char *stream_decode(const rf_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                           size_t *len) {
    size_t cap = rf_detok_max_out(t);
    char *out = malloc(cap), *all = malloc(n * cap + 8);
    size_t k = 0;
    rf_detok d;
    rf_detok_init(&d, t, flags);
    for (size_t i = 0; i < n; i++) {
        size_t m;
        rf_error err;
        CHECK(rf_detok_push(&d, ids[i], out, cap, &m, &err) == RF_OK);
        memcpy(all + k, out, m);
        k += m;
    }
    k += rf_detok_flush(&d, all + k, 3);
    all[k] = '\0';
    *len = k;
    free(out);
    return all;
}

static const char *const texts[] = {
    "Hello world", " leading space", "multi  spaces\tand\nnewlines\r\n",
    "🦙 llama and 👨‍👩‍👧 family", "日本語のテキスト", "Ελληνικά", "x\xe2\x80\x8by zero width",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "<s> looks special </s>", "",
};

static void check_roundtrips(const char *vocab, bool strips_space) {
    rf_tokenizer *t = load_gguf(vocab);
    CHECK(t != NULL);
    if (!t) return;
    for (size_t i = 0; i < RF_ARRAY_LEN(texts); i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        rf_error err;
        CHECK(rf_tokenize(t, texts[i], strlen(texts[i]), false, false, &ids, &n, &err) == RF_OK);
        char *whole;
        size_t wl, sl;
        CHECK(rf_detokenize(t, ids, n, 0, &whole, &wl, &err) == RF_OK);
        char *streamed = stream_decode(t, ids, n, 0, &sl);
        CHECK_MSG(wl == sl && memcmp(whole, streamed, wl) == 0, "%s: '%s' vs '%s'", vocab, whole, streamed);
        /* SPM prepends a space when encoding and strips it when decoding */
        const char *want = texts[i];
        (void)strips_space;
        CHECK_MSG(strcmp(whole, want) == 0, "%s: decode(encode('%s')) = '%s'", vocab, want, whole);
        rf_free(whole);
        free(streamed);
        rf_free(ids);
    }
    rf_tokenizer_free(t);
}

static void test_roundtrip_spm(void) { check_roundtrips(VOCAB "ggml-vocab-llama-spm.gguf", true); }
static void test_roundtrip_bpe(void) { check_roundtrips(VOCAB "ggml-vocab-gpt-2.gguf", false); }

/* A character split over byte tokens is held until complete. */
static void test_stream_holds_partial_chars(void) {
    rf_tokenizer *t = load_gguf(VOCAB "ggml-vocab-llama-spm.gguf");
    CHECK(t != NULL);
    if (!t) return;
    /* the llama emoji has no token: four <0xNN> byte tokens */
    const char *s = "a🦙b";
    int32_t *ids;
    size_t n;
    rf_error err;
    CHECK(rf_tokenize(t, s, strlen(s), false, false, &ids, &n, &err) == RF_OK);
    int n_byte = 0;
    for (size_t i = 0; i < n; i++) n_byte += rf_token_attr(t, ids[i]) == RF_TOKEN_BYTE;
    CHECK(n_byte == 4);
    size_t cap = rf_detok_max_out(t);
    char *out = malloc(cap);
    rf_detok d;
    rf_detok_init(&d, t, 0);
    int held = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m;
        CHECK(rf_detok_push(&d, ids[i], out, cap, &m, &err) == RF_OK);
        if (rf_token_attr(t, ids[i]) == RF_TOKEN_BYTE) {
            if (m == 0) held++;
            else CHECK(m == 4 && memcmp(out, "🦙", 4) == 0);
        }
    }
    CHECK(held == 3);
    CHECK(rf_detok_flush(&d, out, cap) == 0);
    /* invalid sequences: 0xFF at once, an unfinished lead at flush */
    int32_t ff = rf_token_lookup(t, "<0xFF>", 6), e2 = rf_token_lookup(t, "<0xE2>", 6),
            x82 = rf_token_lookup(t, "<0x82>", 6), a = rf_token_lookup(t, "a", 1);
    CHECK(ff >= 0 && e2 >= 0 && x82 >= 0 && a >= 0);
    size_t m;
    rf_detok_init(&d, t, 0);
    CHECK(rf_detok_push(&d, ff, out, cap, &m, &err) == RF_OK && m == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    CHECK(rf_detok_push(&d, e2, out, cap, &m, &err) == RF_OK && m == 0);
    CHECK(rf_detok_push(&d, x82, out, cap, &m, &err) == RF_OK && m == 0);
    CHECK(rf_detok_flush(&d, out, cap) == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    rf_detok_init(&d, t, RF_DETOK_KEEP_LEADING_SPACE);
    CHECK(rf_detok_push(&d, e2, out, cap, &m, &err) == RF_OK && m == 0);
    CHECK(rf_detok_push(&d, a, out, cap, &m, &err) == RF_OK && m == 4 && memcmp(out, "\xEF\xBF\xBD" "a", 4) == 0);
    /* out-of-range ids and short buffers are errors, not crashes */
    CHECK(rf_detok_push(&d, rf_tokenizer_n_vocab(t), out, cap, &m, &err) == RF_E_RANGE);
    CHECK(rf_detok_push(&d, -1, out, cap, &m, &err) == RF_E_RANGE);
    CHECK(rf_detok_push(&d, a, out, 2, &m, &err) == RF_E_INVAL);
    free(out);
    rf_free(ids);
    rf_tokenizer_free(t);
}

/* Byte-level BPE: random byte strings survive encode + streaming decode
 * exactly when valid UTF-8, and become U+FFFD otherwise. */
static void test_stream_random_bytes(void) {
    rf_tokenizer *t = load_gguf(VOCAB "ggml-vocab-gpt-2.gguf");
    CHECK(t != NULL);
    if (!t) return;
    static const char *const alphabet[] = {"a", " ", "\n", "é", "日", "🦙", "\xe2\x80\x8d", "1", "'s"};
    rf_tok_ws *ws = rf_tok_ws_new();
    for (int r = 0; r < 200; r++) {
        char buf[256];
        size_t k = 0;
        int parts = (int)(rf_test_rand() % 20);
        for (int p = 0; p < parts; p++) {
            const char *s = alphabet[rf_test_rand() % RF_ARRAY_LEN(alphabet)];
            memcpy(buf + k, s, strlen(s));
            k += strlen(s);
        }
        const int32_t *ids;
        size_t n;
        rf_error err;
        CHECK(rf_tokenize_ws(t, ws, buf, k, false, false, &ids, &n, &err) == RF_OK);
        size_t sl;
        char *s = stream_decode(t, ids, n, 0, &sl);
        CHECK(sl == k && memcmp(s, buf, k) == 0);
        free(s);
    }
    rf_tok_ws_free(ws);
    rf_tokenizer_free(t);
}

static bool ids_contain(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

static void test_special_tokens(void) {
    rf_tokenizer *t = load_gguf(VOCAB "ggml-vocab-gpt-2.gguf");
    CHECK(t != NULL);
    if (!t) return;
    const char *s = "hi<|endoftext|>there";
    int32_t eot = rf_token_lookup(t, "<|endoftext|>", 13);
    CHECK(eot == 50256);
    CHECK(rf_token_is_eog(t, eot));
    CHECK(rf_token_eos(t) == 50256);
    CHECK(!rf_token_is_eog(t, 0));
    int32_t *ids;
    size_t n;
    rf_error err;
    CHECK(rf_tokenize(t, s, strlen(s), false, true, &ids, &n, &err) == RF_OK);
    CHECK(n == 3 && ids_contain(ids, n, eot));
    char *txt;
    size_t tl;
    CHECK(rf_detokenize(t, ids, n, 0, &txt, &tl, &err) == RF_OK && strcmp(txt, s) == 0);
    rf_free(txt);
    CHECK(rf_detokenize(t, ids, n, RF_DETOK_SKIP_SPECIAL, &txt, &tl, &err) == RF_OK && strcmp(txt, "hithere") == 0);
    rf_free(txt);
    rf_free(ids);
    CHECK(rf_tokenize(t, s, strlen(s), false, false, &ids, &n, &err) == RF_OK);
    CHECK(n > 3 && !ids_contain(ids, n, eot));
    rf_free(ids);
    rf_tokenizer_free(t);

    /* SPM: add_special puts BOS first; "<s>" is text unless parse_special */
    t = load_gguf(VOCAB "ggml-vocab-llama-spm.gguf");
    CHECK(t != NULL);
    if (!t) return;
    CHECK(rf_tokenizer_add_bos(t) && rf_token_bos(t) == 1);
    s = "<s>Hello";
    CHECK(rf_tokenize(t, s, strlen(s), true, false, &ids, &n, &err) == RF_OK);
    CHECK(n > 2 && ids[0] == 1 && !ids_contain(ids + 1, n - 1, 1));
    rf_free(ids);
    CHECK(rf_tokenize(t, s, strlen(s), true, true, &ids, &n, &err) == RF_OK);
    /* BOS, <s>, then "Hello" with the space prefix SPM adds after a special */
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 1 && ids[2] == rf_token_lookup(t, "\xe2\x96\x81Hello", 8));
    rf_free(ids);
    CHECK(rf_tokenize(t, "", 0, true, false, &ids, &n, &err) == RF_OK && n == 1 && ids[0] == 1);
    rf_free(ids);
    CHECK(rf_tokenize(t, "", 0, false, false, &ids, &n, &err) == RF_OK && n == 0);
    rf_free(ids);
    rf_tokenizer_free(t);
}

/* ---- error paths ---------------------------------------------------------------- */

static char tmp_path[64];

typedef struct spec {
    const char *model, *pre;
    const char *const *tokens;
    int n_tokens;
    int n_scores;                  /* -1: no scores */
    const char *const *merges;
    int n_merges;
    const int32_t *types;
    int n_types;
} spec;

/* Writes a vocab-only GGUF and tries to build a tokenizer from it. */
static rf_status try_spec(const spec *s, const rf_tok_opts *o, rf_error *err) {
    rf_gguf_writer *w = rf_gguf_writer_new();
    if (s->model) rf_gguf_writer_set_str(w, "tokenizer.ggml.model", s->model);
    if (s->pre) rf_gguf_writer_set_str(w, "tokenizer.ggml.pre", s->pre);
    rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", s->tokens, (uint64_t)s->n_tokens);
    if (s->n_scores >= 0) {
        float sc[64] = {0};
        rf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", RF_GGUF_F32, sc, (uint64_t)s->n_scores);
    }
    if (s->types) rf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RF_GGUF_I32, s->types, (uint64_t)s->n_types);
    if (s->merges) rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", s->merges, (uint64_t)s->n_merges);
    rf_error werr;
    rf_status st = rf_gguf_writer_write_file(w, tmp_path, &werr);
    rf_gguf_writer_free(w);
    CHECK(st == RF_OK);
    rf_gguf *g;
    st = rf_gguf_open(tmp_path, &g, err);
    if (st) return st;
    rf_tokenizer *t = NULL;
    st = rf_tokenizer_from_gguf(g, o, &t, err);
    rf_gguf_close(g);
    if (st == RF_OK) {
        /* a loaded tokenizer must also tokenize */
        int32_t *ids;
        size_t n;
        rf_error e2;
        CHECK(rf_tokenize(t, "ab a", 4, true, true, &ids, &n, &e2) == RF_OK);
        rf_free(ids);
    }
    rf_tokenizer_free(t);
    return st;
}

/* the GPT-2 byte-level alphabet: every byte as its mapped character */
static char bytes_store[256][4];
static const char *byte_toks[260];

static int gpt2_alphabet(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        unsigned cp = b;
        bool direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (!direct) {
            unsigned k = 0;
            for (int i = 0; i < b; i++)
                if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE)) k++;
            cp = 0x100 + k;
        }
        if (cp < 0x80) bytes_store[b][0] = (char)cp;
        else {
            bytes_store[b][0] = (char)(0xC0 | (cp >> 6));
            bytes_store[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        byte_toks[n++] = bytes_store[b];
    }
    byte_toks[n++] = "ab";
    byte_toks[n++] = "Ġa";
    return n;
}

static bool msg_has(const rf_error *e, const char *what) {
    bool ok = strstr(e->msg, what) != NULL;
    if (!ok) fprintf(stderr, "  message '%s' lacks '%s'\n", e->msg, what);
    return ok;
}

static void test_gguf_errors(void) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/rf_test_tok_%d.gguf", (int)getpid());
    int nb = gpt2_alphabet();
    static const char *const merges_ok[] = {"a b", "Ġ a"};
    rf_error err = {0};

    spec good = {"gpt2", "gpt-2", byte_toks, nb, -1, merges_ok, 2, NULL, 0};
    CHECK(try_spec(&good, NULL, &err) == RF_OK);

    spec unknown_pre = good;
    unknown_pre.pre = "no-such-pre";
    CHECK(try_spec(&unknown_pre, NULL, &err) == RF_E_UNSUPPORTED && msg_has(&err, "'no-such-pre'"));
    rf_tok_opts fb = {.pre_fallback_gpt2 = true};
    rf_log_level lvl = rf_log_get_level();
    rf_log_set_level(RF_LOG_ERROR);
    CHECK(try_spec(&unknown_pre, &fb, &err) == RF_OK);
    rf_log_set_level(lvl);

    static const char *const merges_bad[] = {"a b", "a zz"};
    spec bad_merge = good;
    bad_merge.merges = merges_bad;
    CHECK(try_spec(&bad_merge, NULL, &err) == RF_E_FORMAT && msg_has(&err, "merges[1]") && msg_has(&err, "'zz'"));
    static const char *const merges_nospace[] = {"ab"};
    bad_merge.merges = merges_nospace;
    bad_merge.n_merges = 1;
    CHECK(try_spec(&bad_merge, NULL, &err) == RF_E_FORMAT && msg_has(&err, "merges[0]"));
    static const char *const merges_nores[] = {"b a"}; /* "ba" is no token */
    bad_merge.merges = merges_nores;
    CHECK(try_spec(&bad_merge, NULL, &err) == RF_E_FORMAT && msg_has(&err, "'ba'"));
    spec no_merges = good;
    no_merges.merges = NULL;
    CHECK(try_spec(&no_merges, NULL, &err) == RF_E_FORMAT && msg_has(&err, "tokenizer.ggml.merges"));

    static const char *const spm_toks[] = {"<unk>", "<s>", "</s>", "a", "b", "\xe2\x96\x81" "a"};
    spec spm = {"llama", NULL, spm_toks, 6, 6, NULL, 0, NULL, 0};
    CHECK(try_spec(&spm, NULL, &err) == RF_OK);
    spec mismatch = spm;
    mismatch.n_scores = 5;
    CHECK(try_spec(&mismatch, NULL, &err) == RF_E_FORMAT && msg_has(&err, "tokenizer.ggml.scores") &&
          msg_has(&err, "5"));
    static const int32_t types_ok[] = {2, 3, 3, 1, 1, 1}, types_bad[] = {2, 3, 3, 1, 9, 1};
    spec typed = spm;
    typed.types = types_ok;
    typed.n_types = 6;
    CHECK(try_spec(&typed, NULL, &err) == RF_OK);
    typed.n_types = 4;
    CHECK(try_spec(&typed, NULL, &err) == RF_E_FORMAT && msg_has(&err, "token_type"));
    typed.types = types_bad;
    typed.n_types = 6;
    CHECK(try_spec(&typed, NULL, &err) == RF_E_FORMAT && msg_has(&err, "token_type[4]"));
    static const char *const dup_toks[] = {"<unk>", "<s>", "</s>", "a", "b", "a"};
    spec dup = spm;
    dup.tokens = dup_toks;
    CHECK(try_spec(&dup, NULL, &err) == RF_E_FORMAT && msg_has(&err, "duplicate") && msg_has(&err, "'a'"));
    spec t5 = spm;
    t5.model = "t5";
    CHECK(try_spec(&t5, NULL, &err) == RF_E_UNSUPPORTED && msg_has(&err, "Unigram"));
    spec nomodel = spm;
    nomodel.model = NULL;
    CHECK(try_spec(&nomodel, NULL, &err) == RF_E_FORMAT && msg_has(&err, "tokenizer.ggml.model"));
    spec weird = spm;
    weird.model = "weird";
    CHECK(try_spec(&weird, NULL, &err) == RF_E_UNSUPPORTED && msg_has(&err, "'weird'"));
    unlink(tmp_path);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(s, f);
    fclose(f);
}

static rf_status try_json(const char *json, rf_error *err) {
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/rf_test_tokj_%d", (int)getpid());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, json);
    rf_tokenizer *t = NULL;
    rf_status st = rf_tokenizer_from_json(path, NULL, &t, err);
    if (st == RF_OK) {
        int32_t *ids;
        size_t n;
        rf_error e2;
        CHECK(rf_tokenize(t, "ab ab", 5, true, false, &ids, &n, &e2) == RF_OK);
        CHECK(n == 3 && ids[0] == 4 && ids[1] == 2 && ids[2] == 4);
        rf_free(ids);
    }
    rf_tokenizer_free(t);
    unlink(path);
    rmdir(dir);
    return st;
}

#define JSON_HEAD "{\"added_tokens\": [], \"normalizer\": null, \"post_processor\": null, \"decoder\": null, "
#define JSON_MODEL(merges) \
    "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \" \": 2, \"x\": 3, \"ab\": 4}, \"merges\": " merges "}}"

static void test_json_errors(void) {
    rf_error err = {0};
    CHECK(try_json(JSON_HEAD "\"pre_tokenizer\": null, " JSON_MODEL("[\"a b\"]"), &err) == RF_OK);
    CHECK(try_json(JSON_HEAD "\"pre_tokenizer\": null, " JSON_MODEL("[[\"a\", \"b\"]]"), &err) == RF_OK);
    CHECK(try_json(JSON_HEAD "\"pre_tokenizer\": {\"type\": \"FancySplit\"}, " JSON_MODEL("[\"a b\"]"), &err) ==
              RF_E_UNSUPPORTED && msg_has(&err, "FancySplit"));
    CHECK(try_json(JSON_HEAD "\"pre_tokenizer\": null, " JSON_MODEL("[\"a b\", \"a q\"]"), &err) == RF_E_FORMAT &&
          msg_has(&err, "merges[1]") && msg_has(&err, "'q'"));
    CHECK(try_json(JSON_HEAD "\"pre_tokenizer\": null, " JSON_MODEL("[\"b a\"]"), &err) == RF_E_FORMAT &&
          msg_has(&err, "'ba'"));
    CHECK(try_json(JSON_HEAD "\"pre_tokenizer\": null, \"model\": {\"type\": \"Unigram\", \"vocab\": []}}", &err) ==
              RF_E_UNSUPPORTED && msg_has(&err, "Unigram"));
    CHECK(try_json("{\"model\": {\"type\": \"BPE\",, }", &err) == RF_E_FORMAT && msg_has(&err, "tokenizer.json:1:"));
    CHECK(try_json("{\"normalizer\": {\"type\": \"Precompiled\"}, " JSON_MODEL("[]"), &err) == RF_E_UNSUPPORTED &&
          msg_has(&err, "Precompiled"));
    CHECK(try_json("{\"decoder\": {\"type\": \"CTC\"}, " JSON_MODEL("[]"), &err) == RF_E_UNSUPPORTED &&
          msg_has(&err, "CTC"));
    CHECK(try_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", &err) ==
              RF_E_FORMAT && msg_has(&err, "twice"));
    CHECK(try_json("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}}, " JSON_MODEL("[]"),
                   &err) == RF_E_FORMAT && msg_has(&err, "regex"));
    rf_tokenizer *t = NULL;
    CHECK(rf_tokenizer_from_json("/nonexistent/tokenizer.json", NULL, &t, &err) == RF_E_FORMAT && t == NULL);
}

/* Every allocation failure during load and tokenize is an error, not a
 * crash, and leaks nothing. */
static void test_alloc_failures(void) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/rf_test_tok_oom_%d.gguf", (int)getpid());
    int nb = gpt2_alphabet();
    static const char *const merges_ok[] = {"a b", "\xc4\xa0 a"};
    spec good = {"gpt2", "llama3", byte_toks, nb, -1, merges_ok, 2, NULL, 0};
    rf_error err;
    CHECK(try_spec(&good, NULL, &err) == RF_OK); /* writes the file, warms PCRE2 up */
    rf_gguf *g;
    CHECK(rf_gguf_open(tmp_path, &g, &err) == RF_OK);
    size_t base = rf_alloc_get_stats().live_bytes;
    int ok = 0, failed = 0;
    for (long k = 0; k < 400; k++) {
        rf_alloc_fail_after(k);
        rf_tokenizer *t = NULL;
        rf_status st = rf_tokenizer_from_gguf(g, NULL, &t, &err);
        if (st == RF_OK) {
            int32_t *ids = NULL;
            size_t n;
            st = rf_tokenize(t, "ab a ab\xff", 8, true, true, &ids, &n, &err);
            rf_free(ids);
        }
        rf_alloc_fail_after(-1);
        CHECK_MSG(st == RF_OK || st == RF_E_NOMEM, "after %ld: %d %s", k, st, err.msg);
        rf_tokenizer_free(t);
        CHECK_MSG(rf_alloc_get_stats().live_bytes == base, "leak after %ld allocations", k);
        if (st == RF_OK) ok++;
        else failed++;
    }
    CHECK(ok > 0 && failed > 0);
    rf_gguf_close(g);
    unlink(tmp_path);
}

/* One tokenizer, several threads with their own workspaces: same ids. */
typedef struct thr_arg {
    const rf_tokenizer *t;
    int bad;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    rf_tok_ws *ws = rf_tok_ws_new();
    for (int r = 0; r < 50; r++)
        for (size_t i = 0; i < RF_ARRAY_LEN(texts); i++) {
            const int32_t *ids;
            size_t n;
            int32_t *ref;
            size_t rn;
            rf_error err;
            if (rf_tokenize_ws(a->t, ws, texts[i], strlen(texts[i]), true, true, &ids, &n, &err) != RF_OK ||
                rf_tokenize(a->t, texts[i], strlen(texts[i]), true, true, &ref, &rn, &err) != RF_OK) {
                a->bad++;
                continue;
            }
            if (rn != n || memcmp(ids, ref, n * sizeof *ids) != 0) a->bad++;
            rf_free(ref);
        }
    rf_tok_ws_free(ws);
    return NULL;
}

static void test_threads(void) {
    rf_tokenizer *t = load_gguf(VOCAB "ggml-vocab-deepseek-llm.gguf");
    CHECK(t != NULL);
    if (!t) return;
    pthread_t th[4];
    thr_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){t, 0};
        CHECK(pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
    }
    rf_tokenizer_free(t);
}

int main(void) {
    rf_test_seed();
    RF_RUN(test_roundtrip_spm);
    RF_RUN(test_roundtrip_bpe);
    RF_RUN(test_stream_holds_partial_chars);
    RF_RUN(test_stream_random_bytes);
    RF_RUN(test_special_tokens);
    RF_RUN(test_gguf_errors);
    RF_RUN(test_json_errors);
    RF_RUN(test_alloc_failures);
    RF_RUN(test_threads);
    return rf_test_summary();
}
