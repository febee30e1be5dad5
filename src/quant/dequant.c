/*
 * dequant.c - scalar reference dequantization of the plain float types and
 * the legacy (Q4_0 .. Q8_1) and K-quant (Q2_K .. Q8_K) block types.
 * The i-quants, ternary, fp4 and 1-bit types are in dequant-iq.c.
 *
 * Each function walks n / block_size blocks and writes block_size floats per
 * block. The arithmetic mirrors the gguf package's numpy decoders operation
 * for operation (same products, same order, float32 throughout) because the
 * results are compared bit for bit; where the order looks arbitrary, that is
 * why. Every block layout is spelled out above its decoder, offsets in bytes.
 */
#include "quant-impl.h"

#define QK RF_QK_K

/* ---- plain floats -------------------------------------------------------- */

void rf_deq_f32(const void *restrict x, float *restrict y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void rf_deq_f16(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *p = x;
    for (int64_t i = 0; i < n; i++) y[i] = rf_rd_f16(p + 2 * i);
}

void rf_deq_bf16(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *p = x;
    for (int64_t i = 0; i < n; i++) y[i] = rf_bf16_to_fp32(rf_rd_u16(p + 2 * i));
}

/* Rounds to nearest even; values beyond the float range become +-inf, as
 * numpy's astype(np.float32) does (IEEE conversion, Annex F). */
void rf_deq_f64(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *p = x;
    for (int64_t i = 0; i < n; i++) {
        double v;
        memcpy(&v, p + 8 * i, sizeof v);
        y[i] = (float)v;
    }
}

/* ---- legacy 32-element blocks -------------------------------------------- */

/* Q4_0, 18 bytes: f16 d @0, qs[16] @2. Element j < 16 is the low nibble of
 * qs[j], element j + 16 the high nibble; value d * (q - 8). */
void rf_deq_q4_0(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 18, y += 32) {
        const float d = rf_rd_f16(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((qs[j] & 0x0F) - 8);
            y[j + 16] = d * (float)((qs[j] >> 4) - 8);
        }
    }
}

/* Q4_1, 20 bytes: f16 d @0, f16 m @2, qs[16] @4 (nibbles as Q4_0);
 * value d * q + m. */
void rf_deq_q4_1(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 20, y += 32) {
        const float d = rf_rd_f16(b), m = rf_rd_f16(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(qs[j] & 0x0F) + m;
            y[j + 16] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

/* Q5_0, 22 bytes: f16 d @0, u32 qh @2, qs[16] @6. Bit j of qh is bit 4 of
 * element j; the low four bits are nibbles as in Q4_0. Value d * (q - 16). */
void rf_deq_q5_0(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 22, y += 32) {
        const float d = rf_rd_f16(b);
        const uint32_t qh = rf_rd_u32(b + 2);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}

/* Q5_1, 24 bytes: f16 d @0, f16 m @2, u32 qh @4, qs[16] @8 (bits as Q5_0);
 * value d * q + m. */
void rf_deq_q5_1(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 24, y += 32) {
        const float d = rf_rd_f16(b), m = rf_rd_f16(b + 2);
        const uint32_t qh = rf_rd_u32(b + 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)lo + m;
            y[j + 16] = d * (float)hi + m;
        }
    }
}

/* Q8_0, 34 bytes: f16 d @0, int8 qs[32] @2; value d * q. */
void rf_deq_q8_0(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 34, y += 32) {
        const float d = rf_rd_f16(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* Q8_1, 36 bytes (ggml's block_q8_1): f16 d @0, f16 s @2, int8 qs[32] @4;
 * value d * q. s = d * sum(q) is a cache for dot products and unused here.
 * (gguf-py's size table says 40 bytes, from an older f32 d/s layout.) */
void rf_deq_q8_1(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 36, y += 32) {
        const float d = rf_rd_f16(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[4 + j] * d;
    }
}

/* ---- K-quants: 256-element super-blocks ---------------------------------- */

/* Q2_K, 84 bytes: scales[16] @0, qs[64] @16, f16 d @80, f16 dmin @82.
 * Sixteen groups of 16; group g has scale d * (scales[g] & 15) and min
 * dmin * (scales[g] >> 4). Element 128h + 32s + l (h < 2, s < 4, l < 32) is
 * bits 2s..2s+1 of qs[32h + l]. Value dl * q - ml. */
void rf_deq_q2_k(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 84, y += QK) {
        const uint8_t *sc = b, *qs = b + 16;
        const float d = rf_rd_f16(b + 80), dmin = rf_rd_f16(b + 82);
        for (int e = 0; e < QK; e++) {
            int h = e / 128, s = (e / 32) % 4, l = e % 32, g = e / 16;
            const float dl = d * (float)(sc[g] & 0x0F);
            const float ml = dmin * (float)(sc[g] >> 4);
            int q = (qs[32 * h + l] >> (2 * s)) & 3;
            y[e] = dl * (float)q - ml;
        }
    }
}

/* Q3_K, 110 bytes: hmask[32] @0, qs[64] @32, scales[12] @96, f16 d @108.
 * Low two bits of each element as in Q2_K; element 32i + l takes bit i of
 * hmask[l] as its third bit, and a CLEAR bit subtracts 4: q = lo - 4 * !h.
 * Sixteen 6-bit group scales, stored offset by 32: the low nibble of scale
 * k is nibble k/8 of byte k%8, the top two bits are bits 2(k/4)..+1 of
 * byte 8 + k%4. Value d * (scale - 32) * q. */
void rf_deq_q3_k(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 110, y += QK) {
        const uint8_t *hm = b, *qs = b + 32, *ss = b + 96;
        const float d = rf_rd_f16(b + 108);
        float dl[16];
        for (int k = 0; k < 16; k++) {
            int lo = (ss[k % 8] >> (4 * (k / 8))) & 0x0F;
            int hi = (ss[8 + k % 4] >> (2 * (k / 4))) & 0x03;
            dl[k] = d * (float)((lo | (hi << 4)) - 32);
        }
        for (int e = 0; e < QK; e++) {
            int h = e / 128, s = (e / 32) % 4, l = e % 32;
            int lo = (qs[32 * h + l] >> (2 * s)) & 3;
            int hbit = (hm[l] >> (e / 32)) & 1;
            y[e] = dl[e / 16] * (float)(lo - (hbit ? 0 : 4));
        }
    }
}

/* Q4_K, 144 bytes: f16 d @0, f16 dmin @2, scales[12] @4 (rf_k4_scale_min),
 * qs[128] @16. Eight sub-blocks of 32; element 64c + 32s + l is nibble s of
 * qs[32c + l] and belongs to sub-block 2c + s. Value d*sc * q - dmin*m. */
void rf_deq_q4_k(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 144, y += QK) {
        const float d = rf_rd_f16(b), dmin = rf_rd_f16(b + 2);
        const uint8_t *qs = b + 16;
        for (int sb = 0; sb < 8; sb++) {
            uint8_t sc, mn;
            rf_k4_scale_min(b + 4, sb, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            const uint8_t *q = qs + 32 * (sb / 2);
            const int shift = 4 * (sb % 2);
            for (int l = 0; l < 32; l++) y[32 * sb + l] = dl * (float)((q[l] >> shift) & 0x0F) - ml;
        }
    }
}

/* Q5_K, 176 bytes: f16 d @0, f16 dmin @2, scales[12] @4, qh[32] @16,
 * qs[128] @48. Low nibbles as Q4_K; element 32i + l takes bit i of qh[l]
 * as bit 4. Value d*sc * q - dmin*m. */
void rf_deq_q5_k(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 176, y += QK) {
        const float d = rf_rd_f16(b), dmin = rf_rd_f16(b + 2);
        const uint8_t *qh = b + 16, *qs = b + 48;
        for (int sb = 0; sb < 8; sb++) {
            uint8_t sc, mn;
            rf_k4_scale_min(b + 4, sb, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            const uint8_t *q = qs + 32 * (sb / 2);
            const int shift = 4 * (sb % 2);
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> sb) & 1) << 4);
                y[32 * sb + l] = dl * (float)v - ml;
            }
        }
    }
}

/* Q6_K, 210 bytes: ql[128] @0, qh[64] @128, int8 scales[16] @192,
 * f16 d @208. Element 128h + 64s + m (h, s < 2, m < 64) has low nibble s of
 * ql[64h + m]; element 128h + 32t + l (t < 4, l < 32) has bits 2t..2t+1 of
 * qh[32h + l] as bits 4-5. Group of 16 g: value d * scales[g] * (q - 32). */
void rf_deq_q6_k(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 210, y += QK) {
        const uint8_t *ql = b, *qh = b + 128;
        const float d = rf_rd_f16(b + 208);
        for (int e = 0; e < QK; e++) {
            int h = e / 128, r = e % 128;
            int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
            int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
            const float dl = d * (float)(int8_t)b[192 + e / 16];
            y[e] = dl * (float)((lo | (hi << 4)) - 32);
        }
    }
}

/* Q8_K, 292 bytes: f32 d @0, int8 qs[256] @4, int16 bsums[16] @260
 * (sums of groups of 16, for dot products). Value d * q. */
void rf_deq_q8_k(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 292, y += QK) {
        const float d = rf_rd_f32(b);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(int8_t)b[4 + j];
    }
}
