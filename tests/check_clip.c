/* check_clip.c: gradient clipping by global norm (REVL_HYPER_CLIP), for every optimiser: exact
 * reversal with clipping active at some steps and not at others, the trajectory against a
 * plain double loop that clips as torch.nn.utils.clip_grad_norm_, hypergradients (the
 * optimiser's kinds, clip, w0, meta) against central differences of the whole run, +inf the
 * bits of a schedule that never clips, and bad values refused. Also the built-in MLP's one-pass
 * reverse of the steps whose direction needs the gradient (a clipped step, RMSprop's every step):
 * the bits of the two-call fallback, one forward pass per step, and the same failures. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revl.h"
#include "testutil.h"
#include "core/model.h"  /* the one-pass tests switch the MLP's hvp_dir hook off */
#include "models/mlp.h"  /* and count its forward passes */

#define P 12
#define NG 2
#define STEPS 12
static const size_t off[NG + 1] = {0, 5, P};

/* L_t = sum_i sc_i [a_i/2 (w_i - c_i - 0.1 (t mod 2))^2 + 0.3 sin(w_i)] + exp(meta)/2 |w|^2:
 * smooth, not quadratic, gradients of a few units, so that clip values around 1 clip. */
static double sc(size_t i) { return 0.5 + 0.25 * (double)(i % 4); }
static double ai(size_t i) { return 0.6 + 0.1 * (double)((i * 7) % 5); }
static double ci(size_t i) { return (double)((i * 3 + 1) % 5) - 2.0; }

static int m_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                  void *user)
{
    (void)user;
    double lam = exp(meta[0]), l = 0;
    for (size_t i = 0; i < P; i++) {
        double d = w[i] - ci(i) - 0.1 * (double)(step % 2);
        g[i] = sc(i) * (ai(i) * d + 0.3 * cos(w[i])) + lam * w[i];
        l += sc(i) * (0.5 * ai(i) * d * d + 0.3 * sin(w[i])) + 0.5 * lam * w[i] * w[i];
    }
    if (loss)
        *loss = l;
    return 0;
}

static int m_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
                 double *hv, double *hm, void *user)
{
    (void)step, (void)g, (void)user;
    double lam = exp(meta[0]), wv = 0;
    for (size_t i = 0; i < P; i++) {
        hv[i] = (sc(i) * (ai(i) - 0.3 * sin(w[i])) + lam) * v[i];
        wv += w[i] * v[i];
    }
    hm[0] = lam * wv;
    return 0;
}

/* The fused gradient + H v with v from the library's direction (revl_model_set_hvp_dir): a
 * clipped step's direction needs the raw gradient, so every optimiser's clipped steps use it. */
static int m_hvp_dir(size_t step, const double *w, const double *meta, revl_dir_fn dir,
                     void *ctx, const double *v, double *g, double *hv, double *hm, void *user)
{
    m_grad(step, w, meta, g, NULL, user);
    int rc = dir(ctx, g);
    return rc ? rc : m_hvp(step, w, meta, v, NULL, hv, hm, user);
}

static revl_model *make_model(void)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = P;
    d.n_meta = 1;
    d.grad = m_grad;
    d.hvp = m_hvp;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    return m;
}

/* The optimiser's kinds at typical values, and clip: +inf at steps t % 3 == 2; at the others
 * (||g|| from 0.48 to 3.5 with every optimiser) group 0 clips (0.25 .. 0.36), group 1 clips at
 * odd steps (0.2) and not at even ones (6). */
static revl_schedule *make_schedule(revl_optimizer opt)
{
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, STEPS, NG, off, NULL), REVL_OK);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < nk; k++) {
        double v = 0;
        switch (kinds[k]) {
        case REVL_HYPER_ALPHA: v = opt == REVL_OPTIM_MOMENTUM ? 0.2 : 0.05; break;
        case REVL_HYPER_GAMMA: v = 0.8; break;
        case REVL_HYPER_BETA1: v = 0.85; break;
        case REVL_HYPER_BETA2: v = 0.95; break;
        case REVL_HYPER_EPS: v = 1e-2; break;
        case REVL_HYPER_WEIGHT_DECAY: v = 0.5; break;
        default: ck_abort_msg("no value for kind %s: a new kind must be tested",
                              revl_hyper_name(kinds[k]));
        }
        ck_assert_int_eq(revl_schedule_fill_kind(s, kinds[k], v), REVL_OK);
    }
    double tau[STEPS * NG];
    for (size_t t = 0; t < STEPS; t++)
        for (size_t g = 0; g < NG; g++)
            tau[t * NG + g] = t % 3 == 2 ? INFINITY
                              : (g == 0 ? 0.25 + 0.01 * (double)t : t % 2 ? 0.2 : 6.0);
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_CLIP, tau), REVL_OK);
    return s;
}

static void w0_of(double *w0)
{
    for (size_t i = 0; i < P; i++)
        w0[i] = 0.3 * sin(1.0 + (double)i);
}

/* f(w) = sum_i (w_i^2/2 + k_i w_i) */
static double objective(const double *w, double *grad)
{
    double f = 0;
    for (size_t i = 0; i < P; i++) {
        double k = 0.1 * (double)(i % 7) - 0.3;
        f += 0.5 * w[i] * w[i] + k * w[i];
        if (grad)
            grad[i] = w[i] + k;
    }
    return f;
}

/* The run in plain doubles with torch's clip (clip_grad_norm_: c = min(1, tau / (n + 1e-6)),
 * n over all parameters) before each optimiser's update; the smallest |c - 1| of a step with a
 * finite clip in *margin, the number of (step, group) clipped in *n_clipped. */
static void double_loop(revl_optimizer opt, revl_model *m, const revl_schedule *s,
                        const double *w0, const double *meta, double *w, double *margin,
                        int *n_clipped)
{
    double g[P], st1[P] = {0}, st2[P] = {0}, val[REVL_HYPER_COUNT][STEPS * NG];
    for (int k = 0; k < REVL_HYPER_COUNT; k++)
        if (revl_schedule_get_kind(s, (revl_hyper)k, val[k]) == REVL_OK)
            for (size_t j = 0; j < STEPS * NG; j++)
                val[k][j] = revl_hyper_applied((revl_hyper)k, val[k][j]);
    double p1[NG] = {1, 1}, p2[NG] = {1, 1};
    memcpy(w, w0, P * sizeof *w);
    *margin = INFINITY;
    *n_clipped = 0;
    for (size_t t = 0; t < STEPS; t++) {
        ck_assert_int_eq(revl_model_grad(m, t, w, meta, g, NULL), REVL_OK);
        double sq = 0;
        for (size_t i = 0; i < P; i++)
            sq += g[i] * g[i];
        double n = sqrt(sq);
        for (size_t gr = 0; gr < NG; gr++) {
            double tau = val[REVL_HYPER_CLIP][t * NG + gr], c = tau / (n + 1e-6);
            if (isinf(tau))
                continue;
            *margin = fmin(*margin, fabs(c - 1));
            *n_clipped += c < 1;
            for (size_t i = off[gr]; c < 1 && i < off[gr + 1]; i++)
                g[i] *= c;
        }
        for (size_t gr = 0; gr < NG; gr++) {
            size_t k = t * NG + gr;
            double al = val[REVL_HYPER_ALPHA][k];
            for (size_t i = off[gr]; i < off[gr + 1]; i++) {
                if (opt == REVL_OPTIM_ADAM || opt == REVL_OPTIM_ADAMW) {
                    double b1 = val[REVL_HYPER_BETA1][k], b2 = val[REVL_HYPER_BETA2][k];
                    if (i == off[gr])
                        p1[gr] *= b1, p2[gr] *= b2;
                    if (opt == REVL_OPTIM_ADAMW)
                        w[i] *= 1 - al * val[REVL_HYPER_WEIGHT_DECAY][k];
                    st1[i] = b1 * st1[i] + (1 - b1) * g[i];
                    st2[i] = b2 * st2[i] + (1 - b2) * g[i] * g[i];
                    double mh = st1[i] / (1 - p1[gr]), sh = st2[i] / (1 - p2[gr]);
                    w[i] -= al * mh / (sqrt(sh) + val[REVL_HYPER_EPS][k]);
                } else if (opt == REVL_OPTIM_RMSPROP) {
                    /* coupled decay after the clip, as torch: clip_grad_norm_, then the step */
                    g[i] += val[REVL_HYPER_WEIGHT_DECAY][k] * w[i];
                    double b2 = val[REVL_HYPER_BETA2][k];
                    st2[i] = b2 * st2[i] + (1 - b2) * g[i] * g[i];
                    st1[i] = val[REVL_HYPER_GAMMA][k] * st1[i] +
                             g[i] / (sqrt(st2[i]) + val[REVL_HYPER_EPS][k]);
                    w[i] -= al * st1[i];
                } else {
                    g[i] += val[REVL_HYPER_WEIGHT_DECAY][k] * w[i];
                    double ga = val[REVL_HYPER_GAMMA][k];
                    st1[i] = ga * st1[i] - (1 - ga) * g[i];
                    w[i] += al * st1[i];
                }
            }
        }
    }
}

static double train_f(revl_trainer *t, const double *w0, const double *meta)
{
    double w[P];
    ck_assert_msg(revl_trainer_train(t, w0, meta) == REVL_OK, "%s", revl_trainer_last_error(t));
    revl_trainer_weights(t, w);
    return objective(w, NULL);
}

/* Train and reverse with every kind of the schedule and clip asked for (the library checks
 * that it arrived on w0 and the start states bit for bit with an empty buffer). */
static void hypergrad_all(revl_trainer *t, const double *w0, const double *meta, double *d_w0,
                          double *d_meta, double *d[REVL_HYPER_COUNT], double *w)
{
    double dfdw[P];
    ck_assert_msg(revl_trainer_train(t, w0, meta) == REVL_OK, "%s", revl_trainer_last_error(t));
    revl_trainer_weights(t, w);
    objective(w, dfdw);
    ck_assert_msg(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, d_w0, REVL_HYPER_COUNT, d,
                                                 d_meta) == REVL_OK,
                  "%s", revl_trainer_last_error(t));
}

/* kinds of s (and clip) get an array each, the others NULL */
static void kind_arrays(const revl_schedule *s, double *store, double *d[REVL_HYPER_COUNT])
{
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    memset(d, 0, REVL_HYPER_COUNT * sizeof *d);
    for (size_t k = 0; k < nk; k++)
        d[kinds[k]] = store + (size_t)kinds[k] * STEPS * NG;
    d[REVL_HYPER_CLIP] = store + (size_t)REVL_HYPER_CLIP * STEPS * NG;
}

/* ------------------------------------------------------------------ tests */

/* Reversal exact (the library's end checks), w_T against the double loop, some (step, group)
 * clipped and some not; every thread count, and a fused gradient + direction callback, give
 * the same bits. */
START_TEST(test_clip_reverse_and_double_loop)
{
    revl_optimizer opt = (revl_optimizer)_i;
    revl_model *m = make_model();
    revl_schedule *s = make_schedule(opt);
    double w0[P], meta[1] = {-1.0}, w[P], wd[P], margin, store[REVL_HYPER_COUNT * STEPS * NG];
    double *d[REVL_HYPER_COUNT], d_w0[P], d_meta[1];
    int n_clipped;
    w0_of(w0);
    double_loop(opt, m, s, w0, meta, wd, &margin, &n_clipped);
    ck_assert_msg(n_clipped == 12, /* of 16 finite */
                  "%s: %d of the finite clips clip: the test needs some of each",
                  revl_optimizer_name(opt), n_clipped);
    double ref_w0[P], ref_tau[STEPS * NG];
    for (int run = 0; run < 3; run++) { /* 1 thread, 2 threads, 1 thread fused */
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.threads = run == 1 ? 2 : 1;
        ck_assert_int_eq(revl_model_set_hvp_dir(m, run == 2 ? m_hvp_dir : NULL), REVL_OK);
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        kind_arrays(s, store, d);
        hypergrad_all(t, w0, meta, d_w0, d_meta, d, w);
        double gap = 0;
        for (size_t i = 0; i < P; i++)
            gap = fmax(gap, fabs(w[i] - wd[i]) / fmax(fabs(wd[i]), 1e-3));
        ck_assert_msg(gap <= 1e-12, "%s: w_T %g off the double loop", revl_optimizer_name(opt),
                      gap);
        int nonzero = 0;
        for (size_t j = 0; j < STEPS * NG; j++) {
            if (j / NG % 3 == 2)
                ck_assert_msg(d[REVL_HYPER_CLIP][j] == 0.0, "unclipped step %zu has d clip %g",
                              j / NG, d[REVL_HYPER_CLIP][j]);
            nonzero += d[REVL_HYPER_CLIP][j] != 0.0;
        }
        ck_assert_int_eq(nonzero, n_clipped);
        if (run == 0) {
            memcpy(ref_w0, d_w0, sizeof ref_w0);
            memcpy(ref_tau, d[REVL_HYPER_CLIP], sizeof ref_tau);
        } else {
            ck_assert(memcmp(ref_w0, d_w0, sizeof ref_w0) == 0);
            ck_assert(memcmp(ref_tau, d[REVL_HYPER_CLIP], sizeof ref_tau) == 0);
        }
        revl_trainer_free(t);
    }
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

static void fd_check(double fd, double rev, const char *what, size_t j, revl_optimizer opt)
{
    ck_assert_msg(fabs(fd - rev) <= 1e-5 * fmax(fabs(fd), fabs(rev)) + 1e-8,
                  "%s: %s[%zu]: finite difference %.12g, reverse %.12g",
                  revl_optimizer_name(opt), what, j, fd, rev);
}

/* d alpha, d clip (every step and group), d w0, d meta against central differences of the
 * whole run, no finite clip within 5% of its kink (checked). */
START_TEST(test_clip_fd)
{
    revl_optimizer opt = (revl_optimizer)_i;
    revl_model *m = make_model();
    revl_schedule *s = make_schedule(opt);
    double w0[P], meta[1] = {-1.0}, w[P], wd[P], margin, store[REVL_HYPER_COUNT * STEPS * NG];
    double *d[REVL_HYPER_COUNT], d_w0[P], d_meta[1];
    int n_clipped;
    w0_of(w0);
    double_loop(opt, m, s, w0, meta, wd, &margin, &n_clipped);
    ck_assert_msg(margin > 0.05, "%s: a clip within %g of its kink", revl_optimizer_name(opt),
                  margin);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    kind_arrays(s, store, d);
    hypergrad_all(t, w0, meta, d_w0, d_meta, d, w);
    const double h = 1e-6;
    for (size_t i = 0; i < P; i++) {
        double wp[P];
        memcpy(wp, w0, sizeof wp);
        wp[i] += h;
        double fp = train_f(t, wp, meta);
        wp[i] -= 2 * h;
        fd_check((fp - train_f(t, wp, meta)) / (2 * h), d_w0[i], "d_w0", i, opt);
    }
    double mp[1] = {meta[0] + h}, mm[1] = {meta[0] - h};
    fd_check((train_f(t, w0, mp) - train_f(t, w0, mm)) / (2 * h), d_meta[0], "d_meta", 0, opt);
    revl_hyper kinds[] = {REVL_HYPER_ALPHA, REVL_HYPER_CLIP};
    for (size_t k = 0; k < 2; k++) {
        double v[STEPS * NG];
        revl_schedule_get_kind(s, kinds[k], v);
        for (size_t j = 0; j < STEPS * NG; j++) {
            if (isinf(v[j]))
                continue; /* checked 0 above */
            double v0 = v[j], hh = 1e-6 * v0;
            v[j] = v0 + hh;
            ck_assert_int_eq(revl_schedule_set_kind(s, kinds[k], v), REVL_OK);
            double fp = train_f(t, w0, meta);
            v[j] = v0 - hh;
            ck_assert_int_eq(revl_schedule_set_kind(s, kinds[k], v), REVL_OK);
            double fm = train_f(t, w0, meta);
            v[j] = v0;
            ck_assert_int_eq(revl_schedule_set_kind(s, kinds[k], v), REVL_OK);
            fd_check((fp - fm) / (2 * hh), d[kinds[k]][j], revl_hyper_name(kinds[k]), j, opt);
        }
    }
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* clip = +inf everywhere (the default) and a clip that never bites (1e300): the bits of w_T
 * and of every hypergradient of a schedule that never had a clip, d clip 0. */
START_TEST(test_clip_inf_same_bits)
{
    revl_optimizer opt = (revl_optimizer)_i;
    revl_model *m = make_model();
    double w0[P], meta[1] = {-1.0};
    w0_of(w0);
    double w[3][P], d_w0[3][P], d_meta[3][1], store[3][REVL_HYPER_COUNT * STEPS * NG];
    for (int c = 0; c < 3; c++) {
        revl_schedule *s = make_schedule(opt);
        if (c < 2)
            ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_CLIP, c ? 1e300 : INFINITY),
                             REVL_OK);
        double inf_tau[STEPS * NG];
        revl_schedule_get_kind(s, REVL_HYPER_CLIP, inf_tau);
        double *d[REVL_HYPER_COUNT];
        memset(store[c], 0, sizeof store[c]);
        kind_arrays(s, store[c], d);
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        hypergrad_all(t, w0, meta, d_w0[c], d_meta[c], d, w[c]);
        revl_trainer_free(t);
        revl_schedule_free(s);
        if (c == 2)
            continue; /* the clipping schedule: only to show that it differs */
        for (size_t j = 0; j < STEPS * NG; j++)
            ck_assert(d[REVL_HYPER_CLIP][j] == 0.0);
    }
    ck_assert(memcmp(w[0], w[1], sizeof w[0]) == 0);
    ck_assert(memcmp(d_w0[0], d_w0[1], sizeof d_w0[0]) == 0);
    ck_assert(memcmp(store[0], store[1], sizeof store[0]) == 0);
    ck_assert(memcmp(w[0], w[2], sizeof w[0]) != 0); /* the clip does something */
    revl_model_free(m);
}
END_TEST

/* A checkpoint taken mid-reverse (with clip's hypergradient asked for) resumed by another
 * trainer: the uninterrupted pass's bits, the clip being the values trained with. */
START_TEST(test_clip_reverse_resume)
{
    revl_optimizer opt = (revl_optimizer)_i;
    char path[64];
    snprintf(path, sizeof path, "/tmp/revl-check-clip-%d-%ld.ckpt", (int)opt, (long)getpid());
    revl_model *m = make_model();
    revl_schedule *s = make_schedule(opt);
    double w0[P], meta[1] = {-1.0}, w[P], store[2][REVL_HYPER_COUNT * STEPS * NG];
    double *d[2][REVL_HYPER_COUNT], d_w0[2][P], d_meta[2][1];
    w0_of(w0);
    revl_trainer *t = NULL, *u = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_set_checkpoint(t, path, 4), REVL_OK);
    memset(store, 0, sizeof store);
    kind_arrays(s, store[0], d[0]);
    kind_arrays(s, store[1], d[1]);
    /* the schedule changed between train and hypergrad does not reach the walk back */
    double tau[STEPS * NG], dfdw[P];
    revl_schedule_get_kind(s, REVL_HYPER_CLIP, tau);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_CLIP, INFINITY), REVL_OK);
    revl_trainer_weights(t, w);
    objective(w, dfdw);
    ck_assert_msg(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, d_w0[0], REVL_HYPER_COUNT, d[0],
                                                 d_meta[0]) == REVL_OK,
                  "%s", revl_trainer_last_error(t)); /* the last file: at step 4 */
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_CLIP, tau), REVL_OK);
    ck_assert_int_eq(revl_trainer_create(&u, m, s, NULL), REVL_OK);
    ck_assert_msg(revl_trainer_load(u, path) == REVL_OK, "%s", revl_trainer_last_error(u));
    ck_assert_msg(revl_trainer_hypergrad_resume(u, d_w0[1], REVL_HYPER_COUNT, d[1], d_meta[1]) ==
                      REVL_OK,
                  "%s", revl_trainer_last_error(u));
    ck_assert(memcmp(d_w0[0], d_w0[1], sizeof d_w0[0]) == 0);
    ck_assert(memcmp(d_meta[0], d_meta[1], sizeof d_meta[0]) == 0);
    ck_assert(memcmp(store[0], store[1], sizeof store[0]) == 0);
    remove(path);
    revl_trainer_free(u);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* The built-in MLP (fused gradient + product, which a clipped step does not use) with a
 * per-layer L2 penalty, every optimiser, a clip at half the steps: reversal exact, and d clip,
 * d alpha and d meta along all their entries against central differences of the whole run
 * (f: the training set's loss at w_T). */
static double mlp_f(revl_model *m, const revl_dataset *d, revl_trainer *t, const double *w0,
                    const double *meta, double *dfdw)
{
    double w[64], f;
    ck_assert_msg(revl_trainer_train(t, w0, meta) == REVL_OK, "%s", revl_trainer_last_error(t));
    revl_trainer_weights(t, w);
    ck_assert_int_eq(revl_model_evaluate(m, d, w, &f, dfdw, NULL), REVL_OK);
    return f;
}

START_TEST(test_clip_mlp)
{
    revl_optimizer opt = (revl_optimizer)_i;
    revl_dataset *d = test_dataset(60, 4, 3, 5);
    const size_t widths[] = {4, 5, 3}, T = 10;
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.batch_size = 20;
    o.penalty = REVL_PENALTY_PER_LAYER;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 3, widths, d, &o), REVL_OK);
    size_t p = revl_model_n_params(m), moff[5];
    ck_assert_uint_eq(p, 43);
    moff[0] = 0, moff[1] = 20, moff[2] = 25, moff[3] = 40, moff[4] = 43;
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, T, 4, moff, NULL), REVL_OK);
    double alpha[40], tau[40], w0[64], meta[2] = {-3.0, -2.5}, dfdw[64];
    for (size_t j = 0; j < 40; j++) {
        alpha[j] = opt == REVL_OPTIM_MOMENTUM ? 0.5 : 0.03;
        tau[j] = j / 4 % 2 ? INFINITY : 0.1 + 0.02 * (double)(j % 4);
    }
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_ALPHA, alpha), REVL_OK);
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_CLIP, tau), REVL_OK);
    for (size_t i = 0; i < p; i++)
        w0[i] = 0.4 * sin(2.0 + 1.7 * (double)i);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double d_alpha[40], d_tau[40], d_meta[2], *dk[REVL_HYPER_COUNT] = {0};
    dk[REVL_HYPER_ALPHA] = d_alpha, dk[REVL_HYPER_CLIP] = d_tau;
    mlp_f(m, d, t, w0, meta, dfdw);
    ck_assert_msg(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, NULL, REVL_HYPER_COUNT, dk,
                                                 d_meta) == REVL_OK,
                  "%s", revl_trainer_last_error(t));
    int clipped = 0;
    for (size_t j = 0; j < 40; j++)
        clipped += d_tau[j] != 0;
    ck_assert_msg(clipped >= 10, "%s: %d (step, group) clipped", revl_optimizer_name(opt),
                  clipped);
    /* directional differences: every finite clip (alpha) scaled by 1 +- h */
    const double h = 1e-6;
    for (int k = 0; k < 3; k++) {
        double fpm[2], rev = 0, v[40], mv[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            double sc = sgn ? 1 - h : 1 + h;
            for (size_t j = 0; j < 40; j++)
                v[j] = (k == 0 ? tau : alpha)[j] * (k < 2 ? sc : 1);
            mv[0] = meta[0] + (k == 2 ? (sgn ? -h : h) : 0), mv[1] = meta[1];
            ck_assert_int_eq(revl_schedule_set_kind(s, k == 0 ? REVL_HYPER_CLIP : REVL_HYPER_ALPHA, v), REVL_OK);
            fpm[sgn] = mlp_f(m, d, t, w0, mv, NULL);
        }
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_CLIP, tau), REVL_OK);
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_ALPHA, alpha), REVL_OK);
        for (size_t j = 0; j < 40 && k < 2; j++)
            rev += k == 0 ? (isinf(tau[j]) ? 0 : d_tau[j] * tau[j]) : d_alpha[j] * alpha[j];
        if (k == 2)
            rev = d_meta[0];
        fd_check((fpm[0] - fpm[1]) / (2 * h), rev, k == 0 ? "clip" : k == 1 ? "alpha" : "meta",
                 0, opt);
    }
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* ---- the built-in MLP's one-pass reverse (rv_model_hvp_dir) against the two-call fallback */
enum { ONE_RMS, ONE_RMS_DECAY, ONE_RMS_CLIP, ONE_RMS_CLIP_ALL, ONE_MOMENTUM_CLIP, ONE_ADAM_CLIP,
       N_ONE };
#define ONE_T 10
#define ONE_NG 4

typedef struct one_out {
    double d_w0[64], d_meta[2], kinds[REVL_HYPER_COUNT][ONE_T * ONE_NG];
    size_t passes; /* the MLP's forward passes during the hypergradient */
    int rc;
    char msg[512];
} one_out;

static revl_optimizer one_opt(int c)
{
    return c == ONE_MOMENTUM_CLIP ? REVL_OPTIM_MOMENTUM
           : c == ONE_ADAM_CLIP   ? REVL_OPTIM_ADAM
                                  : REVL_OPTIM_RMSPROP;
}

/* The MLP of test_clip_mlp (43 weights, per-layer L2: two meta-parameters) on 60 examples. */
static revl_model *one_mlp(revl_dataset *d)
{
    const size_t widths[] = {4, 5, 3};
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.batch_size = 20;
    o.penalty = REVL_PENALTY_PER_LAYER;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 3, widths, d, &o), REVL_OK);
    ck_assert_ptr_nonnull(m->builtin.hvp_dir);
    return m;
}

/* Case c's schedule; *n_two: the reverse steps the fallback takes in two passes. */
static revl_schedule *one_schedule(int c, size_t *n_two)
{
    const size_t moff[ONE_NG + 1] = {0, 20, 25, 40, 43};
    revl_optimizer opt = one_opt(c);
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, ONE_T, ONE_NG, moff, NULL), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_ALPHA,
                                             opt == REVL_OPTIM_MOMENTUM ? 0.5 : 0.03), REVL_OK);
    if (c == ONE_RMS_DECAY)
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, 0.01), REVL_OK);
    *n_two = opt == REVL_OPTIM_RMSPROP ? ONE_T : 0;
    if (c != ONE_RMS && c != ONE_RMS_DECAY) {
        double tau[ONE_T * ONE_NG]; /* every other step clips, or every step */
        for (size_t j = 0; j < ONE_T * ONE_NG; j++)
            tau[j] = j / ONE_NG % 2 && c != ONE_RMS_CLIP_ALL ? INFINITY
                                                             : 0.1 + 0.02 * (double)(j % ONE_NG);
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_CLIP, tau), REVL_OK);
        if (opt != REVL_OPTIM_RMSPROP)
            *n_two = ONE_T / 2;
    }
    return s;
}

/* Train, then every hypergradient (the optimiser's kinds, clip, w0, meta) of f = the training
 * loss at w_T (dfdw_scale times its gradient), with the one-pass hook or without it; poke (NULL:
 * none) is a training feature moved by 1e-3 between the two. Outputs start at -7, so a failed
 * call shows what it wrote. */
static void one_run(revl_model *m, revl_dataset *d, const revl_schedule *s, int fused,
                    double dfdw_scale, double *poke, one_out *out)
{
    rv_mlp *mlp = m->def.user;
    static int (*hook)(void *, size_t, const double *, const double *, rv_dir_fn, void *,
                       const double *, double *, double *, double *);
    if (!hook)
        hook = m->builtin.hvp_dir;
    m->builtin.hvp_dir = fused ? hook : NULL;
    size_t p = revl_model_n_params(m);
    double w0[64], meta[2] = {-3.0, -2.5}, dfdw[64];
    for (size_t i = 0; i < p; i++)
        w0[i] = 0.4 * sin(2.0 + 1.7 * (double)i);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    mlp_f(m, d, t, w0, meta, dfdw);
    for (size_t i = 0; i < p; i++)
        dfdw[i] *= dfdw_scale;
    double poked = poke ? *poke : 0;
    if (poke)
        *poke += 1e-3;
    double *dk[REVL_HYPER_COUNT] = {0};
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < nk; k++)
        dk[kinds[k]] = out->kinds[kinds[k]];
    dk[REVL_HYPER_CLIP] = out->kinds[REVL_HYPER_CLIP];
    for (size_t k = 0; k < REVL_HYPER_COUNT; k++)
        for (size_t j = 0; j < ONE_T * ONE_NG; j++)
            out->kinds[k][j] = -7;
    for (size_t i = 0; i < 64; i++)
        out->d_w0[i] = -7;
    out->d_meta[0] = out->d_meta[1] = -7;
    size_t before = mlp->n_passes;
    out->rc = revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, out->d_w0, REVL_HYPER_COUNT, dk,
                                             out->d_meta);
    out->passes = mlp->n_passes - before;
    snprintf(out->msg, sizeof out->msg, "%s", revl_trainer_last_error(t));
    if (poke)
        *poke = poked;
    revl_trainer_free(t);
    m->builtin.hvp_dir = hook;
}

static void one_same(const one_out *a, const one_out *b)
{
    ck_assert_int_eq(a->rc, b->rc);
    ck_assert_str_eq(a->msg, b->msg);
    ck_assert(memcmp(a->d_w0, b->d_w0, sizeof a->d_w0) == 0);
    ck_assert(memcmp(a->d_meta, b->d_meta, sizeof a->d_meta) == 0);
    ck_assert(memcmp(a->kinds, b->kinds, sizeof a->kinds) == 0);
}

/* RMSprop (with and without weight decay, clipped or not) and clipped momentum and Adam: the
 * one-pass reverse gives every hypergradient's bits of the two-call fallback, in one forward
 * pass per reverse step where the fallback takes two. */
START_TEST(test_one_pass_same_bits)
{
    revl_dataset *d = test_dataset(60, 4, 3, 5);
    revl_model *m = one_mlp(d);
    size_t n_two;
    revl_schedule *s = one_schedule(_i, &n_two);
    one_out *o = calloc(2, sizeof *o);
    ck_assert_ptr_nonnull(o);
    for (int fused = 0; fused < 2; fused++) {
        one_run(m, d, s, fused, 1.0, NULL, &o[fused]);
        ck_assert_msg(o[fused].rc == REVL_OK, "%s", o[fused].msg);
    }
    one_same(&o[0], &o[1]);
    ck_assert(o[1].d_meta[0] != 0 && o[1].d_meta[1] != 0 && o[1].d_w0[0] != 0);
    ck_assert_uint_eq(o[1].passes, ONE_T);
    ck_assert_uint_eq(o[0].passes, ONE_T + n_two);
    ck_assert_uint_gt(n_two, 0);
    free(o);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* Failures inside the direction, with and without the one-pass hook: the same status and
 * message, the outputs untouched, and the model usable afterwards. A training example changed
 * after training (the model is then not deterministic) is caught by the gradient's fingerprint
 * before its direction is made (RMSprop unclipped, and clipped at every step: each direction
 * checks it); an overflowing direction is reported as such. */
START_TEST(test_one_pass_failures)
{
    revl_dataset *d = test_dataset(60, 4, 3, 5);
    revl_model *m = one_mlp(d);
    size_t n_two;
    revl_schedule *s = one_schedule(_i ? ONE_RMS_CLIP_ALL : ONE_RMS, &n_two);
    one_out *o = calloc(3, sizeof *o);
    ck_assert_ptr_nonnull(o);
    double *x = (double *)revl_dataset_x(d); /* example 0's first feature */
    for (int what = 0; what < 2; what++) {
        for (int fused = 0; fused < 2; fused++)
            one_run(m, d, s, fused, what == 0 ? 1.0 : 1e305, what == 0 ? x : NULL, &o[fused]);
        one_same(&o[0], &o[1]);
        ck_assert_int_eq(o[1].rc, what == 0 ? REVL_ERR_INEXACT : REVL_ERR_RANGE);
        expect_msg(o[1].msg, what == 0 ? "differs from the forward pass's (fingerprint"
                                       : "the Hessian-vector direction is not finite at step");
        for (size_t i = 0; i < 64; i++)
            ck_assert(o[1].d_w0[i] == -7);
        ck_assert(o[1].d_meta[0] == -7 && o[1].d_meta[1] == -7);
        for (size_t k = 0; k < REVL_HYPER_COUNT; k++)
            for (size_t j = 0; j < ONE_T * ONE_NG; j++)
                ck_assert(o[1].kinds[k][j] == -7);
    }
    one_run(m, d, s, 1, 1.0, NULL, &o[2]);
    ck_assert_msg(o[2].rc == REVL_OK, "%s", o[2].msg);
    free(o);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* Each of the clip's allocations (made at the first train with a finite clip) failing: NOMEM
 * with a message, nothing leaked, and the trainer trains and reverses on the next call. */
START_TEST(test_clip_no_memory)
{
    revl_model *m = make_model();
    revl_schedule *s = make_schedule(REVL_OPTIM_ADAM);
    double w0[P], meta[1] = {-1.0}, w[P], d_w0[P], d_meta[1], store[REVL_HYPER_COUNT * STEPS * NG];
    double *d[REVL_HYPER_COUNT];
    w0_of(w0);
    kind_arrays(s, store, d);
    for (long k = 0; k < 4; k++) {
        failing f = {.fail_at = -1};
        revl_allocator a = failing_allocator(&f);
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.allocator = &a;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        f.fail_at = f.calls + k; /* the k-th allocation of train: the clip's come first */
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_NOMEM);
        expect_msg(revl_trainer_last_error(t), "gradient clipping");
        f.fail_at = -1;
        hypergrad_all(t, w0, meta, d_w0, d_meta, d, w);
        revl_trainer_free(t);
        ck_assert_int_eq(f.live, 0);
    }
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A sharded trainer refuses a finite clip at train, naming why, and trains once it is gone. */
START_TEST(test_clip_sharded_refused)
{
    revl_model *m = make_model();
    revl_schedule *s = make_schedule(REVL_OPTIM_MOMENTUM);
    revl_comm comm;
    revl_comm_init_local(&comm);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create_sharded(&t, m, s, NULL, &comm), REVL_OK);
    double w0[P], meta[1] = {-1.0};
    w0_of(w0);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_INVALID);
    expect_msg(revl_trainer_last_error(t), "revl_trainer_train: gradient clipping (a finite "
                                           "clip) is not supported on a sharded trainer");
    ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_CLIP, INFINITY), REVL_OK);
    ck_assert_msg(revl_trainer_train(t, w0, meta) == REVL_OK, "%s", revl_trainer_last_error(t));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_clip_bad_values)
{
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, (revl_optimizer)_i, STEPS, NG, off, NULL),
                     REVL_OK);
    double v[STEPS * NG], before[STEPS * NG];
    ck_assert_int_eq(revl_schedule_get_kind(s, REVL_HYPER_CLIP, before), REVL_OK);
    for (size_t j = 0; j < STEPS * NG; j++)
        ck_assert(before[j] == INFINITY); /* the default: no clipping */
    const double bad[] = {0.0, -1.0, NAN, -INFINITY};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        for (size_t j = 0; j < STEPS * NG; j++)
            v[j] = 1.0;
        v[7] = bad[b];
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_CLIP, v), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), "must be > 0");
        expect_msg(revl_schedule_last_error(s), "at step 3, group 1");
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_CLIP, bad[b]), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), "clip = ");
    }
    ck_assert_int_eq(revl_schedule_get_kind(s, REVL_HYPER_CLIP, v), REVL_OK);
    ck_assert(memcmp(v, before, sizeof v) == 0); /* untouched by the failed calls */
    /* clip is not one of the optimiser's listed kinds: old callers' arrays stay large enough */
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < nk; k++)
        ck_assert(kinds[k] != REVL_HYPER_CLIP);
    ck_assert_str_eq(revl_hyper_name(REVL_HYPER_CLIP), "clip");
    revl_schedule_free(s);
}
END_TEST

static Suite *clip_suite(void)
{
    Suite *s = suite_create("clip");
    TCase *tc = tcase_create("clip");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_clip_reverse_and_double_loop, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_clip_fd, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_clip_inf_same_bits, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_clip_reverse_resume, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_clip_mlp, 0, REVL_OPTIM_COUNT);
    tcase_add_test(tc, test_clip_no_memory);
    tcase_add_test(tc, test_clip_sharded_refused);
    tcase_add_loop_test(tc, test_clip_bad_values, 0, REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, test_one_pass_same_bits, 0, N_ONE);
    tcase_add_loop_test(tc, test_one_pass_failures, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(clip_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
