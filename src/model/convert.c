/*
 * convert.c - chunked, multi-threaded tensor conversion. Each chunk of rows
 * is split evenly over the pool; every thread converts its rows through a
 * private one-row float buffer straight into the chunk's output buffer, and
 * the chunk is then written in one call.
 */
#include "convert.h"

#include <string.h>

#define CHUNK_BYTES (32u << 20)

typedef struct job {
    rf_type type;
    int64_t ne0;
    size_t row_bytes;
    int64_t row0, nrows; /* this chunk */
    uint8_t *out;
    float **scratch;     /* one row buffer per thread */
    rf_row_source_fn src;
    void *src_ctx;
} job;

static void convert_rows(void *p, int ith, int nth) {
    job *j = p;
    int64_t per = (j->nrows + nth - 1) / nth;
    int64_t r0 = per * ith, r1 = r0 + per < j->nrows ? r0 + per : j->nrows;
    float *buf = j->scratch[ith];
    for (int64_t r = r0; r < r1; r++) {
        j->src(j->src_ctx, j->row0 + r, buf);
        rf_status st = rf_quantize_row(j->type, buf, j->out + (size_t)r * j->row_bytes, j->ne0);
        RF_ASSERT(st == RF_OK); /* the caller checked the type and ne0 */
    }
}

static uint64_t pick_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

rf_status rf_convert_tensor_pooled(rf_gguf_writer *w, rf_threadpool *tp, rf_type type, int64_t ne0, int64_t nrows,
                                   int64_t pool, uint64_t pick_seed, rf_row_source_fn src, void *src_ctx,
                                   rf_convert_progress_fn progress, void *progress_ctx, rf_error *err) {
    const rf_type_info *ti = rf_type_get(type);
    size_t row_bytes = rf_row_size(type, ne0);
    if (!ti || !ti->from_float || row_bytes == 0)
        return rf_error_set(err, RF_E_INVAL, "cannot convert rows of %lld to type %s", (long long)ne0,
                            rf_type_name(type));
    const bool pooled = pool > 0 && pool < nrows;
    int nth = rf_threadpool_size(tp);
    int64_t chunk_rows = (int64_t)(CHUNK_BYTES / row_bytes);
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > nrows) chunk_rows = nrows > 0 ? nrows : 1;

    rf_status st = RF_OK;
    uint8_t *out = rf_malloc((size_t)chunk_rows * row_bytes), *rows = NULL;
    float **scratch = rf_calloc((size_t)nth, sizeof *scratch);
    if (!out || !scratch || (pooled && !(rows = rf_malloc((size_t)pool * row_bytes)))) {
        st = rf_error_set(err, RF_E_NOMEM, "out of memory converting a tensor");
        goto done;
    }
    for (int i = 0; i < nth; i++) {
        scratch[i] = rf_malloc((size_t)ne0 * sizeof(float));
        if (!scratch[i]) { st = rf_error_set(err, RF_E_NOMEM, "out of memory converting a tensor"); goto done; }
    }
    job j = {type, ne0, row_bytes, 0, pool, rows, scratch, src, src_ctx};
    if (pooled) rf_threadpool_run(tp, convert_rows, &j); /* the pool's rows, once */
    j.out = out;
    uint64_t done_bytes = 0;
    for (int64_t r = 0; r < nrows; r += chunk_rows) {
        const int64_t n = nrows - r < chunk_rows ? nrows - r : chunk_rows;
        if (pooled) {
            for (int64_t i = 0; i < n; i++)
                memcpy(out + (size_t)i * row_bytes,
                       rows + (size_t)(pick_mix(pick_seed ^ (uint64_t)(r + i)) % (uint64_t)pool) * row_bytes, row_bytes);
        } else {
            j.row0 = r;
            j.nrows = n;
            rf_threadpool_run(tp, convert_rows, &j);
        }
        st = rf_gguf_writer_write_data(w, out, (size_t)n * row_bytes, err);
        if (st != RF_OK) goto done;
        done_bytes += (size_t)n * row_bytes;
        if (progress) progress(progress_ctx, done_bytes);
    }
done:
    if (scratch)
        for (int i = 0; i < nth; i++) rf_free(scratch[i]);
    rf_free(scratch);
    rf_free(rows);
    rf_free(out);
    return st;
}

rf_status rf_convert_tensor(rf_gguf_writer *w, rf_threadpool *tp, rf_type type, int64_t ne0, int64_t nrows,
                            rf_row_source_fn src, void *src_ctx, rf_convert_progress_fn progress,
                            void *progress_ctx, rf_error *err) {
    return rf_convert_tensor_pooled(w, tp, type, ne0, nrows, 0, 0, src, src_ctx, progress, progress_ctx, err);
}
