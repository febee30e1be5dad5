/*
 * moe_route.h - one token's mixture-of-experts routing: the gating of its
 * router scores, the top k experts by value (the lower id on ties) and
 * their weights, renormalised where the model says. The CPU forward pass
 * (forward.c) routes with it, and the GPU op suite takes it as the
 * reference for the device's routing kernel.
 */
#ifndef RF_MODEL_MOE_ROUTE_H
#define RF_MODEL_MOE_ROUTE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* r [ne]: the router scores, replaced by the gated ones (gating 2:
 * sigmoid, else softmax); sel [k], w [k]: the chosen experts and their
 * weights. */
static inline void rf_moe_route_row(float *r, int64_t ne, int64_t k, int gating, bool norm, int32_t *sel, float *w) {
    if (gating == 2) {
        for (int64_t e = 0; e < ne; e++) r[e] = 1.0f / (1.0f + expf(-r[e]));
    } else {
        float mx = -INFINITY;
        double sum = 0;
        for (int64_t e = 0; e < ne; e++) mx = r[e] > mx ? r[e] : mx;
        for (int64_t e = 0; e < ne; e++) sum += (r[e] = expf(r[e] - mx));
        for (int64_t e = 0; e < ne; e++) r[e] = (float)(r[e] / sum);
    }
    double wsum = 0;
    for (int64_t j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t e = 0; e < ne; e++) {
            bool taken = false;
            for (int64_t i = 0; i < j; i++) taken |= sel[i] == e;
            if (!taken && (best < 0 || r[e] > r[best])) best = e;
        }
        sel[j] = (int32_t)best;
        w[j] = r[best];
        wsum += w[j];
    }
    if (norm && wsum > 0)
        for (int64_t j = 0; j < k; j++) w[j] = (float)(w[j] / wsum);
}

#endif /* RF_MODEL_MOE_ROUTE_H */
