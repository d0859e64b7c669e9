/* adam_dir.h: Adam's weight step from the fixed-point moments, for a run of parameters,
 *   y = alpha_fixed ((m 2^-100 / c1) / (sqrt(s 2^-100 / c2) + eps))      (adam.c's adam_direction)
 * with a plain version and an AVX-512 one chosen at run time. Each lane does the same IEEE
 * operations in the same order (the conversions of the 128-bit moments included; no fused
 * multiply-add, the library is built with -ffp-contract=off), and sqrt and division are
 * correctly rounded, so both give the same bits. */
#ifndef REVL_ADAM_DIR_H
#define REVL_ADAM_DIR_H

#include "base/internal.h"
#include "exact/wide.h"

typedef struct rv_adam_dir {
    double m_scale, s_scale, eps, alpha_fixed;
} rv_adam_dir;

/* The scalar reference: y for one parameter. */
static inline double rv_adam_step1(const rv_adam_dir *c, rv_wide m, rv_wide s)
{
    double mhat = rv_wide_to_double(m) * c->m_scale;
    double d = sqrt(rv_wide_to_double(s) * c->s_scale) + c->eps;
    return c->alpha_fixed * (mhat / d);
}

/* y[i] for i in [0, n). */
RV_HIDDEN void rv_adam_steps_plain(const rv_adam_dir *c, size_t n, const rv_wide *m,
                                   const rv_wide *s, double *y);
RV_HIDDEN void rv_adam_steps(const rv_adam_dir *c, size_t n, const rv_wide *m, const rv_wide *s,
                             double *y);
/* 1 when rv_adam_steps runs the vector version on this processor. */
RV_HIDDEN int rv_adam_steps_vector(void);
/* Tests set it nonzero to make rv_adam_steps run the plain version. */
RV_HIDDEN extern int rv_adam_steps_narrow;

#endif
