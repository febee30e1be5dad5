/*
 * dispatch.c - which kernel set runs: CPU feature detection (cpuid and
 * xgetbv on x86-64, getauxval on aarch64), the list of compiled-in sets with
 * what each needs, and the choice made once at start-up: the best set this
 * CPU and OS support, unless ROCMFORGE_CPU names one (scalar, avx2, avx512,
 * neon, or ref for the reference op table). A named set the CPU cannot run
 * is refused with a warning and the best one is used instead.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

/* ---- detection ------------------------------------------------------------ */

/* Feature bits; a set lists the ones it needs. */
enum {
    F_AVX2 = 1u << 0, F_FMA = 1u << 1, F_F16C = 1u << 2, F_AVX512F = 1u << 3, F_AVX512BW = 1u << 4,
    F_AVX512VL = 1u << 5, F_AVX512DQ = 1u << 6, F_AVX512VNNI = 1u << 7, F_AVX512BF16 = 1u << 8,
    F_AVXVNNI = 1u << 9, F_AMX = 1u << 10, F_NEON = 1u << 11, F_DOTPROD = 1u << 12, F_I8MM = 1u << 13,
    F_OS_AVX = 1u << 14, F_OS_AVX512 = 1u << 15,
};

static const struct { unsigned bit; const char *name; } feature_names[] = {
    {F_AVX2, "avx2"}, {F_FMA, "fma"}, {F_F16C, "f16c"}, {F_AVX512F, "avx512f"}, {F_AVX512BW, "avx512bw"},
    {F_AVX512VL, "avx512vl"}, {F_AVX512DQ, "avx512dq"}, {F_AVX512VNNI, "avx512vnni"},
    {F_AVX512BF16, "avx512bf16"}, {F_AVXVNNI, "avxvnni"}, {F_AMX, "amx-int8"}, {F_NEON, "neon"},
    {F_DOTPROD, "dotprod"}, {F_I8MM, "i8mm"}, {F_OS_AVX, "os-ymm"}, {F_OS_AVX512, "os-zmm"},
};

#if defined(__x86_64__)
static unsigned detect(char *model, size_t cap) {
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    const unsigned max_leaf = a;
    __get_cpuid(1, &a, &b, &c, &d);
    const bool osxsave = c & (1u << 27);
    if (c & (1u << 12)) f |= F_FMA;
    if (c & (1u << 29)) f |= F_F16C;
    if (osxsave) {
        /* The OS must save the registers: XCR0 bits 1-2 (xmm, ymm) and 5-7
         * (opmask, upper zmm halves, zmm16-31). */
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        if ((lo & 0x6) == 0x6) f |= F_OS_AVX;
        if ((lo & 0xe6) == 0xe6) f |= F_OS_AVX512;
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (b & (1u << 5)) f |= F_AVX2;
        if (b & (1u << 16)) f |= F_AVX512F;
        if (b & (1u << 17)) f |= F_AVX512DQ;
        if (b & (1u << 30)) f |= F_AVX512BW;
        if (b & (1u << 31)) f |= F_AVX512VL;
        if (c & (1u << 11)) f |= F_AVX512VNNI;
        if (d & (1u << 25)) f |= F_AMX;
        __cpuid_count(7, 1, a, b, c, d);
        if (a & (1u << 4)) f |= F_AVXVNNI;
        if (a & (1u << 5)) f |= F_AVX512BF16;
    }
    /* brand string, leaves 0x80000002..4 */
    model[0] = 0;
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004 && cap > 48) {
        unsigned *w = (unsigned *)(void *)model;
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &w[4 * i], &w[4 * i + 1], &w[4 * i + 2], &w[4 * i + 3]);
        model[48] = 0;
    }
    return f;
}
#elif defined(__aarch64__)
/* The kernel sets of src/cpu/arm (declared here: only this file names them). */
extern const rf_cpu_kernels rf_cpu_kernels_neon_i8mm;
extern const rf_cpu_kernels rf_cpu_kernels_neon_dot;
extern const rf_cpu_kernels rf_cpu_kernels_neon;

/* The kernel's hwcaps (asm/hwcap.h): the OS both has the feature and lets
 * user space use it. Advanced SIMD is architecturally mandatory on Linux
 * aarch64, but a kernel can still leave HWCAP_ASIMD out. */
static unsigned detect(char *model, size_t cap) {
    unsigned f = 0;
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & (1ul << 1)) f |= F_NEON;     /* HWCAP_ASIMD */
    if (hw & (1ul << 20)) f |= F_DOTPROD; /* HWCAP_ASIMDDP */
    if (hw2 & (1ul << 13)) f |= F_I8MM;   /* HWCAP2_I8MM */
    /* The part number the kernel reports (MIDR_EL1, readable from user
     * space when HWCAP_CPUID is set) names the core; none: just the ISA. */
    unsigned long midr = 0;
    if (hw & (1ul << 11)) __asm__ volatile("mrs %0, MIDR_EL1" : "=r"(midr)); /* HWCAP_CPUID */
    if (midr) snprintf(model, cap, "aarch64 (implementer 0x%02lx, part 0x%03lx)", (midr >> 24) & 0xff, (midr >> 4) & 0xfff);
    else snprintf(model, cap, "aarch64");
    return f;
}
#else
static unsigned detect(char *model, size_t cap) {
    snprintf(model, cap, "unknown");
    return 0;
}
#endif

/* ---- the sets, best first ------------------------------------------------- */

typedef struct candidate {
    const rf_cpu_kernels *k;
    unsigned needs;
} candidate;

static const candidate candidates[] = {
#if defined(__x86_64__)
    {&rf_cpu_kernels_avx512,
     F_AVX2 | F_FMA | F_F16C | F_AVX512F | F_AVX512BW | F_AVX512VL | F_AVX512DQ | F_AVX512VNNI | F_OS_AVX | F_OS_AVX512},
    {&rf_cpu_kernels_avx2, F_AVX2 | F_FMA | F_F16C | F_OS_AVX},
#endif
#if defined(__aarch64__)
    /* neon-i8mm ranks below neon-dot: on the 4 x 8 GEMM tile its SMMLA
     * step needs zips around it and executed 6-18% more instructions than
     * SDOT (qemu counts, Q4_0/Q4_K/Q6_K), and no Arm hardware has timed it;
     * ROCMFORGE_CPU=neon-i8mm selects it. */
    {&rf_cpu_kernels_neon_dot, F_NEON | F_DOTPROD},
    {&rf_cpu_kernels_neon_i8mm, F_NEON | F_DOTPROD | F_I8MM},
    {&rf_cpu_kernels_neon, F_NEON},
#endif
    {&rf_cpu_kernels_scalar, 0},
};

/* Minimum prefetch lead of the row kernels in bytes (tuning: ROCMFORGE_PF);
 * the kernels prefetch one group of 8 rows ahead, at least this far.
 * Measured on a Sapphire Rapids VM, one core streaming rows from DRAM
 * (plain reads there: 13-15 GB/s): with no software prefetch 5.6-8 GB/s;
 * prefetching each row 4 KiB ahead 12-17 GB/s for one row at a time, but
 * 6-14 GB/s once 8 rows are read together; one group ahead, in order:
 * Q4_0 16.9-17.6, Q4_K 17.1-17.7, Q8_0 14-18.7 GB/s (Q6_K 10-11.5,
 * compute-bound). 16-64 KiB leads were no better. */
int rf_cpu_pf_dist = 4096;
int rf_cpu_pf_env = 0;

static struct {
    unsigned features;
    char model[64];
    const rf_cpu_kernels *chosen;
    bool use_ref;
    char why[160];
} g;

static const rf_cpu_kernels *find(const char *name, unsigned features) {
    for (size_t i = 0; i < RF_ARRAY_LEN(candidates); i++)
        if (strcmp(candidates[i].k->name, name) == 0 && (candidates[i].needs & features) == candidates[i].needs)
            return candidates[i].k;
    return NULL;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_once(void) {
    g.features = detect(g.model, sizeof g.model);
    for (size_t i = 0; i < RF_ARRAY_LEN(candidates); i++)
        if ((candidates[i].needs & g.features) == candidates[i].needs) {
            g.chosen = candidates[i].k;
            break;
        }
    snprintf(g.why, sizeof g.why, "best supported");
    const char *pfe = getenv("ROCMFORGE_PF");
    if (pfe && *pfe) {
        rf_cpu_pf_dist = atoi(pfe);
        rf_cpu_pf_env = 1;
    }
    const char *env = getenv("ROCMFORGE_CPU");
    if (env && *env) {
        if (strcmp(env, "ref") == 0) {
            g.use_ref = true;
            snprintf(g.why, sizeof g.why, "ROCMFORGE_CPU=ref: reference op table");
        } else {
            const rf_cpu_kernels *k = find(env, g.features);
            if (k) {
                g.chosen = k;
                snprintf(g.why, sizeof g.why, "ROCMFORGE_CPU=%s", env);
            } else {
                RF_LOGW("ROCMFORGE_CPU=%s: no such kernel set, or this CPU cannot run it; using %s", env,
                        g.chosen->name);
                snprintf(g.why, sizeof g.why, "ROCMFORGE_CPU=%s unavailable, best supported", env);
            }
        }
    }
}

static void init(void) { pthread_once(&g_once, init_once); }

const rf_cpu_kernels *rf_cpu_kernels_by_name(const char *name) {
    init();
    return find(name, g.features);
}

const rf_cpu_kernels *rf_cpu_kernels_best(void) {
    init();
    return g.chosen;
}

bool rf_cpu_use_ref(void) {
    init();
    return g.use_ref;
}

int rf_cpu_kernels_available(const rf_cpu_kernels **out, int cap) {
    init();
    int n = 0;
    for (size_t i = 0; i < RF_ARRAY_LEN(candidates); i++)
        if ((candidates[i].needs & g.features) == candidates[i].needs && n < cap) out[n++] = candidates[i].k;
    return n;
}

void rf_cpu_print_info(FILE *f) {
    init();
    fprintf(f, "cpu:        %s\n", g.model[0] ? g.model : "?");
    fprintf(f, "cores:      %d physical\n", rf_cpu_physical_cores());
    fprintf(f, "features: ");
    for (size_t i = 0; i < RF_ARRAY_LEN(feature_names); i++)
        if (g.features & feature_names[i].bit) fprintf(f, " %s", feature_names[i].name);
    fprintf(f, "\nkernel sets:");
    for (size_t i = 0; i < RF_ARRAY_LEN(candidates); i++) {
        bool ok = (candidates[i].needs & g.features) == candidates[i].needs;
        fprintf(f, " %s%s", candidates[i].k->name, ok ? "" : " (unsupported)");
    }
    fprintf(f, "\nchosen:     %s (%s)\n", g.use_ref ? "ref" : g.chosen->name, g.why);
}
