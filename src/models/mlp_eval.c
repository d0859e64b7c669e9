/* mlp_eval.c: revl_model_evaluate for the MLP: mean cross-entropy over a whole data set (no
 * penalty), its gradient and the accuracy, in blocks of examples so that the workspace stays
 * small whatever the data set's size. Not on the per-step path, so it allocates per call. */
#include "models/mlp.h"

#include <math.h>
#include <string.h>

enum { MLP_EVAL_BLOCK = 1000 };

static size_t argmax(const double *p, size_t k)
{
    size_t best = 0;
    for (size_t j = 1; j < k; j++)
        if (p[j] > p[best])
            best = j;
    return best;
}

int rv_mlp_evaluate(void *impl, const revl_dataset *data, const double *w, double *loss,
                    double *grad_w, double *accuracy, char *err)
{
    rv_mlp *m = impl;
    size_t L = m->n_layers, K = m->widths[L], dim = m->widths[0];
    size_t n = revl_dataset_n(data);
    const double *x = revl_dataset_x(data);
    const int32_t *y = revl_dataset_labels(data);
    if (n == 0 || !x || !y)
        return rv_fail(err, REVL_ERR_INVALID, "revl_model_evaluate: the data set is empty");
    if (revl_dataset_dim(data) != dim)
        return rv_fail(err, REVL_ERR_INVALID,
                       "revl_model_evaluate: the data set has %zu features, the model takes %zu",
                       revl_dataset_dim(data), dim);
    if (revl_dataset_n_classes(data) > K)
        return rv_fail(err, REVL_ERR_INVALID,
                       "revl_model_evaluate: the data set has %zu classes, the model outputs %zu",
                       revl_dataset_n_classes(data), K);
    for (size_t i = 0; i < n; i++)
        if (y[i] < 0 || (size_t)y[i] >= K)
            return rv_fail(err, REVL_ERR_INVALID,
                           "revl_model_evaluate: label %ld of example %zu is outside [0, %zu)",
                           (long)y[i], i, K);
    /* a NaN weight gives a NaN loss that a caller comparing losses would take for a value */
    for (size_t i = 0; i < m->n_params; i++) {
        if (isnan(w[i])) /* NaN said once, not "= nan is not finite" */
            return rv_fail(err, REVL_ERR_RANGE, "revl_model_evaluate: w[%zu] is NaN", i);
        if (!isfinite(w[i]))
            return rv_fail(err, REVL_ERR_RANGE, "revl_model_evaluate: w[%zu] = %g is not finite",
                           i, w[i]);
    }
    size_t block = n < MLP_EVAL_BLOCK ? n : MLP_EVAL_BLOCK;
    rv_mlp_work ws;
    if (rv_mlp_work_init(&ws, &m->alloc, L, m->widths, block, 0) != REVL_OK)
        return rv_fail(err, REVL_ERR_NOMEM,
                       "revl_model_evaluate: no memory for a block of %zu examples", block);
    if (grad_w)
        memset(grad_w, 0, m->n_params * sizeof *grad_w);
    double total = 0, scale = 1.0 / (double)n;
    size_t correct = 0;
    for (size_t first = 0; first < n; first += block) {
        size_t rows = n - first < block ? n - first : block;
        const double *xb = x + first * dim;
        const int32_t *yb = y + first;
        total += rv_mlp_forward(m, w, xb, yb, rows, &ws);
        if (accuracy)
            for (size_t r = 0; r < rows; r++)
                correct += argmax(ws.p + r * K, K) == (size_t)yb[r];
        if (grad_w)
            rv_mlp_backward(m, w, xb, yb, rows, scale, 1, &ws, grad_w);
    }
    rv_mlp_work_destroy(&ws, &m->alloc);
    /* finite weights so large that the logits overflow */
    if (!isfinite(total))
        return rv_fail(err, REVL_ERR_RANGE,
                       "revl_model_evaluate: the loss is %s (the weights are too large)",
                       isnan(total) ? "NaN" : "infinite");
    *loss = total * scale;
    if (accuracy)
        *accuracy = (double)correct / (double)n;
    return REVL_OK;
}
