/*
 * sample.c - the sampling chain and the stop-string matcher.
 */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rf_sampler {
    rf_sample_params p;
    rf_logit_bias *bias;
    int64_t n_vocab;
    uint64_t rng[4];
    int32_t *hist;      /* ring of recent tokens */
    int64_t hist_cap, hist_len, hist_head;
    int32_t *counts;    /* per-token occurrences in the window */
    int32_t *idx;       /* candidate ids */
    float *prob;        /* candidate probabilities */
    int32_t *tmp;       /* sort / selection scratch */
    bool *used;
};

rf_sample_params rf_sample_params_default(void) {
    return (rf_sample_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .typical_p = 1.0f,
                              .repeat_penalty = 1.0f, .penalty_last_n = 64, .seed = 0};
}

/* ---- xoshiro256** ------------------------------------------------------ */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void rng_seed(uint64_t *s, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        s[i] = z ^ (z >> 31);
    }
}

/* ---- lifetime ---------------------------------------------------------- */

rf_status rf_sampler_create(const rf_sample_params *p, int64_t n_vocab, rf_sampler **out, rf_error *err) {
    *out = NULL;
    if (n_vocab <= 0) return rf_error_set(err, RF_E_INVAL, "sampler: empty vocabulary");
    if (p->n_top_logprobs < 0 || p->n_top_logprobs > RF_MAX_TOP_LOGPROBS)
        return rf_error_set(err, RF_E_INVAL, "sampler: top logprobs must be in 0..%d", RF_MAX_TOP_LOGPROBS);
    if (!(p->top_p > 0) || !(p->repeat_penalty > 0) || isnan(p->temperature) || isnan(p->min_p) || !(p->typical_p > 0))
        return rf_error_set(err, RF_E_INVAL, "sampler: invalid parameters");
    rf_sampler *s = rf_calloc(1, sizeof *s);
    if (!s) return rf_error_set(err, RF_E_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->hist_cap = p->penalty_last_n < 0 ? 4096 : p->penalty_last_n > 0 ? p->penalty_last_n : 1;
    s->hist = rf_malloc((size_t)s->hist_cap * sizeof(int32_t));
    s->counts = rf_calloc((size_t)n_vocab, sizeof(int32_t));
    s->idx = rf_malloc((size_t)n_vocab * sizeof(int32_t));
    s->prob = rf_malloc((size_t)n_vocab * sizeof(float));
    s->tmp = rf_malloc((size_t)n_vocab * sizeof(int32_t));
    s->used = rf_malloc((size_t)n_vocab * sizeof(bool));
    if (p->n_bias > 0) {
        s->bias = rf_malloc((size_t)p->n_bias * sizeof *s->bias);
        if (s->bias) memcpy(s->bias, p->bias, (size_t)p->n_bias * sizeof *s->bias);
    }
    s->p.bias = s->bias;
    if (!s->hist || !s->counts || !s->idx || !s->prob || !s->tmp || !s->used || (p->n_bias > 0 && !s->bias)) {
        rf_sampler_free(s);
        return rf_error_set(err, RF_E_NOMEM, "sampler: out of memory");
    }
    for (int32_t i = 0; i < s->p.n_bias; i++)
        if (s->bias[i].token < 0 || s->bias[i].token >= n_vocab) {
            rf_sampler_free(s);
            return rf_error_set(err, RF_E_RANGE, "sampler: logit bias token %d outside the vocabulary", p->bias[i].token);
        }
    rng_seed(s->rng, p->seed);
    *out = s;
    return RF_OK;
}

void rf_sampler_free(rf_sampler *s) {
    if (!s) return;
    rf_free(s->hist);
    rf_free(s->counts);
    rf_free(s->idx);
    rf_free(s->prob);
    rf_free(s->tmp);
    rf_free(s->used);
    rf_free(s->bias);
    rf_free(s);
}

void rf_sampler_reset(rf_sampler *s) {
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof(int32_t));
    s->hist_len = s->hist_head = 0;
    rng_seed(s->rng, s->p.seed);
}

void rf_sampler_accept(rf_sampler *s, int32_t token) {
    if (s->p.penalty_last_n == 0 || token < 0 || token >= s->n_vocab) return;
    if (s->hist_len == s->hist_cap) {
        int32_t old = s->hist[s->hist_head];
        s->counts[old]--;
        s->hist_len--;
        s->hist_head = (s->hist_head + 1) % s->hist_cap;
    }
    s->hist[(s->hist_head + s->hist_len) % s->hist_cap] = token;
    s->hist_len++;
    s->counts[token]++;
}

/* ---- the chain --------------------------------------------------------- */

static int cmp_prob_desc(const void *a, const void *b, void *ctx) {
    const float *p = ctx;
    float x = p[*(const int32_t *)a], y = p[*(const int32_t *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b; /* stable: lower id first */
}

/* Merge sort of candidate ids by descending key (stable, no allocation:
 * tmp holds n ids). qsort has no context argument in C17. */
static void sort_desc(int32_t *ids, int64_t n, const float *key, int32_t *tmp) {
    if (n < 2) return;
    int64_t h = n / 2;
    sort_desc(ids, h, key, tmp);
    sort_desc(ids + h, n - h, key, tmp);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp_prob_desc(&ids[i], &ids[j], (void *)key) <= 0 ? ids[i++] : ids[j++];
    while (i < h) tmp[k++] = ids[i++];
    while (j < n) tmp[k++] = ids[j++];
    memcpy(ids, tmp, (size_t)n * sizeof *ids);
}

int32_t rf_sample(rf_sampler *s, float *logits, rf_sample_result *res) {
    const rf_sample_params *p = &s->p;
    int64_t V = s->n_vocab;
    for (int32_t i = 0; i < p->n_bias; i++) logits[s->bias[i].token] += s->bias[i].bias;
    if (p->penalty_last_n != 0) {
        for (int64_t k = 0; k < s->hist_len; k++) {
            int32_t t = s->hist[(s->hist_head + k) % s->hist_cap];
            int32_t c = s->counts[t];
            if (c <= 0) continue;
            /* apply once per distinct token: mark by negating the count */
            float *l = &logits[t];
            if (p->repeat_penalty != 1.0f) *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
            *l -= p->presence_penalty + p->frequency_penalty * (float)c;
            s->counts[t] = -c;
        }
        for (int64_t k = 0; k < s->hist_len; k++) {
            int32_t t = s->hist[(s->hist_head + k) % s->hist_cap];
            if (s->counts[t] < 0) s->counts[t] = -s->counts[t];
        }
    }
    /* log-softmax of the adjusted logits, for logprobs */
    float mx = -INFINITY;
    int32_t arg = 0;
    for (int64_t i = 0; i < V; i++)
        if (logits[i] > mx) { mx = logits[i]; arg = (int32_t)i; }
    double z = 0;
    for (int64_t i = 0; i < V; i++) z += exp((double)logits[i] - mx);
    float lse = mx + (float)log(z);

    int32_t tok = arg;
    if (p->temperature > 0 && isfinite(mx)) {
        /* candidates: probabilities at temperature T */
        int64_t n = 0;
        double sum = 0;
        for (int64_t i = 0; i < V; i++) {
            if (logits[i] == -INFINITY) continue;
            s->prob[i] = (float)exp(((double)logits[i] - mx) / p->temperature);
            s->idx[n++] = (int32_t)i;
            sum += s->prob[i];
        }
        sort_desc(s->idx, n, s->prob, s->tmp);
        for (int64_t i = 0; i < n; i++) s->prob[s->idx[i]] = (float)(s->prob[s->idx[i]] / sum);
        if (p->top_k > 0 && p->top_k < n) n = p->top_k;
        if (p->typical_p < 1.0f && n > 1) {
            /* keep tokens whose surprise is closest to the entropy, up to mass typical_p */
            double norm = 0, ent = 0;
            for (int64_t i = 0; i < n; i++) norm += s->prob[s->idx[i]];
            for (int64_t i = 0; i < n; i++) {
                double q = s->prob[s->idx[i]] / norm;
                if (q > 0) ent -= q * log(q);
            }
            /* selection by |(-log q) - ent| ascending: simple O(n^2) on the (small) top-k set */
            int64_t kept = 0;
            double mass = 0;
            bool *used = s->used;
            int32_t *order = s->tmp;
            memset(used, 0, (size_t)n * sizeof(bool));
            {
                while (kept < n && (mass < p->typical_p || kept == 0)) {
                    int64_t best = -1;
                    double bd = INFINITY;
                    for (int64_t i = 0; i < n; i++) {
                        if (used[i]) continue;
                        double q = s->prob[s->idx[i]] / norm;
                        double d = fabs(-log(q) - ent);
                        if (d < bd) { bd = d; best = i; }
                    }
                    used[best] = true;
                    order[kept++] = s->idx[best];
                    mass += s->prob[s->idx[best]] / norm;
                }
                memcpy(s->idx, order, (size_t)kept * sizeof(int32_t));
                n = kept;
            }
        }
        if (p->top_p < 1.0f) {
            double cum = 0, tot = 0;
            for (int64_t i = 0; i < n; i++) tot += s->prob[s->idx[i]];
            for (int64_t i = 0; i < n; i++) {
                cum += s->prob[s->idx[i]] / tot;
                if (cum >= p->top_p) { n = i + 1; break; }
            }
        }
        if (p->min_p > 0 && n > 1) {
            float thr = p->min_p * s->prob[s->idx[0]];
            int64_t k = 1;
            while (k < n && s->prob[s->idx[k]] >= thr) k++;
            n = k;
        }
        double tot = 0;
        for (int64_t i = 0; i < n; i++) tot += s->prob[s->idx[i]];
        double u = (double)(rng_next(s->rng) >> 11) * 0x1p-53 * tot, acc = 0;
        tok = s->idx[n - 1];
        for (int64_t i = 0; i < n; i++) {
            acc += s->prob[s->idx[i]];
            if (u < acc) { tok = s->idx[i]; break; }
        }
    }
    if (res) {
        res->token = tok;
        res->logprob = logits[tok] - lse;
        res->n_top = p->n_top_logprobs;
        /* top-n by logit: partial selection */
        for (int32_t j = 0; j < res->n_top; j++) {
            int32_t best = -1;
            for (int64_t i = 0; i < V; i++) {
                bool taken = false;
                for (int32_t q = 0; q < j; q++) taken |= res->top_ids[q] == i;
                if (!taken && (best < 0 || logits[i] > logits[best])) best = (int32_t)i;
            }
            res->top_ids[j] = best;
            res->top_logprobs[j] = logits[best] - lse;
        }
    }
    return tok;
}

/* ---- stop strings ------------------------------------------------------ */

rf_status rf_stop_init(rf_stop *st, const char *const *stops, int n) {
    memset(st, 0, sizeof *st);
    if (n <= 0) return RF_OK;
    st->stops = rf_calloc((size_t)n, sizeof(char *));
    if (!st->stops) return RF_E_NOMEM;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(stops[i]);
        if (l == 0) continue;
        st->stops[st->n] = rf_strndup(stops[i], l);
        if (!st->stops[st->n]) { rf_stop_free(st); return RF_E_NOMEM; }
        st->n++;
        if (l > st->max_stop) st->max_stop = l;
    }
    return RF_OK;
}

void rf_stop_free(rf_stop *st) {
    for (int i = 0; i < st->n; i++) rf_free(st->stops[i]);
    rf_free(st->stops);
    rf_free(st->buf);
    memset(st, 0, sizeof *st);
}

size_t rf_stop_push(rf_stop *st, const char *text, size_t len, bool *hit) {
    *hit = false;
    if (st->len + len + 1 > st->cap) {
        size_t cap = (st->len + len + 1) * 2;
        char *nb = rf_realloc(st->buf, cap);
        if (!nb) return st->len; /* cannot hold back: emit what we have */
        st->buf = nb;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, text, len);
    st->len += len;
    st->buf[st->len] = '\0';
    if (st->n == 0) return st->len;
    /* earliest complete stop string */
    size_t first = SIZE_MAX;
    for (int i = 0; i < st->n; i++) {
        const char *f = strstr(st->buf, st->stops[i]);
        if (f && (size_t)(f - st->buf) < first) first = (size_t)(f - st->buf);
    }
    if (first != SIZE_MAX) {
        *hit = true;
        return first;
    }
    /* hold back the longest suffix that is a prefix of some stop string */
    size_t hold = 0;
    for (int i = 0; i < st->n; i++) {
        size_t sl = strlen(st->stops[i]);
        for (size_t k = sl - 1 < st->len ? sl - 1 : st->len; k > hold; k--)
            if (memcmp(st->buf + st->len - k, st->stops[i], k) == 0) { hold = k; break; }
    }
    return st->len - hold;
}

const char *rf_stop_text(const rf_stop *st) { return st->buf ? st->buf : ""; }

void rf_stop_consume(rf_stop *st, size_t n) {
    if (n > st->len) n = st->len;
    memmove(st->buf, st->buf + n, st->len - n);
    st->len -= n;
    if (st->buf) st->buf[st->len] = '\0';
}
