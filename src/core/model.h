/* model.h: the layout of the model handle, shared by the trainer driver (core/) and the
 * built-in models (models/) that add their hooks to it. Nothing here is exported. */
#ifndef REVL_CORE_MODEL_H
#define REVL_CORE_MODEL_H

#include "base/internal.h"

/* ---- the model handle */
/* Hooks a built-in model adds to a callback model. */
typedef struct rv_model_builtin {
    /* mean loss on data without penalty, optional grad w.r.t. w, optional accuracy */
    int (*evaluate)(void *impl, const revl_dataset *data, const double *w, double *loss,
                    double *grad_w, double *accuracy, char *err);
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
    char err[RV_ERRLEN];
};

/* Create a model from def with a group layout (NULL = one group) and built-in hooks (NULL = none). */
RV_HIDDEN int rv_model_create(revl_model **out, const revl_model_def *def, size_t n_groups,
                              const size_t *offsets, const rv_model_builtin *builtin);
/* Check an offsets array for n_params; writes a message into err on failure. */
RV_HIDDEN int rv_check_offsets(char *err, size_t n_groups, const size_t *offsets, size_t n_params);

/* Call grad / hvp with the model's error message set when they fail (status REVL_ERR_CALLBACK).
 * rv_model_hvp_grad fills grad too (fused when the model can, else one more grad call). */
RV_HIDDEN int rv_model_hvp_grad(revl_model *m, size_t step, const double *w, const double *meta,
                                const double *v, double *grad, double *hv_w, double *hv_meta);

/* The schedule's own step-major arrays (read-only), without a copy. */
RV_HIDDEN void rv_schedule_arrays(const revl_schedule *s, const double **alpha,
                                  const double **gamma);

#endif
