/*
 * quantize.c - scalar reference quantizers: the plain float types, the
 * legacy 32-element block types (Q4_0 .. Q8_1), the ternary types (TQ1_0,
 * TQ2_0), MXFP4, the K-quants (Q2_K .. Q8_K) and the non-linear 4-bit types
 * (IQ4_NL, IQ4_XS).
 *
 * Where the gguf Python package has a quantizer (F16, BF16, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, TQ1_0, TQ2_0, MXFP4) ours produces the same bytes: the
 * scale is computed in the same float32 steps, values are rounded the same
 * way (truncation of x*id + offset for Q4/Q5, half away from zero for Q8 and
 * the ternary types) and scales are stored as halves rounded to nearest
 * even. The tests check this byte for byte. The one known divergence is
 * MXFP4 on blocks whose largest magnitude is below 2^-125, where numpy's
 * exponent wraps around in uint8 and ours is clamped to 0.
 *
 * gguf has no quantizer for the K-quants and IQ4 types, so there the aim is
 * a small error, not particular bytes. They all work in three steps:
 *   1. fit each sub-block on its own: a scale (and for the affine types a
 *      min) chosen by trying a spread of candidate scales, assigning codes,
 *      solving the least-squares scale (and min) for those codes, and
 *      re-assigning a few times; the lowest squared error wins;
 *   2. quantize the sub-block scales/mins to their 4/6/8-bit fields against
 *      a super-block scale stored as a half (or f32 for Q8_K);
 *   3. for each sub-block, try the quantized scale/min and its neighbours,
 *      re-assign the codes with exactly the scale a reader will compute, and
 *      keep the combination with the lowest error.
 * Error is plain (unweighted) squared error. Inputs must be finite; scales
 * beyond the half range (|x| around 1e6 for Q2_K) are not handled.
 *
 * Error budgets (RMSE / RMS of N(0,1) data), measured and set, are listed
 * in types.c.
 */
#include "iq-tables.h"
#include "quant-impl.h"

#include <math.h>

#define QK RF_QK_K

/* v truncated toward zero and clamped to [lo, hi]. The clamp comes first so
 * the conversion is defined for any float (inf, NaN go to an end). */
static int trunc_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* Rounded half away from zero, like C roundf and gguf's np_roundf, clamped. */
static int round_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)roundf(v);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* 1/d, or 0 for d == 0 (an all-zero block then quantizes to zeros). */
static float inv_or_zero(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

/* The element with the largest magnitude, sign kept; first one on ties. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, m = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            m = x[j];
        }
    }
    return m;
}

static float absmax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    *mn = *mx = x[0];
    for (int j = 1; j < n; j++) {
        *mn = fminf(*mn, x[j]);
        *mx = fmaxf(*mx, x[j]);
    }
}

/* Packs 32 4-bit codes: low nibbles take q[0..15], high nibbles q[16..31]. */
static void pack_nibbles32(const uint8_t q[32], uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 0x0F) | (q[j + 16] << 4));
}

/* Bit 4 of each of 32 codes, element j at bit j. */
static uint32_t high_bits32(const uint8_t q[32]) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    return qh;
}

/* ---- plain floats -------------------------------------------------------- */

void rf_qnt_f32(const float *restrict x, void *restrict y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void rf_qnt_f16(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *p = y;
    for (int64_t i = 0; i < n; i++) rf_wr_u16(p + 2 * i, rf_fp32_to_fp16(x[i]));
}

void rf_qnt_bf16(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *p = y;
    for (int64_t i = 0; i < n; i++) rf_wr_u16(p + 2 * i, rf_fp32_to_bf16(x[i]));
}

/* ---- legacy 32-element blocks -------------------------------------------- */

/* Symmetric 4/5-bit: d = -(signed absmax) / 2^(bits-1), so the largest
 * magnitude lands exactly on code 0 (the end of the range with one more
 * step); q = trunc(x / d + 2^(bits-1) + 0.5). */
static void quantize_sym_block(const float *x, float *d, uint8_t q[32], int half, int qmax) {
    const float m = signed_absmax(x, 32);
    *d = m / (float)-half;
    const float id = inv_or_zero(*d);
    const float off = (float)half + 0.5f;
    for (int j = 0; j < 32; j++) q[j] = (uint8_t)trunc_clamp(x[j] * id + off, 0, qmax);
}

/* Affine 4/5-bit: d = (max - min) / qmax, q = trunc((x - min) / d + 0.5). */
static void quantize_affine_block(const float *x, float *d, float *mn, uint8_t q[32], int qmax) {
    float mx;
    minmax(x, 32, mn, &mx);
    *d = (mx - *mn) / (float)qmax;
    const float id = inv_or_zero(*d);
    for (int j = 0; j < 32; j++) q[j] = (uint8_t)trunc_clamp((x[j] - *mn) * id + 0.5f, 0, qmax);
}

void rf_qnt_q4_0(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 18, x += 32) {
        float d;
        uint8_t q[32];
        quantize_sym_block(x, &d, q, 8, 15);
        rf_wr_f16(b, d);
        pack_nibbles32(q, b + 2);
    }
}

void rf_qnt_q4_1(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 20, x += 32) {
        float d, mn;
        uint8_t q[32];
        quantize_affine_block(x, &d, &mn, q, 15);
        rf_wr_f16(b, d);
        rf_wr_f16(b + 2, mn);
        pack_nibbles32(q, b + 4);
    }
}

void rf_qnt_q5_0(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 22, x += 32) {
        float d;
        uint8_t q[32];
        quantize_sym_block(x, &d, q, 16, 31);
        rf_wr_f16(b, d);
        rf_wr_u32(b + 2, high_bits32(q));
        pack_nibbles32(q, b + 6);
    }
}

void rf_qnt_q5_1(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 24, x += 32) {
        float d, mn;
        uint8_t q[32];
        quantize_affine_block(x, &d, &mn, q, 31);
        rf_wr_f16(b, d);
        rf_wr_f16(b + 2, mn);
        rf_wr_u32(b + 4, high_bits32(q));
        pack_nibbles32(q, b + 8);
    }
}

/* Q8: d = absmax / 127, q = round(x / d). Returns d; writes q. */
static float quantize_q8_block(const float *x, int8_t q[32]) {
    const float d = absmax(x, 32) / 127.0f;
    const float id = inv_or_zero(d);
    for (int j = 0; j < 32; j++) q[j] = (int8_t)round_clamp(x[j] * id, -127, 127);
    return d;
}

void rf_qnt_q8_0(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 34, x += 32) {
        int8_t q[32];
        rf_wr_f16(b, quantize_q8_block(x, q));
        memcpy(b + 2, q, 32);
    }
}

/* Q8_1 adds s = d * sum(q), with d the unrounded float scale (as ggml). */
void rf_qnt_q8_1(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 36, x += 32) {
        int8_t q[32];
        const float d = quantize_q8_block(x, q);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += q[j];
        rf_wr_f16(b, d);
        rf_wr_f16(b + 2, d * (float)sum);
        memcpy(b + 4, q, 32);
    }
}

/* ---- ternary --------------------------------------------------------------- */

/* Both ternary types: d = absmax of the 256 values, t = round(x / d) + 1
 * in {0, 1, 2}. Returns d. */
static float ternary_block(const float *x, uint8_t t[QK]) {
    const float d = absmax(x, QK);
    const float id = inv_or_zero(d);
    for (int j = 0; j < QK; j++) t[j] = (uint8_t)(round_clamp(x[j] * id, -1, 1) + 1);
    return d;
}

/* TQ2_0: 2-bit codes, element 128h + 32s + l at bits 2s of qs[32h + l]. */
void rf_qnt_tq2_0(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 66, x += QK) {
        uint8_t t[QK];
        const float d = ternary_block(x, t);
        memset(b, 0, 64);
        for (int e = 0; e < QK; e++) b[32 * (e / 128) + e % 32] |= (uint8_t)(t[e] << (2 * ((e / 32) % 4)));
        rf_wr_f16(b + 64, d);
    }
}

/* Packs up to 5 trits, first most significant, into the byte that
 * rf_deq_tq1_0 reads: ceil(v * 256 / 243), the base-3 number as a fraction
 * of 3^5 in fixed point. A 4-trit byte leaves the fifth trit zero. */
static uint8_t tq1_pack(const uint8_t *t, int stride, int count) {
    unsigned v = 0;
    for (int p = 0; p < 5; p++) v = v * 3 + (p < count ? t[p * stride] : 0);
    return (uint8_t)((v * 256 + 242) / 243);
}

void rf_qnt_tq1_0(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 54, x += QK) {
        uint8_t t[QK];
        const float d = ternary_block(x, t);
        for (int l = 0; l < 32; l++) b[l] = tq1_pack(t + l, 32, 5);
        for (int l = 0; l < 16; l++) b[32 + l] = tq1_pack(t + 160 + l, 16, 5);
        for (int l = 0; l < 4; l++) b[48 + l] = tq1_pack(t + 240 + l, 4, 4);
        rf_wr_f16(b + 52, d);
    }
}

/* ---- MXFP4 ------------------------------------------------------------------ */

/* e = floor(log2(absmax)) - 2 + 127, so the largest magnitude falls in
 * [4, 8) times the scale (E2M1 tops out at 6; larger values clip). Each
 * value takes the nearest of the 16 codes, the first on ties (so 0 rather
 * than -0). floor(log2) is read from the exponent, exact for every float;
 * gguf-py's float32 np.log2 agrees on all but values a few ulps below a
 * large power of two. */
void rf_qnt_mxfp4(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 17, x += 32) {
        const float amax = absmax(x, 32);
        int e = 0;
        if (amax > 0.0f) {
            int ex;
            frexpf(amax, &ex); /* amax = f * 2^ex, f in [0.5, 1): floor(log2) = ex - 1 */
            e = ex - 1 - 2 + 127;
            if (e < 0) e = 0;
            if (e > 255) e = 255;
        }
        const float d = rf_e8m0_to_fp32_half((uint8_t)e);
        uint8_t q[32];
        for (int j = 0; j < 32; j++) {
            int best = 0;
            float best_err = INFINITY;
            for (int k = 0; k < 16; k++) {
                const float err = fabsf(d * (float)rf_fp4_kvalues[k] - x[j]);
                if (err < best_err) {
                    best_err = err;
                    best = k;
                }
            }
            q[j] = (uint8_t)best;
        }
        b[0] = (uint8_t)e;
        pack_nibbles32(q, b + 1);
    }
}

/* ---- K-quants and IQ4: fitting (the three steps above) ------------------ */

/* Candidate scales tried in step 1: the nominal one times (1 + k/40) for
 * |k| <= FIT_SPREAD, each refined FIT_ITERS times. */
#define FIT_SPREAD 8
#define FIT_ITERS 3

/* Step 1: per-sub-block fits. */

/* Affine fit x ~ s * q - m with q in [0, qmax], s >= 0 and m >= 0 (the
 * formats store a non-negative min that is subtracted). Returns the squared
 * error of the best fit. */
static float fit_affine(const float *x, int n, int qmax, float *s_out, float *m_out) {
    float lo = 0.0f, hi = x[0];
    for (int j = 0; j < n; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *s_out = 0.0f;
    *m_out = -lo;
    float best = 0.0f;
    for (int j = 0; j < n; j++) best += (x[j] - lo) * (x[j] - lo);
    if (!(hi > lo)) return best;

    for (int k = -FIT_SPREAD; k <= FIT_SPREAD; k++) {
        float s = (hi - lo) / (float)qmax * (1.0f + (float)k / 40.0f), b = lo;
        for (int it = 0; it < FIT_ITERS; it++) {
            /* assign codes for (s, b), then solve least squares for both */
            double sq = 0, sqq = 0, sx = 0, sxq = 0;
            const float is = 1.0f / s;
            for (int j = 0; j < n; j++) {
                const int q = round_clamp((x[j] - b) * is, 0, qmax);
                sq += q;
                sqq += (double)q * q;
                sx += x[j];
                sxq += (double)x[j] * q;
            }
            const double det = n * sqq - sq * sq;
            if (det <= 0) break; /* all codes equal: nothing to fit */
            double ns = (n * sxq - sq * sx) / det, nb = (sqq * sx - sq * sxq) / det;
            if (nb > 0) { /* the min must be <= 0: pin it and refit the scale */
                nb = 0;
                ns = sxq / sqq;
            }
            if (!(ns > 0)) break;
            s = (float)ns;
            b = (float)nb;
            float err = 0.0f;
            const float is2 = 1.0f / s;
            for (int j = 0; j < n; j++) {
                const float r = x[j] - (s * (float)round_clamp((x[j] - b) * is2, 0, qmax) + b);
                err += r * r;
            }
            if (err < best) {
                best = err;
                *s_out = s;
                *m_out = -b;
            }
        }
    }
    return best;
}

/* Scale-only fit x ~ s * q with q in [qlo, qhi] (qlo < 0 < qhi) and s of
 * either sign: the largest magnitude is aimed at either end of the range.
 * Returns the squared error of the best fit. */
static float fit_symmetric(const float *x, int n, int qlo, int qhi, float *s_out) {
    const float xm = signed_absmax(x, n);
    float best = 0.0f;
    for (int j = 0; j < n; j++) best += x[j] * x[j];
    *s_out = 0.0f;
    if (xm == 0.0f) return best;

    for (int end = 0; end < 2; end++) {
        const float target = end == 0 ? (float)qlo : (float)qhi;
        for (int k = -FIT_SPREAD; k <= FIT_SPREAD; k++) {
            float s = xm / target * (1.0f + (float)k / 40.0f);
            for (int it = 0; it < FIT_ITERS; it++) {
                double sxq = 0, sqq = 0;
                const float is = 1.0f / s;
                for (int j = 0; j < n; j++) {
                    const int q = round_clamp(x[j] * is, qlo, qhi);
                    sxq += (double)x[j] * q;
                    sqq += (double)q * q;
                }
                if (sqq == 0 || sxq == 0) break;
                s = (float)(sxq / sqq);
                float err = 0.0f;
                const float is2 = 1.0f / s;
                for (int j = 0; j < n; j++) {
                    const float r = x[j] - s * (float)round_clamp(x[j] * is2, qlo, qhi);
                    err += r * r;
                }
                if (err < best) {
                    best = err;
                    *s_out = s;
                }
            }
        }
    }
    return best;
}

/* Index of the IQ4 level nearest to v (the lower one on ties): the number
 * of midpoints between neighbouring levels that lie strictly below v, found
 * by binary search over the 15 midpoints. */
static int nearest_iq4(float v) {
    int lo = 0, hi = 15; /* answer in [lo, hi] */
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        const float m = 0.5f * (float)(rf_iq4nl_kvalues[mid] + rf_iq4nl_kvalues[mid + 1]);
        if (v > m) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Codes for x ~ d * kvalue (nearest in value), and the squared error. */
static float assign_iq4(const float *x, int n, float d, uint8_t *q) {
    float err = 0.0f;
    for (int j = 0; j < n; j++) {
        int best = 0;
        float best_e = INFINITY;
        for (int k = 0; k < 16; k++) {
            const float r = x[j] - d * (float)rf_iq4nl_kvalues[k];
            if (r * r < best_e) {
                best_e = r * r;
                best = k;
            }
        }
        q[j] = (uint8_t)best;
        err += best_e;
    }
    return err;
}

/* Fit x ~ d * kvalue[q] for one IQ4 block of n values; d of either sign,
 * the largest magnitude aimed at -127 or +113. Returns the squared error. */
static float fit_iq4(const float *x, int n, float *d_out) {
    const float xm = signed_absmax(x, n);
    float best = 0.0f;
    for (int j = 0; j < n; j++) best += x[j] * x[j];
    *d_out = 0.0f;
    if (xm == 0.0f) return best;

    const float ends[2] = {(float)rf_iq4nl_kvalues[0], (float)rf_iq4nl_kvalues[15]};
    for (int end = 0; end < 2; end++) {
        for (int k = -FIT_SPREAD; k <= FIT_SPREAD; k++) {
            float d = xm / ends[end] * (1.0f + (float)k / 40.0f);
            for (int it = 0; it < FIT_ITERS; it++) {
                double sxk = 0, skk = 0;
                const float id = 1.0f / d;
                for (int j = 0; j < n; j++) {
                    const float kv = (float)rf_iq4nl_kvalues[nearest_iq4(x[j] * id)];
                    sxk += (double)x[j] * kv;
                    skk += (double)kv * kv;
                }
                if (sxk == 0) break;
                d = (float)(sxk / skk);
                float err = 0.0f;
                const float id2 = 1.0f / d;
                for (int j = 0; j < n; j++) {
                    const float r = x[j] - d * (float)rf_iq4nl_kvalues[nearest_iq4(x[j] * id2)];
                    err += r * r;
                }
                if (err < best) {
                    best = err;
                    *d_out = d;
                }
            }
        }
    }
    return best;
}

/* Step 3: re-assignment with the stored scales. */

/* Codes for x ~ dl * q - ml, q in [0, qmax], with dl and ml exactly as a
 * reader computes them. Returns the squared error. */
static float assign_affine(const float *x, int n, float dl, float ml, int qmax, uint8_t *q) {
    const float is = dl != 0.0f ? 1.0f / dl : 0.0f;
    float err = 0.0f;
    for (int j = 0; j < n; j++) {
        q[j] = (uint8_t)round_clamp((x[j] + ml) * is, 0, qmax);
        const float r = x[j] - (dl * (float)q[j] - ml);
        err += r * r;
    }
    return err;
}

/* Codes (offset by -qlo, so 0 .. qhi-qlo) for x ~ dl * q; error returned. */
static float assign_symmetric(const float *x, int n, float dl, int qlo, int qhi, uint8_t *q) {
    const float is = dl != 0.0f ? 1.0f / dl : 0.0f;
    float err = 0.0f;
    for (int j = 0; j < n; j++) {
        const int v = round_clamp(x[j] * is, qlo, qhi);
        q[j] = (uint8_t)(v - qlo);
        const float r = x[j] - dl * (float)v;
        err += r * r;
    }
    return err;
}

/* Steps 2-3 for the affine K-quants: n_sub sub-blocks of len values with
 * fitted scales s[] and mins m[]; scale and min fields take 0..smax.
 * Stores the super-block d/dmin halves at dp/dmp, writes the chosen fields
 * to sc[]/mn[] and the codes (0..qmax) to q[]. */
static void finish_affine(const float *x, int n_sub, int len, int qmax, int smax, const float *s,
                          const float *m, uint8_t *dp, uint8_t *dmp, uint8_t *sc, uint8_t *mn, uint8_t *q) {
    float smx = 0.0f, mmx = 0.0f;
    for (int k = 0; k < n_sub; k++) {
        smx = fmaxf(smx, s[k]);
        mmx = fmaxf(mmx, m[k]);
    }
    const float d = rf_wr_f16(dp, smx / (float)smax);
    const float dmin = rf_wr_f16(dmp, mmx / (float)smax);
    const float id = d != 0.0f ? 1.0f / d : 0.0f, idm = dmin != 0.0f ? 1.0f / dmin : 0.0f;
    uint8_t tmp[32];
    for (int k = 0; k < n_sub; k++) {
        const float *xs = x + k * len;
        const int s0 = round_clamp(s[k] * id, 0, smax), m0 = round_clamp(m[k] * idm, 0, smax);
        float best = INFINITY;
        for (int ds = -1; ds <= 1; ds++) {
            for (int dm = -1; dm <= 1; dm++) {
                const int si = clampi(s0 + ds, 0, smax), mi = clampi(m0 + dm, 0, smax);
                const float err = assign_affine(xs, len, d * (float)si, dmin * (float)mi, qmax, tmp);
                if (err < best) {
                    best = err;
                    sc[k] = (uint8_t)si;
                    mn[k] = (uint8_t)mi;
                    memcpy(q + k * len, tmp, (size_t)len);
                }
            }
        }
    }
}

/* Steps 2-3 for the scale-only K-quants: sub-block scales s[] become
 * signed fields in [slo, shi] against the super-block half d stored at dp,
 * the largest |s| mapped to slo. Codes are stored offset (0..qhi-qlo). */
static void finish_symmetric(const float *x, int n_sub, int len, int qlo, int qhi, int slo, int shi,
                             const float *s, uint8_t *dp, int8_t *sc, uint8_t *q) {
    const float sbig = signed_absmax(s, n_sub);
    const float d = rf_wr_f16(dp, sbig / (float)slo);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t tmp[32];
    for (int k = 0; k < n_sub; k++) {
        const float *xs = x + k * len;
        const int s0 = round_clamp(s[k] * id, slo, shi);
        float best = INFINITY;
        for (int ds = -1; ds <= 1; ds++) {
            const int si = clampi(s0 + ds, slo, shi);
            const float err = assign_symmetric(xs, len, d * (float)si, qlo, qhi, tmp);
            if (err < best) {
                best = err;
                sc[k] = (int8_t)si;
                memcpy(q + k * len, tmp, (size_t)len);
            }
        }
    }
}

/* ---- K-quants ---------------------------------------------------------------- */

/* Q2_K: 16 groups of 16, codes 0..3, 4-bit scales and mins. */
void rf_qnt_q2_k(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 84, x += QK) {
        float s[16], m[16];
        uint8_t sc[16], mn[16], q[QK];
        for (int k = 0; k < 16; k++) fit_affine(x + 16 * k, 16, 3, &s[k], &m[k]);
        finish_affine(x, 16, 16, 3, 15, s, m, b + 80, b + 82, sc, mn, q);
        for (int k = 0; k < 16; k++) b[k] = (uint8_t)(sc[k] | (mn[k] << 4));
        uint8_t *qs = b + 16;
        memset(qs, 0, 64);
        for (int e = 0; e < QK; e++) qs[32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * ((e / 32) % 4)));
    }
}

/* Q3_K: 16 groups of 16, codes -4..3, 6-bit signed scales. */
void rf_qnt_q3_k(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 110, x += QK) {
        float s[16];
        int8_t sc[16];
        uint8_t q[QK]; /* q + 4, 0..7 */
        for (int k = 0; k < 16; k++) fit_symmetric(x + 16 * k, 16, -4, 3, &s[k]);
        finish_symmetric(x, 16, 16, -4, 3, -32, 31, s, b + 108, sc, q);
        uint8_t *hm = b, *qs = b + 32, *ss = b + 96;
        memset(b, 0, 108);
        for (int e = 0; e < QK; e++) {
            qs[32 * (e / 128) + e % 32] |= (uint8_t)((q[e] & 3) << (2 * ((e / 32) % 4)));
            hm[e % 32] |= (uint8_t)((q[e] >> 2) << (e / 32));
        }
        for (int k = 0; k < 16; k++) {
            const int ls = sc[k] + 32;
            ss[k % 8] |= (uint8_t)((ls & 0x0F) << (4 * (k / 8)));
            ss[8 + k % 4] |= (uint8_t)((ls >> 4) << (2 * (k / 4)));
        }
    }
}

/* Q4_K scales field from 8 scales and 8 mins (inverse of rf_k4_scale_min). */
static void pack_k4_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t *s) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4));
    }
}

/* Q4_K / Q5_K share all but the code width and the qh field. */
static void quantize_k45(const float *x, uint8_t *b, int qmax, uint8_t *q) {
    float s[8], m[8];
    uint8_t sc[8], mn[8];
    for (int k = 0; k < 8; k++) fit_affine(x + 32 * k, 32, qmax, &s[k], &m[k]);
    finish_affine(x, 8, 32, qmax, 63, s, m, b, b + 2, sc, mn, q);
    pack_k4_scales(sc, mn, b + 4);
}

/* Low nibbles of 256 codes: element 64c + 32s + l -> nibble s of qs[32c + l]. */
static void pack_k_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)((q[64 * c + l] & 0x0F) | ((q[64 * c + 32 + l] & 0x0F) << 4));
}

void rf_qnt_q4_k(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 144, x += QK) {
        uint8_t q[QK];
        quantize_k45(x, b, 15, q);
        pack_k_nibbles(q, b + 16);
    }
}

void rf_qnt_q5_k(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 176, x += QK) {
        uint8_t q[QK];
        quantize_k45(x, b, 31, q);
        uint8_t *qh = b + 16;
        memset(qh, 0, 32);
        for (int e = 0; e < QK; e++) qh[e % 32] |= (uint8_t)((q[e] >> 4) << (e / 32));
        pack_k_nibbles(q, b + 48);
    }
}

/* Q6_K: 16 groups of 16, codes -32..31, int8 scales. */
void rf_qnt_q6_k(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 210, x += QK) {
        float s[16];
        int8_t sc[16];
        uint8_t q[QK]; /* q + 32, 0..63 */
        for (int k = 0; k < 16; k++) fit_symmetric(x + 16 * k, 16, -32, 31, &s[k]);
        finish_symmetric(x, 16, 16, -32, 31, -128, 127, s, b + 208, sc, q);
        uint8_t *ql = b, *qh = b + 128;
        memset(b, 0, 192);
        for (int e = 0; e < QK; e++) {
            const int h = e / 128, r = e % 128;
            ql[64 * h + r % 64] |= (uint8_t)((q[e] & 0x0F) << (4 * (r / 64)));
            qh[32 * h + r % 32] |= (uint8_t)((q[e] >> 4) << (2 * (r / 32)));
        }
        memcpy(b + 192, sc, 16);
    }
}

/* Q8_K: d = absmax / 127 kept as f32, codes round(x / d) in -127..127, and
 * the 16 group sums. */
void rf_qnt_q8_k(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 292, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        rf_wr_f32(b, d);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) {
                const int v = round_clamp(x[16 * g + l] * id, -127, 127);
                b[4 + 16 * g + l] = (uint8_t)(int8_t)v;
                sum += v;
            }
            rf_wr_u16(b + 260 + 2 * g, (uint16_t)(int16_t)sum);
        }
    }
}

/* ---- non-linear 4-bit ------------------------------------------------------ */

void rf_qnt_iq4_nl(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / 32; i++, b += 18, x += 32) {
        float d;
        fit_iq4(x, 32, &d);
        const float dh = rf_wr_f16(b, d);
        uint8_t q[32];
        assign_iq4(x, 32, dh, q);
        pack_nibbles32(q, b + 2);
    }
}

/* IQ4_XS: eight IQ4 blocks of 32 whose scales are 6-bit signed fields
 * (-32..31) against one half d, the largest |scale| mapped to -32. */
void rf_qnt_iq4_xs(const float *restrict x, void *restrict y, int64_t n) {
    uint8_t *b = y;
    for (int64_t i = 0; i < n / QK; i++, b += 136, x += QK) {
        float s[8];
        for (int k = 0; k < 8; k++) fit_iq4(x + 32 * k, 32, &s[k]);
        const float d = rf_wr_f16(b, signed_absmax(s, 8) / -32.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t sh = 0;
        memset(b + 4, 0, 4);
        for (int k = 0; k < 8; k++) {
            const float *xs = x + 32 * k;
            const int s0 = round_clamp(s[k] * id, -32, 31);
            int ls = s0;
            float best = INFINITY;
            uint8_t q[32] = {0}, tmp[32];
            for (int ds = -1; ds <= 1; ds++) {
                const int si = clampi(s0 + ds, -32, 31);
                const float err = assign_iq4(xs, 32, d * (float)si, tmp);
                if (err < best) {
                    best = err;
                    ls = si;
                    memcpy(q, tmp, 32);
                }
            }
            const int st = ls + 32;
            b[4 + k / 2] |= (uint8_t)((st & 0x0F) << (4 * (k % 2)));
            sh |= (uint16_t)((st >> 4) << (2 * k));
            pack_nibbles32(q, b + 8 + 16 * k);
        }
        rf_wr_u16(b + 2, sh);
    }
}
