/* mlp_batch.c: which examples step t trains on. Epoch e = t / B_e (B_e = floor(n / batch)
 * batches per epoch) uses a fixed permutation of the examples drawn from (seed, e); step t takes
 * the (t mod B_e)-th run of `batch` consecutive entries. Forward and reverse calls of a step
 * therefore see the same examples in the same order, whatever ran in between. */
#include "models/mlp.h"

#include "data/pixels.h"

#include <string.h>

/* Fisher-Yates from the stream started at seed XOR splitmix64(epoch): mixing the epoch first
 * keeps the streams of consecutive epochs unrelated (seed + epoch would only shift one stream). */
static void make_perm(rv_mlp *m, size_t epoch)
{
    uint64_t e = (uint64_t)epoch;
    uint64_t state = m->seed ^ rv_rand_u64(&e);
    size_t n = m->n_train;
    for (size_t i = 0; i < n; i++)
        m->perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        /* modulo bias below (i+1) / 2^64: immaterial for any data set that fits in memory */
        size_t j = (size_t)(rv_rand_u64(&state) % (uint64_t)(i + 1));
        size_t tmp = m->perm[i];
        m->perm[i] = m->perm[j];
        m->perm[j] = tmp;
    }
    m->perm_epoch = epoch;
    m->perm_valid = 1;
}

/* The examples of step (not full batch): a run of the epoch's permutation. */
static const size_t *batch_of(rv_mlp *m, size_t step)
{
    size_t epoch = step / m->n_batches, first = (step % m->n_batches) * m->batch;
    if (!m->perm_valid || m->perm_epoch != epoch)
        make_perm(m, epoch);
    return m->perm + first;
}

/* a hint that the row's bytes will be read soon, one per cache line */
static void prefetch_row(const uint8_t *row, size_t dim)
{
    for (size_t c = 0; c < dim; c += 64)
        __builtin_prefetch(row + c);
}

void rv_mlp_batch(rv_mlp *m, size_t step, const double **x, const int32_t **y)
{
    const double *data_x = revl_dataset_x(m->train);
    const int32_t *data_y = revl_dataset_labels(m->train);
    if (m->batch == m->n_train) {
        *x = data_x;
        *y = data_y;
        return;
    }
    const size_t *idx = batch_of(m, step);
    size_t dim = m->widths[0];
    const uint8_t *pixels = rv_dataset_pixels(m->train); /* x's bits from 1/8 of the bytes */
    /* The rows are scattered over the data set, so each one's first lines would be a wait on
     * memory: ask for the rows PREFETCH_AHEAD ahead of the one being converted (measured: the
     * MLP's gradient 1.31 -> 1.26 times its floor, bench_mlp_floor) */
    enum { PREFETCH_AHEAD = 4 };
    for (size_t r = 0; pixels && r < PREFETCH_AHEAD && r < m->batch; r++)
        prefetch_row(pixels + idx[r] * dim, dim);
    for (size_t r = 0; r < m->batch; r++) {
        size_t i = idx[r];
        if (!pixels) {
            memcpy(m->xb + r * dim, data_x + i * dim, dim * sizeof *data_x);
        } else {
            if (r + PREFETCH_AHEAD < m->batch)
                prefetch_row(pixels + idx[r + PREFETCH_AHEAD] * dim, dim);
            rv_pixels_to_double(m->xb + r * dim, pixels + i * dim, dim);
        }
        m->yb[r] = data_y[i];
    }
    *x = m->xb;
    *y = m->yb;
}

/* ---- the order as users see it (revl.h): reproduce a trial elsewhere, or average over orders */
static rv_mlp *mlp_of(revl_model *m)
{
    return m && m->builtin.evaluate == rv_mlp_evaluate ? m->def.user : NULL;
}

int revl_mlp_batch_indices(revl_model *model, size_t step, size_t *indices, size_t *count)
{
    if (!model)
        return REVL_ERR_INVALID;
    rv_mlp *m = mlp_of(model);
    if (!m)
        return rv_fail(model->err, REVL_ERR_INVALID,
                       "revl_mlp_batch_indices: not a built-in MLP (revl_mlp_create)");
    if (!count)
        return rv_fail(model->err, REVL_ERR_INVALID, "revl_mlp_batch_indices: count is NULL");
    if (rv_mlp_train_changed(m))
        return rv_fail(model->err, REVL_ERR_STATE,
                       "revl_mlp_batch_indices: the training set changed size under the model");
    *count = m->batch;
    if (!indices)
        return REVL_OK;
    if (m->batch == m->n_train) {
        for (size_t r = 0; r < m->batch; r++)
            indices[r] = r;
    } else {
        memcpy(indices, batch_of(m, step), m->batch * sizeof *indices);
    }
    rv_clear(model->err);
    return REVL_OK;
}

int revl_mlp_set_order_seed(revl_model *model, uint64_t seed)
{
    if (!model)
        return REVL_ERR_INVALID;
    rv_mlp *m = mlp_of(model);
    if (!m)
        return rv_fail(model->err, REVL_ERR_INVALID,
                       "revl_mlp_set_order_seed: not a built-in MLP (revl_mlp_create)");
    m->seed = seed;
    m->perm_valid = 0; /* the permutation of every epoch is drawn again from the new seed */
    rv_clear(model->err);
    return REVL_OK;
}

int rv_mlp_order_seed(revl_model *model, uint64_t *seed)
{
    rv_mlp *m = mlp_of(model);
    if (!m)
        return REVL_ERR_INVALID;
    *seed = m->seed;
    return REVL_OK;
}
