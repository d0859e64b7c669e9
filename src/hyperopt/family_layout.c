/* family_layout.c: making a schedule family (options checked, theta laid out, default base and
 * box), its copy for the tuner, and what each coordinate of theta and z is called. */
#include "hyperopt/coords.h"
#include "hyperopt/family_impl.h"

#include <math.h>
#include <string.h>

#define CREATE_FAIL(...) rv_fail(rv_create_err(), REVL_ERR_INVALID, "revl_family_create: " __VA_ARGS__)

static int check_options(const revl_family_options *o, size_t n_groups)
{
    const unsigned all = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE |
                         REVL_LEARN_META | REVL_LEARN_BETA1 | REVL_LEARN_BETA2 | REVL_LEARN_EPS |
                         REVL_LEARN_WEIGHT_DECAY | REVL_LEARN_CLIP;
    if ((unsigned)o->type > REVL_FAMILY_USER)
        return CREATE_FAIL("type = %d is not a revl_family_type", (int)o->type);
    if (o->learn & ~all)
        return CREATE_FAIL("learn = %u has unknown bits (known: %u)", o->learn, all);
    if (o->type == REVL_FAMILY_WINDOWS && o->window == 0)
        return CREATE_FAIL("window = 0: a window needs at least one step");
    if (o->type == REVL_FAMILY_SHAPE) {
        if ((unsigned)o->shape > REVL_SHAPE_COSINE)
            return CREATE_FAIL("shape = %d is not CONSTANT, LINEAR or COSINE", (int)o->shape);
        if (o->n_layers > n_groups)
            return CREATE_FAIL("n_layers = %zu exceeds n_groups = %zu: a multiplier would apply "
                               "to no group", o->n_layers, n_groups);
        size_t n_layers = o->n_layers ? o->n_layers : n_groups;
        for (size_t g = 0; o->group_layer && g < n_groups; g++)
            if (o->group_layer[g] >= n_layers)
                return CREATE_FAIL("group_layer[%zu] = %zu is not below n_layers = %zu", g,
                                   o->group_layer[g], n_layers);
    }
    if (o->type == REVL_FAMILY_USER && o->n_theta == 0)
        return CREATE_FAIL("a USER family needs n_theta > 0");
    if (o->type == REVL_FAMILY_USER && (!o->map || !o->vjp))
        return CREATE_FAIL("a USER family needs both callbacks (%s is NULL)",
                           !o->map ? "map" : "vjp");
    return REVL_OK;
}

/* Where each part of theta is (the th_* offsets) and n_theta, for the checked options. */
static void lay_out(revl_family *f)
{
    const revl_family_options *o = &f->o;
    unsigned learn = o->learn;
    size_t n = 0;
    f->th_init = f->th_meta = f->th_lf = f->th_mult = RV_FAMILY_NONE;
    for (size_t k = 0; k < REVL_HYPER_COUNT; k++)
        f->th_kind[k] = RV_FAMILY_NONE;
    if (o->type == REVL_FAMILY_USER) {
        f->n_theta = o->n_theta;
        return;
    }
    if (o->type == REVL_FAMILY_SHAPE) {
        /* alpha first: its base, the decay's final fraction, the multipliers */
        if (learn & REVL_LEARN_ALPHA) {
            f->th_kind[f->k_alpha] = n++;
            if (o->shape != REVL_SHAPE_CONSTANT)
                f->th_lf = n++;
            f->th_mult = n;
            n += f->n_layers;
        }
        for (size_t k = 0; k < f->n_kinds; k++)
            if (k != f->k_alpha && (learn & rv_kind_learn_bit(f->opt->kinds[k])))
                f->th_kind[k] = n++;
        if (learn & REVL_LEARN_INIT_SCALE)
            f->th_init = n++;
        if ((learn & REVL_LEARN_META) && f->n_meta)
            f->th_meta = n++;
    } else {
        for (size_t k = 0; k < f->n_kinds; k++)
            if (learn & rv_kind_learn_bit(f->opt->kinds[k])) {
                f->th_kind[k] = n;
                n += f->n_win * f->G;
            }
        if (learn & REVL_LEARN_INIT_SCALE) {
            f->th_init = n;
            n += f->G;
        }
        if ((learn & REVL_LEARN_META) && f->n_meta) {
            f->th_meta = n;
            n += f->n_meta;
        }
    }
    /* the clip last, as in z (PER_STEP's theta is z) */
    if (f->z_clip != RV_FAMILY_NONE) {
        f->th_kind[f->n_kinds] = n;
        n += o->type == REVL_FAMILY_SHAPE ? 1 : f->n_win * f->G;
    }
    f->n_theta = n;
}

/* What theta[i] is: the part (a th_* offset's role), the kind, and its window or layer and group. */
typedef enum part { P_KIND, P_INIT, P_META, P_FINAL, P_MULT, P_USER } part;
typedef struct role {
    part p;
    size_t k;    /* P_KIND: position in the optimiser's kinds */
    size_t a, b; /* P_KIND: window (step for PER_STEP) and group; P_INIT: group; P_META: index;
                    P_MULT: layer; P_USER: i */
} role;

static role locate(const revl_family *f, size_t i)
{
    role r = {P_USER, 0, i, 0};
    if (f->o.type == REVL_FAMILY_USER)
        return r;
    int shape = f->o.type == REVL_FAMILY_SHAPE;
    size_t per_kind = shape ? 1 : f->n_win * f->G, per_init = shape ? 1 : f->G;
    for (size_t k = 0; k < f->n_fk; k++)
        if (f->th_kind[k] != RV_FAMILY_NONE && i - f->th_kind[k] < per_kind)
            return (role){P_KIND, k, (i - f->th_kind[k]) / f->G, (i - f->th_kind[k]) % f->G};
    if (f->th_init != RV_FAMILY_NONE && i - f->th_init < per_init)
        return (role){P_INIT, 0, i - f->th_init, 0};
    if (f->th_lf != RV_FAMILY_NONE && i == f->th_lf)
        return (role){P_FINAL, f->k_alpha, 0, 0};
    if (f->th_mult != RV_FAMILY_NONE && i - f->th_mult < f->n_layers)
        return (role){P_MULT, f->k_alpha, i - f->th_mult, 0};
    return (role){P_META, 0, i - f->th_meta, 0};
}

void rv_family_theta_name(const revl_family *f, size_t i, char *buf, size_t size)
{
    role r = locate(f, i);
    const char *kind = rv_kind_coord_name(rv_family_kind(f, r.k));
    int shape = f->o.type == REVL_FAMILY_SHAPE;
    switch (r.p) {
    case P_KIND:
        if (shape)
            snprintf(buf, size, "%s", kind);
        else if (f->window == 1)
            snprintf(buf, size, "%s at step %zu, group %zu", kind, r.a, r.b);
        else {
            size_t t0 = r.a * f->window, t1 = t0 + f->window < f->T ? t0 + f->window : f->T;
            snprintf(buf, size, "%s over steps %zu-%zu, group %zu", kind, t0, t1 - 1, r.b);
        }
        break;
    case P_INIT:
        if (shape)
            snprintf(buf, size, "log init scale of every group");
        else
            snprintf(buf, size, "log init scale of group %zu", r.a);
        break;
    case P_META:
        if (shape)
            snprintf(buf, size, "meta offset");
        else
            snprintf(buf, size, "meta %zu", r.a);
        break;
    case P_FINAL:
        snprintf(buf, size, "alpha decay log final fraction");
        break;
    case P_MULT:
        snprintf(buf, size, "log alpha multiplier of layer %zu", r.a);
        break;
    case P_USER:
        snprintf(buf, size, "theta %zu", r.a);
        break;
    }
}

void rv_family_z_name(const revl_family *f, size_t i, char *buf, size_t size)
{
    if (i < f->z_init)
        snprintf(buf, size, "%s at step %zu, group %zu",
                 rv_kind_coord_name(f->opt->kinds[i / f->n_sg]), i % f->n_sg / f->G, i % f->G);
    else if (i < f->z_meta)
        snprintf(buf, size, "log init scale of group %zu", i - f->z_init);
    else if (i < f->z_meta + f->n_meta)
        snprintf(buf, size, "meta %zu", i - f->z_meta);
    else
        snprintf(buf, size, "log clip at step %zu, group %zu", (i - f->z_clip) / f->G,
                 (i - f->z_clip) % f->G);
}

/* The default search box of a kind's coordinate (docs/hyperopt.md, "Families"). alpha's depends
 * on the optimiser: revl's momentum steps by alpha v with v an average of -g (the (1 - gamma)
 * factor), so its useful rates are those of plain SGD; Adam's and RMSprop's steps are alpha per
 * unit of normalised gradient. */
static void kind_box(const revl_family *f, revl_hyper kind, double *lo, double *hi)
{
    switch (kind) {
    case REVL_HYPER_ALPHA:
        if (f->opt->id == REVL_OPTIM_MOMENTUM)
            *lo = log(0.01), *hi = log(10.0);
        else
            *lo = log(1e-4), *hi = log(0.1);
        return;
    case REVL_HYPER_GAMMA: /* gamma in [0.5, 0.99] */
    case REVL_HYPER_BETA1:
        *lo = 0.0, *hi = log(99.0);
        return;
    case REVL_HYPER_BETA2: /* [0.9, 0.9999] */
        *lo = log(9.0), *hi = log(9999.0);
        return;
    case REVL_HYPER_EPS:
        *lo = log(1e-10), *hi = log(1e-4);
        return;
    case REVL_HYPER_WEIGHT_DECAY: /* [1e-5, 0.3], coupled or decoupled */
        *lo = log(1e-5), *hi = log(0.3);
        return;
    case REVL_HYPER_CLIP: /* a decade either side of the base clip 1 (the gradient norm's
                             scale is the model's: set_bounds when it is far from 1) */
        *lo = log(0.1), *hi = log(10.0);
        return;
    }
    *lo = -1.0, *hi = 1.0;
}

static void default_bounds(revl_family *f)
{
    for (size_t i = 0; i < f->n_theta; i++) {
        role r = locate(f, i);
        double *lo = &f->lo[i], *hi = &f->hi[i];
        switch (r.p) {
        case P_KIND: kind_box(f, rv_family_kind(f, r.k), lo, hi); break;
        case P_INIT: *lo = log(1e-3), *hi = 0.0; break;
        case P_META: *lo = -10.0, *hi = 2.0; break;
        case P_FINAL: *lo = log(0.01), *hi = 0.0; break;
        case P_MULT: *lo = -log(10.0), *hi = log(10.0); break;
        case P_USER: *lo = -1.0, *hi = 1.0; break;
        }
    }
}

/* The optimiser's schedule defaults in z, log init scale -3, meta 0. */
static void default_base(revl_family *f)
{
    for (size_t k = 0; k < f->n_fk; k++) {
        /* the clip's default is +inf (no clipping), whose log no map can move: base clip 1 */
        double z = k < f->n_kinds
                       ? rv_to_unconstrained(rv_kind_coord(f->opt->kinds[k]), f->opt->defaults[k])
                       : 0.0;
        for (size_t i = 0; i < f->n_sg; i++)
            f->base[rv_family_zk(f, k) + i] = z;
    }
    for (size_t g = 0; g < f->G; g++)
        f->base[f->z_init + g] = -3.0;
    for (size_t j = 0; j < f->n_meta; j++)
        f->base[f->z_meta + j] = 0.0;
}

/* A family with checked options o through allocator a (NULL = malloc/free), at the default base
 * and box. */
static int family_new(revl_family **out, const rv_optim *opt, size_t T, size_t G, size_t nm,
                      const revl_family_options *o, const revl_allocator *a)
{
    revl_allocator alloc;
    rv_allocator_copy(&alloc, a);
    revl_family *f = rv_calloc(&alloc, 1, sizeof *f);
    if (!f)
        return REVL_ERR_NOMEM;
    f->alloc = alloc;
    f->o = *o;
    f->o.group_layer = NULL;
    f->opt = opt;
    f->T = T, f->G = G, f->n_meta = nm, f->n_kinds = opt->n_kinds, f->n_sg = T * G;
    f->z_init = f->n_kinds * f->n_sg;
    f->z_meta = f->z_init + G;
    f->n_z = f->z_meta + nm;
    f->n_fk = f->n_kinds;
    f->z_clip = RV_FAMILY_NONE;
    if (o->learn & REVL_LEARN_CLIP) {
        f->z_clip = f->n_z;
        f->n_z += f->n_sg;
        f->n_fk++;
    }
    f->window = o->type == REVL_FAMILY_WINDOWS ? o->window : 1;
    f->n_win = T / f->window + (T % f->window != 0);
    f->k_alpha = (size_t)rv_optim_kind_index(opt, REVL_HYPER_ALPHA);
    f->n_layers = o->n_layers ? o->n_layers : G;
    lay_out(f);
    int ok = (f->base = rv_calloc(&alloc, f->n_z, sizeof(double))) &&
             (f->zs = rv_calloc(&alloc, f->n_z, sizeof(double))) &&
             (f->lo = rv_calloc(&alloc, f->n_theta, sizeof(double))) &&
             (f->hi = rv_calloc(&alloc, f->n_theta, sizeof(double))) &&
             (f->ts = rv_calloc(&alloc, f->n_theta, sizeof(double)));
    if (ok && o->type == REVL_FAMILY_SHAPE) {
        ok = (f->layer = rv_calloc(&alloc, G, sizeof *f->layer)) != NULL;
        /* g * n_layers / G in 128 bits: the product can exceed size_t */
        for (size_t g = 0; ok && g < G; g++)
            f->layer[g] = o->group_layer ? o->group_layer[g]
                                         : (size_t)((unsigned __int128)g * f->n_layers / G);
        if (o->group_layer)
            f->o.group_layer = f->layer;
    }
    if (!ok) {
        revl_family_free(f);
        return REVL_ERR_NOMEM;
    }
    default_base(f);
    default_bounds(f);
    *out = f;
    return REVL_OK;
}

static int family_create(revl_family **out, revl_optimizer optimizer, size_t n_steps,
                         size_t n_groups, size_t n_meta, const revl_family_options *opts)
{
    if (!out)
        return rv_fail(rv_create_err(), REVL_ERR_INVALID, "revl_family_create: out is NULL");
    *out = NULL;
    const rv_optim *opt = rv_optim_get(optimizer);
    if (!opt)
        return CREATE_FAIL("optimizer = %d is not a revl_optimizer", (int)optimizer);
    if (n_steps == 0 || n_groups == 0)
        return CREATE_FAIL("n_steps = %zu, n_groups = %zu: both must be > 0", n_steps, n_groups);
    revl_family_options o;
    revl_family_options_init(&o);
    if (opts) {
        if (rv_struct_size_check(rv_create_err(), RV_STRUCT_FAMILY_OPTIONS, opts->struct_size))
            return REVL_ERR_INVALID;
        o = *opts;
    }
    int rc = check_options(&o, n_groups);
    if (rc)
        return rc;
    /* n_z = n_kinds T G + G + n_meta doubles must be addressable */
    size_t n_z = 0;
    if (__builtin_mul_overflow(n_steps, n_groups, &n_z) ||
        __builtin_mul_overflow(n_z, opt->n_kinds + 1, &n_z) || /* + 1: a learned clip */
        __builtin_add_overflow(n_z, n_groups, &n_z) || __builtin_add_overflow(n_z, n_meta, &n_z) ||
        n_z > SIZE_MAX / sizeof(double))
        return CREATE_FAIL("n_steps = %zu, n_groups = %zu, n_meta = %zu: too many values",
                           n_steps, n_groups, n_meta);
    return family_new(out, opt, n_steps, n_groups, n_meta, &o, NULL);
}

int revl_family_create(revl_family **out, revl_optimizer optimizer, size_t n_steps,
                       size_t n_groups, size_t n_meta, const revl_family_options *opts)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(family_create(out, optimizer, n_steps, n_groups, n_meta, opts),
                         "revl_family_create");
}

int rv_family_clone(revl_family **out, const revl_family *src, const revl_allocator *a)
{
    if (!out || !src)
        return REVL_ERR_INVALID;
    *out = NULL;
    revl_family *f;
    int rc = family_new(&f, src->opt, src->T, src->G, src->n_meta, &src->o, a);
    if (rc)
        return rc;
    memcpy(f->base, src->base, src->n_z * sizeof *f->base);
    memcpy(f->lo, src->lo, src->n_theta * sizeof *f->lo);
    memcpy(f->hi, src->hi, src->n_theta * sizeof *f->hi);
    *out = f;
    return REVL_OK;
}

void rv_family_shape(const revl_family *f, revl_optimizer *opt, size_t *n_steps,
                     size_t *n_groups, size_t *n_meta)
{
    *opt = f->opt->id;
    *n_steps = f->T;
    *n_groups = f->G;
    *n_meta = f->n_meta;
}

const revl_family_options *rv_family_options(const revl_family *f)
{
    return &f->o;
}
