/*
 * quant-impl.h - the per-type row converters behind the type table, and the
 * little-endian field readers/writers they share. Internal to src/quant;
 * everyone else goes through quant.h.
 *
 * Blocks are byte arrays read field by field with memcpy: a GGUF tensor
 * gives no alignment guarantee for a block, and naming offsets keeps each
 * layout visible where it is decoded. A little-endian host is assumed.
 */
#ifndef RF_QUANT_IMPL_H
#define RF_QUANT_IMPL_H

#include "quant.h"

#include <string.h>

/* The converters are the bit-exact reference for every fast kernel and are
 * tested bit for bit against numpy, which rounds each multiply and add
 * separately. GCC contracts a*b+c into a fused multiply-add by default
 * wherever the target has FMA (aarch64, -march=native), rounding once.
 * Most products here are exact so it rarely shows, but where one is not
 * (a quantizer's x * id + 8.5 before truncation) the result could flip, so
 * contraction is off in every file that includes this header. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- field access -------------------------------------------------------- */

static inline uint16_t rf_rd_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint32_t rf_rd_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline float rf_rd_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline float rf_rd_f16(const uint8_t *p) { return rf_fp16_to_fp32(rf_rd_u16(p)); }

static inline void rf_wr_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, sizeof v); }
static inline void rf_wr_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }
static inline void rf_wr_f32(uint8_t *p, float v) { memcpy(p, &v, sizeof v); }
/* Stores v rounded to the nearest half (ties to even) and returns what a
 * reader will get back, so a quantizer can continue with the stored scale. */
static inline float rf_wr_f16(uint8_t *p, float v) {
    uint16_t h = rf_fp32_to_fp16(v);
    rf_wr_u16(p, h);
    return rf_fp16_to_fp32(h);
}

/* ---- shared decoders ----------------------------------------------------- */

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's
 * 12-byte scales field: bytes 0-3 hold scales 0-3 (low 6 bits), bytes 4-7
 * mins 0-3; scales/mins 4-7 keep their low nibbles in bytes 8-11 and their
 * top two bits in the spare top bits of bytes 0-3 / 4-7. */
static inline void rf_k4_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* ---- dequant.c, dequant-iq.c --------------------------------------------- */

void rf_deq_bf16(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_f16(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_f32(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_f64(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq1_m(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq1_s(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq2_s(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq2_xs(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq2_xxs(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq3_s(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq3_xxs(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq4_nl(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_iq4_xs(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_mxfp4(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_nvfp4(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q1_0(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q2_k(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q3_k(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q4_0(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q4_1(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q4_k(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q5_0(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q5_1(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q5_k(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q6_k(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q8_0(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q8_1(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_q8_k(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_tq1_0(const void *restrict x, float *restrict y, int64_t n);
void rf_deq_tq2_0(const void *restrict x, float *restrict y, int64_t n);

/* Scale decoders of the fp4 formats, shared with the MXFP4 quantizer.
 * Both return HALF the scale, pairing with the doubled rf_fp4_kvalues. */
float rf_e8m0_to_fp32_half(uint8_t e);
float rf_ue4m3_to_fp32_half(uint8_t x);

/* ---- quantize.c ------------------------------------------------------------ */

void rf_qnt_bf16(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_f16(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_f32(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_iq4_nl(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_iq4_xs(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_mxfp4(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q2_k(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q3_k(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q4_0(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q4_1(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q4_k(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q5_0(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q5_1(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q5_k(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q6_k(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q8_0(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q8_1(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_q8_k(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_tq1_0(const float *restrict x, void *restrict y, int64_t n);
void rf_qnt_tq2_0(const float *restrict x, void *restrict y, int64_t n);

#endif
