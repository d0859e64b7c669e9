/* adam_dir.h: Adam's weight step from the fixed-point moments, for a run of parameters,
 *   y = (alpha ((m 2^-100 / c1) / (sqrt(s 2^-100 / c2) + eps))) 2^frac_bits     (adam.c)
 * (alpha times u first: the same bits as alpha 2^frac_bits times u, since scaling by a power of
 * two is exact, but u = 0 gives y = 0 for every finite alpha, where alpha 2^frac_bits overflows
 * for alpha above about 4e291 and 0 times it is NaN)
 * with a plain version and an AVX-512 one chosen at run time. Each lane does the same IEEE
 * operations in the same order (the conversions of the 128-bit moments included; no fused
 * multiply-add, the library is built with -ffp-contract=off), and sqrt and division are
 * correctly rounded, so both give the same bits. */
#ifndef REVL_ADAM_DIR_H
#define REVL_ADAM_DIR_H

#include "base/internal.h"
#include "exact/wide.h"

#define RV_ADAM_RUN 256 /* parameters per call of rv_adam_terms_run: adam.c's chunk */

typedef struct rv_adam_dir {
    double m_scale, s_scale, eps, alpha, w_scale; /* w_scale = 2^frac_bits (u to w units) */
} rv_adam_dir;

/* The scalar reference: y for one parameter. */
static inline double rv_adam_step1(const rv_adam_dir *c, rv_wide m, rv_wide s)
{
    double mhat = rv_wide_to_double(m) * c->m_scale;
    double d = sqrt(rv_wide_to_double(s) * c->s_scale) + c->eps;
    return c->alpha * (mhat / d) * c->w_scale;
}

/* What the reverse pass needs of parameter i besides the step: u = mhat / d and its partial
 * derivatives (adam.c, adam_undo_position), mhat = m 2^-100 / c1, a = sqrt(s 2^-100 / c2),
 * d = a + eps; du_ds is 0 where a is (m = s = 0: u is 0 along s there, not 0/0), and du_deps,
 * du_dc2 are 0 where d^2 underflows to 0 (then a = 0, so m = 0 and u is 0 along eps and c2: an
 * eps below about 1e-162 on a weight whose gradient is always 0, not 0/0). */
typedef struct rv_adam_terms {
    double u[RV_ADAM_RUN], du_dm[RV_ADAM_RUN], du_ds[RV_ADAM_RUN], du_deps[RV_ADAM_RUN],
        du_dc1[RV_ADAM_RUN], du_dc2[RV_ADAM_RUN];
} rv_adam_terms;

/* u = mhat / d (the step's own bits: the forward pass moved w by it) and its derivatives
 * du/dm = 1/(c1 d), du/ds = -mhat/(2 a c2 d^2), du/deps = -mhat/d^2, du/dc1 = -u/c1,
 * du/dc2 = mhat a/(2 c2 d^2), from three divisions per parameter instead of six: r = 1/d and
 * e = u r = mhat/d^2, and ic1 = 1/c1, h = 1/(2 c2) per run (each derivative within a few units
 * in the last place of the direct quotient; only u must keep its bits). */
static inline void rv_adam_terms1(const rv_adam_dir *c, double ic1, double h, rv_wide m,
                                  rv_wide s, rv_adam_terms *t, size_t i)
{
    double mhat = rv_wide_to_double(m) * c->m_scale;
    double a = sqrt(rv_wide_to_double(s) * c->s_scale);
    double d = a + c->eps, u = mhat / d, d2 = d * d, r = 1.0 / d, e = u * r;
    t->u[i] = u;
    t->du_dm[i] = r * ic1;
    t->du_ds[i] = a > 0 ? -e * (h / a) : 0.0;
    t->du_deps[i] = d2 > 0 ? -e : 0.0;
    t->du_dc1[i] = -u * ic1;
    t->du_dc2[i] = d2 > 0 ? e * a * h : 0.0; /* 0 where a is */
}

/* t's entries [0, n) (n <= RV_ADAM_RUN) for the moments m[0, n), s[0, n). */
RV_HIDDEN void rv_adam_terms_plain(const rv_adam_dir *c, double c1, double c2, size_t n,
                                   const rv_wide *m, const rv_wide *s, rv_adam_terms *t);
RV_HIDDEN void rv_adam_terms_run(const rv_adam_dir *c, double c1, double c2, size_t n,
                                 const rv_wide *m, const rv_wide *s, rv_adam_terms *t);

/* y[i] for i in [0, n). */
RV_HIDDEN void rv_adam_steps_plain(const rv_adam_dir *c, size_t n, const rv_wide *m,
                                   const rv_wide *s, double *y);
RV_HIDDEN void rv_adam_steps(const rv_adam_dir *c, size_t n, const rv_wide *m, const rv_wide *s,
                             double *y);
/* 1 when rv_adam_steps runs the vector version on this processor. */
RV_HIDDEN int rv_adam_steps_vector(void);
/* Tests set it nonzero to make rv_adam_steps run the plain version. */
RV_HIDDEN extern int rv_adam_steps_narrow;

/* Adam's moment sums for a run: m[i] += gm, s[i] += gs (sub: -=), gm = round((1-beta1) 2^100 g[i]),
 * gs = round((1-beta2) 2^100 g[i]^2) (wide.h's rv_wide_round), for i from 0 on while parameter i
 * takes the common path: g finite, both terms and both sums within (-2^126, 2^126), not the
 * legacy rounding (a negative (1-beta1) g 2^100 above -2^64), not g != 0 with (1-beta2) 2^100 g^2
 * below 1 (adam.c raises gs to one unit there), and (adding) not s = 0 with m != 0.
 * Returns the first i that does not (n when all do), with m, s changed only before it: the
 * caller's scalar code does that parameter (its failure, or its rare rounding) and calls again
 * from the next (it also stops before a remainder of fewer than eight). The plain version returns
 * 0; rv_adam_sums_lanes says whether the lanes run (then it is worth calling). */
typedef struct rv_adam_grad {
    double omb1_fixed, omb2_fixed;
} rv_adam_grad;
RV_HIDDEN size_t rv_adam_sums(const rv_adam_grad *c, int sub, size_t n, const double *g,
                              rv_wide *m, rv_wide *s);
static inline int rv_adam_sums_lanes(void)
{
    return !rv_adam_steps_narrow && rv_adam_steps_vector();
}

/* The reverse pass's adjoint run after the moments are undone (adam.c, adam_undo_state): per
 * parameter the betas' terms t1 = dm (m 2^-100 - g), t2 = ds (s 2^-100 - g^2) (their ordered sums
 * are the caller's), then dw -= hv, dm *= beta1, ds *= beta2. Returns 0 when some hv is not
 * finite (everything done anyway). */
typedef struct rv_adam_back {
    double beta1, beta2;
    const double *g, *hv;
    const rv_wide *m, *s;
    double *dw, *dm, *ds;
} rv_adam_back;

static inline void rv_adam_back1(const rv_adam_back *b, size_t i, double *t1, double *t2)
{
    double gi = b->g[i];
    t1[i] = b->dm[i] * (rv_wide_to_double(b->m[i]) * 0x1p-100 - gi);
    t2[i] = b->ds[i] * (rv_wide_to_double(b->s[i]) * 0x1p-100 - gi * gi);
    b->dw[i] -= b->hv[i];
    b->dm[i] *= b->beta1;
    b->ds[i] *= b->beta2;
}

/* [0, n) of b's arrays, n <= RV_ADAM_RUN */
RV_HIDDEN int rv_adam_back_run(const rv_adam_back *b, size_t n, double *t1, double *t2);

/* The weights' moves (optim.h's rv_pass_move_w: w -= round(y), sign < 0, or w += round(y), and
 * wd = w inv_scale; wd NULL: no double copy, as for momentum's velocity) for i from 0 on while
 * the rounding and the sum are in range; returns the first i that is not (or where fewer than
 * eight remain), w and wd changed only before it: the caller's rv_pass_move_w does that one. The
 * plain version returns 0. */
RV_HIDDEN size_t rv_adam_moves(int sign, double inv_scale, size_t n, const double *y, int64_t *w,
                               double *wd);

#endif
