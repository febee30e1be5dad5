/*
 * sample.h - turning logits into the next token, and stop strings.
 *
 * The chain, in order: logit bias -> repetition/presence/frequency penalties
 * over the last `penalty_last_n` tokens -> (logprobs are taken here, from
 * the log-softmax of the adjusted logits) -> greedy if temperature <= 0,
 * else temperature -> top-k -> typical-p -> top-p -> min-p -> a draw from
 * the seeded generator. The order follows Hugging Face's logits processors.
 * A sampler owns its buffers (sized once for the vocabulary) and its RNG:
 * the same seed and inputs give the same tokens.
 */
#ifndef RF_SAMPLE_H
#define RF_SAMPLE_H

#include "core/core.h"

typedef struct rf_logit_bias {
    int32_t token;
    float bias; /* -INFINITY bans the token */
} rf_logit_bias;

typedef struct rf_sample_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float typical_p;         /* >= 1: off */
    float repeat_penalty;    /* 1: off; > 1 divides positive logits, multiplies negative */
    float presence_penalty;  /* subtracted once per seen token */
    float frequency_penalty; /* subtracted per occurrence */
    int32_t penalty_last_n;  /* window of the penalties (0: off, -1: whole history) */
    uint64_t seed;
    const rf_logit_bias *bias;
    int32_t n_bias;
    int32_t n_top_logprobs;  /* top-n logprobs to report (0..20) */
} rf_sample_params;

rf_sample_params rf_sample_params_default(void);

#define RF_MAX_TOP_LOGPROBS 20

typedef struct rf_sample_result {
    int32_t token;
    float logprob;                        /* of the chosen token */
    int32_t n_top;
    int32_t top_ids[RF_MAX_TOP_LOGPROBS];
    float top_logprobs[RF_MAX_TOP_LOGPROBS];
} rf_sample_result;

typedef struct rf_sampler rf_sampler;

/* params->bias is copied. history_cap bounds the penalty window memory. */
rf_status rf_sampler_create(const rf_sample_params *p, int64_t n_vocab, rf_sampler **out, rf_error *err);
void rf_sampler_free(rf_sampler *s);
/* Records a token of the context (prompt or generated) for the penalties. */
void rf_sampler_accept(rf_sampler *s, int32_t token);
void rf_sampler_reset(rf_sampler *s);
/* Picks the next token. `logits` [n_vocab] is modified in place. */
int32_t rf_sample(rf_sampler *s, float *logits, rf_sample_result *res);

/* ---- stop strings across token boundaries ------------------------------
 * Text is pushed piece by piece; rf_stop_push returns how many bytes of the
 * held text are safe to emit (they cannot be the start of a stop string),
 * and sets *hit when a stop string completed (the text before it is then
 * safe; the stop string itself is never emitted). */
typedef struct rf_stop {
    char **stops;
    int n;
    char *buf;      /* held text */
    size_t len, cap;
    size_t max_stop;
} rf_stop;

rf_status rf_stop_init(rf_stop *st, const char *const *stops, int n);
void rf_stop_free(rf_stop *st);
/* Appends text; returns the number of bytes at the front of the held
 * buffer that may be emitted now; caller then calls rf_stop_consume(n). */
size_t rf_stop_push(rf_stop *st, const char *text, size_t len, bool *hit);
const char *rf_stop_text(const rf_stop *st);
void rf_stop_consume(rf_stop *st, size_t n);

#endif
