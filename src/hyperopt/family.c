/* family.c: schedule families, maps theta -> z (every hyperparameter of a run in the unconstrained
 * coordinates of coords.h) with their exact transposes (revl.h, "schedule families";
 * docs/hyperopt.md, "Families"). The layout of theta and the names and default box of its
 * coordinates are in family_layout.c; this file has the maps, their transposes and the calls. */
#include "hyperopt/family_impl.h"

#include <math.h>
#include <string.h>

void revl_family_options_init(revl_family_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->type = REVL_FAMILY_PER_STEP;
    o->learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE;
    o->window = 10;
    o->shape = REVL_SHAPE_LINEAR;
}

void revl_family_free(revl_family *f)
{
    if (!f)
        return;
    revl_allocator a = f->alloc;
    double *arrays[] = {f->base, f->lo, f->hi, f->zs, f->ts};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        rv_free(&a, arrays[k]);
    rv_free(&a, f->layer);
    rv_free(&a, f);
}

size_t revl_family_n_theta(const revl_family *f)
{
    return f ? f->n_theta : 0;
}

size_t revl_family_n_z(const revl_family *f)
{
    return f ? f->n_z : 0;
}

const char *revl_family_last_error(const revl_family *f)
{
    return f ? f->err : "family is NULL";
}

/* ---- the maps */

/* SHAPE: log s(t) without warm-up, and its derivative in the log final fraction lf. With
 * u = t / (T - 1): LINEAR s = 1 - (1 - f) u, ds/df = u; COSINE s = f + (1 - f) c with
 * c = (1 + cos(pi u)) / 2, ds/df = 1 - c; d log s / d lf = f ds/df / s. */
static double shape_log(const revl_family *f, size_t t, double lf, double *dlog)
{
    double u = f->T > 1 ? (double)t / (double)(f->T - 1) : 0.0, fr = exp(lf), s, dsdf;
    if (f->o.shape == REVL_SHAPE_LINEAR) {
        s = 1.0 - (1.0 - fr) * u;
        dsdf = u;
    } else if (f->o.shape == REVL_SHAPE_COSINE) {
        double c = 0.5 * (1.0 + cos(3.14159265358979323846 * u));
        s = fr + (1.0 - fr) * c;
        dsdf = 1.0 - c;
    } else {
        *dlog = 0.0;
        return 0.0;
    }
    *dlog = fr * dsdf / s;
    return log(s);
}

/* The warm-up's fixed log factor log min(1, (t + 1) / warmup). */
static double warmup_log(const revl_family *f, size_t t)
{
    return t + 1 < f->o.warmup ? log((double)(t + 1) / (double)f->o.warmup) : 0.0;
}

/* z (n_z, starting as the base) from theta, PER_STEP and WINDOWS: each window's value copied to
 * its steps, so that PER_STEP (window 1) copies bit for bit. */
static void map_windows(const revl_family *f, const double *theta, double *z)
{
    size_t T = f->T, G = f->G, w = f->window, tb;
    for (size_t k = 0; k < f->n_fk; k++)
        if ((tb = f->th_kind[k]) != RV_FAMILY_NONE)
            for (size_t t = 0; t < T; t++)
                for (size_t g = 0; g < G; g++)
                    z[rv_family_zk(f, k) + t * G + g] = theta[tb + t / w * G + g];
    if (f->th_init != RV_FAMILY_NONE)
        memcpy(z + f->z_init, theta + f->th_init, G * sizeof *z);
    if (f->th_meta != RV_FAMILY_NONE)
        memcpy(z + f->z_meta, theta + f->th_meta, f->n_meta * sizeof *z);
}

/* dtheta = J^T dz: the sum of dz over each window, its first step assigned (not added to 0) so
 * that PER_STEP copies bit for bit (-0 stays -0). */
static void vjp_windows(const revl_family *f, const double *dz, double *dtheta)
{
    size_t T = f->T, G = f->G, w = f->window, tb;
    for (size_t k = 0; k < f->n_fk; k++)
        if ((tb = f->th_kind[k]) != RV_FAMILY_NONE)
            for (size_t t = 0; t < T; t++)
                for (size_t g = 0; g < G; g++) {
                    double d = dz[rv_family_zk(f, k) + t * G + g];
                    double *out = &dtheta[tb + t / w * G + g];
                    *out = t % w ? *out + d : d;
                }
    if (f->th_init != RV_FAMILY_NONE)
        memcpy(dtheta + f->th_init, dz + f->z_init, f->G * sizeof *dz);
    if (f->th_meta != RV_FAMILY_NONE)
        memcpy(dtheta + f->th_meta, dz + f->z_meta, f->n_meta * sizeof *dz);
}

static void map_shape(const revl_family *f, const double *theta, double *z)
{
    size_t T = f->T, G = f->G, tb;
    for (size_t k = 0; k < f->n_fk; k++) {
        if ((tb = f->th_kind[k]) == RV_FAMILY_NONE)
            continue;
        double *zk = z + rv_family_zk(f, k);
        if (k != f->k_alpha) {
            for (size_t i = 0; i < f->n_sg; i++)
                zk[i] = theta[tb];
            continue;
        }
        double lf = f->th_lf != RV_FAMILY_NONE ? theta[f->th_lf] : 0.0, dlog;
        for (size_t t = 0; t < T; t++) {
            double ls = theta[tb] + shape_log(f, t, lf, &dlog) + warmup_log(f, t);
            for (size_t g = 0; g < G; g++)
                zk[t * G + g] = ls + theta[f->th_mult + f->layer[g]];
        }
    }
    if (f->th_init != RV_FAMILY_NONE)
        for (size_t g = 0; g < G; g++)
            z[f->z_init + g] = theta[f->th_init];
    if (f->th_meta != RV_FAMILY_NONE)
        for (size_t j = 0; j < f->n_meta; j++)
            z[f->z_meta + j] = f->base[f->z_meta + j] + theta[f->th_meta];
}

static void vjp_shape(const revl_family *f, const double *theta, const double *dz, double *dtheta)
{
    size_t T = f->T, G = f->G, tb;
    memset(dtheta, 0, f->n_theta * sizeof *dtheta);
    for (size_t k = 0; k < f->n_fk; k++) {
        if ((tb = f->th_kind[k]) == RV_FAMILY_NONE)
            continue;
        const double *dk = dz + rv_family_zk(f, k);
        if (k != f->k_alpha) {
            for (size_t i = 0; i < f->n_sg; i++)
                dtheta[tb] += dk[i];
            continue;
        }
        double lf = f->th_lf != RV_FAMILY_NONE ? theta[f->th_lf] : 0.0, dlog;
        for (size_t t = 0; t < T; t++) {
            double row = 0.0;
            for (size_t g = 0; g < G; g++) {
                row += dk[t * G + g];
                dtheta[f->th_mult + f->layer[g]] += dk[t * G + g];
            }
            dtheta[tb] += row;
            shape_log(f, t, lf, &dlog);
            if (f->th_lf != RV_FAMILY_NONE)
                dtheta[f->th_lf] += row * dlog;
        }
    }
    if (f->th_init != RV_FAMILY_NONE)
        for (size_t g = 0; g < G; g++)
            dtheta[f->th_init] += dz[f->z_init + g];
    if (f->th_meta != RV_FAMILY_NONE)
        for (size_t j = 0; j < f->n_meta; j++)
            dtheta[f->th_meta] += dz[f->z_meta + j];
}

/* The first non-finite of x[n], or n. */
static size_t first_bad(const double *x, size_t n)
{
    size_t i = 0;
    while (i < n && isfinite(x[i]))
        i++;
    return i;
}

/* REVL_ERR_RANGE naming x[i] (theta when is_theta, else z) of the call fn. */
static int fail_coord(revl_family *f, const char *fn, const char *what, int is_theta, size_t i,
                      double x)
{
    char name[96];
    if (is_theta)
        rv_family_theta_name(f, i, name, sizeof name);
    else
        rv_family_z_name(f, i, name, sizeof name);
    if (isnan(x)) /* said once, as the library's other messages do */
        return rv_fail(f->err, REVL_ERR_RANGE, "%s: %s[%zu] is NaN (%s)", fn, what, i, name);
    return rv_fail(f->err, REVL_ERR_RANGE, "%s: %s[%zu] = %g (%s) is not finite", fn, what, i, x,
                   name);
}

int revl_family_map(revl_family *f, const double *theta, double *z)
{
    if (!f)
        return REVL_ERR_INVALID;
    if ((!theta && f->n_theta) || !z)
        return rv_fail(f->err, REVL_ERR_INVALID, "revl_family_map: theta or z is NULL");
    size_t i = f->n_theta ? first_bad(theta, f->n_theta) : 0;
    if (i < f->n_theta)
        return fail_coord(f, "revl_family_map", "theta", 1, i, theta[i]);
    /* into the scratch first: z is untouched when the result is refused */
    memcpy(f->zs, f->base, f->n_z * sizeof *z);
    if (f->o.type == REVL_FAMILY_USER) {
        int rc = f->o.map(theta, f->zs, f->o.user);
        if (rc)
            return rv_fail(f->err, REVL_ERR_CALLBACK,
                           "revl_family_map: the map callback returned %d", rc);
    } else if (f->o.type == REVL_FAMILY_SHAPE) {
        map_shape(f, theta, f->zs);
    } else {
        map_windows(f, theta, f->zs);
    }
    if ((i = first_bad(f->zs, f->n_z)) < f->n_z)
        return fail_coord(f, "revl_family_map", "z", 0, i, f->zs[i]);
    memcpy(z, f->zs, f->n_z * sizeof *z);
    rv_clear(f->err);
    return REVL_OK;
}

int revl_family_vjp(revl_family *f, const double *theta, const double *dz, double *dtheta)
{
    if (!f)
        return REVL_ERR_INVALID;
    if ((!theta || !dtheta) && f->n_theta)
        return rv_fail(f->err, REVL_ERR_INVALID, "revl_family_vjp: theta or dtheta is NULL");
    if (!dz)
        return rv_fail(f->err, REVL_ERR_INVALID, "revl_family_vjp: dz is NULL");
    size_t i = f->n_theta ? first_bad(theta, f->n_theta) : 0;
    if (i < f->n_theta)
        return fail_coord(f, "revl_family_vjp", "theta", 1, i, theta[i]);
    if ((i = first_bad(dz, f->n_z)) < f->n_z)
        return fail_coord(f, "revl_family_vjp", "dz", 0, i, dz[i]);
    if (!f->n_theta) {
        rv_clear(f->err);
        return REVL_OK;
    }
    if (f->o.type == REVL_FAMILY_USER) {
        memset(f->ts, 0, f->n_theta * sizeof *f->ts);
        int rc = f->o.vjp(theta, dz, f->ts, f->o.user);
        if (rc)
            return rv_fail(f->err, REVL_ERR_CALLBACK,
                           "revl_family_vjp: the vjp callback returned %d", rc);
    } else if (f->o.type == REVL_FAMILY_SHAPE) {
        vjp_shape(f, theta, dz, f->ts);
    } else {
        vjp_windows(f, dz, f->ts);
    }
    if ((i = first_bad(f->ts, f->n_theta)) < f->n_theta)
        return fail_coord(f, "revl_family_vjp", "dtheta", 1, i, f->ts[i]);
    memcpy(dtheta, f->ts, f->n_theta * sizeof *dtheta);
    rv_clear(f->err);
    return REVL_OK;
}

/* ---- base, projection, bounds */

int revl_family_set_base(revl_family *f, const double *z0)
{
    if (!f)
        return REVL_ERR_INVALID;
    if (!z0)
        return rv_fail(f->err, REVL_ERR_INVALID, "revl_family_set_base: z0 is NULL");
    size_t i = first_bad(z0, f->n_z);
    if (i < f->n_z)
        return fail_coord(f, "revl_family_set_base", "z0", 0, i, z0[i]);
    memcpy(f->base, z0, f->n_z * sizeof *z0);
    rv_clear(f->err);
    return REVL_OK;
}

int revl_family_get_base(const revl_family *f, double *z0)
{
    if (!f || !z0)
        return REVL_ERR_INVALID;
    memcpy(z0, f->base, f->n_z * sizeof *z0);
    return REVL_OK;
}

/* WINDOWS (and PER_STEP, window 1): each window's value is the mean of z over its steps, the
 * least-squares solution since the windows do not overlap; a window of one step gives z itself. */
static void project_windows(const revl_family *f, const double *z, double *theta)
{
    size_t T = f->T, G = f->G, w = f->window, tb;
    for (size_t k = 0; k < f->n_fk; k++) {
        if ((tb = f->th_kind[k]) == RV_FAMILY_NONE)
            continue;
        for (size_t t0 = 0; t0 < T; t0 += w) {
            size_t t1 = t0 + w < T ? t0 + w : T;
            for (size_t g = 0; g < G; g++) {
                double s = z[rv_family_zk(f, k) + t0 * G + g];
                for (size_t t = t0 + 1; t < t1; t++)
                    s += z[rv_family_zk(f, k) + t * G + g];
                theta[tb + t0 / w * G + g] = s / (double)(t1 - t0);
            }
        }
    }
    if (f->th_init != RV_FAMILY_NONE)
        memcpy(theta + f->th_init, z + f->z_init, G * sizeof *z);
    if (f->th_meta != RV_FAMILY_NONE)
        memcpy(theta + f->th_meta, z + f->z_meta, f->n_meta * sizeof *z);
}

int revl_family_project(revl_family *f, const double *z, double *theta)
{
    if (!f)
        return REVL_ERR_INVALID;
    if (!z || (!theta && f->n_theta))
        return rv_fail(f->err, REVL_ERR_INVALID, "revl_family_project: z or theta is NULL");
    if (f->o.type == REVL_FAMILY_SHAPE || f->o.type == REVL_FAMILY_USER)
        return rv_fail(f->err, REVL_ERR_INVALID,
                       "revl_family_project: a %s family has no projection (only PER_STEP and "
                       "WINDOWS have one)",
                       f->o.type == REVL_FAMILY_SHAPE ? "SHAPE" : "USER");
    size_t i = first_bad(z, f->n_z);
    if (i < f->n_z)
        return fail_coord(f, "revl_family_project", "z", 0, i, z[i]);
    project_windows(f, z, theta);
    rv_clear(f->err);
    return REVL_OK;
}

int revl_family_get_bounds(const revl_family *f, double *lo, double *hi)
{
    if (!f || ((!lo || !hi) && f->n_theta))
        return REVL_ERR_INVALID;
    if (f->n_theta) {
        memcpy(lo, f->lo, f->n_theta * sizeof *lo);
        memcpy(hi, f->hi, f->n_theta * sizeof *hi);
    }
    return REVL_OK;
}

int revl_family_set_bounds(revl_family *f, const double *lo, const double *hi)
{
    if (!f)
        return REVL_ERR_INVALID;
    if ((!lo || !hi) && f->n_theta)
        return rv_fail(f->err, REVL_ERR_INVALID, "revl_family_set_bounds: lo or hi is NULL");
    for (size_t i = 0; i < f->n_theta; i++)
        if (!(isfinite(lo[i]) && isfinite(hi[i]) && lo[i] < hi[i])) {
            char name[96];
            rv_family_theta_name(f, i, name, sizeof name);
            return rv_fail(f->err, REVL_ERR_INVALID,
                           "revl_family_set_bounds: [%g, %g] for theta[%zu] (%s): lo < hi, both "
                           "finite, is required",
                           lo[i], hi[i], i, name);
        }
    if (f->n_theta) {
        memcpy(f->lo, lo, f->n_theta * sizeof *lo);
        memcpy(f->hi, hi, f->n_theta * sizeof *hi);
    }
    rv_clear(f->err);
    return REVL_OK;
}

int revl_family_coord_name(const revl_family *f, size_t i, char *buf, size_t size)
{
    if (!f || !buf || size == 0 || i >= f->n_theta)
        return REVL_ERR_INVALID;
    rv_family_theta_name(f, i, buf, size);
    return REVL_OK;
}
