/* model.h: the layout of the model handle, shared by the trainer driver (core/) and the
 * built-in models (models/) that add their hooks to it. Nothing here is exported. */
#ifndef REVL_CORE_MODEL_H
#define REVL_CORE_MODEL_H

#include "base/internal.h"
#include "base/vmath.h"

/* ---- the model handle */
/* The trainer's Hessian direction from the gradient the model has just computed (rv_model_hvp_dir):
 * writes v where the caller said; REVL_OK, or a status (< 0) with its message in the caller's
 * handle. */
typedef revl_dir_fn rv_dir_fn;

/* Hooks a built-in model adds to a callback model. */
typedef struct rv_model_builtin {
    /* mean loss on data without penalty, optional grad w.r.t. w, optional accuracy */
    int (*evaluate)(void *impl, const revl_dataset *data, const double *w, double *loss,
                    double *grad_w, double *accuracy, char *err);
    /* where a hyper-optimiser starts the meta-parameters (the MLP's are log L2 strengths:
     * 0 would be lambda = 1, which flattens the network) */
    double meta_start;
    /* the training loss of guessing (log n_classes for cross-entropy); 0 = not known */
    double chance_loss;
    /* layers the groups make up, consecutive groups per layer (the MLP: weights and biases of
     * each layer); 0 = not known. The tuner's default family has one multiplier per layer. */
    size_t n_layers;
    /* optional: the gradient into grad, then dir(ctx, grad), which writes v, then H v into hv_w
     * (and the mixed product into hv_meta when not NULL) from the same forward pass: one pass
     * where a gradient call and an hvp call make two. grad and H v are the bits of those two
     * calls. Returns 0, dir's status (< 0) as it is, or > 0 for the model's own failure (its
     * fail_note says why). */
    int (*hvp_dir)(void *impl, size_t step, const double *w, const double *meta, rv_dir_fn dir,
                   void *ctx, const double *v, double *grad, double *hv_w, double *hv_meta);
} rv_model_builtin;

struct revl_model {
    revl_model_def def;       /* the caller's definition (allocator pointer cleared) */
    revl_allocator alloc;
    size_t n_groups;
    size_t *offsets;          /* n_groups + 1 */
    double *fd_work;          /* finite-difference HVP fallback: 3*n_params + n_meta, lazily */
    double *hv_meta_scratch;  /* n_meta, lazily: hv_meta for a revl_model_hvp caller who passed
                                 NULL, since the callback may write it unconditionally */
    rv_model_builtin builtin; /* evaluate == NULL for callback models */
    revl_hvp_affine_fn hvp_affine; /* optional fused gradient + H (a + b g) */
    double *affine_work;      /* n_params: v = a + b g for models without hvp_affine, lazily */
    revl_hvp_dir_fn hvp_dir;  /* optional fused gradient + H v, v from the gradient */
    int from_callbacks;       /* made by revl_model_create: its user pointer is the caller's */
    const char *fail_note;    /* optional, built-in models: why their callback failed, with the
                                 step; when set, the whole message (no "callback returned 1"):
                                 the data-parallel wrapper names the failing rank there */
    uint64_t agree;           /* set by the trainer around each call it makes (0 otherwise): a
                                 hash of what decides the step's bits besides the point (the
                                 step's schedule values, truncation, step count, fixed point),
                                 which the data-parallel wrapper makes every rank agree on */
    char err[RV_ERRLEN];
};

/* Create a model from def with a group layout (NULL = one group) and built-in hooks (NULL = none). */
RV_HIDDEN int rv_model_create(revl_model **out, const revl_model_def *def, size_t n_groups,
                              const size_t *offsets, const rv_model_builtin *builtin);
/* The message of a callback (`what`) that returned rc at step, or the model's fail_note:
 * REVL_ERR_CALLBACK. */
RV_HIDDEN int rv_model_callback_failed(revl_model *m, const char *what, int rc, size_t step);
/* Check an offsets array for n_params; writes a message into err on failure. */
RV_HIDDEN int rv_check_offsets(char *err, size_t n_groups, const size_t *offsets, size_t n_params);

/* Call grad / hvp with the model's error message set when they fail (status REVL_ERR_CALLBACK).
 * rv_model_hvp_grad fills grad too (fused when the model can, else one more grad call). */
RV_HIDDEN int rv_model_hvp_grad(revl_model *m, size_t step, const double *w, const double *meta,
                                const double *v, double *grad, double *hv_w, double *hv_meta);

/* The gradient g at (step, w, meta), then the Hessian-vector products along v = a + b g
 * (rv_affine_dir), fused when the model has hvp_affine, else a gradient call and an hvp call. */
RV_HIDDEN int rv_model_hvp_affine(revl_model *m, size_t step, const double *w, const double *meta,
                                  const double *a, const double *b, double *grad, double *hv_w,
                                  double *hv_meta);
/* The gradient g at (step, w, meta) into grad, then dir(ctx, g), which writes the direction v,
 * then the Hessian-vector products along v: one model pass where the model has
 * builtin.hvp_dir or a registered revl_hvp_dir_fn, else a gradient call and an hvp call (other
 * callback models, the data-parallel wrapper). dir's failure is returned as it is (its message is the caller's); the model's has
 * its message in m->err. */
RV_HIDDEN int rv_model_hvp_dir(revl_model *m, size_t step, const double *w, const double *meta,
                               rv_dir_fn dir, void *ctx, const double *v, double *grad,
                               double *hv_w, double *hv_meta);
/* The direction's one formula, v[i] = a[i] + b[i] * g[i], shared by the library and the
 * built-in models so both give the same bits: vmath's lanes, which give the scalar
 * expression's bits (the library is built without floating-point contraction). */
static inline void rv_affine_dir(double *v, const double *a, const double *b, const double *g,
                                 size_t n)
{
    rv_vaffine(v, a, b, g, n);
}

#endif
