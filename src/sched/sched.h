/*
 * sched.h - the request scheduler behind `rocmforge serve`: a queue of jobs
 * and one thread that owns the model context and runs continuous batching.
 *
 * Every step the scheduler thread gathers the next token of each running
 * sequence plus a chunk of waiting prefill, runs one rf_forward over all of
 * them, samples each sequence (with its own sampler, optional JSON grammar
 * and stop strings), appends the safe text to the job's output, and wakes
 * the job's consumer. Finished and cancelled sequences give back their KV
 * blocks in the same step; waiting jobs are admitted while a slot and KV
 * blocks allow. When the block pool runs out mid-step, the youngest running
 * sequence is pre-empted: its blocks are freed and it goes back to the head
 * of the queue with everything it generated, to be recomputed later (or, if
 * it is alone, it ends with RF_SF_LENGTH).
 *
 * A job is shared by its producer (the scheduler) and its consumer (an HTTP
 * connection): it is reference counted, and its output is read under the
 * job's lock (rf_sjob_lock). The consumer is told about new output through
 * a callback that runs on the scheduler thread without any scheduler or job
 * lock held; it must be short (set a flag, resume a connection).
 *
 * Also here: rf_jgram, a JSON-schema acceptor used for grammar-constrained
 * sampling (jsongram.c): before a job samples, the logits of every token
 * whose bytes cannot continue a valid document are set to -inf.
 */
#ifndef RF_SCHED_H
#define RF_SCHED_H

#include <stdatomic.h>

#include "model/model.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"

struct json_t;

/* ---- JSON grammar (jsongram.c) ------------------------------------------- */

typedef struct rf_jgram rf_jgram;

/* Compiles a JSON schema (a jansson value, borrowed) into an acceptor.
 * schema NULL: any JSON object (response_format json_object). Supported:
 * type (one or a list), properties + required (at most 64 properties;
 * other keys are not generated), additionalProperties (when no properties
 * are listed), items, minItems/maxItems, minLength/maxLength, enum, const,
 * anyOf/oneOf whose branches start with different JSON types, allOf with a
 * single branch, $ref to #/$defs/... or #/definitions/..., and annotations
 * (title, description, default, examples, format, $schema, ...), which are
 * ignored. Keywords that constrain values in ways the acceptor cannot
 * enforce (pattern, minimum, multipleOf, uniqueItems, ...) are
 * RF_E_UNSUPPORTED with a message naming the keyword and its JSON path.
 * On success *out has one reference (rf_jgram_unref). */
rf_status rf_jgram_compile(const struct json_t *schema, rf_jgram **out, rf_error *err);
rf_jgram *rf_jgram_ref(rf_jgram *g);
void rf_jgram_unref(rf_jgram *g); /* accepts NULL */

#define RF_JG_MAX_DEPTH 48

typedef struct rf_jframe {
    int32_t node;   /* schema node */
    uint8_t kind;   /* frame kind (jsongram.c) */
    uint8_t st;     /* state within the kind */
    uint8_t ws;     /* length of the current whitespace run */
    uint8_t u;      /* string: UTF-8 continuation bytes / \u hex digits pending */
    int32_t n;      /* characters, items or matched literal bytes so far */
    int32_t lo, hi; /* literal candidates [lo, hi) */
    int32_t key;    /* object: property whose value is being read */
    uint64_t used;  /* object: properties seen */
} rf_jframe;

/* Where an acceptor is in a document. Plain data: copy it to try bytes. */
typedef struct rf_jstate {
    int32_t depth;
    rf_jframe f[RF_JG_MAX_DEPTH];
} rf_jstate;

void rf_jstate_init(const rf_jgram *g, rf_jstate *s);
/* Feeds bytes; false (state then undefined) when they cannot continue a
 * valid document. */
bool rf_jstate_feed(const rf_jgram *g, rf_jstate *s, const char *bytes, size_t n);
/* True when the document may end here. */
bool rf_jstate_accepting(const rf_jgram *g, const rf_jstate *s);
/* True when nothing but the end may follow (the top-level value closed). */
bool rf_jstate_closed(const rf_jgram *g, const rf_jstate *s);

/* ---- jobs ------------------------------------------------------------------ */

typedef enum rf_sfinish {
    RF_SF_NONE = 0,
    RF_SF_STOP,     /* end-of-generation token, stop string, or grammar complete */
    RF_SF_LENGTH,   /* max_tokens, the context, or the request timeout while running */
    RF_SF_CANCEL,   /* the consumer cancelled (client gone) */
    RF_SF_TIMEOUT,  /* the request timeout expired while still queued */
    RF_SF_SHUTDOWN, /* the server is stopping and the job never ran */
    RF_SF_ERROR,    /* an engine error; message in rf_sjob_out.error */
    RF_SF_COUNT
} rf_sfinish;

/* One generated token, for logprobs. */
typedef struct rf_stoken {
    int32_t id;
    float logprob;
    int32_t n_top;
    int32_t top_ids[RF_MAX_TOP_LOGPROBS];
    float top_logprobs[RF_MAX_TOP_LOGPROBS];
} rf_stoken;

/* What a job has produced so far; read it only between rf_sjob_lock and
 * rf_sjob_unlock. Text and tokens only grow; the consumer keeps its own
 * cursors. */
typedef struct rf_sjob_out {
    const char *text;      /* safe text (never part of a stop string), valid UTF-8 */
    size_t text_len;
    const rf_stoken *toks; /* when logprobs were asked */
    int64_t n_toks;
    int64_t n_prompt, n_cached, n_gen; /* usage: prompt tokens, of which reused from the prefix cache; generated */
    bool done;
    rf_sfinish finish;
    const char *error;     /* RF_SF_ERROR: message */
    double t_submit, t_start, t_first, t_end; /* rf_time_now(); 0 when not reached */
    const float *embedding; /* embedding jobs, when done: [n_embd], L2-normalised */
    int64_t n_embd;
} rf_sjob_out;

/* Called on the scheduler thread when a job has new output or is done. */
typedef void (*rf_sjob_notify_fn)(void *ud);

typedef struct rf_sjob_params {
    const int32_t *prompt;    /* copied */
    int64_t n_prompt;
    rf_sample_params sample;  /* bias array copied */
    int32_t max_tokens;       /* < 0: until the context is full */
    const char *const *stops; /* copied */
    int n_stops;
    bool logprobs;            /* record rf_stoken per generated token */
    rf_jgram *grammar;        /* optional; the job takes a reference */
    bool embedding;           /* pool hidden states instead of generating */
    double timeout_s;         /* <= 0: none */
    rf_sjob_notify_fn notify; /* optional */
    void *notify_ud;
    void (*ud_release)(void *ud); /* optional: called once when the job is freed */
} rf_sjob_params;

typedef struct rf_sjob rf_sjob;
typedef struct rf_sched rf_sched;

/* Creates a job (one reference, held by the caller). Allocates everything
 * the job will need while it runs (sampler, token buffer for the whole
 * context), so the scheduler thread does not allocate per token. Errors:
 * RF_E_RANGE when the prompt does not fit the context, RF_E_INVAL for bad
 * sampling parameters or an empty prompt. */
rf_status rf_sjob_create(rf_sched *s, const rf_sjob_params *p, rf_sjob **out, rf_error *err);
void rf_sjob_release(rf_sjob *j); /* accepts NULL */
/* Asks the scheduler to stop the job; it frees the job's sequence within one
 * step and finishes it with RF_SF_CANCEL. Any thread, any number of times. */
void rf_sjob_cancel(rf_sjob *j);
void rf_sjob_lock(rf_sjob *j);
void rf_sjob_unlock(rf_sjob *j);
const rf_sjob_out *rf_sjob_output(const rf_sjob *j); /* under the lock */

/* ---- the scheduler --------------------------------------------------------- */

typedef enum rf_sched_obs {
    RF_OBS_TTFT = 0,  /* seconds from submission to the first generated token */
    RF_OBS_ITL,       /* seconds between two tokens of one sequence */
    RF_OBS_STEP,      /* seconds one forward pass took */
    RF_OBS_COUNT
} rf_sched_obs;

typedef struct rf_sched_opts {
    int64_t n_batch;        /* the context's n_batch (entries per rf_forward) */
    int64_t n_ctx;          /* the context's positions per sequence */
    int64_t prefill_chunk;  /* prompt tokens per step, all sequences together (0: 256) */
    int max_queue;          /* jobs waiting for a slot before submit refuses (0: 64) */
    /* optional latency observer (metrics), called on the scheduler thread */
    void (*observe)(void *ud, rf_sched_obs what, double seconds);
    void *observe_ud;
    /* optional log sink for the scheduler's own messages (else rf_log) */
    void (*log)(void *ud, rf_log_level lvl, const char *msg);
    void *log_ud;
} rf_sched_opts;

typedef struct rf_sched_stats {
    int64_t queued, running, slots;
    int64_t kv_blocks_total, kv_blocks_used, kv_blocks_cached;
    uint64_t prefix_hit_tokens, prefix_lookups;
    uint64_t prompt_tokens, gen_tokens, preemptions, steps;
} rf_sched_stats;

/* Creates the scheduler and starts its thread. ctx and tok are borrowed
 * and must outlive the scheduler; from now on only the scheduler thread
 * may use ctx (and the backend behind it). */
rf_status rf_sched_create(rf_ctx *ctx, const rf_tokenizer *tok, const rf_sched_opts *o, rf_sched **out,
                          rf_error *err);
/* Stops the thread (finishing every job still in it with RF_SF_SHUTDOWN or
 * RF_SF_LENGTH) and frees the scheduler. Accepts NULL. */
void rf_sched_free(rf_sched *s);

typedef enum rf_submit {
    RF_SUBMIT_OK = 0,
    RF_SUBMIT_QUEUE_FULL,   /* max_queue jobs already wait */
    RF_SUBMIT_STOPPING,     /* rf_sched_drain was called */
} rf_submit;

/* Queues a job; on RF_SUBMIT_OK the scheduler takes its own reference. */
rf_submit rf_sched_submit(rf_sched *s, rf_sjob *j);
/* Refuses new jobs from now on, lets running and queued ones work for up
 * to grace_s seconds, then ends the rest (running: RF_SF_LENGTH with what
 * they produced; queued: RF_SF_SHUTDOWN). Returns when no job is left. */
void rf_sched_drain(rf_sched *s, double grace_s);
rf_sched_stats rf_sched_get_stats(rf_sched *s);
int64_t rf_sched_n_ctx(const rf_sched *s);
int64_t rf_sched_n_vocab(const rf_sched *s);

#endif /* RF_SCHED_H */
