/* family_impl.h: the inside of a schedule family, shared by its two files: family_layout.c
 * (create, clone, where each coordinate of theta lives, names, default box) and family.c (the
 * maps, their transposes, base, projection, bounds). */
#ifndef REVL_HYPEROPT_FAMILY_IMPL_H
#define REVL_HYPEROPT_FAMILY_IMPL_H

#include "hyperopt/family.h"
#include "optim/optim.h"

#define RV_FAMILY_NONE ((size_t)-1) /* a part theta does not have */

struct revl_family {
    revl_allocator alloc;
    revl_family_options o; /* as given; group_layer = layer when one was given, else NULL */
    const rv_optim *opt;
    size_t T, G, n_meta, n_kinds, n_sg; /* n_sg = T * G */
    size_t n_z, n_theta;
    size_t z_init, z_meta;   /* offsets in z of the init scales and the meta-parameters */
    size_t z_clip;           /* offset in z of the clip block: last, present only when learn has
                                REVL_LEARN_CLIP (the hyper-optimiser's layout); else NONE */
    size_t n_fk;             /* kinds in z: the optimiser's n_kinds, then the clip if present */
    size_t window;           /* steps per window: 1 for PER_STEP, o.window for WINDOWS */
    size_t n_win;            /* windows: ceil(T / window) */
    size_t k_alpha;          /* alpha's position in the optimiser's kinds */
    /* offsets in theta (RV_FAMILY_NONE when absent): each kind's block (PER_STEP, WINDOWS: a
     * value per window and group; SHAPE: one value, for alpha the base a), init scales, meta;
     * SHAPE: the log final fraction and the first of n_layers multipliers */
    size_t th_kind[REVL_HYPER_COUNT];
    size_t th_init, th_meta, th_lf, th_mult;
    size_t n_layers;  /* SHAPE: multipliers */
    size_t *layer;    /* SHAPE: n_groups, the multiplier of each group (resolved) */
    double *base;     /* n_z */
    double *lo, *hi;  /* n_theta: the search box */
    double *zs, *ts;  /* scratch (n_z, n_theta): results are checked before they are written */
    char err[RV_ERRLEN];
};

/* The k-th kind of z (k < n_fk) and where its block starts in z. */
static inline revl_hyper rv_family_kind(const revl_family *f, size_t k)
{
    return k < f->n_kinds ? f->opt->kinds[k] : REVL_HYPER_CLIP;
}
static inline size_t rv_family_zk(const revl_family *f, size_t k)
{
    return k < f->n_kinds ? k * f->n_sg : f->z_clip;
}

/* "log alpha at step 3, group 1" (z) and what theta[i] is (revl_family_coord_name). */
RV_HIDDEN void rv_family_z_name(const revl_family *f, size_t i, char *buf, size_t size);
RV_HIDDEN void rv_family_theta_name(const revl_family *f, size_t i, char *buf, size_t size);

#endif
