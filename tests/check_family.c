/* check_family.c: schedule families (revl_family_*), for every type and every optimiser: the
 * transpose against central finite differences of the map; PER_STEP's map, transpose and
 * projection as exact copies; WINDOWS' projection as the window means; SHAPE's values against
 * the formulas of revl.h (T = 1, warm-up, every shape); learn masks keeping the rest at the base;
 * USER callbacks that work, fail or give NaN; default base, box and coordinate names; every bad
 * input with its message; allocation failure at every point of a copy, with nothing leaked. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "revl.h"
#include "testutil.h"
#include "hyperopt/family.h"

#define T_ 7
#define G_ 3
#define NM 2
#define ALL_LEARN                                                                              \
    (REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE | REVL_LEARN_META |           \
     REVL_LEARN_BETA1 | REVL_LEARN_BETA2 | REVL_LEARN_EPS | REVL_LEARN_WEIGHT_DECAY)
/* and the driver's clip, whose learned block is z's last */
#define ALL_LEARN_CLIP (ALL_LEARN | REVL_LEARN_CLIP)

/* every registered optimiser (REVL_OPTIM_COUNT): a new one is tested without an edit here */
static const revl_optimizer OPTS[REVL_OPTIM_COUNT] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM,
                                                      REVL_OPTIM_RMSPROP, REVL_OPTIM_ADAMW};

static uint64_t rng = 12345;
static double unif(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) * 0x1p-53;
}
static double normal(void)
{
    return sqrt(-2.0 * log(unif() + 1e-300)) * cos(6.283185307179586 * unif());
}

/* The variants the parameterised tests run through: 0 PER_STEP, 1 WINDOWS (3), 2-4 SHAPE
 * CONSTANT/LINEAR/COSINE with warm-up 3 and 2 layers, 5 SHAPE LINEAR without warm-up, one layer
 * per group, 6 USER. */
#define N_VARIANT 7

/* USER: z = base-free affine map z_i = sum_j A[i][j] theta_j + i / 10 (A fixed, dense enough),
 * vjp its transpose; `bad` makes map/vjp fail (1), give a NaN (2). */
#define USER_THETA 4
typedef struct user_ctx {
    size_t n_z;
    int bad;
    int calls;
} user_ctx;
static double user_a(size_t i, size_t j)
{
    return sin((double)(3 * i + 7 * j + 1));
}
static int user_map(const double *theta, double *z, void *user)
{
    user_ctx *u = user;
    u->calls++;
    if (u->bad == 1)
        return 7;
    for (size_t i = 0; i < u->n_z; i++) {
        z[i] = (double)i / 10;
        for (size_t j = 0; j < USER_THETA; j++)
            z[i] += user_a(i, j) * theta[j];
    }
    if (u->bad == 2)
        z[4] = NAN;
    return 0;
}
static int user_vjp(const double *theta, const double *dz, double *dtheta, void *user)
{
    user_ctx *u = user;
    (void)theta;
    u->calls++;
    if (u->bad == 1)
        return 9;
    for (size_t j = 0; j < USER_THETA; j++) {
        dtheta[j] = 0;
        for (size_t i = 0; i < u->n_z; i++)
            dtheta[j] += user_a(i, j) * dz[i];
    }
    if (u->bad == 2)
        dtheta[1] = INFINITY;
    return 0;
}
static user_ctx the_user;

static revl_family_options variant(int v, unsigned learn)
{
    revl_family_options o;
    revl_family_options_init(&o);
    o.learn = learn;
    if (v == 1) {
        o.type = REVL_FAMILY_WINDOWS;
        o.window = 3;
    } else if (v >= 2 && v <= 5) {
        o.type = REVL_FAMILY_SHAPE;
        o.shape = v == 2 ? REVL_SHAPE_CONSTANT : v == 4 ? REVL_SHAPE_COSINE : REVL_SHAPE_LINEAR;
        o.warmup = v == 5 ? 0 : 3;
        o.n_layers = v == 5 ? 0 : 2;
    } else if (v == 6) {
        o.type = REVL_FAMILY_USER;
        o.n_theta = USER_THETA;
        o.map = user_map;
        o.vjp = user_vjp;
        o.user = &the_user;
    }
    return o;
}

static revl_family *make(revl_optimizer opt, int v, unsigned learn)
{
    revl_family_options o = variant(v, learn);
    revl_family *f = NULL;
    int rc = revl_family_create(&f, opt, T_, G_, NM, &o);
    ck_assert_msg(rc == REVL_OK, "create: %s", revl_last_create_error());
    the_user = (user_ctx){revl_family_n_z(f), 0, 0};
    return f;
}

static double *random_theta(const revl_family *f)
{
    size_t n = revl_family_n_theta(f);
    double *th = malloc((n + 1) * sizeof *th), *lo = malloc((n + 1) * sizeof *lo),
           *hi = malloc((n + 1) * sizeof *hi);
    ck_assert_int_eq(revl_family_get_bounds(f, lo, hi), REVL_OK);
    for (size_t i = 0; i < n; i++)
        th[i] = lo[i] + unif() * (hi[i] - lo[i]);
    free(lo);
    free(hi);
    return th;
}

static double *random_vec(size_t n)
{
    double *x = malloc((n + 1) * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = normal();
    return x;
}

/* ------------------------------------------------------------------ transpose vs differences */

/* Every coordinate of J^T dz against (dz . (map(theta + h e_i) - map(theta - h e_i))) / 2h. The
 * maps are linear except SHAPE's log final fraction (error O(h^2) ~ 1e-12), so 1e-7 relative is
 * far above rounding and far below any dropped or wrong term (each O(1) with random dz). */
START_TEST(test_vjp_matches_differences)
{
    for (int v = 0; v < N_VARIANT; v++) {
        revl_family *f = make(OPTS[_i], v, ALL_LEARN_CLIP);
        size_t n = revl_family_n_theta(f), nz = revl_family_n_z(f);
        double *th = random_theta(f), *dz = random_vec(nz), *dth = malloc(n * sizeof *dth);
        double *zp = malloc(nz * sizeof *zp), *zm = malloc(nz * sizeof *zm);
        ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_OK);
        for (size_t i = 0; i < n; i++) {
            const double h = 1e-5, x = th[i];
            th[i] = x + h;
            ck_assert_int_eq(revl_family_map(f, th, zp), REVL_OK);
            th[i] = x - h;
            ck_assert_int_eq(revl_family_map(f, th, zm), REVL_OK);
            th[i] = x;
            double fd = 0;
            for (size_t k = 0; k < nz; k++)
                fd += dz[k] * (zp[k] - zm[k]);
            fd /= 2 * h;
            char name[96];
            revl_family_coord_name(f, i, name, sizeof name);
            ck_assert_msg(fabs(fd - dth[i]) <= 1e-7 * (1 + fabs(dth[i])),
                          "optimiser %d variant %d theta[%zu] (%s): vjp %.12g, differences %.12g",
                          _i, v, i, name, dth[i], fd);
        }
        free(th), free(dz), free(dth), free(zp), free(zm);
        revl_family_free(f);
    }
}
END_TEST

/* ------------------------------------------------------------------ PER_STEP and WINDOWS */

/* A base of random values, so that "kept at the base" cannot pass by accident. */
static double *random_base(revl_family *f)
{
    double *b = random_vec(revl_family_n_z(f));
    ck_assert_int_eq(revl_family_set_base(f, b), REVL_OK);
    return b;
}

START_TEST(test_per_step_is_exact)
{
    revl_family *f = make(OPTS[_i], 0, ALL_LEARN_CLIP);
    size_t n = revl_family_n_theta(f), nz = revl_family_n_z(f);
    /* every z learned: theta is z */
    ck_assert_uint_eq(n, nz);
    double *base = random_base(f), *th = random_vec(n), *z = malloc(nz * sizeof *z);
    double *back = malloc(n * sizeof *back), *dz = random_vec(nz);
    th[0] = -0.0, th[1] = 1e300, th[2] = -4.9e-324, dz[0] = -0.0, dz[3] = 5e-324;
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_OK);
    ck_assert(memcmp(z, th, nz * sizeof *z) == 0);
    ck_assert_int_eq(revl_family_project(f, z, back), REVL_OK);
    ck_assert(memcmp(back, th, n * sizeof *th) == 0);
    ck_assert_int_eq(revl_family_vjp(f, th, dz, back), REVL_OK);
    ck_assert(memcmp(back, dz, n * sizeof *dz) == 0);
    free(base), free(th), free(z), free(back), free(dz);
    revl_family_free(f);
}
END_TEST

/* A projected then mapped theta comes back (means of equal values); the projection of any z is
 * its window means, the last window shorter (7 steps in windows of 3: 3, 3, 1). */
START_TEST(test_windows_project)
{
    revl_family *f = make(OPTS[_i], 1, ALL_LEARN);
    size_t n = revl_family_n_theta(f), nz = revl_family_n_z(f);
    size_t nk = (nz - G_ - NM) / (T_ * G_);
    ck_assert_uint_eq(n, nk * 3 * G_ + G_ + NM);
    double *th = random_vec(n), *z = malloc(nz * sizeof *z), *back = malloc(n * sizeof *back);
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_OK);
    ck_assert_int_eq(revl_family_project(f, z, back), REVL_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(back[i] - th[i]) <= 5e-16 * fabs(th[i]), "theta[%zu]: %.17g -> %.17g",
                      i, th[i], back[i]);
    double *zr = random_vec(nz);
    ck_assert_int_eq(revl_family_project(f, zr, back), REVL_OK);
    for (size_t k = 0; k < nk; k++)
        for (size_t w = 0; w < 3; w++)
            for (size_t g = 0; g < G_; g++) {
                size_t t0 = 3 * w, t1 = t0 + 3 < T_ ? t0 + 3 : T_;
                double s = 0;
                for (size_t t = t0; t < t1; t++)
                    s += zr[k * T_ * G_ + t * G_ + g];
                double want = s / (double)(t1 - t0), got = back[k * 3 * G_ + w * G_ + g];
                ck_assert_msg(fabs(got - want) <= 1e-15 * (1 + fabs(want)),
                              "kind %zu window %zu group %zu: %.17g, want %.17g", k, w, g, got, want);
            }
    for (size_t j = 0; j < G_ + NM; j++)
        ck_assert(back[nk * 3 * G_ + j] == zr[nk * T_ * G_ + j]);
    /* the transpose sums dz over each window: a window of 3 ones gives 3, the last gives 1 */
    double *ones = malloc(nz * sizeof *ones);
    for (size_t i = 0; i < nz; i++)
        ones[i] = 1;
    ck_assert_int_eq(revl_family_vjp(f, th, ones, back), REVL_OK);
    ck_assert(back[0] == 3 && back[G_] == 3 && back[2 * G_] == 1);
    free(th), free(z), free(back), free(zr), free(ones);
    revl_family_free(f);
}
END_TEST

/* ------------------------------------------------------------------ SHAPE */

/* log s(t) by revl.h's formulas, written out again here */
static double want_log_shape(revl_shape shape, size_t t, size_t T, size_t warmup, double lf)
{
    double fr = exp(lf), u = T > 1 ? (double)t / (double)(T - 1) : 0, s = 1;
    if (shape == REVL_SHAPE_LINEAR)
        s = 1 - (1 - fr) * u;
    else if (shape == REVL_SHAPE_COSINE)
        s = fr + (1 - fr) * (1 + cos(3.14159265358979323846 * u)) / 2;
    if (warmup > 0 && (double)(t + 1) / (double)warmup < 1)
        s *= (double)(t + 1) / (double)warmup;
    return log(s);
}

START_TEST(test_shape_values)
{
    const size_t Ts[] = {1, 2, 9}, warmups[] = {0, 1, 4, 20};
    for (int shape = 0; shape < 3; shape++)
        for (size_t a = 0; a < 3; a++)
            for (size_t b = 0; b < 4; b++) {
                size_t T = Ts[a], G = 4;
                const size_t gl[4] = {2, 0, 1, 2};
                revl_family_options o;
                revl_family_options_init(&o);
                o.type = REVL_FAMILY_SHAPE;
                o.shape = (revl_shape)shape;
                o.warmup = warmups[b];
                o.n_layers = 3;
                o.group_layer = gl;
                o.learn = ALL_LEARN;
                revl_family *f = NULL;
                ck_assert_int_eq(revl_family_create(&f, OPTS[_i], T, G, 1, &o), REVL_OK);
                size_t n = revl_family_n_theta(f), nz = revl_family_n_z(f);
                size_t nk = (nz - G - 1) / (T * G), has_lf = shape != REVL_SHAPE_CONSTANT;
                ck_assert_uint_eq(n, 1 + has_lf + 3 + (nk - 1) + 1 + 1);
                double *base = random_base(f), *th = random_theta(f), *z = malloc(nz * sizeof *z);
                ck_assert_int_eq(revl_family_map(f, th, z), REVL_OK);
                double lf = has_lf ? th[1] : 0;
                const double *c = th + 1 + has_lf;
                for (size_t t = 0; t < T; t++)
                    for (size_t g = 0; g < G; g++) {
                        double want = th[0] + want_log_shape(o.shape, t, T, o.warmup, lf) + c[gl[g]];
                        ck_assert_msg(fabs(z[t * G + g] - want) <= 1e-14 * (1 + fabs(want)),
                                      "shape %d T %zu warmup %zu t %zu g %zu: %.17g, want %.17g",
                                      shape, T, o.warmup, t, g, z[t * G + g], want);
                    }
                /* the decay ends at the final fraction (no warm-up at the last step) */
                if (T > 1 && o.warmup <= T)
                    ck_assert(fabs(z[(T - 1) * G] - (th[0] + lf + c[gl[0]])) < 1e-13);
                /* every other kind one value everywhere; one init scale; meta base + offset */
                for (size_t k = 1; k < nk; k++)
                    for (size_t i = 0; i < T * G; i++)
                        ck_assert(z[k * T * G + i] == th[has_lf + 3 + k]);
                for (size_t g = 0; g < G; g++)
                    ck_assert(z[nk * T * G + g] == th[n - 2]);
                ck_assert(z[nz - 1] == base[nz - 1] + th[n - 1]);
                /* no projection for SHAPE */
                ck_assert_int_eq(revl_family_project(f, z, th), REVL_ERR_INVALID);
                expect_msg(revl_family_last_error(f), "SHAPE family has no projection");
                free(base), free(th), free(z);
                revl_family_free(f);
            }
}
END_TEST

/* ------------------------------------------------------------------ learn masks */

/* For each learn bit alone (and none): the z blocks it does not name stay at the base bit for
 * bit, the transpose ignores their dz, and a bit of a kind the optimiser lacks gives no theta. */
START_TEST(test_learn_masks)
{
    const unsigned bits[] = {0, REVL_LEARN_ALPHA, REVL_LEARN_GAMMA, REVL_LEARN_BETA1,
                             REVL_LEARN_BETA2, REVL_LEARN_EPS, REVL_LEARN_WEIGHT_DECAY,
                             REVL_LEARN_INIT_SCALE, REVL_LEARN_META, REVL_LEARN_CLIP};
    /* the optimiser's kinds as the library lists them */
    revl_hyper kinds_of[REVL_OPTIM_COUNT][REVL_HYPER_COUNT];
    {
        revl_schedule *probe = NULL;
        size_t off[2] = {0, 1};
        ck_assert_int_eq(revl_schedule_create_for(&probe, OPTS[_i], 1, 1, off, NULL), REVL_OK);
        revl_schedule_kinds(probe, kinds_of[_i]);
        revl_schedule_free(probe);
    }
    const unsigned bit_of[REVL_HYPER_COUNT] = {
        REVL_LEARN_ALPHA, REVL_LEARN_GAMMA, REVL_LEARN_BETA1, REVL_LEARN_BETA2, REVL_LEARN_EPS,
        REVL_LEARN_WEIGHT_DECAY};
    for (int v = 0; v < 6; v++)
        for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++) {
            revl_family *f = make(OPTS[_i], v, bits[b]);
            size_t n = revl_family_n_theta(f), nz = revl_family_n_z(f);
            /* a learned clip is z's last block, every optimiser's */
            size_t nclip = bits[b] == REVL_LEARN_CLIP ? T_ * G_ : 0;
            size_t nk = (nz - G_ - NM - nclip) / (T_ * G_);
            int has = bits[b] == REVL_LEARN_INIT_SCALE || bits[b] == REVL_LEARN_META || nclip;
            for (size_t k = 0; k < nk; k++)
                has |= bit_of[kinds_of[_i][k]] == bits[b];
            ck_assert_msg((n > 0) == has, "variant %d bit %u: n_theta %zu", v, bits[b], n);
            double *base = random_base(f), *th = random_theta(f), *z = malloc(nz * sizeof *z);
            ck_assert_int_eq(revl_family_map(f, th, z), REVL_OK);
            double *dz = random_vec(nz), *dz2 = malloc(nz * sizeof *dz2);
            memcpy(dz2, dz, nz * sizeof *dz);
            for (size_t i = 0; i < nz; i++) {
                unsigned owner = i >= nz - nclip    ? REVL_LEARN_CLIP
                                 : i < nk * T_ * G_   ? bit_of[kinds_of[_i][i / (T_ * G_)]]
                                 : i < nk * T_ * G_ + G_ ? REVL_LEARN_INIT_SCALE
                                                       : REVL_LEARN_META;
                if (owner != bits[b]) {
                    ck_assert_msg(memcmp(&z[i], &base[i], sizeof *z) == 0,
                                  "variant %d bit %u: z[%zu] left the base", v, bits[b], i);
                    dz2[i] = 1e3 * normal();
                } else {
                    ck_assert_msg(z[i] != base[i], "variant %d bit %u: z[%zu] not set", v,
                                  bits[b], i);
                }
            }
            double *d1 = malloc((n + 1) * sizeof *d1), *d2 = malloc((n + 1) * sizeof *d2);
            ck_assert_int_eq(revl_family_vjp(f, th, dz, d1), REVL_OK);
            ck_assert_int_eq(revl_family_vjp(f, th, dz2, d2), REVL_OK);
            ck_assert(memcmp(d1, d2, n * sizeof *d1) == 0);
            free(base), free(th), free(z), free(dz), free(dz2), free(d1), free(d2);
            revl_family_free(f);
        }
}
END_TEST

/* A learned clip: z's last block (the hyper-optimiser's layout), at base clip 1 (its default
 * +inf has no finite log) in the box [0.1, 10]; SHAPE learns one constant log clip. */
START_TEST(test_clip_block)
{
    revl_family_options o;
    revl_family_options_init(&o);
    o.learn = REVL_LEARN_CLIP;
    revl_family *f = NULL;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_MOMENTUM, 2, 1, 0, &o), REVL_OK);
    /* momentum's 3 kinds (alpha, gamma, weight_decay) x 2 steps, 1 init scale, then clip's 2 */
    ck_assert_uint_eq(revl_family_n_z(f), 3 * 2 + 1 + 2);
    ck_assert_uint_eq(revl_family_n_theta(f), 2);
    double z[9], lo[2], hi[2], th[2] = {0.25, -0.5};
    ck_assert_int_eq(revl_family_get_base(f, z), REVL_OK);
    ck_assert(z[7] == 0 && z[8] == 0 && z[6] == -3);
    ck_assert_int_eq(revl_family_get_bounds(f, lo, hi), REVL_OK);
    ck_assert(lo[0] == log(0.1) && hi[1] == log(10.0));
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_OK);
    ck_assert(z[7] == 0.25 && z[8] == -0.5 && z[0] == log(0.1));
    char buf[96];
    ck_assert_int_eq(revl_family_coord_name(f, 1, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "log clip at step 1, group 0");
    revl_family_free(f);
    o.type = REVL_FAMILY_SHAPE;
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_CLIP;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_ADAM, 2, 1, 0, &o), REVL_OK);
    size_t n = revl_family_n_theta(f);
    ck_assert_int_eq(revl_family_coord_name(f, n - 1, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "log clip");
    revl_family_free(f);
}
END_TEST

/* ------------------------------------------------------------------ defaults and names */

START_TEST(test_defaults_and_names)
{
    revl_family_options o;
    revl_family_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert(o.type == REVL_FAMILY_PER_STEP && o.window == 10 && o.shape == REVL_SHAPE_LINEAR);
    ck_assert_uint_eq(o.learn, REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE);
    revl_family_options_init(NULL);

    /* momentum, default options: theta = log alpha (T x G), logit gamma, log init scales; z
     * has log weight_decay too, at its default 0 (-700: exactly 0, coords.h) */
    revl_family *f = NULL;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_MOMENTUM, 4, 2, 1, NULL), REVL_OK);
    ck_assert_uint_eq(revl_family_n_z(f), 3 * 8 + 2 + 1);
    ck_assert_uint_eq(revl_family_n_theta(f), 2 * 8 + 2);
    double z0[27], lo[18], hi[18];
    ck_assert_int_eq(revl_family_get_base(f, z0), REVL_OK);
    ck_assert(fabs(z0[0] - log(0.1)) < 1e-15 && fabs(z0[8] - log(9.0)) < 1e-14);
    ck_assert(z0[16] == -700 && z0[23] == -700);
    ck_assert(z0[24] == -3 && z0[25] == -3 && z0[26] == 0);
    ck_assert_int_eq(revl_family_get_bounds(f, lo, hi), REVL_OK);
    ck_assert(fabs(lo[0] - log(0.01)) < 1e-15 && fabs(hi[7] - log(10.0)) < 1e-15);
    ck_assert(lo[8] == 0 && fabs(hi[15] - log(99.0)) < 1e-14);
    ck_assert(fabs(lo[16] - log(1e-3)) < 1e-15 && hi[17] == 0);
    char buf[96];
    ck_assert_int_eq(revl_family_coord_name(f, 3 * 2 + 1, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "log alpha at step 3, group 1");
    ck_assert_int_eq(revl_family_coord_name(f, 8 + 5, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "logit gamma at step 2, group 1");
    ck_assert_int_eq(revl_family_coord_name(f, 17, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "log init scale of group 1");
    ck_assert_int_eq(revl_family_coord_name(f, 17, buf, 5), REVL_OK);
    ck_assert_str_eq(buf, "log ");
    revl_family_free(f);

    /* Adam, everything, WINDOWS of 3 over 4 steps (2 windows) */
    o.type = REVL_FAMILY_WINDOWS, o.window = 3, o.learn = ALL_LEARN;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_ADAM, 4, 2, 1, &o), REVL_OK);
    ck_assert_uint_eq(revl_family_n_theta(f), 4 * 4 + 2 + 1);
    double lo2[19], hi2[19], z2[4 * 8 + 3];
    ck_assert_int_eq(revl_family_get_bounds(f, lo2, hi2), REVL_OK);
    ck_assert(fabs(lo2[0] - log(1e-4)) < 1e-15 && fabs(hi2[3] - log(0.1)) < 1e-15);
    ck_assert(lo2[4] == 0 && fabs(hi2[7] - log(99.0)) < 1e-14);               /* beta1 */
    ck_assert(fabs(lo2[8] - log(9.0)) < 1e-14 && fabs(hi2[11] - log(9999.0)) < 1e-12); /* beta2 */
    ck_assert(fabs(lo2[12] - log(1e-10)) < 1e-14 && fabs(hi2[15] - log(1e-4)) < 1e-14); /* eps */
    ck_assert(lo2[18] == -10 && hi2[18] == 2);
    ck_assert_int_eq(revl_family_get_base(f, z2), REVL_OK);
    ck_assert(fabs(z2[0] - log(1e-3)) < 1e-15 && fabs(z2[31] - log(1e-8)) < 1e-14);
    ck_assert_int_eq(revl_family_coord_name(f, 4 + 3, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "logit beta1 over steps 3-3, group 1");
    ck_assert_int_eq(revl_family_coord_name(f, 0, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "log alpha over steps 0-2, group 0");
    ck_assert_int_eq(revl_family_coord_name(f, 18, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "meta 0");
    revl_family_free(f);

    /* RMSprop SHAPE (LINEAR, 2 layers): a, log f, c0, c1, gamma, beta2, eps, weight_decay,
     * init, meta */
    const size_t gl[3] = {1, 1, 0};
    revl_family_options_init(&o);
    o.type = REVL_FAMILY_SHAPE, o.n_layers = 2, o.group_layer = gl, o.learn = ALL_LEARN;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_RMSPROP, 5, 3, 2, &o), REVL_OK);
    ck_assert_uint_eq(revl_family_n_theta(f), 10);
    const char *names[10] = {"log alpha", "alpha decay log final fraction",
                             "log alpha multiplier of layer 0", "log alpha multiplier of layer 1",
                             "logit gamma", "logit beta2", "log eps", "log weight_decay",
                             "log init scale of every group", "meta offset"};
    double lo3[10], hi3[10];
    const double want_lo[10] = {log(1e-4), log(0.01), -log(10.0), -log(10.0), 0, log(9.0),
                                log(1e-10), log(1e-5), log(1e-3), -10};
    ck_assert_int_eq(revl_family_get_bounds(f, lo3, hi3), REVL_OK);
    for (size_t i = 0; i < 10; i++) {
        ck_assert_int_eq(revl_family_coord_name(f, i, buf, sizeof buf), REVL_OK);
        ck_assert_str_eq(buf, names[i]);
        ck_assert_msg(fabs(lo3[i] - want_lo[i]) < 1e-14, "lo[%zu] = %g", i, lo3[i]);
    }
    /* the options kept, group_layer pointing at the family's own copy */
    const revl_family_options *kept = rv_family_options(f);
    ck_assert(kept->group_layer != gl && kept->group_layer[0] == 1 && kept->group_layer[2] == 0);
    ck_assert(kept->n_layers == 2 && kept->type == REVL_FAMILY_SHAPE);
    revl_optimizer opt;
    size_t T, G, nm;
    rv_family_shape(f, &opt, &T, &G, &nm);
    ck_assert(opt == REVL_OPTIM_RMSPROP && T == 5 && G == 3 && nm == 2);
    revl_family_free(f);

    /* default layers: group g uses g * n_layers / n_groups (4 groups, 2 layers: 0 0 1 1) */
    revl_family_options_init(&o);
    o.type = REVL_FAMILY_SHAPE, o.shape = REVL_SHAPE_CONSTANT, o.n_layers = 2;
    o.learn = REVL_LEARN_ALPHA;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_MOMENTUM, 1, 4, 0, &o), REVL_OK);
    const double th[3] = {-1, 0.25, 0.5};
    double z[3 * 4 + 4];
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_OK);
    ck_assert(z[0] == -0.75 && z[1] == -0.75 && z[2] == -0.5 && z[3] == -0.5);
    ck_assert(rv_family_options(f)->group_layer == NULL);
    revl_family_free(f);
}
END_TEST

/* ------------------------------------------------------------------ USER */

START_TEST(test_user_callbacks)
{
    revl_family *f = make(OPTS[_i], 6, ALL_LEARN);
    size_t nz = revl_family_n_z(f);
    double th[USER_THETA] = {0.1, -0.2, 0.3, 0.4}, *z = malloc(nz * sizeof *z);
    double *dz = random_vec(nz), dth[USER_THETA], lo[USER_THETA], hi[USER_THETA];
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_OK);
    ck_assert(z[5] == 0.5 + user_a(5, 0) * 0.1 + user_a(5, 1) * -0.2 + user_a(5, 2) * 0.3 +
                         user_a(5, 3) * 0.4);
    ck_assert_int_eq(revl_family_get_bounds(f, lo, hi), REVL_OK);
    ck_assert(lo[0] == -1 && hi[3] == 1);
    char buf[32];
    ck_assert_int_eq(revl_family_coord_name(f, 2, buf, sizeof buf), REVL_OK);
    ck_assert_str_eq(buf, "theta 2");
    ck_assert_int_eq(revl_family_project(f, z, th), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "USER family has no projection");

    /* failing and NaN-giving callbacks: status, message, outputs untouched */
    double *zs = malloc(nz * sizeof *zs);
    for (size_t i = 0; i < nz; i++)
        z[i] = zs[i] = 1234.5;
    for (size_t j = 0; j < USER_THETA; j++)
        dth[j] = 99;
    the_user.bad = 1;
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_ERR_CALLBACK);
    expect_msg(revl_family_last_error(f), "revl_family_map: the map callback returned 7");
    ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_ERR_CALLBACK);
    expect_msg(revl_family_last_error(f), "revl_family_vjp: the vjp callback returned 9");
    the_user.bad = 2;
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f),
               "revl_family_map: z[4] is NaN (log alpha at step 1, group 1)");
    ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f),
               "revl_family_vjp: dtheta[1] = inf (theta 1) is not finite");
    ck_assert(memcmp(z, zs, nz * sizeof *z) == 0);
    for (size_t j = 0; j < USER_THETA; j++)
        ck_assert(dth[j] == 99);
    /* and the family works again, clearing the message */
    the_user.bad = 0;
    ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_OK);
    ck_assert_str_eq(revl_family_last_error(f), "");
    free(z), free(zs), free(dz);
    revl_family_free(f);
}
END_TEST

/* A USER map that writes only z[0]: the rest starts as the base. */
static int user_map_one(const double *theta, double *z, void *user)
{
    (void)user;
    z[0] = theta[0];
    return 0;
}
static int user_vjp_one(const double *theta, const double *dz, double *dtheta, void *user)
{
    (void)theta, (void)user;
    dtheta[0] = dz[0];
    return 0;
}

START_TEST(test_user_starts_from_base)
{
    revl_family_options o;
    revl_family_options_init(&o);
    o.type = REVL_FAMILY_USER, o.n_theta = 1, o.map = user_map_one, o.vjp = user_vjp_one;
    revl_family *f = NULL;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_MOMENTUM, 2, 1, 0, &o), REVL_OK);
    /* n_z: momentum's 3 kinds x 2 steps and 1 init scale */
    ck_assert_uint_eq(revl_family_n_z(f), 7);
    double base[7] = {1, 2, 3, 4, 5, 6, 7}, z[7], th = 7;
    ck_assert_int_eq(revl_family_set_base(f, base), REVL_OK);
    ck_assert_int_eq(revl_family_map(f, &th, z), REVL_OK);
    ck_assert(z[0] == 7 && z[1] == 2 && z[4] == 5);
    revl_family_free(f);
}
END_TEST

/* ------------------------------------------------------------------ bad input */

static void expect_create_fails(revl_optimizer opt, size_t T, size_t G, const revl_family_options *o,
                                const char *want)
{
    revl_family *f = (revl_family *)&f; /* not NULL: create must clear it */
    ck_assert_int_eq(revl_family_create(&f, opt, T, G, 1, o), REVL_ERR_INVALID);
    ck_assert(f == NULL);
    expect_msg(revl_last_create_error(), want);
}

START_TEST(test_create_errors)
{
    revl_family_options o;
    revl_family_options_init(&o);
    ck_assert_int_eq(revl_family_create(NULL, REVL_OPTIM_ADAM, 3, 2, 0, &o), REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "revl_family_create: out is NULL");
    expect_create_fails((revl_optimizer)7, 3, 2, &o, "optimizer = 7 is not a revl_optimizer");
    expect_create_fails(REVL_OPTIM_ADAM, 0, 2, &o, "n_steps = 0, n_groups = 2: both must be > 0");
    expect_create_fails(REVL_OPTIM_ADAM, 3, 0, &o, "n_steps = 3, n_groups = 0: both must be > 0");
    expect_create_fails(REVL_OPTIM_ADAM, SIZE_MAX / 2, 4, &o, "n_steps = 9223372036854775807, n_groups = 4, n_meta = 1: too many values");
    o.learn = 512 | REVL_LEARN_ALPHA;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "learn = 513 has unknown bits (known: 511)");
    revl_family_options_init(&o);
    o.type = (revl_family_type)4;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "type = 4 is not a revl_family_type");
    o.type = REVL_FAMILY_WINDOWS, o.window = 0;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "window = 0: a window needs at least one step");
    o.type = REVL_FAMILY_SHAPE, o.shape = (revl_shape)3;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "shape = 3 is not CONSTANT, LINEAR or COSINE");
    o.shape = REVL_SHAPE_COSINE, o.n_layers = 3;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "n_layers = 3 exceeds n_groups = 2");
    const size_t gl[2] = {0, 2};
    o.n_layers = 2, o.group_layer = gl;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "group_layer[1] = 2 is not below n_layers = 2");
    o.n_layers = 0; /* one per group: 2 */
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "group_layer[1] = 2 is not below n_layers = 2");
    revl_family_options_init(&o);
    o.type = REVL_FAMILY_USER, o.map = user_map, o.vjp = user_vjp;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "revl_family_create: a USER family needs n_theta > 0");
    o.n_theta = 2, o.map = NULL;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "a USER family needs both callbacks (map is NULL)");
    o.map = user_map, o.vjp = NULL;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "a USER family needs both callbacks (vjp is NULL)");
    revl_family_options_init(&o);
    o.struct_size = 12;
    expect_create_fails(REVL_OPTIM_ADAM, 3, 2, &o, "revl_family_options.struct_size is 12");
    /* a success clears the message */
    revl_family *f = NULL;
    ck_assert_int_eq(revl_family_create(&f, REVL_OPTIM_ADAM, 3, 2, 0, NULL), REVL_OK);
    ck_assert_str_eq(revl_last_create_error(), "");
    revl_family_free(f);
}
END_TEST

START_TEST(test_call_errors)
{
    revl_family *f = make(OPTS[_i], 1, ALL_LEARN);
    size_t n = revl_family_n_theta(f), nz = revl_family_n_z(f);
    double *th = random_theta(f), *z = malloc(nz * sizeof *z), *dz = random_vec(nz);
    double *dth = malloc(n * sizeof *dth), *lo = malloc(n * sizeof *lo), *hi = malloc(n * sizeof *hi);
    double *lo0 = malloc(n * sizeof *lo), *hi0 = malloc(n * sizeof *hi), *b0 = malloc(nz * sizeof *b0);
    char buf[64];
    /* NULL family: every call refuses, the queries give 0 */
    ck_assert_int_eq(revl_family_map(NULL, th, z), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_vjp(NULL, th, dz, dth), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_set_base(NULL, z), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_get_base(NULL, z), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_project(NULL, z, th), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_get_bounds(NULL, lo, hi), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_set_bounds(NULL, lo, hi), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_coord_name(NULL, 0, buf, sizeof buf), REVL_ERR_INVALID);
    ck_assert_uint_eq(revl_family_n_theta(NULL), 0);
    ck_assert_uint_eq(revl_family_n_z(NULL), 0);
    ck_assert_str_eq(revl_family_last_error(NULL), "family is NULL");
    revl_family_free(NULL);
    /* NULL arrays */
    ck_assert_int_eq(revl_family_map(f, NULL, z), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "revl_family_map: theta or z is NULL");
    ck_assert_int_eq(revl_family_vjp(f, th, NULL, dth), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "revl_family_vjp: dz is NULL");
    ck_assert_int_eq(revl_family_vjp(f, th, dz, NULL), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "revl_family_vjp: theta or dtheta is NULL");
    ck_assert_int_eq(revl_family_set_base(f, NULL), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "revl_family_set_base: z0 is NULL");
    ck_assert_int_eq(revl_family_project(f, NULL, th), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "revl_family_project: z or theta is NULL");
    ck_assert_int_eq(revl_family_set_bounds(f, lo, NULL), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "revl_family_set_bounds: lo or hi is NULL");
    ck_assert_int_eq(revl_family_get_base(f, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_get_bounds(f, NULL, hi), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_coord_name(f, n, buf, sizeof buf), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_coord_name(f, 0, NULL, 4), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_family_coord_name(f, 0, buf, 0), REVL_ERR_INVALID);

    /* non-finite inputs: REVL_ERR_RANGE naming the coordinate, outputs untouched */
    ck_assert_int_eq(revl_family_get_base(f, b0), REVL_OK);
    for (size_t i = 0; i < nz; i++)
        z[i] = -5;
    double keep = th[G_ + 1];
    th[G_ + 1] = NAN;
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f),
               "revl_family_map: theta[4] is NaN (log alpha over steps 3-5, group 1)");
    for (size_t i = 0; i < nz; i++)
        ck_assert(z[i] == -5);
    ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f), "revl_family_vjp: theta[4] is NaN");
    th[G_ + 1] = keep;
    double dkeep = dz[nz - 1];
    dz[nz - 1] = -INFINITY;
    ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f), "revl_family_vjp: dz[");
    expect_msg(revl_family_last_error(f), "= -inf (meta 1) is not finite");
    ck_assert_int_eq(revl_family_set_base(f, dz), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f), "revl_family_set_base: z0[");
    ck_assert_int_eq(revl_family_project(f, dz, th), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f), "revl_family_project: z[");
    dz[nz - 1] = dkeep;
    ck_assert_int_eq(revl_family_get_base(f, z), REVL_OK);
    ck_assert(memcmp(z, b0, nz * sizeof *z) == 0);

    /* bounds: lo >= hi, NaN, infinite; the box unchanged */
    ck_assert_int_eq(revl_family_get_bounds(f, lo0, hi0), REVL_OK);
    memcpy(lo, lo0, n * sizeof *lo), memcpy(hi, hi0, n * sizeof *hi);
    lo[2] = hi[2];
    ck_assert_int_eq(revl_family_set_bounds(f, lo, hi), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "for theta[2] (log alpha over steps 0-2, group 2): "
                                          "lo < hi, both finite, is required");
    lo[2] = lo0[2], hi[n - 1] = NAN;
    ck_assert_int_eq(revl_family_set_bounds(f, lo, hi), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "revl_family_set_bounds: [-10, nan] for theta[");
    hi[n - 1] = hi0[n - 1], lo[0] = -INFINITY;
    ck_assert_int_eq(revl_family_set_bounds(f, lo, hi), REVL_ERR_INVALID);
    expect_msg(revl_family_last_error(f), "[-inf, ");
    ck_assert_int_eq(revl_family_get_bounds(f, lo, hi), REVL_OK);
    ck_assert(memcmp(lo, lo0, n * sizeof *lo) == 0 && memcmp(hi, hi0, n * sizeof *hi) == 0);
    /* a good box is kept, and a success clears the message */
    lo[0] = -1, hi[0] = 1;
    ck_assert_int_eq(revl_family_set_bounds(f, lo, hi), REVL_OK);
    ck_assert_str_eq(revl_family_last_error(f), "");
    ck_assert_int_eq(revl_family_get_bounds(f, lo0, hi0), REVL_OK);
    ck_assert(lo0[0] == -1 && hi0[0] == 1);
    free(th), free(z), free(dz), free(dth), free(lo), free(hi), free(lo0), free(hi0), free(b0);
    revl_family_free(f);
}
END_TEST

/* Finite inputs whose result overflows: a SHAPE log alpha a + c beyond DBL_MAX, a window's sum of
 * dz; REVL_ERR_RANGE naming the coordinate, outputs untouched. */
START_TEST(test_result_overflow)
{
    revl_family_options o;
    revl_family_options_init(&o);
    o.type = REVL_FAMILY_SHAPE, o.shape = REVL_SHAPE_CONSTANT, o.learn = REVL_LEARN_ALPHA;
    revl_family *f = NULL;
    ck_assert_int_eq(revl_family_create(&f, OPTS[_i], 2, 2, 0, &o), REVL_OK);
    double th[3] = {1e308, 0, 1e308}, z[REVL_HYPER_COUNT * 4 + 2], dz[REVL_HYPER_COUNT * 4 + 2];
    double dth[3] = {5, 5, 5};
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++)
        z[i] = 3, dz[i] = 1e308;
    ck_assert_int_eq(revl_family_map(f, th, z), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f),
               "revl_family_map: z[1] = inf (log alpha at step 0, group 1) is not finite");
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++)
        ck_assert(z[i] == 3);
    ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f),
               "revl_family_vjp: dtheta[0] = inf (log alpha) is not finite");
    ck_assert(dth[0] == 5 && dth[1] == 5 && dth[2] == 5);
    revl_family_free(f);

    o.type = REVL_FAMILY_WINDOWS, o.window = 2;
    ck_assert_int_eq(revl_family_create(&f, OPTS[_i], 2, 2, 0, &o), REVL_OK);
    ck_assert_int_eq(revl_family_vjp(f, th, dz, dth), REVL_ERR_RANGE);
    expect_msg(revl_family_last_error(f),
               "revl_family_vjp: dtheta[0] = inf (log alpha over steps 0-1, group 0) is not finite");
    ck_assert(dth[0] == 5 && dth[1] == 5);
    revl_family_free(f);
}
END_TEST

/* ------------------------------------------------------------------ allocation failure */

/* Copies (rv_family_clone, the tuner's way) through an allocator failing at every point: each
 * failure is REVL_ERR_NOMEM with nothing live, the source untouched; each success an equal
 * family (same map, base and box) that frees everything. */
START_TEST(test_allocation_failure_every_point)
{
    for (int v = 0; v < N_VARIANT; v++) {
        revl_family *src = make(OPTS[_i], v, ALL_LEARN);
        size_t n = revl_family_n_theta(src), nz = revl_family_n_z(src);
        double *base = random_base(src), *th = random_theta(src);
        double *lo = malloc(n * sizeof *lo), *hi = malloc(n * sizeof *hi);
        for (size_t i = 0; i < n; i++)
            lo[i] = -2.0 - (double)i, hi[i] = 3.0 + (double)i;
        ck_assert_int_eq(revl_family_set_bounds(src, lo, hi), REVL_OK);
        double *z1 = malloc(nz * sizeof *z1), *z2 = malloc(nz * sizeof *z2);
        ck_assert_int_eq(revl_family_map(src, th, z1), REVL_OK);
        int done = 0;
        for (long k = 0; !done; k++) {
            failing fl = {.fail_at = k};
            revl_allocator a = failing_allocator(&fl);
            revl_family *c = (revl_family *)&c;
            int rc = rv_family_clone(&c, src, &a);
            if (rc != REVL_OK) {
                ck_assert_int_eq(rc, REVL_ERR_NOMEM);
                ck_assert(c == NULL);
                ck_assert_msg(fl.live == 0, "variant %d k = %ld: %ld leaked", v, k, fl.live);
                continue;
            }
            done = fl.calls <= k; /* no failure was injected: every point covered */
            ck_assert_uint_eq(revl_family_n_theta(c), n);
            double *b2 = malloc(nz * sizeof *b2), *lo2 = malloc(n * sizeof *lo2),
                   *hi2 = malloc(n * sizeof *hi2);
            ck_assert_int_eq(revl_family_get_base(c, b2), REVL_OK);
            ck_assert(memcmp(b2, base, nz * sizeof *b2) == 0);
            ck_assert_int_eq(revl_family_get_bounds(c, lo2, hi2), REVL_OK);
            ck_assert(memcmp(lo2, lo, n * sizeof *lo) == 0 && memcmp(hi2, hi, n * sizeof *hi) == 0);
            ck_assert_int_eq(revl_family_map(c, th, z2), REVL_OK);
            ck_assert(memcmp(z1, z2, nz * sizeof *z1) == 0);
            revl_family_free(c);
            ck_assert_msg(fl.live == 0, "variant %d k = %ld: %ld leaked", v, k, fl.live);
            free(b2), free(lo2), free(hi2);
        }
        free(base), free(th), free(lo), free(hi), free(z1), free(z2);
        revl_family_free(src);
    }
}
END_TEST

static Suite *family_suite(void)
{
    Suite *s = suite_create("family");
    TCase *tc = tcase_create("maps");
    tcase_add_loop_test(tc, test_vjp_matches_differences, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_per_step_is_exact, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_windows_project, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_shape_values, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_learn_masks, 0, REVL_OPTIM_COUNT);
    tcase_add_test(tc, test_defaults_and_names);
    tcase_add_test(tc, test_clip_block);
    tcase_add_loop_test(tc, test_user_callbacks, 0, REVL_OPTIM_COUNT);
    tcase_add_test(tc, test_user_starts_from_base);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_create_errors);
    tcase_add_loop_test(tc, test_call_errors, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_result_overflow, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_allocation_failure_every_point, 0, REVL_OPTIM_COUNT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(family_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
