/*
 * quant.cuh - device decoders of the GGUF weight formats the GPU kernels
 * read. Every type decodes in chunks of 32 consecutive elements of a row
 * (a whole legacy block, a sub-block of a 256-element K-quant super-block,
 * or 32 plain floats), so one generic mat-vec, tiled matmul and get_rows
 * serve every format. The arithmetic follows the scalar reference in
 * src/quant/dequant.c (same products, float32), which is what the op suite
 * compares against; layouts are described there. Loads use the widest width
 * the block size guarantees: a row starts at a multiple of its block size
 * from a pointer the GGUF loader / allocator aligns to at least 16 bytes.
 */
#ifndef RF_GPU_KERNELS_QUANT_CUH
#define RF_GPU_KERNELS_QUANT_CUH

#include <stdint.h>

#include "compat.h"

/* 32 bits from a field only 2-byte aligned. */
static __device__ __forceinline__ uint32_t rfk_ld32_a2(const uint8_t *p) {
    const uint16_t *q = (const uint16_t *)p;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 16);
}
static __device__ __forceinline__ uint32_t rfk_ld32_a4(const uint8_t *p) { return *(const uint32_t *)p; }
static __device__ __forceinline__ float rfk_ldh(const uint8_t *p) { return rfk_h2f(*(const uint16_t *)p); }

/* Four weights of a chunk for the integer dot: value_i = d * q_i + o
 * (q_i the signed bytes of q; o only where the type sets has_o), and a
 * per-chunk offset -m that one lane (k = 0) carries for the whole chunk
 * (m times the chunk's activation sum), for offsets constant over 32. */
struct rfk_wq {
    int q;
    float d, o, m;
};

static __device__ const int8_t rfk_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                        1,    13,   25,  38,  53,  69,  89,  113};

/* Four 4-bit indices (the low nibbles of the bytes of n) to the IQ4_NL
 * values, packed as signed bytes. */
static __device__ __forceinline__ int rfk_iq4_pack(uint32_t n) {
    return (int)((uint32_t)(uint8_t)rfk_iq4nl_values[n & 0x0F] | ((uint32_t)(uint8_t)rfk_iq4nl_values[(n >> 8) & 0x0F] << 8) |
                 ((uint32_t)(uint8_t)rfk_iq4nl_values[(n >> 16) & 0x0F] << 16) |
                 ((uint32_t)(uint8_t)rfk_iq4nl_values[(n >> 24) & 0x0F] << 24));
}

/* Byte k (0..11) of a Q4_K / Q5_K block's 6-bit scales, held as three words. */
static __device__ __forceinline__ int rfk_k4_sbyte(uint32_t s0, uint32_t s1, uint32_t s2, int k) {
    const uint32_t v = k < 4 ? s0 : k < 8 ? s1 : s2;
    return (int)((v >> (8 * (k & 3))) & 0xFF);
}

/* Bits 0-3 of x to bit 4 of bytes 0-3 (the fifth bit of Q5_0 / Q5_1). */
static __device__ __forceinline__ uint32_t rfk_spread4(uint32_t x) {
    return ((x & 1u) << 4) | ((x & 2u) << 11) | ((x & 4u) << 18) | ((x & 8u) << 25);
}

/* Decoder of type id T: blck (elements per block), bytes (per block),
 * chunk(row, c, v): v[0..31] = elements 32c .. 32c+31 of the row, and
 * quad(row, c, k, v): v[0..3] = elements 32c + 4k .. 32c + 4k + 3 (k < 8).
 * quad is what the mat-vec and get_rows use: eight lanes share a chunk, so
 * a warp's loads of weights and activations are contiguous (one lane per
 * chunk made every activation load touch its own cache line, which left
 * the first mat-vec bound by L1 wavefronts at ~15% of DRAM bandwidth). */
template <int T> struct rfk_q;

template <> struct rfk_q<2> { /* Q4_0 */
    static constexpr int blck = 32, bytes = 18;
    /* Integer path: wq() gives this lane's weights 32c + 4k .. +3 as rfk_wq
     * (see there); rfk_vdot dots them with q8 activations. */
    static constexpr bool has_vdot = true;
    static constexpr bool has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + c * 18;
        w.q = (int)((rfk_ld32_a2(b + 2 + 4 * (k % 4)) >> (4 * (k / 4))) & 0x0F0F0F0Fu);
        w.d = rfk_ldh(b);
        w.m = k == 0 ? 8.0f * w.d : 0.0f; /* the -8 of every weight, once per chunk */
    }
    /* Elements 32c + 4k .. +3 (k < 8): the low (k < 4) or high nibbles of
     * qs[4(k%4) ..]; eight lanes cover a block with one 4-byte load each. */
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + c * 18;
        const float d = rfk_ldh(b);
        const uint32_t q = rfk_ld32_a2(b + 2 + 4 * (k % 4));
        const int sh = 4 * (k / 4);
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = d * (float)((int)((q >> (8 * i + sh)) & 0x0F) - 8);
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + c * 18;
        const float d = rfk_ldh(b);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = rfk_ld32_a2(b + 2 + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int byte = (q >> (8 * j)) & 0xFF;
                v[4 * i + j] = d * (float)((byte & 0x0F) - 8);
                v[16 + 4 * i + j] = d * (float)((byte >> 4) - 8);
            }
        }
    }
};

template <> struct rfk_q<3> { /* Q4_1 */
    static constexpr int blck = 32, bytes = 20;
    static constexpr bool has_vdot = true, has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + c * 20;
        w.q = (int)((rfk_ld32_a4(b + 4 + 4 * (k % 4)) >> (4 * (k / 4))) & 0x0F0F0F0Fu);
        w.d = rfk_ldh(b);
        w.m = k == 0 ? -rfk_ldh(b + 2) : 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + c * 20;
        const float d = rfk_ldh(b), m = rfk_ldh(b + 2);
        const uint32_t q = rfk_ld32_a4(b + 4 + 4 * (k % 4));
        const int sh = 4 * (k / 4);
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = d * (float)((q >> (8 * i + sh)) & 0x0F) + m;
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + c * 20;
        const float d = rfk_ldh(b), m = rfk_ldh(b + 2);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = rfk_ld32_a4(b + 4 + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int byte = (q >> (8 * j)) & 0xFF;
                v[4 * i + j] = d * (float)(byte & 0x0F) + m;
                v[16 + 4 * i + j] = d * (float)(byte >> 4) + m;
            }
        }
    }
};

template <> struct rfk_q<6> { /* Q5_0 */
    static constexpr int blck = 32, bytes = 22;
    static constexpr bool has_vdot = true, has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + c * 22;
        const uint32_t nib = (rfk_ld32_a2(b + 6 + 4 * (k % 4)) >> (4 * (k / 4))) & 0x0F0F0F0Fu;
        w.q = (int)(nib | rfk_spread4((rfk_ld32_a2(b + 2) >> (4 * k)) & 0x0F));
        w.d = rfk_ldh(b);
        w.m = k == 0 ? 16.0f * w.d : 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + c * 22;
        const float d = rfk_ldh(b);
        const uint32_t qh = rfk_ld32_a2(b + 2), q = rfk_ld32_a2(b + 6 + 4 * (k % 4));
        const int sh = 4 * (k / 4);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int x = (int)((q >> (8 * i + sh)) & 0x0F) | (int)(((qh >> (4 * k + i)) & 1) << 4);
            v[i] = d * (float)(x - 16);
        }
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + c * 22;
        const float d = rfk_ldh(b);
        const uint32_t qh = rfk_ld32_a2(b + 2);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = rfk_ld32_a2(b + 6 + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int e = 4 * i + j, byte = (q >> (8 * j)) & 0xFF;
                int lo = (byte & 0x0F) | (int)(((qh >> e) & 1) << 4);
                int hi = (byte >> 4) | (int)(((qh >> (e + 16)) & 1) << 4);
                v[e] = d * (float)(lo - 16);
                v[16 + e] = d * (float)(hi - 16);
            }
        }
    }
};

template <> struct rfk_q<7> { /* Q5_1 */
    static constexpr int blck = 32, bytes = 24;
    static constexpr bool has_vdot = true, has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + c * 24;
        const uint32_t nib = (rfk_ld32_a4(b + 8 + 4 * (k % 4)) >> (4 * (k / 4))) & 0x0F0F0F0Fu;
        w.q = (int)(nib | rfk_spread4((rfk_ld32_a4(b + 4) >> (4 * k)) & 0x0F));
        w.d = rfk_ldh(b);
        w.m = k == 0 ? -rfk_ldh(b + 2) : 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + c * 24;
        const float d = rfk_ldh(b), m = rfk_ldh(b + 2);
        const uint32_t qh = rfk_ld32_a4(b + 4), q = rfk_ld32_a4(b + 8 + 4 * (k % 4));
        const int sh = 4 * (k / 4);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int x = (int)((q >> (8 * i + sh)) & 0x0F) | (int)(((qh >> (4 * k + i)) & 1) << 4);
            v[i] = d * (float)x + m;
        }
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + c * 24;
        const float d = rfk_ldh(b), m = rfk_ldh(b + 2);
        const uint32_t qh = rfk_ld32_a4(b + 4);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = rfk_ld32_a4(b + 8 + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int e = 4 * i + j, byte = (q >> (8 * j)) & 0xFF;
                int lo = (byte & 0x0F) | (int)(((qh >> e) & 1) << 4);
                int hi = (byte >> 4) | (int)(((qh >> (e + 16)) & 1) << 4);
                v[e] = d * (float)lo + m;
                v[16 + e] = d * (float)hi + m;
            }
        }
    }
};

template <> struct rfk_q<8> { /* Q8_0 */
    static constexpr int blck = 32, bytes = 34;
    static constexpr bool has_vdot = true;
    static constexpr bool has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + c * 34;
        w.q = (int)rfk_ld32_a2(b + 2 + 4 * k);
        w.d = rfk_ldh(b);
        w.m = 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + c * 34;
        const float d = rfk_ldh(b);
        const uint32_t q = rfk_ld32_a2(b + 2 + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = (float)(int8_t)((q >> (8 * i)) & 0xFF) * d;
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + c * 34;
        const float d = rfk_ldh(b);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t q = rfk_ld32_a2(b + 2 + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) v[4 * i + j] = (float)(int8_t)((q >> (8 * j)) & 0xFF) * d;
        }
    }
};

template <> struct rfk_q<10> { /* Q2_K */
    static constexpr int blck = 256, bytes = 84;
    static constexpr bool has_vdot = true, has_o = true; /* mins change every 16 */
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + (c / 8) * 84;
        const int sb = (int)(c % 8), h = sb / 4, s = sb % 4, sc = b[2 * sb + k / 4];
        w.q = (int)((rfk_ld32_a4(b + 16 + 32 * h + 4 * k) >> (2 * s)) & 0x03030303u);
        w.d = rfk_ldh(b + 80) * (float)(sc & 0x0F);
        w.o = -rfk_ldh(b + 82) * (float)(sc >> 4);
        w.m = 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + (c / 8) * 84;
        const int sb = (int)(c % 8), h = sb / 4, s = sb % 4;
        const int sc = b[2 * sb + k / 4];
        const float dl = rfk_ldh(b + 80) * (float)(sc & 0x0F), ml = rfk_ldh(b + 82) * (float)(sc >> 4);
        const uint32_t q = rfk_ld32_a4(b + 16 + 32 * h + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = dl * (float)((q >> (8 * i + 2 * s)) & 3) - ml;
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + (c / 8) * 84;
        const int k = (int)(c % 8), h = k / 4, s = k % 4;
        const float d = rfk_ldh(b + 80), dmin = rfk_ldh(b + 82);
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int sc = b[2 * k + half];
            const float dl = d * (float)(sc & 0x0F), ml = dmin * (float)(sc >> 4);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                uint32_t q = rfk_ld32_a4(b + 16 + 32 * h + 16 * half + 4 * i);
#pragma unroll
                for (int j = 0; j < 4; j++) v[16 * half + 4 * i + j] = dl * (float)((q >> (8 * j + 2 * s)) & 3) - ml;
            }
        }
    }
};

template <> struct rfk_q<11> { /* Q3_K */
    static constexpr int blck = 256, bytes = 110;
    /* q = low bits | high bit << 2, value dl * (q - 4): o = -4 dl. */
    static constexpr bool has_vdot = true, has_o = true;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + (c / 8) * 110;
        const int sb = (int)(c % 8), h = sb / 4, s = sb % 4, g = 2 * sb + k / 4;
        const uint8_t *ss = b + 96;
        const int lo = (ss[g % 8] >> (4 * (g / 8))) & 0x0F, hi = (ss[8 + g % 4] >> (2 * (g / 4))) & 0x03;
        const uint32_t ql = (rfk_ld32_a2(b + 32 + 32 * h + 4 * k) >> (2 * s)) & 0x03030303u;
        const uint32_t hm = (rfk_ld32_a2(b + 4 * k) >> sb) & 0x01010101u;
        w.q = (int)(ql | (hm << 2));
        w.d = rfk_ldh(b + 108) * (float)((lo | (hi << 4)) - 32);
        w.o = -4.0f * w.d;
        w.m = 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + (c / 8) * 110;
        const int sb = (int)(c % 8), h = sb / 4, s = sb % 4, g = 2 * sb + k / 4;
        const uint8_t *ss = b + 96;
        const int lo = (ss[g % 8] >> (4 * (g / 8))) & 0x0F, hi = (ss[8 + g % 4] >> (2 * (g / 4))) & 0x03;
        const float dl = rfk_ldh(b + 108) * (float)((lo | (hi << 4)) - 32);
        const uint32_t q = rfk_ld32_a2(b + 32 + 32 * h + 4 * k), hm = rfk_ld32_a2(b + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int ql = (q >> (8 * i + 2 * s)) & 3, hb = (hm >> (8 * i + sb)) & 1;
            v[i] = dl * (float)(ql - (hb ? 0 : 4));
        }
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + (c / 8) * 110;
        const int k = (int)(c % 8), h = k / 4, s = k % 4;
        const uint8_t *ss = b + 96;
        const float d = rfk_ldh(b + 108);
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int g = 2 * k + half;
            const int lo = (ss[g % 8] >> (4 * (g / 8))) & 0x0F, hi = (ss[8 + g % 4] >> (2 * (g / 4))) & 0x03;
            const float dl = d * (float)((lo | (hi << 4)) - 32);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int l0 = 16 * half + 4 * i;
                uint32_t q = rfk_ld32_a2(b + 32 + 32 * h + l0), hm = rfk_ld32_a2(b + l0);
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    int ql = (q >> (8 * j + 2 * s)) & 3, hb = (hm >> (8 * j + k)) & 1;
                    v[l0 + j] = dl * (float)(ql - (hb ? 0 : 4));
                }
            }
        }
    }
};

/* The 6-bit scale and min of sub-block j of Q4_K / Q5_K (see quant-impl.h). */
static __device__ __forceinline__ void rfk_k4_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

template <> struct rfk_q<12> { /* Q4_K */
    static constexpr int blck = 256, bytes = 144;
    static constexpr bool has_vdot = true;
    static constexpr bool has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + (c / 8) * 144;
        const int sb = (int)(c % 8);
        int sc, mn;
        rfk_k4_scale_min(b + 4, sb, &sc, &mn);
        w.q = (int)((rfk_ld32_a4(b + 16 + 32 * (sb / 2) + 4 * k) >> (4 * (sb % 2))) & 0x0F0F0F0Fu);
        w.d = rfk_ldh(b) * (float)sc;
        w.m = k == 0 ? rfk_ldh(b + 2) * (float)mn : 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + (c / 8) * 144;
        const int sb = (int)(c % 8);
        int sc, mn;
        rfk_k4_scale_min(b + 4, sb, &sc, &mn);
        const float dl = rfk_ldh(b) * (float)sc, ml = rfk_ldh(b + 2) * (float)mn;
        const uint32_t q = rfk_ld32_a4(b + 16 + 32 * (sb / 2) + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = dl * (float)((q >> (8 * i + 4 * (sb % 2))) & 0x0F) - ml;
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + (c / 8) * 144;
        const int sb = (int)(c % 8), shift = 4 * (sb % 2);
        int sc, mn;
        rfk_k4_scale_min(b + 4, sb, &sc, &mn);
        const float dl = rfk_ldh(b) * (float)sc, ml = rfk_ldh(b + 2) * (float)mn;
        const uint8_t *qs = b + 16 + 32 * (sb / 2);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t q = rfk_ld32_a4(qs + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) v[4 * i + j] = dl * (float)((q >> (8 * j + shift)) & 0x0F) - ml;
        }
    }
};

template <> struct rfk_q<13> { /* Q5_K */
    static constexpr int blck = 256, bytes = 176;
    static constexpr bool has_vdot = true, has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + (c / 8) * 176;
        const int sb = (int)(c % 8);
        int sc, mn;
        rfk_k4_scale_min(b + 4, sb, &sc, &mn);
        const uint32_t nib = (rfk_ld32_a4(b + 48 + 32 * (sb / 2) + 4 * k) >> (4 * (sb % 2))) & 0x0F0F0F0Fu;
        w.q = (int)(nib | (((rfk_ld32_a4(b + 16 + 4 * k) >> sb) & 0x01010101u) << 4));
        w.d = rfk_ldh(b) * (float)sc;
        w.m = k == 0 ? rfk_ldh(b + 2) * (float)mn : 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + (c / 8) * 176;
        const int sb = (int)(c % 8);
        int sc, mn;
        rfk_k4_scale_min(b + 4, sb, &sc, &mn);
        const float dl = rfk_ldh(b) * (float)sc, ml = rfk_ldh(b + 2) * (float)mn;
        const uint32_t q = rfk_ld32_a4(b + 48 + 32 * (sb / 2) + 4 * k), qh = rfk_ld32_a4(b + 16 + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int x = ((q >> (8 * i + 4 * (sb % 2))) & 0x0F) | (((qh >> (8 * i + sb)) & 1) << 4);
            v[i] = dl * (float)x - ml;
        }
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + (c / 8) * 176;
        const int sb = (int)(c % 8), shift = 4 * (sb % 2);
        int sc, mn;
        rfk_k4_scale_min(b + 4, sb, &sc, &mn);
        const float dl = rfk_ldh(b) * (float)sc, ml = rfk_ldh(b + 2) * (float)mn;
        const uint8_t *qs = b + 48 + 32 * (sb / 2);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t q = rfk_ld32_a4(qs + 4 * i), qh = rfk_ld32_a4(b + 16 + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int x = ((q >> (8 * j + shift)) & 0x0F) | (((qh >> (8 * j + sb)) & 1) << 4);
                v[4 * i + j] = dl * (float)x - ml;
            }
        }
    }
};

template <> struct rfk_q<14> { /* Q6_K */
    static constexpr int blck = 256, bytes = 210;
    /* The scale changes every 16 elements, so the -32 offset is taken per
     * lane (o, a second dot against ones) instead of from the chunk sum. */
    static constexpr bool has_vdot = true;
    static constexpr bool has_o = true;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + (c / 8) * 210;
        const int kk = (int)(c % 8), h = kk / 4, t = kk % 4;
        const uint32_t lo = rfk_ld32_a2(b + 64 * h + 32 * (t % 2) + 4 * k), hi = rfk_ld32_a2(b + 128 + 32 * h + 4 * k);
        w.q = (int)(((lo >> (4 * (t / 2))) & 0x0F0F0F0Fu) | (((hi >> (2 * t)) & 0x03030303u) << 4));
        w.d = rfk_ldh(b + 208) * (float)(int8_t)b[192 + 2 * kk + k / 4];
        w.o = -32.0f * w.d;
        w.m = 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + (c / 8) * 210;
        const int kk = (int)(c % 8), h = kk / 4, t = kk % 4;
        const float dl = rfk_ldh(b + 208) * (float)(int8_t)b[192 + 2 * kk + k / 4];
        const uint32_t lo = rfk_ld32_a2(b + 64 * h + 32 * (t % 2) + 4 * k), hi = rfk_ld32_a2(b + 128 + 32 * h + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int q = ((lo >> (8 * i + 4 * (t / 2))) & 0x0F) | (((hi >> (8 * i + 2 * t)) & 3) << 4);
            v[i] = dl * (float)(q - 32);
        }
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + (c / 8) * 210;
        const int k = (int)(c % 8), h = k / 4, t = k % 4;
        const float d = rfk_ldh(b + 208);
        const uint8_t *ql = b + 64 * h + 32 * (t % 2), *qh = b + 128 + 32 * h;
        const int lshift = 4 * (t / 2), hshift = 2 * t;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const float dl = d * (float)(int8_t)b[192 + 2 * k + half];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int l0 = 16 * half + 4 * i;
                uint32_t lo = rfk_ld32_a2(ql + l0), hi = rfk_ld32_a2(qh + l0);
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    int q = ((lo >> (8 * j + lshift)) & 0x0F) | (((hi >> (8 * j + hshift)) & 3) << 4);
                    v[l0 + j] = dl * (float)(q - 32);
                }
            }
        }
    }
};

template <> struct rfk_q<20> { /* IQ4_NL */
    static constexpr int blck = 32, bytes = 18;
    static constexpr bool has_vdot = true, has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + c * 18;
        w.q = rfk_iq4_pack(rfk_ld32_a2(b + 2 + 4 * (k % 4)) >> (4 * (k / 4)));
        w.d = rfk_ldh(b);
        w.m = 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + c * 18;
        const float d = rfk_ldh(b);
        const uint32_t q = rfk_ld32_a2(b + 2 + 4 * (k % 4));
        const int sh = 4 * (k / 4);
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = d * (float)rfk_iq4nl_values[(q >> (8 * i + sh)) & 0x0F];
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + c * 18;
        const float d = rfk_ldh(b);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = rfk_ld32_a2(b + 2 + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int byte = (q >> (8 * j)) & 0xFF;
                v[4 * i + j] = d * (float)rfk_iq4nl_values[byte & 0x0F];
                v[16 + 4 * i + j] = d * (float)rfk_iq4nl_values[byte >> 4];
            }
        }
    }
};

template <> struct rfk_q<23> { /* IQ4_XS */
    static constexpr int blck = 256, bytes = 136;
    static constexpr bool has_vdot = true, has_o = false;
    static __device__ __forceinline__ void wq(const uint8_t *row, int64_t c, int k, rfk_wq &w) {
        const uint8_t *b = row + (c / 8) * 136;
        const int s = (int)(c % 8);
        const int sh2 = *(const uint16_t *)(b + 2);
        const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 0x0F) | (((sh2 >> (2 * s)) & 3) << 4);
        w.q = rfk_iq4_pack(rfk_ld32_a4(b + 8 + 16 * s + 4 * (k % 4)) >> (4 * (k / 4)));
        w.d = rfk_ldh(b) * (float)(ls - 32);
        w.m = 0.0f;
    }
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint8_t *b = row + (c / 8) * 136;
        const int s = (int)(c % 8);
        const int sh2 = *(const uint16_t *)(b + 2);
        const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 0x0F) | (((sh2 >> (2 * s)) & 3) << 4);
        const float dl = rfk_ldh(b) * (float)(ls - 32);
        const uint32_t q = rfk_ld32_a4(b + 8 + 16 * s + 4 * (k % 4));
        const int sh = 4 * (k / 4);
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = dl * (float)rfk_iq4nl_values[(q >> (8 * i + sh)) & 0x0F];
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint8_t *b = row + (c / 8) * 136;
        const int s = (int)(c % 8);
        const int sh = *(const uint16_t *)(b + 2);
        const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 0x0F) | (((sh >> (2 * s)) & 3) << 4);
        const float dl = rfk_ldh(b) * (float)(ls - 32);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = rfk_ld32_a4(b + 8 + 16 * s + 4 * i);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int byte = (q >> (8 * j)) & 0xFF;
                v[4 * i + j] = dl * (float)rfk_iq4nl_values[byte & 0x0F];
                v[16 + 4 * i + j] = dl * (float)rfk_iq4nl_values[byte >> 4];
            }
        }
    }
};

template <> struct rfk_q<0> { /* F32 */
    static constexpr int blck = 1, bytes = 4;
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const float4 f = *(const float4 *)(row + (32 * c + 4 * k) * 4);
        v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const float4 *p = (const float4 *)(row + c * 128);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 f = p[i];
            v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
        }
    }
};

template <> struct rfk_q<1> { /* F16 */
    static constexpr int blck = 1, bytes = 2;
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint2 u = *(const uint2 *)(row + (32 * c + 4 * k) * 2);
        v[0] = rfk_h2f((unsigned short)(u.x & 0xFFFF)), v[1] = rfk_h2f((unsigned short)(u.x >> 16));
        v[2] = rfk_h2f((unsigned short)(u.y & 0xFFFF)), v[3] = rfk_h2f((unsigned short)(u.y >> 16));
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint4 *p = (const uint4 *)(row + c * 64);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 u = p[i];
            uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                v[8 * i + 2 * j] = rfk_h2f((unsigned short)(w[j] & 0xFFFF));
                v[8 * i + 2 * j + 1] = rfk_h2f((unsigned short)(w[j] >> 16));
            }
        }
    }
};

template <> struct rfk_q<30> { /* BF16: the top half of a float */
    static constexpr int blck = 1, bytes = 2;
    static __device__ __forceinline__ void quad(const uint8_t *row, int64_t c, int k, float v[4]) {
        const uint2 u = *(const uint2 *)(row + (32 * c + 4 * k) * 2);
        v[0] = __uint_as_float(u.x << 16), v[1] = __uint_as_float(u.x & 0xFFFF0000u);
        v[2] = __uint_as_float(u.y << 16), v[3] = __uint_as_float(u.y & 0xFFFF0000u);
    }
    static __device__ __forceinline__ void chunk(const uint8_t *row, int64_t c, float v[32]) {
        const uint4 *p = (const uint4 *)(row + c * 64);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 u = p[i];
            uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                v[8 * i + 2 * j] = __uint_as_float(w[j] << 16);
                v[8 * i + 2 * j + 1] = __uint_as_float(w[j] & 0xFFFF0000u);
            }
        }
    }
};

/* Dot of rfk_wq w with four q8 activations xq of a chunk whose scale is
 * xd.x, xd.y = xd.x * (sum of the chunk's 32 int8). */
template <typename Q> static __device__ __forceinline__ float rfk_vdot(const rfk_wq &w, int xq, float2 xd) {
    float f = w.d * (float)rfk_dp4a(w.q, xq, 0);
    if constexpr (Q::has_o) f += w.o * (float)rfk_dp4a(0x01010101, xq, 0);
    return xd.x * f - w.m * xd.y;
}

/* Whether rfk_q<T> has the integer (q8 activation) dot. */
template <typename Q, typename = void> struct rfk_has_vdot {
    static constexpr bool value = false;
};
template <typename Q> struct rfk_has_vdot<Q, decltype((void)Q::has_vdot)> {
    static constexpr bool value = Q::has_vdot;
};

/* Every type above, for the per-type tables in the .cu files:
 * X(type id, name). */
#define RFK_FOR_EACH_TYPE(X)                                                                       \
    X(0, F32) X(1, F16) X(30, BF16) X(2, Q4_0) X(3, Q4_1) X(6, Q5_0) X(7, Q5_1) X(8, Q8_0) X(10, Q2_K) \
        X(11, Q3_K) X(12, Q4_K) X(13, Q5_K) X(14, Q6_K) X(20, IQ4_NL) X(23, IQ4_XS)
#define RFK_N_TYPES 15

#endif
