/*
 * dequant-iq.c - scalar reference dequantization of the codebook i-quants
 * (IQ2_*, IQ3_*, IQ1_*), the non-linear 4-bit types (IQ4_NL, IQ4_XS), the
 * ternary types (TQ1_0, TQ2_0), the fp4 types (MXFP4, NVFP4) and Q1_0.
 *
 * As in dequant.c, the float arithmetic follows the gguf package's numpy
 * decoders step for step so results agree bit for bit. The codebooks and
 * value tables come from iq-tables.c (generated from the same package).
 */
#include "iq-tables.h"
#include "quant-impl.h"

#include <math.h>

#define QK RF_QK_K

/* Writes the 8 elements of one signed IQ2/IQ3 codebook group:
 * db * grid[j], negated where bit j of `signs` is set. */
static void put8_signed(float *y, float db, const float g[8], uint8_t signs) {
    for (int j = 0; j < 8; j++) {
        const float v = db * g[j];
        y[j] = (signs >> j) & 1 ? -v : v;
    }
}

static void grid8(uint64_t row, float g[8]) {
    for (int j = 0; j < 8; j++) g[j] = (float)rf_grid_u8(row, j);
}

static void grid4x2(uint32_t a, uint32_t b, float g[8]) {
    for (int j = 0; j < 4; j++) {
        g[j] = (float)(uint8_t)(a >> (8 * j));
        g[j + 4] = (float)(uint8_t)(b >> (8 * j));
    }
}

/* ---- IQ2 ------------------------------------------------------------------ */

/* IQ2_XXS, 66 bytes: f16 d @0, then 8 sub-blocks of 32 as two u32 words
 * (a, b) @2 + 8k. Byte l of a indexes rf_iq2xxs_grid for elements 8l..8l+7;
 * bits 7l..7l+6 of b index rf_iq2_ksigns for their signs; b >> 28 is the
 * sub-block scale: db = d * (0.5 + s) * 0.25. */
void rf_deq_iq2_xxs(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 66) {
        const float d = rf_rd_f16(b);
        for (int k = 0; k < 8; k++, y += 32) {
            const uint32_t ga = rf_rd_u32(b + 2 + 8 * k), sa = rf_rd_u32(b + 6 + 8 * k);
            const float db = d * (0.5f + (float)(sa >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++) {
                float g[8];
                grid8(rf_iq2xxs_grid[(ga >> (8 * l)) & 0xFF], g);
                put8_signed(y + 8 * l, db, g, rf_iq2_ksigns[(sa >> (7 * l)) & 127]);
            }
        }
    }
}

/* IQ2_XS, 74 bytes: f16 d @0, u16 qs[32] @2, scales[8] @66. qs[k] covers
 * elements 8k..8k+7: low 9 bits index rf_iq2xs_grid, top 7 index
 * rf_iq2_ksigns. Scale of 16-element group g is nibble g%2 of scales[g/2]:
 * db = d * (0.5 + s) * 0.25. */
void rf_deq_iq2_xs(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 74, y += QK) {
        const float d = rf_rd_f16(b);
        for (int k = 0; k < 32; k++) {
            const uint16_t q = rf_rd_u16(b + 2 + 2 * k);
            const int s = (b[66 + k / 4] >> (4 * ((k / 2) % 2))) & 0x0F;
            const float db = d * (0.5f + (float)s) * 0.25f;
            float g[8];
            grid8(rf_iq2xs_grid[q & 511], g);
            put8_signed(y + 8 * k, db, g, rf_iq2_ksigns[q >> 9]);
        }
    }
}

/* IQ2_S, 82 bytes: f16 d @0, qs[32] @2, signs[32] @34, qh[8] @66,
 * scales[8] @74. Group k (elements 8k..8k+7) indexes rf_iq2s_grid with
 * qs[k] | (bits 2(k%4)..+1 of qh[k/4]) << 8; bit j of signs[k] negates
 * element j. Scales as IQ2_XS. */
void rf_deq_iq2_s(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 82, y += QK) {
        const float d = rf_rd_f16(b);
        const uint8_t *qs = b + 2, *sg = b + 34, *qh = b + 66, *sc = b + 74;
        for (int k = 0; k < 32; k++) {
            const int idx = qs[k] | (((qh[k / 4] >> (2 * (k % 4))) & 3) << 8);
            const int s = (sc[k / 4] >> (4 * ((k / 2) % 2))) & 0x0F;
            const float db = d * (0.5f + (float)s) * 0.25f;
            float g[8];
            grid8(rf_iq2s_grid[idx], g);
            put8_signed(y + 8 * k, db, g, sg[k]);
        }
    }
}

/* ---- IQ3 ------------------------------------------------------------------ */

/* IQ3_XXS, 98 bytes: f16 d @0, qs[64] @2, u32 scales_signs[8] @66. Each
 * qs byte indexes rf_iq3xxs_grid (4 elements). Sub-block k of 32 uses
 * qs[8k..8k+7] and word w = scales_signs[k]: bits 7l..7l+6 index
 * rf_iq2_ksigns for elements 8l..8l+7; db = d * (0.5 + (w >> 28)) * 0.5. */
void rf_deq_iq3_xxs(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 98) {
        const float d = rf_rd_f16(b);
        const uint8_t *qs = b + 2;
        for (int k = 0; k < 8; k++, y += 32) {
            const uint32_t w = rf_rd_u32(b + 66 + 4 * k);
            const float db = d * (0.5f + (float)(w >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++) {
                float g[8];
                grid4x2(rf_iq3xxs_grid[qs[8 * k + 2 * l]], rf_iq3xxs_grid[qs[8 * k + 2 * l + 1]], g);
                put8_signed(y + 8 * l, db, g, rf_iq2_ksigns[(w >> (7 * l)) & 127]);
            }
        }
    }
}

/* IQ3_S, 110 bytes: f16 d @0, qs[64] @2, qh[8] @66, signs[32] @74,
 * scales[4] @106. Entry k (elements 4k..4k+3) indexes rf_iq3s_grid with
 * qs[k] | (bit k%8 of qh[k/8]) << 8; bit j of signs[m] negates element
 * 8m + j. Sub-block of 32 s has scale nibble s%2 of scales[s/2]:
 * db = d * (1 + 2 * nibble). */
void rf_deq_iq3_s(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 110, y += QK) {
        const float d = rf_rd_f16(b);
        const uint8_t *qs = b + 2, *qh = b + 66, *sg = b + 74, *sc = b + 106;
        for (int m = 0; m < 32; m++) {
            const int s = (sc[m / 8] >> (4 * ((m / 4) % 2))) & 0x0F;
            const float db = d * (float)(1 + 2 * s);
            const int k0 = 2 * m, k1 = 2 * m + 1;
            const int i0 = qs[k0] | (((qh[k0 / 8] >> (k0 % 8)) & 1) << 8);
            const int i1 = qs[k1] | (((qh[k1 / 8] >> (k1 % 8)) & 1) << 8);
            float g[8];
            grid4x2(rf_iq3s_grid[i0], rf_iq3s_grid[i1], g);
            put8_signed(y + 8 * m, db, g, sg[m]);
        }
    }
}

/* ---- IQ1 ------------------------------------------------------------------ */

/* Elements of one IQ1 group: dl * (grid[j] + delta), grid values -1/0/+1. */
static void put8_iq1(float *y, float dl, float delta, uint64_t row) {
    for (int j = 0; j < 8; j++) y[j] = dl * ((float)rf_grid_i8(row, j) + delta);
}

/* IQ1_S, 50 bytes: f16 d @0, qs[32] @2, u16 qh[8] @34. Sub-block s of 32
 * uses word h = qh[s]: groups 4s + t (t < 4) index rf_iq1s_grid with
 * qs[4s + t] | (bits 3t..3t+2 of h) << 8; dl = d * (2 * ((h >> 12) & 7) + 1);
 * delta is -1/8 when bit 15 of h is set, else +1/8. */
void rf_deq_iq1_s(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 50) {
        const float d = rf_rd_f16(b);
        for (int s = 0; s < 8; s++, y += 32) {
            const uint16_t h = rf_rd_u16(b + 34 + 2 * s);
            const float dl = d * (float)(2 * ((h >> 12) & 7) + 1);
            const float delta = (h & 0x8000) ? -0.125f : 0.125f;
            for (int t = 0; t < 4; t++) {
                const int idx = b[2 + 4 * s + t] | (((h >> (3 * t)) & 7) << 8);
                put8_iq1(y + 8 * t, dl, delta, rf_iq1s_grid[idx]);
            }
        }
    }
}

/* IQ1_M, 56 bytes, no separate scale field: qs[32] @0, qh[16] @32,
 * u16 sc[4] @48. The f16 d is assembled from the top nibbles of sc[0..3]
 * (sc[0] gives bits 0-3, ..., sc[3] bits 12-15). Group k (elements
 * 8k..8k+7) uses nibble q = nibble k%2 of qh[k/2]: grid index qs[k] |
 * (q & 7) << 8, delta -1/8 if q & 8 else +1/8. Each 16 elements (group
 * pair p = k/2) have a 3-bit scale at bits 3(p%4)..+2 of sc[p/4]:
 * dl = d * (2 * s + 1). */
void rf_deq_iq1_m(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 56, y += QK) {
        uint16_t sc[4];
        for (int j = 0; j < 4; j++) sc[j] = rf_rd_u16(b + 48 + 2 * j);
        const uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 12) << 4) | ((sc[2] >> 12) << 8) |
                                          ((sc[3] >> 12) << 12));
        const float d = rf_fp16_to_fp32(dbits);
        for (int k = 0; k < 32; k++) {
            const int p = k / 2;
            const float dl = d * (float)(2 * ((sc[p / 4] >> (3 * (p % 4))) & 7) + 1);
            const int q = (b[32 + k / 2] >> (4 * (k % 2))) & 0x0F;
            const float delta = (q & 8) ? -0.125f : 0.125f;
            put8_iq1(y + 8 * k, dl, delta, rf_iq1s_grid[b[k] | ((q & 7) << 8)]);
        }
    }
}

/* ---- non-linear 4-bit ---------------------------------------------------- */

/* IQ4_NL, 18 bytes: f16 d @0, qs[16] @2 (nibbles as Q4_0); value
 * d * rf_iq4nl_kvalues[q]. */
void rf_deq_iq4_nl(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 18, y += 32) {
        const float d = rf_rd_f16(b);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)rf_iq4nl_kvalues[b[2 + j] & 0x0F];
            y[j + 16] = d * (float)rf_iq4nl_kvalues[b[2 + j] >> 4];
        }
    }
}

/* IQ4_XS, 136 bytes: f16 d @0, u16 scales_h @2, scales_l[4] @4,
 * qs[128] @8. Sub-block s of 32 has the 6-bit scale (nibble s%2 of
 * scales_l[s/2]) | (bits 2s..2s+1 of scales_h) << 4, stored offset by 32;
 * its values are nibbles of qs[16s..16s+15] laid out as an IQ4_NL block.
 * Value d * (scale - 32) * kvalue. */
void rf_deq_iq4_xs(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 136) {
        const float d = rf_rd_f16(b);
        const uint16_t sh = rf_rd_u16(b + 2);
        for (int s = 0; s < 8; s++, y += 32) {
            const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 0x0F) | (((sh >> (2 * s)) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            const uint8_t *qs = b + 8 + 16 * s;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)rf_iq4nl_kvalues[qs[j] & 0x0F];
                y[j + 16] = dl * (float)rf_iq4nl_kvalues[qs[j] >> 4];
            }
        }
    }
}

/* ---- ternary --------------------------------------------------------------- */

/* Trit p (0 = most significant) of a TQ1_0 byte holding 5 (or 4) trits as
 * a fixed-point fraction of 3^5: multiply by 3^p mod 256, then the top trit
 * is (v * 3) >> 8. Gives 0..2; callers subtract 1. */
static int tq1_trit(uint8_t byte, int p) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t v = (uint8_t)(byte * pow3[p]);
    return (v * 3) >> 8;
}

/* TQ1_0, 54 bytes: qs[48] @0, qh[4] @48, f16 d @52. Elements 0..159:
 * trit p of qs[l] (l < 32) is element 32p + l; elements 160..239: trit p of
 * qs[32 + l] (l < 16) is 160 + 16p + l; elements 240..255: trit p (p < 4)
 * of qh[l] is 240 + 4p + l. Value d * (trit - 1). */
void rf_deq_tq1_0(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 54, y += QK) {
        const float d = rf_rd_f16(b + 52);
        for (int p = 0; p < 5; p++) {
            for (int l = 0; l < 32; l++) y[32 * p + l] = d * (float)(tq1_trit(b[l], p) - 1);
            for (int l = 0; l < 16; l++) y[160 + 16 * p + l] = d * (float)(tq1_trit(b[32 + l], p) - 1);
        }
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 4; l++) y[240 + 4 * p + l] = d * (float)(tq1_trit(b[48 + l], p) - 1);
    }
}

/* TQ2_0, 66 bytes: qs[64] @0, f16 d @64. Element 128h + 32s + l is bits
 * 2s..2s+1 of qs[32h + l]; value d * (q - 1). */
void rf_deq_tq2_0(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / QK; i++, b += 66, y += QK) {
        const float d = rf_rd_f16(b + 64);
        for (int e = 0; e < QK; e++) {
            const int q = (b[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
            y[e] = d * (float)(q - 1);
        }
    }
}

/* ---- fp4 ------------------------------------------------------------------- */

/* E8M0 (a bare exponent, bias 127) halved: 2^(e - 128). e < 2 lands in the
 * float subnormals. e = 255 (NaN in the OCP spec) decodes as 2^127, as
 * ggml and gguf-py do. */
float rf_e8m0_to_fp32_half(uint8_t e) {
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Unsigned E4M3 (bias 7, no infinities) halved. Bit 7 is ignored except
 * that 0x00 and 0x7F (its NaN) decode as 0. All results are exact. */
float rf_ue4m3_to_fp32_half(uint8_t x) {
    if (x == 0 || x == 0x7F) return 0.0f;
    const int exp = (x >> 3) & 0x0F, man = x & 0x07;
    const float raw = exp == 0 ? (float)man * 0x1p-9f : (1.0f + (float)man / 8.0f) * ldexpf(1.0f, exp - 7);
    return raw * 0.5f;
}

/* MXFP4, 17 bytes: e8m0 e @0, qs[16] @1 (nibbles as Q4_0, E2M1 codes);
 * value rf_e8m0_to_fp32_half(e) * rf_fp4_kvalues[q]. */
void rf_deq_mxfp4(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 32; i++, b += 17, y += 32) {
        const float d = rf_e8m0_to_fp32_half(b[0]);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)rf_fp4_kvalues[b[1 + j] & 0x0F];
            y[j + 16] = d * (float)rf_fp4_kvalues[b[1 + j] >> 4];
        }
    }
}

/* NVFP4, 36 bytes per 64 elements: ue4m3 scales[4] @0, qs[32] @4. Group s
 * of 16 uses scales[s] and qs[8s..8s+7]: element j < 8 is the low nibble
 * of qs[8s + j], element j + 8 the high nibble. */
void rf_deq_nvfp4(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 64; i++, b += 36) {
        for (int s = 0; s < 4; s++, y += 16) {
            const float d = rf_ue4m3_to_fp32_half(b[s]);
            const uint8_t *qs = b + 4 + 8 * s;
            for (int j = 0; j < 8; j++) {
                y[j] = d * (float)rf_fp4_kvalues[qs[j] & 0x0F];
                y[j + 8] = d * (float)rf_fp4_kvalues[qs[j] >> 4];
            }
        }
    }
}

/* ---- 1-bit ----------------------------------------------------------------- */

/* Q1_0, 18 bytes per 128 elements: f16 d @0, qs[16] @2. Bit j%8 of
 * qs[j/8] selects +d (set) or -d (clear) for element j. */
void rf_deq_q1_0(const void *restrict x, float *restrict y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n / 128; i++, b += 18, y += 128) {
        const float d = rf_rd_f16(b);
        for (int j = 0; j < 128; j++) y[j] = (b[2 + j / 8] >> (j % 8)) & 1 ? d : -d;
    }
}
