/*
 * test_kv.c - the paged KV cache: reservation, addressing, exhaustion,
 * freeing, prefix sharing with reference counts, and eviction of cached
 * blocks when the pool needs them.
 */
#include <string.h>

#include "harness.h"
#include "kv/kv.h"

static rf_kv_cache *make(int n_seq, int64_t n_blocks) {
    rf_kv_config c = {.n_layer = 2, .kv_dim = 8, .block_size = 4, .n_blocks = n_blocks, .n_seq = n_seq,
                      .max_blocks_per_seq = 8};
    rf_kv_cache *kv = NULL;
    CHECK(rf_kv_create(&c, &kv, NULL) == RF_OK);
    return kv;
}

static void test_reserve_and_address(void) {
    rf_kv_cache *kv = make(2, 6);
    CHECK(rf_kv_seq_reserve(kv, 0, 5) == RF_OK); /* 2 blocks */
    CHECK(rf_kv_seq_capacity(kv, 0) == 8);
    CHECK(rf_kv_get_stats(kv).blocks_used == 2);
    /* every (layer, pos) slot distinct, values survive */
    uint16_t v = (uint16_t)rf_test_rand();
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < 5; p++) {
            rf_kv_k(kv, l, 0, p)[0] = (uint16_t)(v + l * 100 + p);
            rf_kv_v(kv, l, 0, p)[7] = (uint16_t)(v + l * 100 + p + 50);
        }
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < 5; p++) {
            CHECK(rf_kv_k(kv, l, 0, p)[0] == (uint16_t)(v + l * 100 + p));
            CHECK(rf_kv_v(kv, l, 0, p)[7] == (uint16_t)(v + l * 100 + p + 50));
        }
    CHECK(rf_kv_seq_reserve(kv, 1, 16) == RF_OK); /* 4 more: pool full */
    CHECK(rf_kv_seq_reserve(kv, 1, 17) == RF_E_NOMEM);
    CHECK(rf_kv_seq_capacity(kv, 1) == 16);       /* unchanged by the failure */
    CHECK(rf_kv_seq_reserve(kv, 0, 33) == RF_E_RANGE);
    rf_kv_seq_free(kv, 1);
    CHECK(rf_kv_get_stats(kv).blocks_used == 2);
    CHECK(rf_kv_seq_reserve(kv, 1, 16) == RF_OK); /* the freed blocks are reusable */
    rf_kv_free(kv);
}

static void test_prefix_sharing(void) {
    rf_kv_cache *kv = make(3, 8);
    int32_t toks[10];
    for (int i = 0; i < 10; i++) toks[i] = (int32_t)(rf_test_rand() % 1000);
    CHECK(rf_kv_seq_attach_prefix(kv, 0, toks, 10) == 0); /* cold */
    CHECK(rf_kv_seq_reserve(kv, 0, 10) == RF_OK);
    for (int p = 0; p < 10; p++) rf_kv_k(kv, 0, 0, p)[0] = (uint16_t)(1000 + p);
    rf_kv_seq_commit_prefix(kv, 0, toks, 10);
    /* same 10 tokens: two full blocks (8 positions) shared, last token recomputed */
    CHECK(rf_kv_seq_attach_prefix(kv, 1, toks, 10) == 8);
    CHECK(rf_kv_get_stats(kv).blocks_used == 3); /* shared blocks counted once */
    CHECK(rf_kv_k(kv, 0, 1, 7)[0] == 1007);
    /* a prompt equal to exactly two blocks shares only one (the last token is computed) */
    CHECK(rf_kv_seq_attach_prefix(kv, 2, toks, 8) == 4);
    rf_kv_seq_free(kv, 2);
    /* a different second block shares only the first */
    int32_t other[10];
    memcpy(other, toks, sizeof other);
    other[5] ^= 1;
    CHECK(rf_kv_seq_attach_prefix(kv, 2, other, 10) == 4);
    rf_kv_seq_free(kv, 2);
    /* freeing the owner keeps shared blocks alive for seq 1 */
    rf_kv_seq_free(kv, 0);
    CHECK(rf_kv_k(kv, 0, 1, 3)[0] == 1003);
    rf_kv_seq_free(kv, 1);
    CHECK(rf_kv_get_stats(kv).blocks_used == 0);
    CHECK(rf_kv_get_stats(kv).blocks_cached >= 2);
    /* cached blocks are found again after everyone freed them */
    CHECK(rf_kv_seq_attach_prefix(kv, 0, toks, 10) == 8);
    rf_kv_seq_free(kv, 0);
    /* filling the pool evicts the cached blocks, and the index forgets them */
    CHECK(rf_kv_seq_reserve(kv, 1, 32) == RF_OK);
    CHECK(rf_kv_get_stats(kv).blocks_cached == 0);
    rf_kv_seq_free(kv, 1);
    CHECK(rf_kv_seq_attach_prefix(kv, 0, toks, 10) == 0);
    rf_kv_free(kv);
}

static void test_bad_config(void) {
    rf_kv_config c = {0};
    rf_kv_cache *kv = (rf_kv_cache *)1;
    rf_error e = {0};
    CHECK(rf_kv_create(&c, &kv, &e) == RF_E_INVAL);
    CHECK(kv == NULL);
    rf_kv_config big = rf_kv_config_for(80, 1024, 131072, 64, 16);
    CHECK(rf_kv_bytes(&big) == 80ull * 2 * (131072ull * 64) * 1024 * 2);
}

int main(void) {
    RF_RUN(test_reserve_and_address);
    RF_RUN(test_prefix_sharing);
    RF_RUN(test_bad_config);
    return rf_test_summary();
}
