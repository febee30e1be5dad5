/*
 * test_sample.c - the sampling chain against direct computations: greedy,
 * seeded reproducibility, the empirical distribution at temperature 1 vs
 * softmax, top-k/top-p/min-p support sets, bias bans, penalties, logprobs,
 * and stop strings split across pieces.
 */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "sample/sample.h"

#define V 50

static void rand_logits(float *l) {
    for (int i = 0; i < V; i++) l[i] = 2.0f * rf_test_randn();
}

static rf_sample_params plain(float temp) {
    rf_sample_params p = {.temperature = temp, .top_p = 1.0f, .typical_p = 1.0f, .repeat_penalty = 1.0f,
                          .seed = rf_test_rand()};
    return p;
}

static void test_greedy_and_logprobs(void) {
    float l[V], c[V];
    rand_logits(l);
    rf_sample_params p = plain(0);
    p.n_top_logprobs = 5;
    rf_sampler *s;
    CHECK(rf_sampler_create(&p, V, &s, NULL) == RF_OK);
    memcpy(c, l, sizeof l);
    rf_sample_result r;
    int32_t t = rf_sample(s, c, &r);
    int best = 0;
    double z = 0;
    for (int i = 0; i < V; i++) if (l[i] > l[best]) best = i;
    for (int i = 0; i < V; i++) z += exp((double)l[i] - l[best]);
    CHECK(t == best);
    CHECK(fabs(r.logprob - (-log(z))) < 1e-5);
    CHECK(r.top_ids[0] == best);
    for (int j = 1; j < 5; j++) CHECK(l[r.top_ids[j]] <= l[r.top_ids[j - 1]]);
    rf_sampler_free(s);
}

static void test_distribution_matches_softmax(void) {
    float l[V], c[V];
    rand_logits(l);
    rf_sample_params p = plain(1.0f);
    rf_sampler *s;
    CHECK(rf_sampler_create(&p, V, &s, NULL) == RF_OK);
    enum { N = 40000 };
    int counts[V] = {0};
    for (int n = 0; n < N; n++) {
        memcpy(c, l, sizeof l);
        counts[rf_sample(s, c, NULL)]++;
    }
    double mx = l[0], z = 0;
    for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < V; i++) z += exp(l[i] - mx);
    for (int i = 0; i < V; i++) {
        double pr = exp(l[i] - mx) / z, sd = sqrt(N * pr * (1 - pr)) + 1;
        CHECK_MSG(fabs(counts[i] - N * pr) < 5 * sd, "token %d: %d vs expected %.1f", i, counts[i], N * pr);
    }
    rf_sampler_free(s);
}

static void test_seed_reproducible(void) {
    float l[V], c[V];
    rand_logits(l);
    rf_sample_params p = plain(0.9f);
    rf_sampler *a, *b;
    CHECK(rf_sampler_create(&p, V, &a, NULL) == RF_OK);
    CHECK(rf_sampler_create(&p, V, &b, NULL) == RF_OK);
    for (int n = 0; n < 200; n++) {
        memcpy(c, l, sizeof l);
        int32_t x = rf_sample(a, c, NULL);
        memcpy(c, l, sizeof l);
        CHECK(x == rf_sample(b, c, NULL));
    }
    rf_sampler_free(a);
    rf_sampler_free(b);
}

static void test_truncation_sets(void) {
    float l[V], c[V];
    rand_logits(l);
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (l[order[j]] > l[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    /* top-k = 3: only the 3 best ever come out */
    rf_sample_params p = plain(1.5f);
    p.top_k = 3;
    rf_sampler *s;
    CHECK(rf_sampler_create(&p, V, &s, NULL) == RF_OK);
    for (int n = 0; n < 500; n++) {
        memcpy(c, l, sizeof l);
        int32_t t = rf_sample(s, c, NULL);
        CHECK(t == order[0] || t == order[1] || t == order[2]);
    }
    rf_sampler_free(s);
    /* top-p: the nucleus is the smallest prefix of mass >= p */
    p = plain(1.0f);
    p.top_p = 0.5f;
    double mx = l[order[0]], z = 0, cum = 0;
    for (int i = 0; i < V; i++) z += exp(l[i] - mx);
    int nucleus = 0;
    while (cum < 0.5) cum += exp(l[order[nucleus++]] - mx) / z;
    CHECK(rf_sampler_create(&p, V, &s, NULL) == RF_OK);
    for (int n = 0; n < 500; n++) {
        memcpy(c, l, sizeof l);
        int32_t t = rf_sample(s, c, NULL);
        bool in = false;
        for (int i = 0; i < nucleus; i++) in |= t == order[i];
        CHECK(in);
    }
    rf_sampler_free(s);
    /* min-p: tokens below min_p * p_max never come out */
    p = plain(1.0f);
    p.min_p = 0.2f;
    CHECK(rf_sampler_create(&p, V, &s, NULL) == RF_OK);
    for (int n = 0; n < 500; n++) {
        memcpy(c, l, sizeof l);
        int32_t t = rf_sample(s, c, NULL);
        CHECK(exp(l[t] - mx) >= 0.2 * 1.0 - 1e-6);
    }
    rf_sampler_free(s);
}

static void test_bias_and_penalties(void) {
    float l[V], c[V];
    rand_logits(l);
    int best = 0;
    for (int i = 0; i < V; i++) if (l[i] > l[best]) best = i;
    rf_logit_bias ban = {best, -INFINITY};
    rf_sample_params p = plain(0);
    p.bias = &ban;
    p.n_bias = 1;
    rf_sampler *s;
    CHECK(rf_sampler_create(&p, V, &s, NULL) == RF_OK);
    memcpy(c, l, sizeof l);
    CHECK(rf_sample(s, c, NULL) != best);
    rf_sampler_free(s);
    /* a frequency penalty larger than any gap moves greedy off a repeated token */
    p = plain(0);
    p.frequency_penalty = 100.0f;
    p.penalty_last_n = 8;
    CHECK(rf_sampler_create(&p, V, &s, NULL) == RF_OK);
    rf_sampler_accept(s, best);
    memcpy(c, l, sizeof l);
    CHECK(rf_sample(s, c, NULL) != best);
    /* outside the window the penalty no longer applies */
    for (int i = 0; i < 8; i++) rf_sampler_accept(s, (best + 1 + i % 3) % V == best ? 0 : (best + 1 + i % 3) % V);
    memcpy(c, l, sizeof l);
    CHECK(rf_sample(s, c, NULL) == best);
    rf_sampler_free(s);
    rf_error e;
    p = plain(0);
    rf_logit_bias bad = {V + 5, 1.0f};
    p.bias = &bad;
    p.n_bias = 1;
    CHECK(rf_sampler_create(&p, V, &s, &e) == RF_E_RANGE);
}

static void test_stop_strings(void) {
    const char *stops[] = {"</end>", "STOP"};
    rf_stop st;
    CHECK(rf_stop_init(&st, stops, 2) == RF_OK);
    const char *pieces[] = {"Hello wor", "ld </e", "nd> tail"};
    char out[128] = "";
    bool hit = false;
    for (int i = 0; i < 3 && !hit; i++) {
        size_t n = rf_stop_push(&st, pieces[i], strlen(pieces[i]), &hit);
        strncat(out, rf_stop_text(&st), n);
        rf_stop_consume(&st, n);
        if (i == 1) CHECK(strcmp(out, "Hello world ") == 0); /* "</e" held back */
    }
    CHECK(hit);
    CHECK(strcmp(out, "Hello world ") == 0);
    rf_stop_free(&st);
}

int main(void) {
    RF_RUN(test_greedy_and_logprobs);
    RF_RUN(test_distribution_matches_softmax);
    RF_RUN(test_seed_reproducible);
    RF_RUN(test_truncation_sets);
    RF_RUN(test_bias_and_penalties);
    RF_RUN(test_stop_strings);
    return rf_test_summary();
}
