/*
 * test_gpu_limits.c - the GPU launch checker (src/gpu/limits.c) with
 * injected device limits: an NVIDIA-like and a CDNA-like device, every
 * dimension one past its limit, zero limits, empty launches, and that the
 * message names the kernel and the dimension. Runs without any GPU runtime.
 */
#include <string.h>

#include "gpu/gpu.h"
#include "harness.h"

static const rf_gpu_limits nv = {{1024, 1024, 64}, 1024, {2147483647, 65535, 65535}, 49152, 65536, 32};
static const rf_gpu_limits cdna = {{1024, 1024, 1024}, 1024, {2147483647, 2147483647, 2147483647}, 65536, 131072, 64};

static rf_gpu_dim3 d3(unsigned x, unsigned y, unsigned z) { return (rf_gpu_dim3){x, y, z}; }

static void test_within_limits(void) {
    char m[256];
    CHECK(rf_gpu_check_launch(&nv, "k", d3(1, 1, 1), d3(1, 1, 1), 0, m, sizeof m) == RF_OK);
    CHECK(m[0] == '\0');
    CHECK(rf_gpu_check_launch(&nv, "k", d3(2147483647u, 65535, 65535), d3(1024, 1, 1), 49152, m, sizeof m) == RF_OK);
    CHECK(rf_gpu_check_launch(&nv, "k", d3(1, 1, 1), d3(16, 16, 4), 0, m, sizeof m) == RF_OK);
    CHECK(rf_gpu_check_launch(&cdna, "k", d3(1, 100000, 1), d3(64, 1, 16), 65536, m, sizeof m) == RF_OK);
    CHECK(rf_gpu_check_launch(&nv, "k", d3(1, 1, 1), d3(32, 1, 1), 0, NULL, 0) == RF_OK);
}

/* Each dimension one past its limit: refused, and the message names the
 * kernel, the dimension, the value and the limit. */
static void test_each_dimension(void) {
    struct { rf_gpu_dim3 g, b; size_t smem; const char *what, *val, *lim; } cases[] = {
        {{1, 1, 1}, {1025, 1, 1}, 0, "block.x", "1025", "1024"},
        {{1, 1, 1}, {1, 1025, 1}, 0, "block.y", "1025", "1024"},
        {{1, 1, 1}, {1, 1, 65}, 0, "block.z", "65", "64"},
        {{1, 1, 1}, {64, 32, 1}, 0, "threads per block", "2048", "1024"},
        {{1, 65536, 1}, {32, 1, 1}, 0, "grid.y", "65536", "65535"},
        {{1, 1, 65536}, {32, 1, 1}, 0, "grid.z", "65536", "65535"},
        {{1, 1, 1}, {32, 1, 1}, 49153, "shared memory", "49153", "49152"},
    };
    for (size_t i = 0; i < RF_ARRAY_LEN(cases); i++) {
        char m[256] = "";
        rf_status st = rf_gpu_check_launch(&nv, "rfk_matmul_q4_0", cases[i].g, cases[i].b, cases[i].smem, m, sizeof m);
        CHECK_MSG(st == RF_E_RANGE, "case %zu (%s): status %d", i, cases[i].what, (int)st);
        CHECK_MSG(strstr(m, "rfk_matmul_q4_0") && strstr(m, cases[i].what) && strstr(m, cases[i].val) &&
                      strstr(m, cases[i].lim),
                  "case %zu: message '%s'", i, m);
    }
    /* grid.x beyond 2^31-1 on a device that allows only that */
    rf_gpu_limits l = nv;
    l.grid[0] = 1000;
    char m[256];
    CHECK(rf_gpu_check_launch(&l, "rfk_rope", d3(1001, 1, 1), d3(64, 1, 1), 0, m, sizeof m) == RF_E_RANGE);
    CHECK(strstr(m, "rfk_rope") && strstr(m, "grid.x") && strstr(m, "1001") && strstr(m, "1000"));
}

/* A zero limit (a device or an injected table reporting 0) refuses every
 * launch that uses the resource; it never wraps around or passes. */
static void test_zero_limits(void) {
    char m[256];
    rf_gpu_limits z = nv;
    z.block[2] = 0;
    CHECK(rf_gpu_check_launch(&z, "rfk_add", d3(1, 1, 1), d3(32, 1, 1), 0, m, sizeof m) == RF_E_RANGE);
    CHECK(strstr(m, "rfk_add") && strstr(m, "block.z") && strstr(m, "limit 0"));
    z = nv;
    z.threads_per_block = 0;
    CHECK(rf_gpu_check_launch(&z, "rfk_add", d3(1, 1, 1), d3(1, 1, 1), 0, m, sizeof m) == RF_E_RANGE);
    CHECK(strstr(m, "threads per block") && strstr(m, "limit 0"));
    z = nv;
    z.grid[1] = 0;
    CHECK(rf_gpu_check_launch(&z, "rfk_glu", d3(1, 1, 1), d3(32, 1, 1), 0, m, sizeof m) == RF_E_RANGE);
    CHECK(strstr(m, "grid.y") && strstr(m, "limit 0"));
    z = nv;
    z.smem_per_block = 0;
    CHECK(rf_gpu_check_launch(&z, "rfk_softmax", d3(1, 1, 1), d3(32, 1, 1), 0, m, sizeof m) == RF_OK);
    CHECK(rf_gpu_check_launch(&z, "rfk_softmax", d3(1, 1, 1), d3(32, 1, 1), 4, m, sizeof m) == RF_E_RANGE);
    CHECK(strstr(m, "shared memory") && strstr(m, "limit 0"));
    z = nv;
    z.warp_size = 0;
    CHECK(rf_gpu_check_launch(&z, "rfk_attention", d3(1, 1, 1), d3(32, 1, 1), 0, m, sizeof m) == RF_E_UNSUPPORTED);
    CHECK(strstr(m, "rfk_attention") && strstr(m, "warp size"));
    rf_gpu_limits all0;
    memset(&all0, 0, sizeof all0);
    CHECK(rf_gpu_check_launch(&all0, "rfk_kv_store", d3(1, 1, 1), d3(1, 1, 1), 0, m, sizeof m) == RF_E_RANGE);
    CHECK(strstr(m, "rfk_kv_store") && strstr(m, "block.x"));
}

static void test_empty_launch_and_names(void) {
    char m[256];
    CHECK(rf_gpu_check_launch(&nv, "rfk_add", d3(0, 1, 1), d3(32, 1, 1), 0, m, sizeof m) == RF_E_INVAL);
    CHECK(strstr(m, "grid.x") && strstr(m, "empty"));
    CHECK(rf_gpu_check_launch(&nv, "rfk_add", d3(1, 1, 1), d3(32, 0, 1), 0, m, sizeof m) == RF_E_INVAL);
    CHECK(strstr(m, "block.y"));
    CHECK(rf_gpu_check_launch(&nv, NULL, d3(1, 1, 1), d3(2048, 1, 1), 0, m, sizeof m) == RF_E_RANGE);
    CHECK(strstr(m, "unnamed"));
    /* a short buffer is truncated, never overrun */
    char s[8];
    memset(s, 'x', sizeof s);
    CHECK(rf_gpu_check_launch(&nv, "rfk_add", d3(1, 1, 1), d3(2048, 1, 1), 0, s, sizeof s) == RF_E_RANGE);
    CHECK(memchr(s, '\0', sizeof s) != NULL);
    /* warp 64 (CDNA) accepted, 48 refused */
    rf_gpu_limits w = cdna;
    CHECK(rf_gpu_check_launch(&w, "k", d3(1, 1, 1), d3(64, 1, 1), 0, m, sizeof m) == RF_OK);
    w.warp_size = 48;
    CHECK(rf_gpu_check_launch(&w, "k", d3(1, 1, 1), d3(64, 1, 1), 0, m, sizeof m) == RF_E_UNSUPPORTED);
}

int main(void) {
    RF_RUN(test_within_limits);
    RF_RUN(test_each_dimension);
    RF_RUN(test_zero_limits);
    RF_RUN(test_empty_launch_and_names);
    return rf_test_summary();
}
