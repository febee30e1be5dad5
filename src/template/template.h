/*
 * template.h - chat templates: a Jinja2 interpreter for the subset that real
 * chat templates use. It renders byte for byte what Python jinja2 renders
 * when Hugging Face transformers' apply_chat_template runs a template: an
 * ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loop
 * controls extension, plus the globals raise_exception(msg) and
 * strftime_now(fmt) and a tojson filter that is json.dumps(x,
 * ensure_ascii=False, indent, separators, sort_keys).
 *
 * A parsed template (rf_tmpl) is immutable: several threads may render the
 * same one at once. One render is bounded (loop iterations, nesting depth,
 * output size, bytes allocated), so a hostile template ends with an error
 * instead of hanging or exhausting memory.
 *
 * Also here: the built-in templates of the common chat families, detection
 * of a template's family from its markers, and a loader that falls back to
 * the built-in template of the detected family when a model's own template
 * does not parse or does not render a probe conversation.
 */
#ifndef RF_TEMPLATE_H
#define RF_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/core.h"

struct json_t; /* jansson's json_t, for callers that already hold one */

typedef struct rf_tmpl rf_tmpl;

/* Per-render limits; a zero field takes the default shown. */
typedef struct rf_tmpl_limits {
    uint64_t max_iters;  /* loop iterations + items walked by filters, total: 1,000,000 */
    uint32_t max_depth;  /* nesting of macro calls and of values (repr, json): 256 */
    size_t max_output;   /* bytes of any one output buffer: 64 MiB */
    uint64_t max_alloc;  /* bytes allocated by the render, cumulative: 1 GiB */
} rf_tmpl_limits;

typedef struct rf_tmpl_opts {
    /* What strftime_now() sees. When has_now is set, `now` is read as UTC
     * wall-clock fields (gmtime), so "2026-01-02" renders the same
     * everywhere; otherwise the current local time, as Python's
     * datetime.now() gives. */
    bool has_now;
    time_t now;
    rf_tmpl_limits limits;
} rf_tmpl_opts;

/* Parses template text (UTF-8, `len` bytes, need not be NUL-terminated).
 * On success *out is a new template the caller frees with rf_tmpl_free.
 * Errors (RF_E_FORMAT) name line:column, as "line 3:14: unexpected '}'".
 * Filters and tests jinja2 does not know are errors here too, unless they
 * sit in an if branch or an inline if (jinja2 then fails only if run). */
rf_status rf_tmpl_parse(const char *src, size_t len, rf_tmpl **out, rf_error *err);
void rf_tmpl_free(rf_tmpl *t); /* accepts NULL */

/* Renders with the variables of a JSON object (messages, tools, documents,
 * add_generation_prompt, bos_token, eos_token, ...; every key becomes a
 * template variable). opts may be NULL (defaults, current time). On success
 * *out is a NUL-terminated string of *out_len bytes the caller frees with
 * rf_free. A template error (raise_exception, an undefined value used where
 * jinja2 raises, a limit hit) returns RF_E_FORMAT with the message and the
 * template's line:column; RF_E_INVAL means the context is not a JSON object. */
rf_status rf_tmpl_render_json(const rf_tmpl *t, const char *ctx_json, size_t len,
                              const rf_tmpl_opts *opts, char **out, size_t *out_len,
                              rf_error *err);
/* The same with an already parsed jansson object (borrowed). */
rf_status rf_tmpl_render(const rf_tmpl *t, const struct json_t *ctx, const rf_tmpl_opts *opts,
                         char **out, size_t *out_len, rf_error *err);

/* ---- built-in templates and fallback ---------------------------------- */

/* Names of the built-in families: "chatml", "llama2", "llama3", "mistral",
 * "gemma", "phi3", "deepseek". Returns the template text (static), or NULL
 * for an unknown name. */
const char *rf_tmpl_builtin(const char *family);
/* The i-th family name, NULL past the end (for listing). */
const char *rf_tmpl_family_name(int i);

/* The family of a template by its markers (<|im_start|>,
 * <|start_header_id|>, [INST], <start_of_turn>, <|user|>, <｜User｜>), or
 * NULL when none is found. */
const char *rf_tmpl_detect_family(const char *src, size_t len);

/* Parses `src` and renders a probe conversation (user, assistant, user
 * with add_generation_prompt) with it. If either fails, logs a warning
 * (RF_LOGW) saying why and parses instead the built-in template of the
 * family detected from src's markers, else of family_hint (a family name
 * or a GGUF general.architecture such as "gemma3"), else chatml. src may
 * be NULL (no template in the model).
 * *family_out (may be NULL) gets "model" when the model's own template is
 * used, else the built-in family's name (static). The caller frees *out. */
rf_status rf_tmpl_load_with_fallback(const char *src, size_t len, const char *family_hint,
                                     rf_tmpl **out, const char **family_out, rf_error *err);

#endif /* RF_TEMPLATE_H */
