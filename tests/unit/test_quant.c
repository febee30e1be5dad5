/*
 * test_quant.c - unit tests of src/quant: the type table, name lookup, row
 * sizes, the half/bfloat16 conversions (exhaustive), the generated tables,
 * a few hand-computed blocks, and every reference quantizer against its
 * error budget on fresh random data. Bit-exactness against the gguf package
 * is tested in tests/ref/test_quant.py.
 */
#include "harness.h"
#include "quant/iq-tables.h"
#include "quant/quant.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

static bool is_int_type(uint32_t t) {
    return t == RF_TYPE_I8 || t == RF_TYPE_I16 || t == RF_TYPE_I32 || t == RF_TYPE_I64;
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- the type table ------------------------------------------------------ */

static void test_table_sanity(void) {
    static const uint32_t retired[] = {4, 5, 31, 32, 33, 36, 37, 38};
    for (size_t i = 0; i < RF_ARRAY_LEN(retired); i++) {
        CHECK(rf_type_get(retired[i]) == NULL);
        CHECK(strcmp(rf_type_name(retired[i]), "?") == 0);
    }
    CHECK(rf_type_get(RF_TYPE_COUNT) == NULL);
    CHECK(rf_type_get(UINT32_MAX) == NULL);

    int valid = 0;
    for (uint32_t t = 0; t < RF_TYPE_COUNT; t++) {
        const rf_type_info *ti = rf_type_get(t);
        if (!ti) continue;
        valid++;
        CHECK_MSG(ti->blck_size > 0 && ti->type_size > 0, "%s", ti->name);
        CHECK_MSG((ti->to_float == NULL) == is_int_type(t), "%s: to_float", ti->name);
        /* quantized types come in whole blocks of 32 or 256 (64/128 for the fp4/1-bit ones) */
        if (ti->is_quantized) CHECK_MSG(ti->blck_size >= 32 && RF_QK_K % ti->blck_size == 0, "%s", ti->name);
        else CHECK_MSG(ti->blck_size == 1, "%s", ti->name);
        /* a quantizer has a budget; only the exact F32 copy has none */
        if (ti->from_float) CHECK_MSG((ti->rmse_budget > 0) == (t != RF_TYPE_F32), "%s", ti->name);
        else CHECK_MSG(ti->rmse_budget == 0, "%s", ti->name);
        CHECK_MSG(!ti->is_float || !ti->is_quantized, "%s", ti->name);
    }
    CHECK(valid == 34); /* every id of gguf's GGMLQuantizationType */

    /* a few sizes worth pinning here (all are checked against gguf in Python) */
    CHECK(rf_type_get(RF_TYPE_Q4_K)->type_size == 144);
    CHECK(rf_type_get(RF_TYPE_Q8_1)->type_size == 36); /* ggml's layout, not gguf-py's 40 */
    CHECK(rf_type_get(RF_TYPE_Q8_K)->type_size == 292);
    CHECK(rf_type_get(RF_TYPE_IQ1_M)->type_size == 56);
    CHECK(rf_type_get(RF_TYPE_NVFP4)->blck_size == 64);
}

static void test_type_names(void) {
    for (uint32_t t = 0; t < RF_TYPE_COUNT; t++) {
        const rf_type_info *ti = rf_type_get(t);
        if (!ti) continue;
        rf_type got = RF_TYPE_COUNT;
        CHECK_MSG(rf_type_from_name(ti->name, &got) && got == (rf_type)t, "%s", ti->name);
        char lower[32];
        size_t i = 0;
        for (; ti->name[i] && i + 1 < sizeof lower; i++) lower[i] = (char)tolower((unsigned char)ti->name[i]);
        lower[i] = '\0';
        got = RF_TYPE_COUNT;
        CHECK_MSG(rf_type_from_name(lower, &got) && got == (rf_type)t, "%s", lower);
        CHECK(strcmp(rf_type_name(t), ti->name) == 0);
    }
    static const char *bad[] = {"", "?", "Q4", "Q4_K_M", "q4_0 ", "F8", "IQ2"};
    for (size_t i = 0; i < RF_ARRAY_LEN(bad); i++) {
        rf_type got = RF_TYPE_F16;
        CHECK_MSG(!rf_type_from_name(bad[i], &got) && got == RF_TYPE_F16, "'%s'", bad[i]);
    }
}

static void test_row_size(void) {
    CHECK(rf_row_size(RF_TYPE_Q4_0, 32) == 18);
    CHECK(rf_row_size(RF_TYPE_Q4_0, 4096) == 128 * 18);
    CHECK(rf_row_size(RF_TYPE_Q4_0, 0) == 0);
    CHECK(rf_row_size(RF_TYPE_Q4_0, 31) == 0);
    CHECK(rf_row_size(RF_TYPE_Q4_0, 33) == 0);
    CHECK(rf_row_size(RF_TYPE_Q4_0, -32) == 0);
    CHECK(rf_row_size(RF_TYPE_Q4_K, 128) == 0);
    CHECK(rf_row_size(RF_TYPE_Q4_K, 512) == 288);
    CHECK(rf_row_size(RF_TYPE_NVFP4, 64) == 36);
    CHECK(rf_row_size(RF_TYPE_F32, 3) == 12);
    CHECK(rf_row_size(4, 32) == 0);            /* retired id */
    CHECK(rf_row_size(RF_TYPE_COUNT, 32) == 0);
    /* overflow: 8 * (2^63 - 1) bytes does not fit 64 bits */
    CHECK(rf_row_size(RF_TYPE_F64, INT64_MAX) == 0);
    CHECK(rf_row_size(RF_TYPE_I64, INT64_MAX) == 0);
    /* the largest F32 row that fits still does */
    CHECK(rf_row_size(RF_TYPE_F32, INT64_MAX / 4) == (size_t)(INT64_MAX / 4) * 4);
}

/* ---- half and bfloat16 --------------------------------------------------- */

static bool f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0; }

static void test_fp16_exhaustive_round_trip(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        const float f = rf_fp16_to_fp32((uint16_t)h);
        if (f16_is_nan((uint16_t)h)) {
            if (!isnan(f) || !f16_is_nan(rf_fp32_to_fp16(f))) bad++;
            continue;
        }
        if (rf_fp32_to_fp16(f) != h) bad++;
        /* the value is exact: compare with sign * mantissa * 2^exp */
        const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
        double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(m + 1024, e - 25);
        if (h & 0x8000) v = -v;
        if ((double)f != v || !!signbit(f) != !!(h & 0x8000)) bad++;
    }
    CHECK_MSG(bad == 0, "%d halves fail", bad);
}

/* Every midpoint between neighbouring halves (exact in float) rounds to the
 * even one, and one float ulp either side rounds to the nearer one. */
static void test_fp16_round_to_nearest_even(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x7C00; h++) {
        for (uint32_t sign = 0; sign <= 0x8000; sign += 0x8000) {
            const uint16_t lo = (uint16_t)(h | sign), hi = (uint16_t)((h + 1) | sign);
            /* above 65504 the next "half" is 65536, which rounds to inf */
            const float flo = rf_fp16_to_fp32(lo);
            const float fhi = h + 1 == 0x7C00 ? (sign ? -65536.0f : 65536.0f) : rf_fp16_to_fp32(hi);
            const float mid = (flo + fhi) * 0.5f;
            const uint16_t even = (h & 1) ? hi : lo;
            if (rf_fp32_to_fp16(mid) != even) bad++;
            if (rf_fp32_to_fp16(nextafterf(mid, flo)) != lo) bad++;
            if (rf_fp32_to_fp16(nextafterf(mid, fhi)) != hi) bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d rounding cases fail", bad);

    CHECK(rf_fp32_to_fp16(1.0f) == 0x3C00);
    CHECK(rf_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3C00);     /* tie, to even */
    CHECK(rf_fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3C02); /* tie, to even */
    CHECK(rf_fp32_to_fp16(65504.0f) == 0x7BFF);
    CHECK(rf_fp32_to_fp16(65519.996f) == 0x7BFF);
    CHECK(rf_fp32_to_fp16(65520.0f) == 0x7C00); /* tie at the top goes to inf */
    CHECK(rf_fp32_to_fp16(-1e10f) == 0xFC00);
    CHECK(rf_fp32_to_fp16(0x1p-25f) == 0x0000);     /* half the smallest subnormal: to even 0 */
    CHECK(rf_fp32_to_fp16(0x1.000002p-25f) == 0x0001);
    CHECK(rf_fp32_to_fp16(3 * 0x1p-25f) == 0x0002);
    CHECK(rf_fp32_to_fp16(1023.5f * 0x1p-24f) == 0x0400); /* subnormal rounds up to the smallest normal */
    CHECK(rf_fp32_to_fp16(1e-30f) == 0x0000);
    CHECK(rf_fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(rf_fp32_to_fp16(INFINITY) == 0x7C00);
    CHECK(f16_is_nan(rf_fp32_to_fp16(NAN)));
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        const float f = rf_bf16_to_fp32((uint16_t)h);
        if (f2u(f) != h << 16) bad++;
        const bool nan = (h & 0x7F80) == 0x7F80 && (h & 0x7F);
        if (nan ? !isnan(rf_bf16_to_fp32(rf_fp32_to_bf16(f))) : rf_fp32_to_bf16(f) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d bf16 values fail", bad);
    CHECK(rf_fp32_to_bf16(u2f(0x3F808000)) == 0x3F80); /* tie, to even */
    CHECK(rf_fp32_to_bf16(u2f(0x3F818000)) == 0x3F82); /* tie, to even */
    CHECK(rf_fp32_to_bf16(u2f(0x3F808001)) == 0x3F81);
}

/* ---- generated tables ----------------------------------------------------- */

static void test_iq_tables(void) {
    for (int i = 0; i < 128; i++) {
        const uint8_t s = rf_iq2_ksigns[i];
        CHECK_MSG((s & 0x7F) == i && __builtin_popcount(s) % 2 == 0, "ksigns[%d]", i);
    }
    static const struct {
        const uint64_t *grid;
        int rows;
    } g2[] = {{rf_iq2xxs_grid, 256}, {rf_iq2xs_grid, 512}, {rf_iq2s_grid, 1024}};
    for (size_t k = 0; k < RF_ARRAY_LEN(g2); k++) {
        int bad = 0;
        for (int r = 0; r < g2[k].rows; r++)
            for (int j = 0; j < 8; j++) {
                const uint8_t v = rf_grid_u8(g2[k].grid[r], j);
                bad += v != 0x08 && v != 0x19 && v != 0x2B;
            }
        CHECK_MSG(bad == 0, "iq2 grid %zu", k);
        /* rows are distinct codewords */
        for (int r = 1; r < g2[k].rows; r++) CHECK(g2[k].grid[r] != g2[k].grid[r - 1]);
    }
    int bad = 0;
    for (int r = 0; r < 2048; r++)
        for (int j = 0; j < 8; j++) {
            const int8_t v = rf_grid_i8(rf_iq1s_grid[r], j);
            bad += v < -1 || v > 1;
        }
    CHECK(bad == 0);
    for (int r = 0; r < 512; r++)
        for (int j = 0; j < 4; j++) {
            const uint8_t v = (uint8_t)(rf_iq3s_grid[r] >> (8 * j));
            CHECK(v % 2 == 1 && v <= 15);
            if (r < 256) CHECK((uint8_t)(rf_iq3xxs_grid[r] >> (8 * j)) <= 0x3E);
        }
    for (int k = 1; k < 16; k++) CHECK(rf_iq4nl_kvalues[k] > rf_iq4nl_kvalues[k - 1]);
    for (int k = 0; k < 8; k++) CHECK(rf_fp4_kvalues[k + 8] == -rf_fp4_kvalues[k]);
}

/* ---- hand-computed blocks -------------------------------------------------- */

static void test_known_blocks(void) {
    float y[256];
    /* Q4_0: d = 0.5, byte j = (j & 15) | (15 - j) << 4 -> y[j] = (j-8)/2, y[j+16] = (7-j)/2 */
    uint8_t q40[18] = {0x00, 0x38}; /* 0x3800 = 0.5 */
    for (int j = 0; j < 16; j++) q40[2 + j] = (uint8_t)(j | (15 - j) << 4);
    CHECK(rf_dequantize_row(RF_TYPE_Q4_0, q40, y, 32) == RF_OK);
    for (int j = 0; j < 16; j++) {
        CHECK(y[j] == 0.5f * (float)(j - 8));
        CHECK(y[j + 16] == 0.5f * (float)(7 - j));
    }
    /* Q8_0 at an odd address: d = -2, q = j - 16 */
    uint8_t buf[1 + 34];
    uint8_t *q80 = buf + 1;
    q80[0] = 0x00;
    q80[1] = 0xC0; /* 0xC000 = -2 */
    for (int j = 0; j < 32; j++) q80[2 + j] = (uint8_t)(int8_t)(j - 16);
    CHECK(rf_dequantize_row(RF_TYPE_Q8_0, q80, y, 32) == RF_OK);
    for (int j = 0; j < 32; j++) CHECK(y[j] == -2.0f * (float)(j - 16));
    /* Q4_K: d = 1, dmin = 1, sub-block k has scale 8k+5 and min 9k (bytes
     * 8-11 and the top bits of 0-7 carry sub-blocks 4-7), all codes 3 */
    uint8_t q4k[144] = {0};
    q4k[1] = 0x3C; /* d = 1 */
    q4k[3] = 0x3C; /* dmin = 1 */
    for (int k = 0; k < 8; k++) {
        const int sc = 8 * k + 5, mn = 9 * k;
        if (k < 4) {
            q4k[4 + k] |= (uint8_t)sc;
            q4k[8 + k] |= (uint8_t)mn;
        } else {
            q4k[12 + k - 4] = (uint8_t)((sc & 15) | (mn & 15) << 4);
            q4k[4 + k - 4] |= (uint8_t)((sc >> 4) << 6);
            q4k[8 + k - 4] |= (uint8_t)((mn >> 4) << 6);
        }
    }
    memset(q4k + 16, 0x33, 128);
    CHECK(rf_dequantize_row(RF_TYPE_Q4_K, q4k, y, 256) == RF_OK);
    for (int e = 0; e < 256; e++) CHECK_MSG(y[e] == (float)(3 * (8 * (e / 32) + 5) - 9 * (e / 32)), "q4_k %d", e);
    /* IQ4_NL: d = 1, codes 0..15 then 15..0 -> the table itself */
    uint8_t nl[18] = {0x00, 0x3C};
    for (int j = 0; j < 16; j++) nl[2 + j] = (uint8_t)(j | (15 - j) << 4);
    CHECK(rf_dequantize_row(RF_TYPE_IQ4_NL, nl, y, 32) == RF_OK);
    for (int j = 0; j < 16; j++) CHECK(y[j] == rf_iq4nl_kvalues[j] && y[16 + j] == rf_iq4nl_kvalues[15 - j]);
    /* MXFP4: e = 128 -> half scale 1; code 7 is E2M1 6.0, doubled 12 */
    uint8_t mx[17] = {128};
    memset(mx + 1, 0x7F, 16);
    CHECK(rf_dequantize_row(RF_TYPE_MXFP4, mx, y, 32) == RF_OK);
    for (int j = 0; j < 32; j++) CHECK(y[j] == (j < 16 ? -12.0f : 12.0f));
    /* Q1_0: d = 1.5, alternating bits */
    uint8_t q1[18] = {0x00, 0x3E};
    memset(q1 + 2, 0x55, 16);
    CHECK(rf_dequantize_row(RF_TYPE_Q1_0, q1, y, 128) == RF_OK);
    for (int j = 0; j < 128; j++) CHECK(y[j] == (j % 2 ? -1.5f : 1.5f));
}

/* ---- quantizers --------------------------------------------------------------- */

#define NQ 16384

/* Every quantizer on fresh N(0,1) data: relative RMSE within the budget
 * (and not suspiciously small), the same bytes and floats through
 * unaligned block buffers, and an all-zero super-block decoding to zeros. */
static void test_quantizers_within_budget(void) {
    float *x = rf_malloc(NQ * sizeof(float)), *y = rf_malloc(NQ * sizeof(float));
    uint8_t *q = rf_malloc(NQ * 8 + 1), *q2 = rf_malloc(NQ * 8 + 1);
    float *yu = rf_malloc(NQ * sizeof(float));
    RF_ASSERT(x && y && q && q2 && yu);
    int tested = 0;
    for (uint32_t t = 0; t < RF_TYPE_COUNT; t++) {
        const rf_type_info *ti = rf_type_get(t);
        if (!ti || !ti->from_float) continue;
        tested++;
        for (int i = 0; i < NQ; i++) x[i] = rf_test_randn();
        for (int i = 0; i < 256; i++) x[i] = 0.0f; /* one all-zero super-block */
        const size_t bytes = rf_row_size(t, NQ);
        CHECK(bytes > 0 && bytes <= NQ * 8);
        CHECK(rf_quantize_row(t, x, q, NQ) == RF_OK);
        CHECK(rf_dequantize_row(t, q, y, NQ) == RF_OK);
        double se = 0, ss = 0;
        bool zeros_ok = true;
        for (int i = 0; i < NQ; i++) {
            se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            ss += (double)x[i] * x[i];
            if (i < 256 && y[i] != 0.0f) zeros_ok = false;
        }
        const double rel = sqrt(se / ss);
        printf("  %-7s rmse/rms %.5f  budget %.5f\n", ti->name, rel, (double)ti->rmse_budget);
        CHECK_MSG(rel <= ti->rmse_budget, "%s: %.5f > %.5f", ti->name, rel, (double)ti->rmse_budget);
        if (t != RF_TYPE_F32) CHECK_MSG(rel > ti->rmse_budget / 4, "%s: %.5f suspiciously small", ti->name, rel);
        else CHECK(rel == 0);
        CHECK_MSG(zeros_ok, "%s: zero block", ti->name);

        /* blocks carry no alignment: quantize to and dequantize from an odd
         * address, get the same bytes and floats (and no UBSan report) */
        CHECK(rf_quantize_row(t, x, q2 + 1, NQ) == RF_OK);
        CHECK_MSG(memcmp(q, q2 + 1, bytes) == 0, "%s: output depends on alignment", ti->name);
        CHECK(rf_dequantize_row(t, q2 + 1, yu, NQ) == RF_OK);
        CHECK_MSG(memcmp(y, yu, NQ * sizeof(float)) == 0, "%s: dequant depends on alignment", ti->name);
    }
    CHECK(tested == 20);
    rf_free(x);
    rf_free(y);
    rf_free(q);
    rf_free(q2);
    rf_free(yu);
}

static void test_row_api_errors(void) {
    float x[512] = {0}, y[512];
    uint8_t q[4096];
    CHECK(rf_quantize_row(RF_TYPE_Q4_0, x, q, 31) == RF_E_INVAL);
    CHECK(rf_quantize_row(RF_TYPE_Q4_K, x, q, 32) == RF_E_INVAL);
    CHECK(rf_quantize_row(RF_TYPE_Q4_0, x, q, -32) == RF_E_INVAL);
    CHECK(rf_dequantize_row(RF_TYPE_Q4_0, q, y, 48) == RF_E_INVAL);
    CHECK(rf_dequantize_row(RF_TYPE_Q4_0, q, y, -1) == RF_E_INVAL);
    CHECK(rf_dequantize_row(4, q, y, 32) == RF_E_INVAL); /* retired id */
    CHECK(rf_dequantize_row(1000, q, y, 32) == RF_E_INVAL);
    CHECK(rf_quantize_row(RF_TYPE_COUNT, x, q, 32) == RF_E_INVAL);
    CHECK(rf_dequantize_row(RF_TYPE_I8, q, y, 32) == RF_E_UNSUPPORTED);
    CHECK(rf_quantize_row(RF_TYPE_IQ2_XXS, x, q, 256) == RF_E_UNSUPPORTED);
    CHECK(rf_quantize_row(RF_TYPE_F64, x, q, 256) == RF_E_UNSUPPORTED);
    CHECK(rf_quantize_row(RF_TYPE_Q1_0, x, q, 128) == RF_E_UNSUPPORTED);
    CHECK(rf_quantize_row(RF_TYPE_Q4_0, x, q, 0) == RF_OK);
    CHECK(rf_dequantize_row(RF_TYPE_Q4_K, q, y, 0) == RF_OK);
}

int main(void) {
    RF_RUN(test_table_sanity);
    RF_RUN(test_type_names);
    RF_RUN(test_row_size);
    RF_RUN(test_fp16_exhaustive_round_trip);
    RF_RUN(test_fp16_round_to_nearest_even);
    RF_RUN(test_bf16);
    RF_RUN(test_iq_tables);
    RF_RUN(test_known_blocks);
    RF_RUN(test_quantizers_within_budget);
    RF_RUN(test_row_api_errors);
    return rf_test_summary();
}
