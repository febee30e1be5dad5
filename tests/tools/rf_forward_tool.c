/*
 * rf_forward_tool - runs batches through the engine for the reference tests.
 *
 *   rf_forward_tool MODEL.gguf SPEC.json OUT.f32
 *
 * SPEC: {"steps": [[{"seq": 0, "pos": 0, "token": 1, "logits": true}, ...], ...],
 *        "threads": 2, "n_ctx": 512}
 * Each step is one rf_forward call; the float32 logits of every entry with
 * "logits": true are appended to OUT in order. Exit 0 ok, 2 on any error.
 *
 * Greedy mode: SPEC {"greedy": {"prompt": [ids...], "n": 32}} prefills the
 * prompt as one batch, then takes the argmax n times; OUT receives the
 * float32 logits of each of the n steps, and stdout one line of JSON:
 * {"tokens": [...]}.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu/cpu.h"
#include "model/model.h"

static int fail(const char *what, const char *msg) {
    fprintf(stderr, "rf_forward_tool: %s: %s\n", what, msg);
    return 2;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: rf_forward_tool MODEL.gguf SPEC.json OUT.f32\n");
        return 1;
    }
    json_error_t je;
    json_t *spec = json_load_file(argv[2], 0, &je);
    if (!spec) return fail(argv[2], je.text);
    json_t *greedy = json_object_get(spec, "greedy");
    json_t *steps = json_object_get(spec, "steps");
    if (greedy) {
        /* rewrite as steps: the prompt, then n placeholder decode steps */
        json_t *prompt = json_object_get(greedy, "prompt");
        if (!json_is_array(prompt) || !json_array_size(prompt)) return fail(argv[2], "greedy.prompt must be a non-empty array");
        steps = json_array();
        json_t *first = json_array();
        size_t k;
        json_t *id;
        json_array_foreach(prompt, k, id)
            json_array_append_new(first, json_pack("{s:i,s:i,s:O,s:b}", "seq", 0, "pos", (int)k, "token", id, "logits",
                                                   k + 1 == json_array_size(prompt)));
        json_array_append_new(steps, first);
        json_object_set_new(spec, "steps", steps);
    }
    if (!json_is_array(steps)) return fail(argv[2], "\"steps\" must be an array");
    int threads = json_is_integer(json_object_get(spec, "threads")) ? (int)json_integer_value(json_object_get(spec, "threads")) : 2;
    int64_t n_ctx = json_is_integer(json_object_get(spec, "n_ctx")) ? json_integer_value(json_object_get(spec, "n_ctx")) : 512;

    rf_error err = {0};
    rf_model *m = NULL;
    if (rf_model_load(argv[1], &m, &err) != RF_OK) return fail(argv[1], err.msg);
    int64_t max_n = 1, n_seq = 1;
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step) {
        if (!json_is_array(step)) return fail(argv[2], "each step must be an array");
        if ((int64_t)json_array_size(step) > max_n) max_n = (int64_t)json_array_size(step);
        size_t j;
        json_t *en;
        json_array_foreach(step, j, en) {
            int64_t s = json_integer_value(json_object_get(en, "seq"));
            if (s + 1 > n_seq) n_seq = s + 1;
        }
    }
    rf_threadpool *tp = rf_threadpool_create(threads);
    rf_backend be;
    rf_ctx *ctx = NULL;
    if (!tp || rf_cpu_backend_create(tp, &be, &err) != RF_OK) return fail("backend", err.msg);
    rf_ctx_params p = {.n_ctx = n_ctx, .n_seq = (int)n_seq, .n_batch = max_n};
    if (rf_ctx_create(m, &p, &be, &ctx, &err) != RF_OK) return fail("context", err.msg);
    FILE *out = fopen(argv[3], "wb");
    if (!out) return fail(argv[3], "cannot open for writing");
    int64_t V = m->hp.n_vocab;
    rf_batch_entry *b = calloc((size_t)max_n, sizeof *b);
    float *logits = malloc((size_t)(max_n * V) * sizeof(float));
    if (!b || !logits) return fail("memory", "out of memory");
    if (greedy) {
        int64_t n_gen = json_integer_value(json_object_get(greedy, "n"));
        int64_t pos = (int64_t)json_array_size(json_array_get(steps, 0));
        for (int64_t k = 0; k < pos; k++) {
            json_t *en = json_array_get(json_array_get(steps, 0), (size_t)k);
            b[k] = (rf_batch_entry){0, (int32_t)k, (int32_t)json_integer_value(json_object_get(en, "token")), k == pos - 1};
        }
        if (rf_forward(ctx, b, pos, logits, NULL, &err) != RF_OK) return fail("forward", err.msg);
        printf("{\"tokens\": [");
        for (int64_t g = 0; g < n_gen; g++) {
            if (fwrite(logits, sizeof(float), (size_t)V, out) != (size_t)V) return fail(argv[3], "write failed");
            int32_t best = 0;
            for (int64_t v = 1; v < V; v++) if (logits[v] > logits[best]) best = (int32_t)v;
            printf(g ? ", %d" : "%d", best);
            if (g + 1 == n_gen) break;
            b[0] = (rf_batch_entry){0, (int32_t)(pos++), best, true};
            if (rf_forward(ctx, b, 1, logits, NULL, &err) != RF_OK) return fail("forward", err.msg);
        }
        printf("]}\n");
        json_array_clear(steps);
    }
    json_array_foreach(steps, i, step) {
        size_t j;
        json_t *en;
        int64_t n_out = 0;
        json_array_foreach(step, j, en) {
            b[j].seq = (int32_t)json_integer_value(json_object_get(en, "seq"));
            b[j].pos = (int32_t)json_integer_value(json_object_get(en, "pos"));
            b[j].token = (int32_t)json_integer_value(json_object_get(en, "token"));
            b[j].logits = json_is_true(json_object_get(en, "logits"));
            n_out += b[j].logits;
        }
        if (rf_forward(ctx, b, (int64_t)json_array_size(step), logits, NULL, &err) != RF_OK) return fail("forward", err.msg);
        if (fwrite(logits, sizeof(float), (size_t)(n_out * V), out) != (size_t)(n_out * V)) return fail(argv[3], "write failed");
    }
    if (fclose(out) != 0) return fail(argv[3], "write failed");
    free(b);
    free(logits);
    rf_ctx_free(ctx);
    rf_cpu_backend_free(&be);
    rf_threadpool_free(tp);
    rf_model_free(m);
    json_decref(spec);
    return 0;
}
