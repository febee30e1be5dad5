/*
 * kernels_scalar.c - the portable kernel set, in plain C. It runs where no
 * SIMD set applies, and it states the arithmetic every SIMD set follows:
 * activations are quantized per block to int8 (A32 in cpu-impl.h),
 * each weight block's integer dot product with them is exact, and the float
 * work is one scale per block (or super-block) plus a correction for the
 * block's offset or min, applied to the activation block sum.
 *
 * Sections: activation quantizers, the matmul kernels (32-element block
 * types, then the K-quants and IQ4_XS, then the float types), the float ops
 * (rmsnorm, GLU, attention), the table.
 */
#include <math.h>

#include "cpu-impl.h"
#include "quant/iq-tables.h"

/* ---- activation quantizers ----------------------------------------------- */

/* Quantizes n values to int8 with one scale; returns the scale (amax / 127).
 * The rounding (x * (127 / amax), to nearest even) is what every set does. */
static float quant_block(const float *x, int8_t *q, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < n; j++) {
        float v = nearbyintf(x[j] * id);
        q[j] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
    }
    return amax / 127.0f;
}

/* The A32 layout of cpu-impl.h. */
static void quant_a32(const float *x, uint8_t *dst, int64_t K) {
    int8_t *q = (int8_t *)dst;
    float *d = (float *)(void *)(dst + K), *ds32 = d + K / 32, *ds16 = ds32 + K / 32;
    int16_t *s16 = (int16_t *)(void *)(ds16 + K / 16);
    for (int64_t b = 0; b < K / 32; b++) d[b] = quant_block(x + 32 * b, q + 32 * b, 32);
    for (int64_t g = 0; g < K / 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += q[16 * g + j];
        s16[g] = (int16_t)sum;
        ds16[g] = d[g / 2] * (float)sum;
    }
    for (int64_t b = 0; b < K / 32; b++) ds32[b] = d[b] * (float)(s16[2 * b] + s16[2 * b + 1]);
}

/* ---- matmul: the tile loop ------------------------------------------------ */

typedef float (*dot_fn)(const uint8_t *w, const uint8_t *a, int64_t K);

static void mm_loop(const rf_mm_args *m, dot_fn dot) {
    for (int64_t t = 0; t < m->nt; t++)
        for (int64_t r = 0; r < m->nr; r++)
            m->y[t * m->ldy + r] = dot(m->w + (size_t)r * m->w_stride, m->a + (size_t)t * m->a_stride, m->K);
}

/* One unit of the canonical sum (cpu-impl.h): I exact, d_u and m_u exact
 * products of the stored fields, then two roundings in a fixed order. The
 * SIMD sets do the same operations, so all sets agree bit for bit. */
static inline float unit(float acc, int32_t I, float du, float da) { return fmaf((float)I, du * da, acc); }

/* ---- 32-element block types ---------------------------------------------- */

/* A decoded block: value j = d * (v[j] - off) + m, v the stored digits. */
typedef struct blk32 {
    int16_t v[32];
    int off;
    float d, m;
    bool has_min;
} blk32;

static void nibbles(const uint8_t *qs, int16_t *v) {
    for (int j = 0; j < 16; j++) {
        v[j] = (int16_t)(qs[j] & 0x0F);
        v[j + 16] = (int16_t)(qs[j] >> 4);
    }
}
static void fifth_bit(uint32_t qh, int16_t *v) {
    for (int j = 0; j < 32; j++) v[j] = (int16_t)(v[j] + (int16_t)(((qh >> j) & 1) << 4));
}

static void dec_q4_0(const uint8_t *b, blk32 *o) {
    *o = (blk32){.off = 8, .d = rf_cpu_f16(b)};
    nibbles(b + 2, o->v);
}
static void dec_q4_1(const uint8_t *b, blk32 *o) {
    *o = (blk32){.d = rf_cpu_f16(b), .m = rf_cpu_f16(b + 2), .has_min = true};
    nibbles(b + 4, o->v);
}
static void dec_q5_0(const uint8_t *b, blk32 *o) {
    *o = (blk32){.off = 16, .d = rf_cpu_f16(b)};
    nibbles(b + 6, o->v);
    fifth_bit(rf_cpu_u32(b + 2), o->v);
}
static void dec_q5_1(const uint8_t *b, blk32 *o) {
    *o = (blk32){.d = rf_cpu_f16(b), .m = rf_cpu_f16(b + 2), .has_min = true};
    nibbles(b + 8, o->v);
    fifth_bit(rf_cpu_u32(b + 4), o->v);
}
static void dec_q8_0(const uint8_t *b, blk32 *o) {
    *o = (blk32){.d = rf_cpu_f16(b)};
    for (int j = 0; j < 32; j++) o->v[j] = (int8_t)b[2 + j];
}
static void dec_iq4_nl(const uint8_t *b, blk32 *o) {
    *o = (blk32){.d = rf_cpu_f16(b)};
    for (int j = 0; j < 16; j++) {
        o->v[j] = rf_iq4nl_kvalues[b[2 + j] & 0x0F];
        o->v[j + 16] = rf_iq4nl_kvalues[b[2 + j] >> 4];
    }
}

static inline float dot32(const uint8_t *w, size_t bsz, void (*dec)(const uint8_t *, blk32 *), const uint8_t *a,
                          int64_t K) {
    const int8_t *q = rf_act_q(a);
    const float *d = rf_act_d(a, K), *ds = rf_act_ds32(a, K);
    const int16_t *s16 = rf_act_s16(a, K);
    float acc = 0.0f;
    for (int64_t b = 0; b < K / 32; b++) {
        blk32 k;
        dec(w + (size_t)b * bsz, &k);
        int32_t I = 0;
        for (int j = 0; j < 32; j++) I += k.v[j] * q[32 * b + j];
        I -= k.off * (s16[2 * b] + s16[2 * b + 1]);
        acc = unit(acc, I, k.d, d[b]);
        if (k.has_min) acc = fmaf(k.m, ds[b], acc);
    }
    return acc;
}

static float dot_q4_0(const uint8_t *w, const uint8_t *a, int64_t K) { return dot32(w, 18, dec_q4_0, a, K); }
static float dot_q4_1(const uint8_t *w, const uint8_t *a, int64_t K) { return dot32(w, 20, dec_q4_1, a, K); }
static float dot_q5_0(const uint8_t *w, const uint8_t *a, int64_t K) { return dot32(w, 22, dec_q5_0, a, K); }
static float dot_q5_1(const uint8_t *w, const uint8_t *a, int64_t K) { return dot32(w, 24, dec_q5_1, a, K); }
static float dot_q8_0(const uint8_t *w, const uint8_t *a, int64_t K) { return dot32(w, 34, dec_q8_0, a, K); }
static float dot_iq4_nl(const uint8_t *w, const uint8_t *a, int64_t K) { return dot32(w, 18, dec_iq4_nl, a, K); }

/* ---- 256-element super-block types --------------------------------------- */

/* Units: sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K, IQ4_XS),
 * scale d_u = d * (integer sub-scale) and min m_u = -dmin * (integer sub-min),
 * both exact in float. */

static float dot_q2_k(const uint8_t *w, const uint8_t *a, int64_t K) {
    const int8_t *q = rf_act_q(a);
    const float *da = rf_act_d(a, K), *ds16 = rf_act_ds16(a, K);
    float acc = 0.0f;
    for (int64_t i = 0; i < K / 256; i++, w += 84, q += 256) {
        const uint8_t *sc = w, *qs = w + 16;
        const float d = rf_cpu_f16(w + 80), dmin = rf_cpu_f16(w + 82);
        for (int g = 0; g < 16; g++) {
            int32_t I = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int h = e / 128, sh = (e / 32) % 4, l = e % 32;
                I += ((qs[32 * h + l] >> (2 * sh)) & 3) * q[e];
            }
            acc = unit(acc, I, d * (float)(sc[g] & 0x0F), da[8 * i + g / 2]);
            acc = fmaf(-dmin * (float)(sc[g] >> 4), ds16[16 * i + g], acc);
        }
    }
    return acc;
}

static float dot_q3_k(const uint8_t *w, const uint8_t *a, int64_t K) {
    const int8_t *q = rf_act_q(a);
    const float *da = rf_act_d(a, K);
    const int16_t *s16 = rf_act_s16(a, K);
    float acc = 0.0f;
    for (int64_t i = 0; i < K / 256; i++, w += 110, q += 256) {
        const uint8_t *hm = w, *qs = w + 32;
        int8_t sc[16];
        rf_cpu_q3k_scales(w + 96, sc);
        const float d = rf_cpu_f16(w + 108);
        for (int g = 0; g < 16; g++) {
            int32_t I = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int h = e / 128, sh = (e / 32) % 4, l = e % 32;
                int lo = (qs[32 * h + l] >> (2 * sh)) & 3;
                int hb = (hm[l] >> (e / 32)) & 1;
                I += (lo | hb << 2) * q[e]; /* digit 0..7, offset 4 */
            }
            I -= 4 * s16[16 * i + g];
            acc = unit(acc, I, d * (float)sc[g], da[8 * i + g / 2]);
        }
    }
    return acc;
}

static float dot_q45_k(const uint8_t *w, const uint8_t *a, int64_t K, bool five) {
    const int8_t *q = rf_act_q(a);
    const float *da = rf_act_d(a, K), *ds32 = rf_act_ds32(a, K);
    const size_t bsz = five ? 176 : 144;
    float acc = 0.0f;
    for (int64_t i = 0; i < K / 256; i++, w += bsz, q += 256) {
        uint8_t sc[8], mn[8];
        rf_cpu_k4_scales(w + 4, sc, mn);
        const float d = rf_cpu_f16(w), dmin = rf_cpu_f16(w + 2);
        const uint8_t *qh = w + 16, *qs = w + (five ? 48 : 16);
        for (int sb = 0; sb < 8; sb++) {
            const uint8_t *p = qs + 32 * (sb / 2);
            int32_t I = 0;
            for (int l = 0; l < 32; l++) {
                int v = (p[l] >> (4 * (sb % 2))) & 0x0F;
                if (five) v |= ((qh[l] >> sb) & 1) << 4;
                I += v * q[32 * sb + l];
            }
            acc = unit(acc, I, d * (float)sc[sb], da[8 * i + sb]);
            acc = fmaf(-dmin * (float)mn[sb], ds32[8 * i + sb], acc);
        }
    }
    return acc;
}
static float dot_q4_k(const uint8_t *w, const uint8_t *a, int64_t K) { return dot_q45_k(w, a, K, false); }
static float dot_q5_k(const uint8_t *w, const uint8_t *a, int64_t K) { return dot_q45_k(w, a, K, true); }

static float dot_q6_k(const uint8_t *w, const uint8_t *a, int64_t K) {
    const int8_t *q = rf_act_q(a);
    const float *da = rf_act_d(a, K);
    const int16_t *s16 = rf_act_s16(a, K);
    float acc = 0.0f;
    for (int64_t i = 0; i < K / 256; i++, w += 210, q += 256) {
        const uint8_t *ql = w, *qh = w + 128;
        const float d = rf_cpu_f16(w + 208);
        for (int g = 0; g < 16; g++) {
            int32_t I = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int h = e / 128, r = e % 128;
                int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
                int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
                I += (lo | (hi << 4)) * q[e];
            }
            I -= 32 * s16[16 * i + g];
            acc = unit(acc, I, d * (float)(int8_t)w[192 + g], da[8 * i + g / 2]);
        }
    }
    return acc;
}

static float dot_iq4_xs(const uint8_t *w, const uint8_t *a, int64_t K) {
    const int8_t *q = rf_act_q(a);
    const float *da = rf_act_d(a, K);
    float acc = 0.0f;
    for (int64_t i = 0; i < K / 256; i++, w += 136, q += 256) {
        int8_t sc[8];
        rf_cpu_iq4xs_scales(w, sc);
        const float d = rf_cpu_f16(w);
        for (int sb = 0; sb < 8; sb++) {
            const uint8_t *qs = w + 8 + 16 * sb;
            int32_t I = 0;
            for (int j = 0; j < 16; j++)
                I += rf_iq4nl_kvalues[qs[j] & 0x0F] * q[32 * sb + j] + rf_iq4nl_kvalues[qs[j] >> 4] * q[32 * sb + j + 16];
            acc = unit(acc, I, d * (float)sc[sb], da[8 * i + sb]);
        }
    }
    return acc;
}

/* ---- float weights ------------------------------------------------------- */

static float dot_f32(const uint8_t *w, const uint8_t *a, int64_t K) {
    const float *x = (const float *)(const void *)a;
    float acc = 0.0f, wv;
    for (int64_t c = 0; c < K; c++) {
        memcpy(&wv, w + 4 * c, 4);
        acc += wv * x[c];
    }
    return acc;
}
static float dot_f16(const uint8_t *w, const uint8_t *a, int64_t K) {
    const float *x = (const float *)(const void *)a;
    float acc = 0.0f;
    for (int64_t c = 0; c < K; c++) acc += rf_cpu_f16(w + 2 * c) * x[c];
    return acc;
}
static float dot_bf16(const uint8_t *w, const uint8_t *a, int64_t K) {
    const float *x = (const float *)(const void *)a;
    float acc = 0.0f;
    for (int64_t c = 0; c < K; c++) acc += rf_bf16_to_fp32(rf_cpu_u16(w + 2 * c)) * x[c];
    return acc;
}

#define MM(name) \
    static void mm_##name(const rf_mm_args *m) { mm_loop(m, dot_##name); }
MM(q4_0) MM(q4_1) MM(q5_0) MM(q5_1) MM(q8_0) MM(iq4_nl)
MM(q2_k) MM(q3_k) MM(q4_k) MM(q5_k) MM(q6_k) MM(iq4_xs)
MM(f32) MM(f16) MM(bf16)
#undef MM

/* ---- float ops ----------------------------------------------------------- */

static void rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

static void swiglu(const float *g, const float *u, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void geglu(const float *g, const float *u, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i];
        out[i] = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))) * u[i];
    }
}

/* Online softmax over a chunk of positions, one query row at a time. */
static void attn(rf_attn_tile *t, int32_t p0, int np, const uint16_t *k, const uint16_t *v, int64_t stride) {
    const int64_t hd = t->hd, Q = RF_ATTN_MAX_Q;
    for (int j = 0; j < np; j++)
        for (int64_t d = 0; d < hd; d++) {
            t->kf[j * hd + d] = rf_fp16_to_fp32(k[j * stride + d]);
            t->vf[j * hd + d] = rf_fp16_to_fp32(v[j * stride + d]);
        }
    for (int i = 0; i < t->nq; i++) {
        float *s = t->s + i * RF_ATTN_MAX_P, mx = t->m[i];
        bool any = false;
        for (int j = 0; j < np; j++) {
            if (p0 + j > t->last[i] || p0 + j < t->first[i]) continue;
            float acc = 0.0f;
            for (int64_t d = 0; d < hd; d++) acc += t->q[d * Q + i] * t->kf[j * hd + d];
            s[j] = acc;
            mx = fmaxf(mx, acc);
            any = true;
        }
        if (!any) continue; /* nothing visible in this chunk */
        const float alpha = expf(t->m[i] - mx);
        float sum = 0.0f;
        for (int64_t d = 0; d < hd; d++) t->o[d * Q + i] *= alpha;
        for (int j = 0; j < np; j++) {
            if (p0 + j > t->last[i] || p0 + j < t->first[i]) continue;
            const float p = expf(s[j] - mx);
            sum += p;
            for (int64_t d = 0; d < hd; d++) t->o[d * Q + i] += p * t->vf[j * hd + d];
        }
        t->l[i] = t->l[i] * alpha + sum;
        t->m[i] = mx;
    }
}

/* ---- the table ------------------------------------------------------------ */

const rf_cpu_kernels rf_cpu_kernels_scalar = {
    .name = "scalar",
    .quant = {[RF_ACT_A32] = quant_a32},
    .mm = {
        [RF_TYPE_F32] = mm_f32, [RF_TYPE_F16] = mm_f16, [RF_TYPE_BF16] = mm_bf16,
        [RF_TYPE_Q4_0] = mm_q4_0, [RF_TYPE_Q4_1] = mm_q4_1, [RF_TYPE_Q5_0] = mm_q5_0,
        [RF_TYPE_Q5_1] = mm_q5_1, [RF_TYPE_Q8_0] = mm_q8_0, [RF_TYPE_IQ4_NL] = mm_iq4_nl,
        [RF_TYPE_Q2_K] = mm_q2_k, [RF_TYPE_Q3_K] = mm_q3_k, [RF_TYPE_Q4_K] = mm_q4_k,
        [RF_TYPE_Q5_K] = mm_q5_k, [RF_TYPE_Q6_K] = mm_q6_k, [RF_TYPE_IQ4_XS] = mm_iq4_xs,
    },
    .rmsnorm = rmsnorm,
    .swiglu = swiglu,
    .geglu = geglu,
    .attn = attn,
};

/* The activation format of each weight type; types absent here (0) take F32. */
const uint8_t rf_cpu_act_fmt[RF_TYPE_COUNT] = {
    [RF_TYPE_Q4_0] = RF_ACT_A32, [RF_TYPE_Q4_1] = RF_ACT_A32, [RF_TYPE_Q5_0] = RF_ACT_A32,
    [RF_TYPE_Q5_1] = RF_ACT_A32, [RF_TYPE_Q8_0] = RF_ACT_A32, [RF_TYPE_IQ4_NL] = RF_ACT_A32,
    [RF_TYPE_Q2_K] = RF_ACT_A32, [RF_TYPE_Q3_K] = RF_ACT_A32, [RF_TYPE_Q4_K] = RF_ACT_A32,
    [RF_TYPE_Q5_K] = RF_ACT_A32, [RF_TYPE_Q6_K] = RF_ACT_A32, [RF_TYPE_IQ4_XS] = RF_ACT_A32,
};
_Static_assert(RF_TYPE_COUNT == 42, "new weight types need a row in rf_cpu_act_fmt and the kernel tables");
