/* mlp.h: the built-in multilayer perceptron's internals, shared by its files: the model state
 * (mlp.c), the minibatch rule (mlp_batch.c), the forward/backward and R-operator passes over a
 * block of examples (mlp_pass.c), the penalty (mlp_penalty.c) and whole-data evaluation
 * (mlp_eval.c). */
#ifndef REVL_MLP_H
#define REVL_MLP_H

#include "core/model.h"

/* Buffers of one pass over up to `rows` examples. Layer l maps widths[l] -> widths[l+1];
 * index k below names the k-th layer of units (k = 0 is the input, k = L the logits). */
typedef struct rv_mlp_work {
    size_t rows;   /* capacity in examples */
    double **h;    /* h[k], 1 <= k < L: hidden activations, rows x widths[k] */
    double *p;     /* softmax probabilities, rows x widths[L] */
    double **dz;   /* dz[k], 1 <= k <= L: d loss / d pre-activation, rows x widths[k] */
    /* R-operator buffers (NULL when the workspace is for gradients only) */
    double **rz;   /* rz[k], 1 <= k < L: R{pre-activation} */
    double **rh;   /* rh[k], 1 <= k < L: R{activation} */
    double **rdz;  /* rdz[k], 1 <= k <= L: R{dz[k]} (rdz[L] first holds R{logits}) */
    double **ptrs; /* the one allocation behind h, dz, rz, rh, rdz */
    double *data;  /* the one allocation behind every buffer */
} rv_mlp_work;

typedef struct rv_mlp {
    revl_allocator alloc;
    const revl_dataset *train;
    size_t n_layers;   /* L = n_widths - 1 */
    size_t *widths;    /* L + 1 */
    size_t *offsets;   /* 2L + 1 group offsets: W_l at offsets[2l], b_l at offsets[2l+1] */
    size_t n_params, n_meta;
    revl_activation act;
    revl_penalty penalty;
    uint64_t seed;
    size_t n_train, batch, n_batches; /* batch == n_train means full batch */
    /* minibatch of the current call: the epoch's permutation and the gathered examples */
    size_t *perm;      /* n_train; NULL for full batch */
    size_t perm_epoch;
    int perm_valid;
    double *xb;        /* batch x widths[0]; NULL for full batch */
    int32_t *yb;       /* batch */
    /* exp(meta), cached because meta is constant over a training run and the per-weight
     * penalty would otherwise cost n_params exp() per call */
    double *meta_seen, *lambda; /* n_meta each; NULL when n_meta == 0 */
    int lambda_valid;
    /* n_params: the gradient an unfused hvp call computes and drops, or the direction
     * v = a + b g of the fused affine call (which returns its gradient) */
    double *scratch;
    rv_mlp_work work;  /* sized for the batch, with R buffers */
    size_t n_passes;   /* forward passes made by the callbacks (the tests count them) */
    char note[RV_ERRLEN]; /* why a callback failed (the model's fail_note): not the caller's
                             callback, so never "callback returned 1" */
} rv_mlp;

/* Nonzero when the training set changed size under the model (mlp.c). */
RV_HIDDEN int rv_mlp_train_changed(const rv_mlp *m);
/* The callbacks' check of the same: 0, or 1 with m->note saying what changed at step. */
RV_HIDDEN int rv_mlp_check_train(rv_mlp *m, size_t step);

/* ---- workspaces (mlp_pass.c) */
RV_HIDDEN int rv_mlp_work_init(rv_mlp_work *ws, const revl_allocator *a, size_t n_layers,
                               const size_t *widths, size_t rows, int with_r);
RV_HIDDEN void rv_mlp_work_destroy(rv_mlp_work *ws, const revl_allocator *a);

/* ---- passes over `rows` examples x (rows x widths[0]) with labels y (mlp_pass.c) */
/* Forward pass; returns the sum over the rows of the cross-entropy. Leaves ws->h and ws->p. */
RV_HIDDEN double rv_mlp_forward(const rv_mlp *m, const double *w, const double *x,
                                const int32_t *y, size_t rows, rv_mlp_work *ws);
/* Backward pass after rv_mlp_forward: grad of scale * (summed cross-entropy) into grad
 * (overwritten, or added to when accumulate). Leaves ws->dz. */
RV_HIDDEN void rv_mlp_backward(const rv_mlp *m, const double *w, const double *x,
                               const int32_t *y, size_t rows, double scale, int accumulate,
                               rv_mlp_work *ws, double *grad);
/* R-operator forward and backward after rv_mlp_backward (same rows and scale): the Hessian of
 * scale * (summed cross-entropy) times v, into hv (overwritten). */
RV_HIDDEN void rv_mlp_r_pass(const rv_mlp *m, const double *w, const double *v, const double *x,
                             size_t rows, double scale, rv_mlp_work *ws, double *hv);

/* ---- the penalty (mlp_penalty.c) */
/* exp(meta) into m->lambda unless meta is the one seen last. */
RV_HIDDEN void rv_mlp_penalty_prepare(rv_mlp *m, const double *meta);
/* grad += d penalty / dw; returns the penalty's value when with_value, else 0 (its sums are
 * skipped). */
RV_HIDDEN double rv_mlp_penalty_grad(const rv_mlp *m, const double *w, double *grad,
                                     int with_value);
/* hv += (d^2 penalty / dw^2) v; hv_meta = d/dmeta (d penalty / dw . v) when not NULL. */
RV_HIDDEN void rv_mlp_penalty_hvp(const rv_mlp *m, const double *w, const double *v, double *hv,
                                  double *hv_meta);

/* ---- the minibatch (mlp_batch.c) */
/* Examples and labels of step `step`: pointers into the data set (full batch) or into
 * m->xb / m->yb, which are filled from the epoch's permutation. */
RV_HIDDEN void rv_mlp_batch(rv_mlp *m, size_t step, const double **x, const int32_t **y);

/* ---- evaluation on a whole data set (mlp_eval.c): the rv_model_builtin.evaluate hook */
RV_HIDDEN int rv_mlp_evaluate(void *impl, const revl_dataset *data, const double *w,
                              double *loss, double *grad_w, double *accuracy, char *err);

/* The built-in MLP's minibatch order seed (mlp_batch.c; revl_mlp_set_order_seed changes it):
 * REVL_ERR_INVALID for other models. */
RV_HIDDEN int rv_mlp_order_seed(revl_model *model, uint64_t *seed);

#endif
