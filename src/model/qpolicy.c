/*
 * qpolicy.c - quantization targets and the per-tensor type choice.
 *
 * The mixes follow the idea of llama.cpp's (which tensors are most sensitive
 * to quantization error) with rules of our own, documented here:
 *   output.weight             Q6_K in every K mix (it drives every logit)
 *   attn_v, ffn_down          one step up in "more bits" layers: the first
 *                             and last eighth of the layers and every third
 *                             layer between (the layers most sensitive)
 *   *_S mixes                 only the output weight is raised
 *   Q3_K_L                    attn_v, attn_output, ffn_down at Q5_K
 * Plain types apply to every eligible weight, token embedding included.
 */
#include "qpolicy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct mix_def {
    const char *name;
    rf_type base;
    rf_type output;     /* output.weight */
    rf_type sensitive;  /* attn_v / ffn_down in more-bits layers */
    rf_type sensitive_other; /* attn_v / ffn_down elsewhere */
    rf_type attn_output;
    uint32_t file_type;
} mix_def;

#define T(x) RF_TYPE_##x
static const mix_def mixes[] = {
    {"Q3_K_S", T(Q3_K), T(Q6_K), T(Q3_K), T(Q3_K), T(Q3_K), 11},
    {"Q3_K_M", T(Q3_K), T(Q6_K), T(Q5_K), T(Q4_K), T(Q4_K), 12},
    {"Q3_K_L", T(Q3_K), T(Q6_K), T(Q5_K), T(Q5_K), T(Q5_K), 13},
    {"Q4_K_S", T(Q4_K), T(Q6_K), T(Q4_K), T(Q4_K), T(Q4_K), 14},
    {"Q4_K_M", T(Q4_K), T(Q6_K), T(Q6_K), T(Q4_K), T(Q4_K), 15},
    {"Q5_K_S", T(Q5_K), T(Q6_K), T(Q5_K), T(Q5_K), T(Q5_K), 16},
    {"Q5_K_M", T(Q5_K), T(Q6_K), T(Q6_K), T(Q5_K), T(Q5_K), 17},
};

/* general.file_type of a plain target, by type id; 0 = not a file type. */
static const struct { rf_type t; uint32_t ft; } plain_ftypes[] = {
    {T(F32), 0},     {T(F16), 1},    {T(Q4_0), 2},    {T(Q4_1), 3},   {T(Q8_0), 7},
    {T(Q5_0), 8},    {T(Q5_1), 9},   {T(Q2_K), 10},   {T(Q3_K), 12},  {T(Q4_K), 15},
    {T(Q5_K), 17},   {T(Q6_K), 18},  {T(IQ4_NL), 25}, {T(IQ4_XS), 30}, {T(BF16), 32},
    {T(TQ1_0), 36},  {T(TQ2_0), 37}, {T(MXFP4), 38},
};
#undef T

rf_status rf_qtarget_parse(const char *name, rf_qtarget *out, rf_error *err) {
    for (size_t i = 0; i < RF_ARRAY_LEN(mixes); i++) {
        if (strcasecmp(name, mixes[i].name) == 0) {
            *out = (rf_qtarget){mixes[i].name, mixes[i].base, true, mixes[i].file_type};
            return RF_OK;
        }
    }
    rf_type t;
    if (!rf_type_from_name(name, &t))
        return rf_error_set(err, RF_E_NOTFOUND, "unknown quantization type '%s' (see --help)", name);
    const rf_type_info *ti = rf_type_get(t);
    if (!ti->from_float)
        return rf_error_set(err, RF_E_UNSUPPORTED, "type %s has no quantizer (dequantize-only)", ti->name);
    for (size_t i = 0; i < RF_ARRAY_LEN(plain_ftypes); i++) {
        if (plain_ftypes[i].t == t) {
            *out = (rf_qtarget){ti->name, t, false, plain_ftypes[i].ft};
            return RF_OK;
        }
    }
    return rf_error_set(err, RF_E_UNSUPPORTED, "type %s is not a model weight type", ti->name);
}

void rf_qtarget_list(void *file) {
    FILE *f = file;
    fprintf(f, "  plain types:");
    for (size_t i = 0; i < RF_ARRAY_LEN(plain_ftypes); i++) fprintf(f, " %s", rf_type_name(plain_ftypes[i].t));
    fprintf(f, "\n  mixes:      ");
    for (size_t i = 0; i < RF_ARRAY_LEN(mixes); i++) fprintf(f, " %s", mixes[i].name);
    fprintf(f, "\n");
}

/* Layer index from "blk.N.", or -1. */
static int layer_of(const char *name) {
    int n;
    if (sscanf(name, "blk.%d.", &n) == 1) return n;
    return -1;
}

static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static bool has_part(const char *name, const char *part) { return strstr(name, part) != NULL; }

rf_type rf_qpolicy_fallback(rf_type want, int64_t ne0) {
    /* Preferred replacements in order, each with a quantizer; F16 always fits. */
    static const struct { rf_type from; rf_type to[3]; } chains[] = {
        {RF_TYPE_Q2_K, {RF_TYPE_Q4_0, RF_TYPE_Q8_0, RF_TYPE_F16}},
        {RF_TYPE_Q3_K, {RF_TYPE_Q4_0, RF_TYPE_Q8_0, RF_TYPE_F16}},
        {RF_TYPE_Q4_K, {RF_TYPE_Q5_0, RF_TYPE_Q8_0, RF_TYPE_F16}},
        {RF_TYPE_Q5_K, {RF_TYPE_Q5_1, RF_TYPE_Q8_0, RF_TYPE_F16}},
        {RF_TYPE_Q6_K, {RF_TYPE_Q8_0, RF_TYPE_F16, RF_TYPE_F16}},
        {RF_TYPE_IQ4_XS, {RF_TYPE_IQ4_NL, RF_TYPE_Q8_0, RF_TYPE_F16}},
        {RF_TYPE_TQ2_0, {RF_TYPE_Q4_0, RF_TYPE_Q8_0, RF_TYPE_F16}},
    };
    for (size_t i = 0; i < RF_ARRAY_LEN(chains); i++) {
        if (chains[i].from != want) continue;
        for (int k = 0; k < 3; k++)
            if (ne0 % rf_type_get(chains[i].to[k])->blck_size == 0) return chains[i].to[k];
    }
    return RF_TYPE_F16;
}

rf_type rf_qpolicy_choose(const rf_qtarget *tgt, const char *name, uint32_t n_dims, const int64_t *ne,
                          int n_layer, bool *fell_back) {
    *fell_back = false;
    if (n_dims < 2 || has_part(name, "ffn_gate_inp") || strstr(name, ".weight") == NULL)
        return RF_TYPE_F32;
    rf_type want = tgt->base;
    if (tgt->is_mix) {
        const mix_def *m = NULL;
        for (size_t i = 0; i < RF_ARRAY_LEN(mixes); i++)
            if (strcmp(mixes[i].name, tgt->name) == 0) m = &mixes[i];
        RF_ASSERT(m);
        int il = layer_of(name);
        if (strcmp(name, "output.weight") == 0) want = m->output;
        else if (il >= 0 && (has_part(name, "attn_v.") || has_part(name, "ffn_down")))
            want = use_more_bits(il, n_layer) ? m->sensitive : m->sensitive_other;
        else if (il >= 0 && has_part(name, "attn_output.")) want = m->attn_output;
    }
    if (ne[0] % rf_type_get(want)->blck_size != 0) {
        *fell_back = true;
        return rf_qpolicy_fallback(want, ne[0]);
    }
    return want;
}
