/*
 * iq-tables.h - the constant tables of the i-quant and fp4 formats, defined
 * in the generated iq-tables.c. Internal to src/quant.
 *
 * Grids: each row is one word whose byte j (bits 8j..8j+7) is element j.
 *   IQ2 grids (8 elements a row): bytes are 0x08, 0x19 or 0x2b (8, 25, 43).
 *   IQ1 grid (8 a row): bytes are int8 -1, 0 or +1.
 *   IQ3 grids (4 a row): unsigned byte magnitudes.
 * rf_iq2_ksigns[i]: 7 sign bits i plus an eighth that makes the parity even;
 *   bit j set means element j is negated.
 * rf_iq4nl_kvalues: the 16 IQ4_NL/IQ4_XS levels.
 * rf_fp4_kvalues: the 16 E2M1 values doubled (MXFP4 and NVFP4 share them;
 *   the formats' scale decoders return half the scale to compensate).
 */
#ifndef RF_IQ_TABLES_H
#define RF_IQ_TABLES_H

#include <stdint.h>

extern const uint64_t rf_iq2xxs_grid[256];
extern const uint64_t rf_iq2xs_grid[512];
extern const uint64_t rf_iq2s_grid[1024];
extern const uint64_t rf_iq1s_grid[2048];
extern const uint32_t rf_iq3xxs_grid[256];
extern const uint32_t rf_iq3s_grid[512];
extern const uint8_t rf_iq2_ksigns[128];
extern const int8_t rf_iq4nl_kvalues[16];
extern const int8_t rf_fp4_kvalues[16];

/* Element j (0..7) of a packed grid row. */
static inline uint8_t rf_grid_u8(uint64_t row, int j) { return (uint8_t)(row >> (8 * j)); }
static inline int8_t rf_grid_i8(uint64_t row, int j) { return (int8_t)(uint8_t)(row >> (8 * j)); }

#endif /* RF_IQ_TABLES_H */
