/* mlp_batch.c: which examples step t trains on. Epoch e = t / B_e (B_e = floor(n / batch)
 * batches per epoch) uses a fixed permutation of the examples drawn from (seed, e); step t takes
 * the (t mod B_e)-th run of `batch` consecutive entries. Forward and reverse calls of a step
 * therefore see the same examples in the same order, whatever ran in between. */
#include "models/mlp.h"

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

void rv_mlp_batch(rv_mlp *m, size_t step, const double **x, const int32_t **y)
{
    const double *data_x = revl_dataset_x(m->train);
    const int32_t *data_y = revl_dataset_labels(m->train);
    if (m->batch == m->n_train) {
        *x = data_x;
        *y = data_y;
        return;
    }
    size_t epoch = step / m->n_batches, first = (step % m->n_batches) * m->batch;
    if (!m->perm_valid || m->perm_epoch != epoch)
        make_perm(m, epoch);
    size_t dim = m->widths[0];
    for (size_t r = 0; r < m->batch; r++) {
        size_t i = m->perm[first + r];
        memcpy(m->xb + r * dim, data_x + i * dim, dim * sizeof *data_x);
        m->yb[r] = data_y[i];
    }
    *x = m->xb;
    *y = m->yb;
}
