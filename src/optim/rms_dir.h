/* rms_dir.h: RMSprop's per-parameter arithmetic (rmsprop.c), for one parameter and for a run of
 * parameters in AVX-512 lanes where the processor has them (dir_lanes.h). With the decayed gradient
 * gi = g + lambda w (optim.h's rv_coupled_grad), gs = round((1-beta2) 2^100 gi^2) (at least one
 * unit when gi != 0) and gb = round(gi / (sqrt(s 2^-100) + eps) 2^100), the forward pass does
 * s += gs, then gb from the new s, b += gb, and the weight step y = (alpha (b 2^-100)) 2^frac_bits;
 * the reverse pass recomputes gb from the s it has (the forward's new one) and gs, and subtracts
 * them. The lanes do the same IEEE operations in the same order (no fused multiply-add: the
 * library is built with -ffp-contract=off; sqrt and division are correctly rounded), so they give
 * the same bits; they do only the common path and leave every other parameter to the scalar
 * functions here, whose failures rmsprop.c reports. */
#ifndef REVL_RMS_DIR_H
#define REVL_RMS_DIR_H

#include "base/internal.h"
#include "exact/wide.h"
#include "optim/optim.h"

#include <math.h>

#define RV_RMS_FRAC 100 /* s and b: 128-bit fixed point with 100 fractional bits */

typedef struct rv_rms_dir {
    double omb2_fixed; /* (1-beta2) 2^100 */
    double eps, lambda;
    double alpha, w_scale; /* w_scale = 2^frac_bits */
} rv_rms_dir;

/* (1-beta2) g^2 in s's units, at least one unit when g != 0 (its true value is > 0: a gradient
 * below s's resolution, |g| < about 9e-15, still makes s > 0), the same forward and back */
static inline int rv_rms_s_term(const rv_rms_dir *c, double g, rv_wide *gs)
{
    if (!rv_wide_round(c->omb2_fixed * (g * g), gs))
        return 0;
    if (*gs == 0 && g != 0)
        *gs = 1;
    return 1;
}

/* sqrt(s) + eps for the new s, the same double operations forward and back */
static inline double rv_rms_denominator(const rv_rms_dir *c, rv_wide s, double *a)
{
    *a = sqrt(rv_wide_to_double(s) * 0x1p-100);
    return *a + c->eps;
}

/* The weight step of b (alpha times b first: b = 0 moves nothing for every finite alpha, where
 * alpha 2^frac_bits overflows above about 4e291; the same bits otherwise). */
static inline double rv_rms_step1(const rv_rms_dir *c, rv_wide b)
{
    return c->alpha * (rv_wide_to_double(b) * 0x1p-100) * c->w_scale;
}

/* Why a forward update of one parameter failed, in the order it checks. */
enum {
    RV_RMS_OK,
    RV_RMS_GRAD,     /* g not finite */
    RV_RMS_DECAY,    /* g + lambda w not finite */
    RV_RMS_TERM,     /* gs out of range */
    RV_RMS_S,        /* s + gs out of range */
    RV_RMS_SINGULAR, /* the new s is 0 (its sqrt underflows) with gi != 0 */
    RV_RMS_B         /* gb or b + gb out of range */
};

/* The forward update of one parameter: RV_RMS_OK with *s, *b and *y (when y) written, or why not
 * with nothing written. */
static inline int rv_rms_add1(const rv_rms_dir *c, double g, double wd, rv_wide *s, rv_wide *b,
                              double *y)
{
    double gi = rv_coupled_grad(g, c->lambda, wd), sa;
    rv_wide gs, gb, si, bi;
    if (!isfinite(g))
        return RV_RMS_GRAD;
    if (!isfinite(gi)) /* the decay overflowed */
        return RV_RMS_DECAY;
    if (!rv_rms_s_term(c, gi, &gs))
        return RV_RMS_TERM;
    if (!rv_wide_add(*s, gs, &si))
        return RV_RMS_S;
    double d = rv_rms_denominator(c, si, &sa);
    int err = sa == 0 && gi != 0 ? RV_RMS_SINGULAR
              : !rv_wide_round(gi / d * 0x1p100 /* 2^RV_RMS_FRAC */, &gb) ||
                      !rv_wide_add(*b, gb, &bi)
                  ? RV_RMS_B
                  : RV_RMS_OK;
    if (err)
        return err;
    *s = si;
    *b = bi;
    if (y)
        *y = rv_rms_step1(c, bi);
    return RV_RMS_OK;
}

/* The reverse update of one parameter (undoes rv_rms_add1 exactly): 1, or 0 when a term or b's
 * difference is out of range, with nothing written. s - gs cannot leave the range: gs >= 0, and a
 * negative s has a NaN root, so gb fails first. */
static inline int rv_rms_sub1(const rv_rms_dir *c, double g, double wd, rv_wide *s, rv_wide *b)
{
    double gi = rv_coupled_grad(g, c->lambda, wd), sa, d = rv_rms_denominator(c, *s, &sa);
    rv_wide gs, gb;
    if (!rv_wide_round(gi / d * 0x1p100 /* 2^RV_RMS_FRAC */, &gb) || !rv_rms_s_term(c, gi, &gs) ||
        !rv_wide_add(*b, -gb, b))
        return 0;
    *s -= gs;
    return 1;
}

/* The lanes alone: rv_rms_add1 (sub: rv_rms_sub1) for i from 0 on while parameter i takes the
 * common path (every check passes, gb is not the legacy rounding: a negative gb above -2^64,
 * wide.h) and fewer than eight do not remain; returns the first i that does not, with nothing
 * of it or after it written. 0 without the lanes (rv_rms_lanes()). */
RV_HIDDEN size_t rv_rms_sums(const rv_rms_dir *c, int sub, size_t n, const double *g,
                             const double *wd, rv_wide *s, rv_wide *b, double *y);

/* rv_rms_add1 (sub: rv_rms_sub1) for parameters [0, n) of the arrays, y[i] the step (forward only),
 * in lanes (when rv_rms_lanes()) up to each parameter they leave to the scalar function; returns
 * the first i that fails (n when none), with nothing of it written (the caller redoes it to learn
 * why). */
RV_HIDDEN size_t rv_rms_run(const rv_rms_dir *c, int sub, size_t n, const double *g,
                            const double *wd, rv_wide *s, rv_wide *b, double *y);

/* The reverse pass's direction run (rmsprop.c, rms_direction) for parameters [0, n) of the arrays:
 * with gi the decayed gradient, a = sqrt(s 2^-100) and d = a + eps for s the new state, b's
 * dependence on s and eps, and u = -d f/d gi:
 *   t_eps = db (-gi / d^2)              (0 where d^2 underflows to 0: s = 0 and so gi = 0)
 *   ds += db (-gi / (2 a d^2))          (0 where a = 0: b does not depend on s there)
 *   u = -(db / d + 2 (1-beta2) gi ds),  t_decay = u w,  dw -= lambda u (when lambda != 0)
 * t_eps and t_decay per parameter; their sums in order are the caller's. */
typedef struct rv_rms_back {
    double omb2;                 /* 1-beta2 */
    const double *g, *wd;        /* the model's gradient, the weights (w_t) */
    const rv_wide *s;            /* s_{t+1} */
    double *db, *ds, *u, *dw;    /* adjoints; u the direction (dir_a) */
} rv_rms_back;

static inline void rv_rms_back1(const rv_rms_dir *c, const rv_rms_back *r, size_t i, double *t_eps,
                                double *t_decay)
{
    double gi = rv_coupled_grad(r->g[i], c->lambda, r->wd[i]), sa,
           d = rv_rms_denominator(c, r->s[i], &sa), d2 = d * d;
    double db_ds = sa > 0 ? -gi / (2.0 * sa * d2) : 0.0;
    t_eps[i] = r->db[i] * (d2 > 0 ? -gi / d2 : 0.0);
    r->ds[i] += r->db[i] * db_ds;
    r->u[i] = -(r->db[i] / d + 2.0 * r->omb2 * gi * r->ds[i]);
    t_decay[i] = r->u[i] * r->wd[i]; /* at lambda = 0 too: d lambda there is not 0 */
    if (c->lambda != 0)              /* dw -= 0 u could turn a -0 into +0 */
        r->dw[i] -= c->lambda * r->u[i];
}

/* rv_rms_back1 for [0, n), in lanes when rv_rms_lanes(). */
RV_HIDDEN void rv_rms_back_run(const rv_rms_dir *c, const rv_rms_back *r, size_t n, double *t_eps,
                               double *t_decay);

/* 1 when rv_rms_run uses the lanes: the processor has them, and adam_dir.h's
 * rv_adam_steps_narrow (the tests' switch to the plain versions) is 0. */
RV_HIDDEN int rv_rms_lanes(void);

#endif
