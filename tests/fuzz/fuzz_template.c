/*
 * fuzz_template.c - libFuzzer target for the chat-template interpreter.
 *
 * The input is template text; if it holds a NUL byte, what follows the
 * first NUL is used as the render context (JSON) instead of the fixed one.
 * A template that parses is rendered with small limits, twice (the outputs
 * must be identical: no state leaks between renders, no uninitialized
 * reads), and a third time with an allocation failure injected at a point
 * derived from the input (it must fail cleanly or succeed with the same
 * output). Accepted output must be exactly out_len bytes plus a NUL. Any
 * violated expectation traps; ASan/UBSan/LeakSanitizer catch the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/template.h"

#define FZ_CHECK(c)                                                                        \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "fuzz_template: check failed: %s (line %d)\n", #c, __LINE__); \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)

static const char CONTEXT[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
    "{\"role\": \"user\", \"content\": \"H\\u00e9llo {{ x }} \\ud83d\\ude00\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
    " \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [true, null, 2.5]}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"42\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"part\"}]}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}],"
    "\"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\","
    "\"eos_token\": \"</s>\", \"enable_thinking\": false, \"n\": -7, \"f\": 0.1}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data;
    size_t tlen = size;
    const char *ctx = CONTEXT;
    size_t clen = sizeof CONTEXT - 1;
    const char *nul = memchr(src, '\0', size);
    if (nul) {
        tlen = (size_t)(nul - src);
        ctx = nul + 1;
        clen = size - tlen - 1;
    }
    rf_tmpl *t;
    rf_error err = {0};
    if (rf_tmpl_parse(src, tlen, &t, &err) != RF_OK) {
        FZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    rf_tmpl_opts o = {.has_now = true, .now = 1767312000,
                      .limits = {.max_iters = 20000, .max_depth = 64, .max_output = 1 << 20,
                                 .max_alloc = 64 << 20}};
    char *out1 = NULL, *out2 = NULL, *out3 = NULL;
    size_t n1 = 0, n2 = 0, n3 = 0;
    rf_status s1 = rf_tmpl_render_json(t, ctx, clen, &o, &out1, &n1, &err);
    rf_status s2 = rf_tmpl_render_json(t, ctx, clen, &o, &out2, &n2, &err);
    FZ_CHECK(s1 == s2);
    if (s1 == RF_OK) {
        FZ_CHECK(out1[n1] == '\0' && n1 == n2 && memcmp(out1, out2, n1) == 0);
    } else {
        FZ_CHECK(!out1 && !out2 && err.msg[0] != '\0');
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
    rf_alloc_fail_after((long)(h % 300));
    rf_status s3 = rf_tmpl_render_json(t, ctx, clen, &o, &out3, &n3, &err);
    rf_alloc_fail_after(-1);
    if (s3 == RF_OK) FZ_CHECK(s1 == RF_OK && n3 == n1 && memcmp(out1, out3, n1) == 0);
    else FZ_CHECK(!out3);
    rf_free(out1);
    rf_free(out2);
    rf_free(out3);
    rf_tmpl_free(t);
    return 0;
}
