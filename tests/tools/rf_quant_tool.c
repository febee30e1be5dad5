/*
 * rf_quant_tool.c - command-line access to the reference (de)quantizers,
 * driven by tests/ref/test_quant.py to compare them with the gguf package.
 *
 *   rf_quant_tool dequant TYPE IN.bin OUT.f32   raw blocks -> float32 (LE)
 *   rf_quant_tool quant   TYPE IN.f32 OUT.bin   float32 (LE) -> raw blocks
 *   rf_quant_tool info                          one line per valid type:
 *       id name blck_size type_size has_quantizer rmse_budget
 *
 * TYPE is a name ("q4_k", case-insensitive) or a numeric id. Exit status 0
 * on success, 1 on a bad file or size, 2 on bad usage; errors go to stderr.
 */
#include "quant/quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr,
            "usage: rf_quant_tool dequant TYPE IN.bin OUT.f32\n"
            "       rf_quant_tool quant TYPE IN.f32 OUT.bin\n"
            "       rf_quant_tool info\n");
    return 2;
}

/* Reads a whole file into a fresh buffer (caller frees with rf_free).
 * Returns NULL with a message printed on failure. */
static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rf_quant_tool: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    void *buf = NULL;
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "rf_quant_tool: cannot size %s\n", path);
        goto out;
    }
    buf = rf_malloc(sz ? (size_t)sz : 1);
    if (!buf) {
        fprintf(stderr, "rf_quant_tool: out of memory for %ld bytes\n", sz);
        goto out;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        fprintf(stderr, "rf_quant_tool: short read on %s\n", path);
        rf_free(buf);
        buf = NULL;
        goto out;
    }
    *len = (size_t)sz;
out:
    fclose(f);
    return buf;
}

static int write_file(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "rf_quant_tool: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t w = fwrite(buf, 1, len, f);
    if (fclose(f) != 0 || w != len) {
        fprintf(stderr, "rf_quant_tool: write to %s failed\n", path);
        return 1;
    }
    return 0;
}

/* Parses a type name or decimal id; prints an error and returns false if
 * it names no valid type. */
static bool parse_type(const char *s, uint32_t *t) {
    rf_type rt;
    if (rf_type_from_name(s, &rt)) {
        *t = (uint32_t)rt;
        return true;
    }
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s && !*end && v < RF_TYPE_COUNT && rf_type_get((uint32_t)v)) {
        *t = (uint32_t)v;
        return true;
    }
    fprintf(stderr, "rf_quant_tool: unknown type '%s'\n", s);
    return false;
}

static int cmd_info(void) {
    for (uint32_t t = 0; t < RF_TYPE_COUNT; t++) {
        const rf_type_info *ti = rf_type_get(t);
        if (!ti) continue;
        printf("%u %s %lld %zu %d %.6g\n", t, ti->name, (long long)ti->blck_size, ti->type_size,
               ti->from_float != NULL, (double)ti->rmse_budget);
    }
    return 0;
}

static int cmd_dequant(uint32_t t, const char *in, const char *out) {
    const rf_type_info *ti = rf_type_get(t);
    if (!ti->to_float) {
        fprintf(stderr, "rf_quant_tool: %s has no dequantizer\n", ti->name);
        return 1;
    }
    size_t len = 0;
    uint8_t *src = read_file(in, &len);
    if (!src) return 1;
    int rc = 1;
    float *dst = NULL;
    if (len % ti->type_size != 0) {
        fprintf(stderr, "rf_quant_tool: %s: %zu bytes is not a whole number of %zu-byte %s blocks\n", in, len,
                ti->type_size, ti->name);
        goto out;
    }
    const int64_t n = (int64_t)(len / ti->type_size) * ti->blck_size;
    dst = rf_malloc(n ? (size_t)n * sizeof(float) : 1);
    if (!dst) {
        fprintf(stderr, "rf_quant_tool: out of memory\n");
        goto out;
    }
    rf_status st = rf_dequantize_row(t, src, dst, n);
    if (st != RF_OK) {
        fprintf(stderr, "rf_quant_tool: dequantize %s: %s\n", ti->name, rf_status_str(st));
        goto out;
    }
    rc = write_file(out, dst, (size_t)n * sizeof(float));
out:
    rf_free(src);
    rf_free(dst);
    return rc;
}

static int cmd_quant(uint32_t t, const char *in, const char *out) {
    const rf_type_info *ti = rf_type_get(t);
    if (!ti->from_float) {
        fprintf(stderr, "rf_quant_tool: %s has no quantizer\n", ti->name);
        return 1;
    }
    size_t len = 0;
    float *src = read_file(in, &len);
    if (!src) return 1;
    int rc = 1;
    void *dst = NULL;
    const int64_t n = (int64_t)(len / sizeof(float));
    const size_t bytes = rf_row_size(t, n);
    if (len % sizeof(float) != 0 || (n > 0 && bytes == 0)) {
        fprintf(stderr, "rf_quant_tool: %s: %zu bytes is not a whole number of %lld-float %s blocks\n", in, len,
                (long long)ti->blck_size, ti->name);
        goto out;
    }
    dst = rf_malloc(bytes ? bytes : 1);
    if (!dst) {
        fprintf(stderr, "rf_quant_tool: out of memory\n");
        goto out;
    }
    rf_status st = rf_quantize_row(t, src, dst, n);
    if (st != RF_OK) {
        fprintf(stderr, "rf_quant_tool: quantize %s: %s\n", ti->name, rf_status_str(st));
        goto out;
    }
    rc = write_file(out, dst, bytes);
out:
    rf_free(src);
    rf_free(dst);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "info") == 0) return cmd_info();
    if (argc != 5) return usage();
    const bool deq = strcmp(argv[1], "dequant") == 0;
    if (!deq && strcmp(argv[1], "quant") != 0) return usage();
    uint32_t t;
    if (!parse_type(argv[2], &t)) return 2;
    return deq ? cmd_dequant(t, argv[3], argv[4]) : cmd_quant(t, argv[3], argv[4]);
}
