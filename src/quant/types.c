/*
 * types.c - the type table: name, block geometry and converters of every
 * GGUF tensor type, indexed by its on-disk id. Retired ids have name NULL.
 */
#include "quant.h"
#include "quant-impl.h"

#include <string.h>
#include <strings.h>

#define QK RF_QK_K

/* Designated initializers keep each row next to its id. Converters are
 * defined in dequant.c, dequant-iq.c and quantize.c; NULL means "not
 * available".
 *
 * rmse_budget: RMSE(dequant(quant(x)) - x) / RMS(x) on N(0,1) data, set to
 * about 1.2x the value measured with the reference quantizers (mean over
 * 30 rows of 2048 values; the per-row spread is within +-5%):
 *
 *   type     measured  budget     type     measured  budget
 *   F16      0.00021   0.00025    Q2_K     0.2602    0.313
 *   BF16     0.00165   0.002      Q3_K     0.1436    0.173
 *   Q4_0     0.0861    0.104      Q4_K     0.0697    0.084
 *   Q4_1     0.0778    0.094      Q5_K     0.0345    0.042
 *   Q5_0     0.0427    0.052      Q6_K     0.0164    0.020
 *   Q5_1     0.0378    0.046      Q8_K     0.00695   0.0084
 *   Q8_0     0.00534   0.0065     IQ4_NL   0.0731    0.088
 *   Q8_1     0.00534   0.0065     IQ4_XS   0.0740    0.089
 *   MXFP4    0.1153    0.139      TQ1_0    0.803     0.97
 *                                 TQ2_0    0.803     0.97
 *
 * F32 is an exact copy (budget 0). The ternary types are that poor on
 * Gaussian data by design: gguf's quantizer, which ours matches byte for
 * byte, scales by the block's absmax, so most values round to 0; the
 * formats are meant for weights trained ternary. */
static const rf_type_info rf_type_table[RF_TYPE_COUNT] = {
    [RF_TYPE_F32]     = {"F32", 1, 4, false, true, rf_deq_f32, rf_qnt_f32, 0.0f},
    [RF_TYPE_F16]     = {"F16", 1, 2, false, true, rf_deq_f16, rf_qnt_f16, 0.00025f},
    [RF_TYPE_Q4_0]    = {"Q4_0", 32, 18, true, false, rf_deq_q4_0, rf_qnt_q4_0, 0.104f},
    [RF_TYPE_Q4_1]    = {"Q4_1", 32, 20, true, false, rf_deq_q4_1, rf_qnt_q4_1, 0.094f},
    [RF_TYPE_Q5_0]    = {"Q5_0", 32, 22, true, false, rf_deq_q5_0, rf_qnt_q5_0, 0.052f},
    [RF_TYPE_Q5_1]    = {"Q5_1", 32, 24, true, false, rf_deq_q5_1, rf_qnt_q5_1, 0.046f},
    [RF_TYPE_Q8_0]    = {"Q8_0", 32, 34, true, false, rf_deq_q8_0, rf_qnt_q8_0, 0.0065f},
    [RF_TYPE_Q8_1]    = {"Q8_1", 32, 36, true, false, rf_deq_q8_1, rf_qnt_q8_1, 0.0065f},
    [RF_TYPE_Q2_K]    = {"Q2_K", QK, 84, true, false, rf_deq_q2_k, rf_qnt_q2_k, 0.313f},
    [RF_TYPE_Q3_K]    = {"Q3_K", QK, 110, true, false, rf_deq_q3_k, rf_qnt_q3_k, 0.173f},
    [RF_TYPE_Q4_K]    = {"Q4_K", QK, 144, true, false, rf_deq_q4_k, rf_qnt_q4_k, 0.084f},
    [RF_TYPE_Q5_K]    = {"Q5_K", QK, 176, true, false, rf_deq_q5_k, rf_qnt_q5_k, 0.042f},
    [RF_TYPE_Q6_K]    = {"Q6_K", QK, 210, true, false, rf_deq_q6_k, rf_qnt_q6_k, 0.020f},
    [RF_TYPE_Q8_K]    = {"Q8_K", QK, 292, true, false, rf_deq_q8_k, rf_qnt_q8_k, 0.0084f},
    [RF_TYPE_IQ2_XXS] = {"IQ2_XXS", QK, 66, true, false, rf_deq_iq2_xxs, NULL, 0.0f},
    [RF_TYPE_IQ2_XS]  = {"IQ2_XS", QK, 74, true, false, rf_deq_iq2_xs, NULL, 0.0f},
    [RF_TYPE_IQ3_XXS] = {"IQ3_XXS", QK, 98, true, false, rf_deq_iq3_xxs, NULL, 0.0f},
    [RF_TYPE_IQ1_S]   = {"IQ1_S", QK, 50, true, false, rf_deq_iq1_s, NULL, 0.0f},
    [RF_TYPE_IQ4_NL]  = {"IQ4_NL", 32, 18, true, false, rf_deq_iq4_nl, rf_qnt_iq4_nl, 0.088f},
    [RF_TYPE_IQ3_S]   = {"IQ3_S", QK, 110, true, false, rf_deq_iq3_s, NULL, 0.0f},
    [RF_TYPE_IQ2_S]   = {"IQ2_S", QK, 82, true, false, rf_deq_iq2_s, NULL, 0.0f},
    [RF_TYPE_IQ4_XS]  = {"IQ4_XS", QK, 136, true, false, rf_deq_iq4_xs, rf_qnt_iq4_xs, 0.089f},
    [RF_TYPE_I8]      = {"I8", 1, 1, false, false, NULL, NULL, 0.0f},
    [RF_TYPE_I16]     = {"I16", 1, 2, false, false, NULL, NULL, 0.0f},
    [RF_TYPE_I32]     = {"I32", 1, 4, false, false, NULL, NULL, 0.0f},
    [RF_TYPE_I64]     = {"I64", 1, 8, false, false, NULL, NULL, 0.0f},
    [RF_TYPE_F64]     = {"F64", 1, 8, false, true, rf_deq_f64, NULL, 0.0f},
    [RF_TYPE_IQ1_M]   = {"IQ1_M", QK, 56, true, false, rf_deq_iq1_m, NULL, 0.0f},
    [RF_TYPE_BF16]    = {"BF16", 1, 2, false, true, rf_deq_bf16, rf_qnt_bf16, 0.002f},
    [RF_TYPE_TQ1_0]   = {"TQ1_0", QK, 54, true, false, rf_deq_tq1_0, rf_qnt_tq1_0, 0.97f},
    [RF_TYPE_TQ2_0]   = {"TQ2_0", QK, 66, true, false, rf_deq_tq2_0, rf_qnt_tq2_0, 0.97f},
    [RF_TYPE_MXFP4]   = {"MXFP4", 32, 17, true, false, rf_deq_mxfp4, rf_qnt_mxfp4, 0.139f},
    [RF_TYPE_NVFP4]   = {"NVFP4", 64, 36, true, false, rf_deq_nvfp4, NULL, 0.0f},
    [RF_TYPE_Q1_0]    = {"Q1_0", 128, 18, true, false, rf_deq_q1_0, NULL, 0.0f},
};
_Static_assert(RF_ARRAY_LEN(rf_type_table) == RF_TYPE_COUNT, "type table must cover every id");

const rf_type_info *rf_type_get(uint32_t t) {
    if (t >= RF_TYPE_COUNT || rf_type_table[t].name == NULL) return NULL;
    return &rf_type_table[t];
}

const char *rf_type_name(uint32_t t) {
    const rf_type_info *ti = rf_type_get(t);
    return ti ? ti->name : "?";
}

bool rf_type_from_name(const char *name, rf_type *out) {
    for (uint32_t t = 0; t < RF_TYPE_COUNT; t++) {
        if (rf_type_table[t].name && strcasecmp(rf_type_table[t].name, name) == 0) {
            *out = (rf_type)t;
            return true;
        }
    }
    return false;
}

size_t rf_row_size(uint32_t t, int64_t n) {
    const rf_type_info *ti = rf_type_get(t);
    if (!ti || n < 0 || n % ti->blck_size != 0) return 0;
    uint64_t bytes;
    if (!rf_mul_u64((uint64_t)(n / ti->blck_size), ti->type_size, &bytes) || bytes > SIZE_MAX) return 0;
    return (size_t)bytes;
}

rf_status rf_dequantize_row(uint32_t t, const void *src, float *dst, int64_t n) {
    const rf_type_info *ti = rf_type_get(t);
    if (!ti || n < 0 || n % ti->blck_size != 0) return RF_E_INVAL;
    if (!ti->to_float) return RF_E_UNSUPPORTED;
    ti->to_float(src, dst, n);
    return RF_OK;
}

rf_status rf_quantize_row(uint32_t t, const float *src, void *dst, int64_t n) {
    const rf_type_info *ti = rf_type_get(t);
    if (!ti || n < 0 || n % ti->blck_size != 0) return RF_E_INVAL;
    if (!ti->from_float) return RF_E_UNSUPPORTED;
    ti->from_float(src, dst, n);
    return RF_OK;
}
