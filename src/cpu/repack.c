/*
 * repack.c - the X16 weight layout (cpu-impl.h): 16 rows interleaved a
 * dword at a time, per block, so a 512-bit load holds one dword of each of
 * the 16 rows. Pure byte moves: packing and unpacking are exact inverses.
 */
#include "cpu-impl.h"

/* Byte offset of the lone float16 field of a block whose size is 2 mod 4, or
 * -1 when the block is a whole number of dwords. */
static int half_field(uint32_t type) {
    switch (type) {
    case RF_TYPE_Q4_0: case RF_TYPE_Q5_0: case RF_TYPE_Q8_0: case RF_TYPE_IQ4_NL: return 0;
    case RF_TYPE_Q3_K: case RF_TYPE_Q6_K: return (int)rf_type_get(type)->type_size - 2;
    default: return -1;
    }
}

bool rf_cpu_x16_ok(uint32_t type, int64_t K) {
    const rf_type_info *ti = rf_type_get(type);
    if (!ti || !ti->is_quantized || K <= 0 || K % ti->blck_size) return false;
    switch (type) {
    case RF_TYPE_Q4_0: case RF_TYPE_Q4_1: case RF_TYPE_Q5_0: case RF_TYPE_Q5_1: case RF_TYPE_Q8_0:
    case RF_TYPE_IQ4_NL: case RF_TYPE_Q2_K: case RF_TYPE_Q3_K: case RF_TYPE_Q4_K: case RF_TYPE_Q5_K:
    case RF_TYPE_Q6_K: case RF_TYPE_IQ4_XS: return true;
    default: return false;
    }
}

/* The half field (h >= 0) sits at the start or the end of a block, so the
 * rest, the body, is contiguous: its offset in the block and its size. */
static size_t body_off(int h) { return h == 0 ? 2 : 0; }
static size_t body_len(size_t bs, int h) { return h >= 0 ? bs - 2 : bs; }
/* Offset in the group's block of body dword i of row r. */
static size_t dword_pos(size_t i, int r, int h) { return (h >= 0 ? 32 : 0) + 64 * i + 4 * (size_t)r; }

void rf_cpu_x16_pack(uint32_t type, int64_t K, const uint8_t *src, size_t row_bytes, uint8_t *dst) {
    const rf_type_info *ti = rf_type_get(type);
    const size_t bs = ti->type_size, nd = body_len(bs, half_field(type)) / 4;
    const int h = half_field(type);
    for (int64_t b = 0; b < K / ti->blck_size; b++)
        for (int r = 0; r < 16; r++) {
            const uint8_t *s = src + (size_t)r * row_bytes + (size_t)b * bs;
            uint8_t *g = dst + (size_t)b * 16 * bs;
            if (h >= 0) memcpy(g + 2 * r, s + h, 2);
            for (size_t i = 0; i < nd; i++) memcpy(g + dword_pos(i, r, h), s + body_off(h) + 4 * i, 4);
        }
}

/* Rows r0 .. r0 + nr - 1 of a group back into the file layout, row_bytes
 * apart at dst; one 64-byte piece at a time, a dword to each row. */
static void x16_rows(uint32_t type, int64_t K, const uint8_t *group, int r0, int nr, size_t row_bytes, uint8_t *dst) {
    const rf_type_info *ti = rf_type_get(type);
    const size_t bs = ti->type_size, nd = body_len(bs, half_field(type)) / 4;
    const int h = half_field(type);
    for (int64_t b = 0; b < K / ti->blck_size; b++) {
        const uint8_t *g = group + (size_t)b * 16 * bs;
        uint8_t *d = dst + (size_t)b * bs;
        if (h >= 0)
            for (int r = 0; r < nr; r++) memcpy(d + (size_t)r * row_bytes + h, g + 2 * (r0 + r), 2);
        for (size_t i = 0; i < nd; i++)
            for (int r = 0; r < nr; r++) memcpy(d + (size_t)r * row_bytes + body_off(h) + 4 * i, g + dword_pos(i, r0 + r, h), 4);
    }
}

void rf_cpu_x16_row(uint32_t type, int64_t K, const uint8_t *group, int r, uint8_t *dst) {
    x16_rows(type, K, group, r, 1, 0, dst);
}

void rf_cpu_x16_unpack(uint32_t type, int64_t K, const uint8_t *group, size_t row_bytes, uint8_t *dst) {
    x16_rows(type, K, group, 0, 16, row_bytes, dst);
}
