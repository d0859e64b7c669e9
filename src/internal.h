/* internal.h: what the library's own files share and users never see: the allocator wrappers,
 * the per-handle error message, and the layout of the model handle that the trainer and the
 * built-in models both need. Nothing here is exported. */
#ifndef REVL_INTERNAL_H
#define REVL_INTERNAL_H

#define REVL_BUILDING 1
#include "revl.h"

#include <stdarg.h>
#include <stddef.h>

#define RV_HIDDEN __attribute__((visibility("hidden")))
#define RV_ERRLEN 256

/* ---- memory: every allocation of a handle goes through its allocator */
RV_HIDDEN void rv_allocator_copy(revl_allocator *dst, const revl_allocator *src /* NULL ok */);
RV_HIDDEN void *rv_alloc(const revl_allocator *a, size_t size);  /* NULL on failure or overflow */
RV_HIDDEN void *rv_calloc(const revl_allocator *a, size_t n, size_t size); /* zeroed */
RV_HIDDEN void rv_free(const revl_allocator *a, void *p);                 /* NULL ok */
/* n*size without overflow, or 0 with *ok = 0 */
RV_HIDDEN size_t rv_mul_size(size_t n, size_t size, int *ok);

/* ---- error messages: every handle has char err[RV_ERRLEN]; returns status for tail calls */
RV_HIDDEN int rv_fail(char *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
RV_HIDDEN void rv_clear(char *err);

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

/* Deterministic random numbers (splitmix64), the same on every platform. */
RV_HIDDEN uint64_t rv_rand_u64(uint64_t *state);
RV_HIDDEN double rv_rand_uniform(uint64_t *state);  /* in (0, 1) */
RV_HIDDEN double rv_rand_normal(uint64_t *state);   /* standard normal, Box-Muller */

#endif
