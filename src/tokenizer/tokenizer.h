/*
 * tokenizer.h - text <-> token ids for every model we load.
 *
 * A tokenizer is built once, either from a GGUF file's `tokenizer.ggml.*`
 * metadata (models `llama` = SentencePiece BPE by score with byte fallback,
 * `gpt2` = byte-level BPE by merge rank with a pre-tokenizer regex set chosen
 * by `tokenizer.ggml.pre`, `bert` = WordPiece) or from a Hugging Face
 * tokenizer.json (BPE model; normalizers, pre-tokenizers, decoders, added
 * tokens and the TemplateProcessing post-processor). After that it is
 * read-only: any number of threads may tokenize and detokenize with it at
 * once (each with its own workspace / detokenizer state).
 *
 * Input text contract: bytes that are not valid UTF-8 are replaced by U+FFFD
 * (one per maximal invalid subpart, the WHATWG / Python errors="replace"
 * rule) before anything else happens; everything after works on valid UTF-8.
 *
 * Special tokens: control (and unknown) tokens are recognised in the input
 * only when the caller passes parse_special; otherwise their text is plain
 * text. User-defined tokens (HF added tokens with special=false) are always
 * recognised, as Hugging Face and llama.cpp do. Matching is leftmost-longest.
 */
#ifndef RF_TOKENIZER_H
#define RF_TOKENIZER_H

#include "core/core.h"
#include "gguf/gguf.h"

typedef struct rf_tokenizer rf_tokenizer;

/* The model algorithm behind a tokenizer. */
typedef enum rf_tok_kind {
    RF_TOK_SPM = 0, /* llama.cpp SentencePiece: merge by token score, byte fallback */
    RF_TOK_BPE = 1, /* merge by rank (byte-level GPT-2 style or HF BPE with byte_fallback) */
    RF_TOK_WPM = 2, /* WordPiece (BERT) */
    RF_TOK_KIND_COUNT
} rf_tok_kind;

/* Token attribute: the values of GGUF tokenizer.ggml.token_type. */
typedef enum rf_tok_attr {
    RF_TOKEN_UNDEFINED = 0,
    RF_TOKEN_NORMAL = 1,
    RF_TOKEN_UNKNOWN = 2,
    RF_TOKEN_CONTROL = 3,
    RF_TOKEN_USER_DEFINED = 4,
    RF_TOKEN_UNUSED = 5,
    RF_TOKEN_BYTE = 6,
    RF_TOKEN_ATTR_COUNT
} rf_tok_attr;

typedef struct rf_tok_opts {
    /* An unknown tokenizer.ggml.pre is an error naming it. With this set it
     * falls back to the gpt-2 regex instead (logged as a warning): the
     * documented escape hatch for new models, at the risk of wrong ids. */
    bool pre_fallback_gpt2;
} rf_tok_opts;

/* Builds a tokenizer from GGUF metadata. `g` is only read during the call
 * (everything needed is copied). `o` may be NULL (defaults). On success
 * *out is owned by the caller (rf_tokenizer_free). Errors: RF_E_FORMAT for
 * missing/inconsistent metadata (message names the key and index),
 * RF_E_UNSUPPORTED for a model or pre-tokenizer we do not implement. */
rf_status rf_tokenizer_from_gguf(const rf_gguf *g, const rf_tok_opts *o, rf_tokenizer **out,
                                 rf_error *err);

/* Builds a tokenizer from a Hugging Face tokenizer.json; a
 * tokenizer_config.json in the same folder, if present, supplies
 * bos/eos/pad/unk token names, add_bos_token/add_eos_token (which override
 * the post-processor's template) and chat_template. */
rf_status rf_tokenizer_from_json(const char *tokenizer_json_path, const rf_tok_opts *o,
                                 rf_tokenizer **out, rf_error *err);

void rf_tokenizer_free(rf_tokenizer *t); /* accepts NULL */

/* ---- vocabulary ---------------------------------------------------------- */

rf_tok_kind rf_tokenizer_kind(const rf_tokenizer *t);
int32_t rf_tokenizer_n_vocab(const rf_tokenizer *t);
/* Special ids, -1 when the tokenizer has none. */
int32_t rf_token_bos(const rf_tokenizer *t);
int32_t rf_token_eos(const rf_tokenizer *t);
int32_t rf_token_eot(const rf_tokenizer *t);
int32_t rf_token_unk(const rf_tokenizer *t);
int32_t rf_token_pad(const rf_tokenizer *t);
int32_t rf_token_sep(const rf_tokenizer *t);
bool rf_tokenizer_add_bos(const rf_tokenizer *t);
bool rf_tokenizer_add_eos(const rf_tokenizer *t);
/* True for ids that end generation (eos, eot, eom and the end-of-turn tokens
 * of known chat formats that exist in this vocabulary). */
bool rf_token_is_eog(const rf_tokenizer *t, int32_t id);
rf_tok_attr rf_token_attr(const rf_tokenizer *t, int32_t id); /* UNDEFINED if out of range */
/* The vocabulary string of `id` (e.g. "Ġhello", "<0x0A>"); borrowed until
 * rf_tokenizer_free; NULL if out of range. */
const char *rf_token_text(const rf_tokenizer *t, int32_t id, size_t *len);
/* The bytes `id` stands for in decoded text (e.g. " hello", "\n"); control
 * tokens give their text. May be an incomplete UTF-8 fragment (byte tokens).
 * Borrowed; NULL if out of range. */
const char *rf_token_piece(const rf_tokenizer *t, int32_t id, size_t *len);
/* Exact vocabulary lookup; -1 if `text` is not a token. */
int32_t rf_token_lookup(const rf_tokenizer *t, const char *text, size_t len);
/* The chat template from GGUF tokenizer.chat_template or tokenizer_config.json;
 * NULL if none. Borrowed. */
const char *rf_tokenizer_chat_template(const rf_tokenizer *t);

/* ---- encoding ------------------------------------------------------------ */

/* Scratch memory for tokenizing; reuse one per thread to avoid allocation
 * in hot loops. Not thread-safe itself. */
typedef struct rf_tok_ws rf_tok_ws;
rf_tok_ws *rf_tok_ws_new(void); /* NULL on OOM */
void rf_tok_ws_free(rf_tok_ws *ws); /* accepts NULL */

/* Tokenizes `len` bytes of `text`. add_special: add BOS/EOS (or the
 * template's tokens) as the model asks. parse_special: recognise control
 * token text in the input. On success *ids (caller frees with rf_free) holds
 * *n ids. */
rf_status rf_tokenize(const rf_tokenizer *t, const char *text, size_t len, bool add_special,
                      bool parse_special, int32_t **ids, size_t *n, rf_error *err);

/* The same with a reusable workspace; the ids stay valid in `ws` (borrowed)
 * until its next use or free. */
rf_status rf_tokenize_ws(const rf_tokenizer *t, rf_tok_ws *ws, const char *text, size_t len,
                         bool add_special, bool parse_special, const int32_t **ids, size_t *n,
                         rf_error *err);

/* ---- streaming detokenizer -------------------------------------------------
 * Push ids one at a time; each push writes only complete UTF-8 characters.
 * A piece that ends inside a multi-byte character (byte-fallback tokens,
 * byte-level pieces) is held until the character completes. Bytes that can
 * never become valid (a stray continuation byte, a lead byte followed by a
 * non-continuation, 0xC0/0xC1/0xF5..0xFF, an encoded surrogate) are written
 * as U+FFFD as soon as that is certain; an incomplete tail still held at
 * rf_detok_flush() becomes one U+FFFD. Decoding a whole id sequence in one
 * go (rf_detokenize) gives exactly the concatenation of the pushes + flush.
 *
 * Leading-space rule: tokenizers whose encoder prepends a space (SPM with
 * add_space_prefix, HF Metaspace prepend / Strip decoder) drop one leading
 * space of the first non-empty piece. */
enum {
    RF_DETOK_SKIP_SPECIAL = 1u << 0, /* control/unknown tokens produce no text */
    RF_DETOK_KEEP_LEADING_SPACE = 1u << 1, /* never strip the first piece's space */
};

typedef struct rf_detok {
    const rf_tokenizer *tok;
    unsigned flags;
    bool started;      /* a non-empty piece was emitted */
    uint8_t n_pend;    /* bytes of an incomplete character held back */
    uint8_t pend[4];
} rf_detok;

void rf_detok_init(rf_detok *d, const rf_tokenizer *t, unsigned flags);
/* Bytes one push may write at most: size `out` with this. */
size_t rf_detok_max_out(const rf_tokenizer *t);
/* Decodes `id` and writes the newly complete text to out (at most cap
 * bytes; *n_out gets the count). RF_E_RANGE for an id out of the
 * vocabulary, RF_E_INVAL if cap < rf_detok_max_out(). */
rf_status rf_detok_push(rf_detok *d, int32_t id, char *out, size_t cap, size_t *n_out,
                        rf_error *err);
/* Writes what is still held (as U+FFFD) and resets for a new sequence; at
 * most 3 bytes. */
size_t rf_detok_flush(rf_detok *d, char *out, size_t cap);

/* Whole-sequence convenience: *text (NUL-terminated, caller frees with
 * rf_free) and *len. */
rf_status rf_detokenize(const rf_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                        char **text, size_t *len, rf_error *err);

#endif /* RF_TOKENIZER_H */
