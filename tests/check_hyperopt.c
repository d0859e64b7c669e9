/* check_hyperopt.c: the hyper-optimiser through the public API: it lowers a validation
 * objective (Adam and SGD), learns only what it is told to, moves along the hypergradient in
 * unconstrained coordinates (checked against the trainer API and against finite differences of
 * the whole training), the chaos guard, the report callback, best-so-far, save/load round trip
 * and every malformed file, bad arguments, and allocation failure at every point. The models are
 * callbacks written here (linear regression with minibatches, a chaotic "wavy" loss), so that
 * nothing depends on the built-in MLP except one test of the validation-set path. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revl.h"
#include "testutil.h"

/* ------------------------------------------------------------------ linear regression */

/* Training loss at step t: 1/(2B) sum over the minibatch of step t of (x.w - y)^2, plus
 * exp(meta0)/2 |w|^2 when the model has a meta-parameter. Exact HVP. The validation objective
 * (a user callback) is the mean squared error / 2 on a separate set. A few knobs make the
 * objective misbehave on demand. */
typedef struct linreg {
    size_t n, dim, batch, nv;
    double *x, *y, *xv, *yv;
    int n_meta;
    int fail_grad;      /* gradient callback returns nonzero */
    int obj_mode;       /* 0 normal, 1 f NaN, 2 dfdw NaN, 3 dfdw huge, 4 callback fails */
    long obj_calls;     /* objective calls so far */
    long boost_call;    /* the call whose dfdw is multiplied by boost; -1 none */
    double boost;
    double dfdmeta0;    /* written to dfdmeta[0] when given */
} linreg;

static double lcg_uniform(uint64_t *s) /* in [-1, 1) */
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) * 0x1p-53 * 2 - 1;
}

static int linreg_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                       void *user)
{
    linreg *r = user;
    if (r->fail_grad)
        return 5;
    double lam = meta ? exp(meta[0]) : 0.0, l = 0;
    memset(g, 0, r->dim * sizeof *g);
    for (size_t k = 0; k < r->batch; k++) {
        size_t e = (step * r->batch + k) % r->n;
        const double *xe = r->x + e * r->dim;
        double z = -r->y[e];
        for (size_t j = 0; j < r->dim; j++)
            z += w[j] * xe[j];
        l += 0.5 * z * z / (double)r->batch;
        for (size_t j = 0; j < r->dim; j++)
            g[j] += z * xe[j] / (double)r->batch;
    }
    for (size_t j = 0; j < r->dim; j++) {
        g[j] += lam * w[j];
        l += 0.5 * lam * w[j] * w[j];
    }
    if (loss)
        *loss = l;
    return 0;
}

static int linreg_hvp(size_t step, const double *w, const double *meta, const double *v,
                      double *g, double *hv, double *hm, void *user)
{
    linreg *r = user;
    double lam = meta ? exp(meta[0]) : 0.0, wv = 0;
    memset(hv, 0, r->dim * sizeof *hv);
    for (size_t k = 0; k < r->batch; k++) {
        size_t e = (step * r->batch + k) % r->n;
        const double *xe = r->x + e * r->dim;
        double xv = 0;
        for (size_t j = 0; j < r->dim; j++)
            xv += v[j] * xe[j];
        for (size_t j = 0; j < r->dim; j++)
            hv[j] += xv * xe[j] / (double)r->batch;
    }
    for (size_t j = 0; j < r->dim; j++) {
        hv[j] += lam * v[j];
        wv += w[j] * v[j];
    }
    if (hm)
        hm[0] = lam * wv;
    return 0;
}

static int linreg_objective(const double *w, const double *meta, double *f, double *dfdw,
                            double *dfdmeta, void *user)
{
    linreg *r = user;
    long call = r->obj_calls++;
    if (r->obj_mode == 4)
        return 3;
    double s = 0;
    memset(dfdw, 0, r->dim * sizeof *dfdw);
    for (size_t e = 0; e < r->nv; e++) {
        const double *xe = r->xv + e * r->dim;
        double z = -r->yv[e];
        for (size_t j = 0; j < r->dim; j++)
            z += w[j] * xe[j];
        s += 0.5 * z * z / (double)r->nv;
        for (size_t j = 0; j < r->dim; j++)
            dfdw[j] += z * xe[j] / (double)r->nv;
    }
    if (call == r->boost_call)
        for (size_t j = 0; j < r->dim; j++)
            dfdw[j] *= r->boost;
    if (r->obj_mode == 2)
        dfdw[1] = NAN;
    if (r->obj_mode == 3)
        for (size_t j = 0; j < r->dim; j++)
            dfdw[j] = 1e300;
    if (dfdmeta)
        dfdmeta[0] = r->dfdmeta0;
    (void)meta;
    *f = r->obj_mode == 1 ? NAN : s;
    return 0;
}

static linreg *linreg_new(int n_meta)
{
    linreg *r = calloc(1, sizeof *r);
    r->n = 24;
    r->dim = 6;
    r->batch = 6;
    r->nv = 40;
    r->n_meta = n_meta;
    r->boost_call = -1;
    r->x = malloc(r->n * r->dim * sizeof *r->x);
    r->y = malloc(r->n * sizeof *r->y);
    r->xv = malloc(r->nv * r->dim * sizeof *r->xv);
    r->yv = malloc(r->nv * sizeof *r->yv);
    const double wt[6] = {1.0, -0.5, 0.8, 0.0, 0.3, -1.0};
    uint64_t s = 7;
    for (int set = 0; set < 2; set++) {
        size_t n = set ? r->nv : r->n;
        double *x = set ? r->xv : r->x, *y = set ? r->yv : r->y;
        for (size_t e = 0; e < n; e++) {
            double z = 0;
            for (size_t j = 0; j < r->dim; j++) {
                x[e * r->dim + j] = j == 0 ? 1.0 : lcg_uniform(&s) * 1.5;
                z += wt[j] * x[e * r->dim + j];
            }
            y[e] = z + (set ? 0.1 : 0.6) * lcg_uniform(&s);
        }
    }
    return r;
}

static void linreg_free(void *u)
{
    linreg *r = u;
    free(r->x);
    free(r->y);
    free(r->xv);
    free(r->yv);
    free(r);
}

/* The model over r with two groups [0, 2), [2, 6); r is freed with the model, or at once when
 * the model cannot be made. */
static revl_model *linreg_model_with(linreg *r, const revl_allocator *a, int *status)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = r->dim;
    d.n_meta = (size_t)r->n_meta;
    d.grad = linreg_grad;
    d.hvp = linreg_hvp;
    d.user = r;
    d.user_free = linreg_free;
    d.allocator = a;
    revl_model *m = NULL;
    int rc = revl_model_create(&m, &d);
    if (rc != REVL_OK)
        linreg_free(r);
    if (rc == REVL_OK) {
        size_t off[3] = {0, 2, 6};
        rc = revl_model_set_groups(m, 2, off);
        if (rc) {
            revl_model_free(m);
            m = NULL;
        }
    }
    if (status)
        *status = rc;
    return m;
}

static revl_model *linreg_model(linreg *r)
{
    revl_model *m = linreg_model_with(r, NULL, NULL);
    ck_assert_ptr_nonnull(m);
    return m;
}

static revl_hyperopt *make_hyperopt(revl_model *m, linreg *r, size_t steps,
                                    revl_hyperopt_options *o)
{
    o->objective = linreg_objective;
    o->objective_user = r;
    revl_hyperopt *h = NULL;
    int rc = revl_hyperopt_create(&h, m, NULL, steps, o);
    ck_assert_msg(rc == REVL_OK, "create: %d", rc);
    return h;
}

/* Every hyperparameter of h in one array: alpha, gamma, log init scales, meta. */
typedef struct values {
    size_t n_sg, g, nm;
    double *a, *gm, *s, *m;
} values;

static values values_get(const revl_hyperopt *h, int best, size_t n_meta)
{
    values v;
    v.g = revl_hyperopt_n_groups(h);
    v.n_sg = revl_hyperopt_n_steps(h) * v.g;
    v.nm = n_meta;
    v.a = malloc(v.n_sg * sizeof(double));
    v.gm = malloc(v.n_sg * sizeof(double));
    v.s = malloc(v.g * sizeof(double));
    v.m = malloc((n_meta ? n_meta : 1) * sizeof(double));
    ck_assert_int_eq(revl_hyperopt_get(h, best, v.a, v.gm, v.s, n_meta ? v.m : NULL), REVL_OK);
    return v;
}

static void values_free(values *v)
{
    free(v->a);
    free(v->gm);
    free(v->s);
    free(v->m);
}

static int same_bits(const double *x, const double *y, size_t n)
{
    return memcmp(x, y, n * sizeof *x) == 0;
}

static int values_equal(const values *x, const values *y)
{
    return same_bits(x->a, y->a, x->n_sg) && same_bits(x->gm, y->gm, x->n_sg) &&
           same_bits(x->s, y->s, x->g) && same_bits(x->m, y->m, x->nm);
}

/* ------------------------------------------------------------------ defaults */

START_TEST(test_defaults)
{
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_uint_eq(o.learn, REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE);
    ck_assert_int_eq(o.method, REVL_META_ADAM);
    ck_assert(o.step_size == 0.04 && o.momentum == 0.9);
    ck_assert(o.adam_beta1 == 0.9 && o.adam_beta2 == 0.999 && o.adam_eps == 1e-8);
    ck_assert_uint_eq(o.iterations, 50);
    ck_assert(o.chaos_factor == 10 && o.chaos_action == REVL_CHAOS_SHRINK);
    ck_assert_uint_eq(o.frac_bits, 52);
    ck_assert(!o.fresh_seed && o.seed == 0 && !o.report && !o.objective && !o.allocator);
    revl_hyperopt_options_init(NULL);

    linreg *r = linreg_new(1);
    revl_model *m = linreg_model(r);
    revl_hyperopt *h = make_hyperopt(m, r, 7, &o);
    ck_assert_uint_eq(revl_hyperopt_n_steps(h), 7);
    ck_assert_uint_eq(revl_hyperopt_n_groups(h), 2);
    ck_assert_str_eq(revl_hyperopt_last_error(h), "");
    values v = values_get(h, 0, 1);
    for (size_t k = 0; k < v.n_sg; k++)
        ck_assert(v.a[k] == exp(-1.0) && v.gm[k] == 0.5);
    ck_assert(v.s[0] == -3.0 && v.s[1] == -3.0 && v.m[0] == 0.0);
    /* no meta-iteration yet: "best" is the current values */
    values b = values_get(h, 1, 1);
    ck_assert(values_equal(&v, &b));
    values_free(&v);
    values_free(&b);
    revl_hyperopt_free(h);
    revl_hyperopt_free(NULL);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ it optimises */

typedef struct trace {
    size_t n;
    double loss[64], norm[64], step[64], seconds[64], acc[64], train[64];
    size_t iter[64];
    int chaos[64];
    long stop_after; /* return nonzero after this iteration; -1 never */
} trace;

static int record(const revl_hyperopt_report *rep, void *user)
{
    trace *t = user;
    ck_assert_uint_eq(rep->struct_size, sizeof *rep);
    if (t->n < 64) {
        t->loss[t->n] = rep->valid_loss;
        t->norm[t->n] = rep->hypergrad_norm;
        t->step[t->n] = rep->step_size;
        t->seconds[t->n] = rep->seconds;
        t->acc[t->n] = rep->valid_accuracy;
        t->train[t->n] = rep->train_loss;
        t->iter[t->n] = rep->iteration;
        t->chaos[t->n] = rep->chaos;
    }
    t->n++;
    return t->stop_after >= 0 && (long)rep->iteration >= t->stop_after;
}

static void lowers_objective(revl_meta_method method, double step, double want_ratio)
{
    linreg *r = linreg_new(1);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.method = method;
    o.step_size = step;
    o.iterations = 20;
    o.learn |= REVL_LEARN_META;
    trace t = {.stop_after = -1};
    o.report = record;
    o.report_user = &t;
    revl_hyperopt *h = make_hyperopt(m, r, 20, &o);
    ck_assert_int_eq(revl_hyperopt_run(h), REVL_OK);
    ck_assert_uint_eq(t.n, 20);
    double lo = INFINITY;
    for (size_t i = 0; i < t.n; i++) {
        ck_assert_uint_eq(t.iter[i], i);
        ck_assert(isfinite(t.loss[i]) && isfinite(t.train[i]) && t.norm[i] > 0);
        ck_assert(isnan(t.acc[i])); /* user objective: no accuracy */
        ck_assert(t.seconds[i] >= 0 && t.seconds[i] < 60);
        lo = fmin(lo, t.loss[i]);
    }
    ck_assert_msg(t.loss[t.n - 1] < want_ratio * t.loss[0],
                  "valid loss %g -> %g, wanted below %g x", t.loss[0], t.loss[t.n - 1],
                  want_ratio);
    /* best-so-far: the hyperparameters that produced the lowest loss give it again */
    values best = values_get(h, 1, 1);
    ck_assert_int_eq(revl_hyperopt_set(h, best.a, best.gm, best.s, best.m), REVL_OK);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert_msg(rep.valid_loss == lo, "best %.17g, re-evaluated %.17g", lo, rep.valid_loss);
    ck_assert_uint_eq(rep.iteration, 20);
    values_free(&best);
    revl_hyperopt_free(h);
    revl_model_free(m);
}

START_TEST(test_lowers_objective_adam) { lowers_objective(REVL_META_ADAM, 0.1, 0.05); }
END_TEST

START_TEST(test_lowers_objective_sgd) { lowers_objective(REVL_META_SGD, 0.05, 0.25); }
END_TEST

/* revl_hyper_learn_bit: each kind its documented REVL_LEARN_* bit (the bindings build their
 * learn tables from it), one bit each, none shared and none of INIT_SCALE or META; 0 past the
 * last kind. */
START_TEST(test_learn_bit_of_each_kind)
{
    const unsigned expect[] = {REVL_LEARN_ALPHA, REVL_LEARN_GAMMA, REVL_LEARN_BETA1,
                               REVL_LEARN_BETA2, REVL_LEARN_EPS, REVL_LEARN_WEIGHT_DECAY,
                               REVL_LEARN_CLIP};
    ck_assert_uint_eq(sizeof expect / sizeof expect[0], REVL_HYPER_COUNT);
    unsigned seen = REVL_LEARN_INIT_SCALE | REVL_LEARN_META;
    for (int k = 0; k < REVL_HYPER_COUNT; k++) {
        unsigned b = revl_hyper_learn_bit((revl_hyper)k);
        ck_assert_uint_eq(b, expect[k]);
        ck_assert(b != 0 && (b & (b - 1)) == 0 && !(b & seen));
        seen |= b;
    }
    ck_assert_uint_eq(revl_hyper_learn_bit((revl_hyper)REVL_HYPER_COUNT), 0);
    ck_assert_uint_eq(revl_hyper_learn_bit((revl_hyper)-1), 0);
}
END_TEST

START_TEST(test_learn_mask)
{
    const unsigned masks[] = {REVL_LEARN_ALPHA, REVL_LEARN_GAMMA, REVL_LEARN_INIT_SCALE,
                              REVL_LEARN_META, REVL_LEARN_ALPHA | REVL_LEARN_META,
                              REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE, 0};
    for (size_t c = 0; c < sizeof masks / sizeof masks[0]; c++) {
        for (int method = 0; method < 2; method++) {
            linreg *r = linreg_new(1);
            r->dfdmeta0 = 0.01; /* the objective depends on meta directly too */
            revl_model *m = linreg_model(r);
            revl_hyperopt_options o;
            revl_hyperopt_options_init(&o);
            o.learn = masks[c];
            o.method = method ? REVL_META_SGD : REVL_META_ADAM;
            o.iterations = 3;
            o.chaos_factor = 0;
            revl_hyperopt *h = make_hyperopt(m, r, 8, &o);
            values v0 = values_get(h, 0, 1);
            ck_assert_int_eq(revl_hyperopt_run(h), REVL_OK);
            values v1 = values_get(h, 0, 1);
            unsigned mask = masks[c];
            ck_assert_msg(same_bits(v0.a, v1.a, v0.n_sg) == !(mask & REVL_LEARN_ALPHA),
                          "mask %u: alpha", mask);
            ck_assert_msg(same_bits(v0.gm, v1.gm, v0.n_sg) == !(mask & REVL_LEARN_GAMMA),
                          "mask %u: gamma", mask);
            ck_assert_msg(same_bits(v0.s, v1.s, v0.g) == !(mask & REVL_LEARN_INIT_SCALE),
                          "mask %u: init scale", mask);
            ck_assert_msg(same_bits(v0.m, v1.m, 1) == !(mask & REVL_LEARN_META),
                          "mask %u: meta", mask);
            if (mask == 0) { /* nothing learned: norm 0, the same point every time */
                revl_hyperopt_report rep = {.struct_size = sizeof rep};
                ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
                ck_assert(rep.hypergrad_norm == 0 && !rep.chaos);
            }
            values_free(&v0);
            values_free(&v1);
            revl_hyperopt_free(h);
            revl_model_free(m);
        }
    }
}
END_TEST

/* ------------------------------------------------------------------ the chain rule */

/* f after a whole training with the given hyperparameters, through the public trainer API;
 * with grads != NULL also the raw hypergradients (d_alpha, d_gamma, d_w0 -> d_log_scales,
 * d_meta), as the hyper-optimiser should see them. */
typedef struct raw_grads {
    double d_alpha[64], d_gamma[64], d_scales[2], d_meta[1];
} raw_grads;

static double run_f(revl_model *m, linreg *r, size_t steps, const double *alpha,
                    const double *gamma, const double *scales, const double *meta, uint64_t seed,
                    raw_grads *grads)
{
    size_t off[3] = {0, 2, 6};
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, steps, 2, off), REVL_OK);
    ck_assert_int_eq(revl_schedule_set_all(s, alpha, gamma), REVL_OK);
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[6], wT[6], dfdw[6], dfdmeta[1] = {0}, d_w0[6];
    ck_assert_int_eq(revl_model_init_weights(m, scales, seed, w0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(t, wT), REVL_OK);
    double f;
    long calls = r->obj_calls;
    ck_assert_int_eq(linreg_objective(wT, meta, &f, dfdw, dfdmeta, r), 0);
    r->obj_calls = calls;
    if (grads) {
        ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, dfdmeta, d_w0, grads->d_alpha,
                                                grads->d_gamma, grads->d_meta),
                         REVL_OK);
        ck_assert_int_eq(revl_model_init_scales_grad(m, w0, d_w0, grads->d_scales), REVL_OK);
    }
    revl_trainer_free(t);
    revl_schedule_free(s);
    return f;
}

static void assert_close(double got, double want, double rel, double abs_tol, const char *what,
                         size_t k)
{
    ck_assert_msg(fabs(got - want) <= rel * fabs(want) + abs_tol, "%s[%zu]: %.12g, expected %.12g",
                  what, k, got, want);
}

static double logit(double g) { return log(g) - log1p(-g); }

START_TEST(test_chain_rule_against_trainer_and_fd)
{
    size_t steps = 12, n = steps * 2;
    linreg *r = linreg_new(1);
    r->dfdmeta0 = 0.02;
    revl_model *m = linreg_model(r);
    /* a non-uniform starting point so that every coordinate matters differently */
    double alpha[24], gamma[24], scales[2] = {-2.0, -2.5}, meta[1] = {-1.5};
    for (size_t k = 0; k < n; k++) {
        alpha[k] = 0.2 + 0.01 * (double)k;
        gamma[k] = 0.5 + (double)(k % 5) * 0x1p-4; /* multiples of 2^-16: applied exactly */
    }
    uint64_t seed = 11;
    raw_grads rg;
    double f0 = run_f(m, r, steps, alpha, gamma, scales, meta, seed, &rg);

    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.method = REVL_META_SGD;
    o.momentum = 0;
    o.step_size = 1e-3;
    o.seed = seed;
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE | REVL_LEARN_META;
    revl_hyperopt *h = make_hyperopt(m, r, steps, &o);
    ck_assert_int_eq(revl_hyperopt_set(h, alpha, gamma, scales, meta), REVL_OK);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert(rep.valid_loss == f0);
    values v = values_get(h, 0, 1);

    /* one SGD step without momentum: new - old = -s * (hypergradient in unconstrained coords) */
    double s = o.step_size, sq = 0;
    double ga_grad[24], la_grad[24], ls_grad[2], m_grad;
    for (size_t k = 0; k < n; k++) {
        la_grad[k] = (log(v.a[k]) - log(alpha[k])) / -s;
        ga_grad[k] = (logit(v.gm[k]) - logit(gamma[k])) / -s;
        double want_a = alpha[k] * rg.d_alpha[k];
        double ga = revl_gamma_applied(gamma[k]);
        double want_g = ga * (1 - ga) * rg.d_gamma[k];
        assert_close(la_grad[k], want_a, 1e-9, 1e-11, "d log alpha", k);
        assert_close(ga_grad[k], want_g, 1e-9, 1e-11, "d logit gamma", k);
        sq += want_a * want_a + want_g * want_g;
    }
    for (size_t k = 0; k < 2; k++) {
        ls_grad[k] = (v.s[k] - scales[k]) / -s;
        assert_close(ls_grad[k], rg.d_scales[k], 1e-9, 1e-11, "d log scale", k);
        sq += rg.d_scales[k] * rg.d_scales[k];
    }
    m_grad = (v.m[0] - meta[0]) / -s;
    assert_close(m_grad, rg.d_meta[0], 1e-9, 1e-11, "d meta", 0);
    sq += rg.d_meta[0] * rg.d_meta[0];
    assert_close(rep.hypergrad_norm, sqrt(sq), 1e-12, 0, "norm", 0);

    /* and against central differences of f through the whole training */
    const double hh = 1e-5;
    for (size_t k = 0; k < n; k += 5) {
        double ap[24], am[24];
        memcpy(ap, alpha, sizeof ap);
        memcpy(am, alpha, sizeof am);
        ap[k] = alpha[k] * exp(hh);
        am[k] = alpha[k] * exp(-hh);
        double fd = (run_f(m, r, steps, ap, gamma, scales, meta, seed, NULL) -
                     run_f(m, r, steps, am, gamma, scales, meta, seed, NULL)) / (2 * hh);
        assert_close(la_grad[k], fd, 1e-5, 1e-10, "fd log alpha", k);
        /* gamma moves on the 2^-16 grid: difference it there, in gamma, then chain */
        double gp[24], gm[24], hg = 0x1p-10;
        memcpy(gp, gamma, sizeof gp);
        memcpy(gm, gamma, sizeof gm);
        gp[k] += hg;
        gm[k] -= hg;
        double fdg = (run_f(m, r, steps, alpha, gp, scales, meta, seed, NULL) -
                      run_f(m, r, steps, alpha, gm, scales, meta, seed, NULL)) / (2 * hg);
        assert_close(ga_grad[k], gamma[k] * (1 - gamma[k]) * fdg, 1e-4, 1e-10, "fd logit gamma",
                     k);
    }
    for (size_t k = 0; k < 2; k++) {
        double sp[2] = {scales[0], scales[1]}, sm[2] = {scales[0], scales[1]};
        sp[k] += hh;
        sm[k] -= hh;
        double fd = (run_f(m, r, steps, alpha, gamma, sp, meta, seed, NULL) -
                     run_f(m, r, steps, alpha, gamma, sm, meta, seed, NULL)) / (2 * hh);
        assert_close(ls_grad[k], fd, 1e-5, 1e-10, "fd log scale", k);
    }
    {
        double mp[1] = {meta[0] + hh}, mm[1] = {meta[0] - hh};
        /* f itself has the direct term dfdmeta0 * meta, which the objective reports but does
         * not add to f: add it here */
        double fd = (run_f(m, r, steps, alpha, gamma, scales, mp, seed, NULL) + r->dfdmeta0 * mp[0] -
                     run_f(m, r, steps, alpha, gamma, scales, mm, seed, NULL) - r->dfdmeta0 * mm[0]) /
                    (2 * hh);
        assert_close(m_grad, fd, 1e-5, 1e-10, "fd meta", 0);
    }
    values_free(&v);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

START_TEST(test_norm_counts_learned_only)
{
    linreg *r = linreg_new(1);
    revl_model *m = linreg_model(r);
    raw_grads rg;
    double alpha[16], gamma[16], scales[2] = {-3, -3}, meta[1] = {0};
    for (size_t k = 0; k < 16; k++) {
        alpha[k] = exp(-1.0);
        gamma[k] = 0.5;
    }
    run_f(m, r, 8, alpha, gamma, scales, meta, 0, &rg);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn = REVL_LEARN_ALPHA;
    revl_hyperopt *h = make_hyperopt(m, r, 8, &o);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    double sq = 0;
    for (size_t k = 0; k < 16; k++)
        sq += (alpha[k] * rg.d_alpha[k]) * (alpha[k] * rg.d_alpha[k]);
    assert_close(rep.hypergrad_norm, sqrt(sq), 1e-12, 0, "alpha-only norm", 0);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ update bounds */

START_TEST(test_gamma_clamped_alpha_finite)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.method = REVL_META_SGD;
    o.momentum = 0;
    o.step_size = 1e12; /* absurd: every coordinate is thrown to its bound */
    o.chaos_factor = 0;
    o.learn = REVL_LEARN_GAMMA;
    revl_hyperopt *h = make_hyperopt(m, r, 6, &o);
    /* gamma = 1 is allowed by hand; once learned it moves inside [2^-16, 1 - 2^-16] */
    double gamma[12];
    for (size_t k = 0; k < 12; k++)
        gamma[k] = k % 2 ? 1.0 : 0x1p-16;
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, gamma, NULL, NULL), REVL_OK);
    for (int it = 0; it < 3; it++) {
        ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
        values v = values_get(h, 0, 0);
        for (size_t k = 0; k < v.n_sg; k++)
            ck_assert_msg(v.gm[k] >= 0x1p-16 && v.gm[k] <= 1 - 0x1p-16, "gamma %.17g", v.gm[k]);
        values_free(&v);
    }
    revl_hyperopt_free(h);

    o.learn = REVL_LEARN_ALPHA;
    o.step_size = 1e300;
    h = make_hyperopt(m, r, 6, &o);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    values v = values_get(h, 0, 0);
    for (size_t k = 0; k < v.n_sg; k++)
        ck_assert_msg(isfinite(v.a[k]) && v.a[k] > 0, "alpha %g", v.a[k]);
    values_free(&v);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

START_TEST(test_fresh_seed)
{
    /* nothing learned, so only the init noise can change the loss between iterations */
    for (int fresh = 0; fresh < 2; fresh++) {
        linreg *r = linreg_new(0);
        revl_model *m = linreg_model(r);
        revl_hyperopt_options o;
        revl_hyperopt_options_init(&o);
        o.learn = 0;
        o.fresh_seed = fresh;
        o.seed = 5;
        revl_hyperopt *h = make_hyperopt(m, r, 4, &o);
        revl_hyperopt_report a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
        ck_assert_int_eq(revl_hyperopt_step(h, &a), REVL_OK);
        ck_assert_int_eq(revl_hyperopt_step(h, &b), REVL_OK);
        ck_assert_msg((a.valid_loss == b.valid_loss) == !fresh, "fresh %d: %.17g %.17g", fresh,
                      a.valid_loss, b.valid_loss);
        revl_hyperopt_free(h);
        revl_model_free(m);
    }
}
END_TEST

/* ------------------------------------------------------------------ chaos guard */

/* L = sum_i w_i^2/2 + cos(3 w_i): gradient descent with a large step on this loss is chaotic,
 * and over a long horizon the hypergradient explodes (norm ~1e-14 at alpha 0.3, ~1e39 at
 * alpha 1 over 100 steps). */
static int wavy_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    double l = 0;
    for (size_t i = 0; i < 4; i++) {
        g[i] = w[i] - 3.0 * sin(3.0 * w[i]);
        l += 0.5 * w[i] * w[i] + cos(3.0 * w[i]);
    }
    if (loss)
        *loss = l;
    return 0;
}

static int wavy_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
                    double *hv, double *hm, void *user)
{
    for (size_t i = 0; i < 4; i++)
        hv[i] = (1.0 - 9.0 * cos(3.0 * w[i])) * v[i];
    return 0;
}

static int wavy_objective(const double *w, const double *meta, double *f, double *dfdw,
                          double *dfdmeta, void *user)
{
    *f = 0;
    for (size_t i = 0; i < 4; i++) {
        *f += 0.5 * (w[i] - 1) * (w[i] - 1);
        dfdw[i] = w[i] - 1;
    }
    return 0;
}

static revl_hyperopt *wavy_hyperopt(revl_model **m, revl_hyperopt_options *o, size_t steps)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = 4;
    d.grad = wavy_grad;
    d.hvp = wavy_hvp;
    ck_assert_int_eq(revl_model_create(m, &d), REVL_OK);
    o->objective = wavy_objective;
    o->learn = REVL_LEARN_ALPHA;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, *m, NULL, steps, o), REVL_OK);
    double ls = 0; /* w0 ~ N(0, 1): spread over several wells */
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, &ls, NULL), REVL_OK);
    return h;
}

static void set_alpha(revl_hyperopt *h, double a)
{
    size_t n = revl_hyperopt_n_steps(h) * revl_hyperopt_n_groups(h);
    double *al = malloc(n * sizeof *al);
    for (size_t k = 0; k < n; k++)
        al[k] = a;
    ck_assert_int_eq(revl_hyperopt_set(h, al, NULL, NULL, NULL), REVL_OK);
    free(al);
}

START_TEST(test_chaos_shrink_on_exploding_run)
{
    revl_model *m;
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    revl_hyperopt *h = wavy_hyperopt(&m, &o, 100);
    set_alpha(h, 0.3);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert(!rep.chaos && rep.step_size == 0.04);
    double calm = rep.hypergrad_norm;
    /* a large learning rate over the long horizon: the hypergradient explodes */
    set_alpha(h, 1.0);
    values before = values_get(h, 0, 0);
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert_msg(rep.chaos, "norm %g after %g", rep.hypergrad_norm, calm);
    ck_assert(rep.hypergrad_norm > 10 * calm);
    ck_assert(rep.step_size == 0.02);
    values after = values_get(h, 0, 0);
    ck_assert(values_equal(&before, &after)); /* the update was not applied */
    const char *msg = revl_hyperopt_last_error(h);
    ck_assert_msg(strstr(msg, "chaos guard: hypergradient norm") && strstr(msg, "> 10 x running minimum") &&
                      strstr(msg, "at iteration 1") && strstr(msg, "step halved to 0.02"),
                  "%s", msg);
    /* it fires again at the same point, halving again */
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert(rep.chaos && rep.step_size == 0.01);
    values_free(&before);
    values_free(&after);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

START_TEST(test_chaos_stop_ends_run)
{
    revl_model *m;
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.chaos_action = REVL_CHAOS_STOP;
    trace t = {.stop_after = -1};
    o.report = record;
    o.report_user = &t;
    o.iterations = 10;
    revl_hyperopt *h = wavy_hyperopt(&m, &o, 100);
    set_alpha(h, 0.3);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK); /* sets the running minimum */
    set_alpha(h, 1.0);
    values before = values_get(h, 0, 0);
    ck_assert_int_eq(revl_hyperopt_run(h), REVL_OK);
    ck_assert_uint_eq(t.n, 1);
    ck_assert(t.chaos[0] && t.step[0] == 0.04 && t.iter[0] == 1);
    values after = values_get(h, 0, 0);
    ck_assert(values_equal(&before, &after));
    ck_assert_msg(strstr(revl_hyperopt_last_error(h), "chaos guard") &&
                      strstr(revl_hyperopt_last_error(h), "stopped"),
                  "%s", revl_hyperopt_last_error(h));
    values_free(&before);
    values_free(&after);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

START_TEST(test_chaos_off)
{
    revl_model *m;
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.chaos_factor = 0;
    revl_hyperopt *h = wavy_hyperopt(&m, &o, 100);
    set_alpha(h, 0.3);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    set_alpha(h, 1.0);
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert(!rep.chaos && rep.step_size == 0.04);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* The guard discards the exploding update, and steps back to take the previous update again at
 * half the step: with SGD and no momentum, log alpha = log alpha_0 - (s/2) g_0. */
START_TEST(test_chaos_steps_back)
{
    for (int method = 0; method < 2; method++) {
        linreg *r = linreg_new(0);
        revl_model *m = linreg_model(r);
        revl_hyperopt_options o;
        revl_hyperopt_options_init(&o);
        o.method = method ? REVL_META_SGD : REVL_META_ADAM;
        o.momentum = 0;
        o.step_size = 0.01;
        o.learn = REVL_LEARN_ALPHA;
        r->boost_call = 1; /* the second objective call: hypergradient x 1e6 */
        r->boost = 1e6;
        revl_hyperopt *h = make_hyperopt(m, r, 6, &o);
        values v0 = values_get(h, 0, 0);
        revl_hyperopt_report rep = {.struct_size = sizeof rep};
        ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
        ck_assert(!rep.chaos);
        values v1 = values_get(h, 0, 0);
        ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
        ck_assert(rep.chaos && rep.step_size == 0.005);
        ck_assert_msg(strstr(revl_hyperopt_last_error(h), "previous update retaken"), "%s",
                      revl_hyperopt_last_error(h));
        values v2 = values_get(h, 0, 0);
        for (size_t k = 0; k < v0.n_sg; k++) {
            double full = log(v1.a[k]) - log(v0.a[k]), half = log(v2.a[k]) - log(v0.a[k]);
            assert_close(half, 0.5 * full, 1e-9, 1e-15, "half step", k);
        }
        /* then it goes on normally from there */
        ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
        ck_assert(!rep.chaos && rep.step_size == 0.005);
        values_free(&v0);
        values_free(&v1);
        values_free(&v2);
        revl_hyperopt_free(h);
        revl_model_free(m);
    }
}
END_TEST

/* ------------------------------------------------------------------ report callback */

START_TEST(test_report_stops_run)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    trace t = {.stop_after = 2};
    o.report = record;
    o.report_user = &t;
    o.iterations = 10;
    o.step_size = 0.03;
    revl_hyperopt *h = make_hyperopt(m, r, 5, &o);
    ck_assert_int_eq(revl_hyperopt_run(h), REVL_OK);
    ck_assert_uint_eq(t.n, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(t.iter[i], i);
        ck_assert(t.step[i] == 0.03 && !t.chaos[i]);
    }
    ck_assert_msg(strstr(revl_hyperopt_last_error(h), "report callback"), "%s",
                  revl_hyperopt_last_error(h));
    /* run goes on from where it stopped */
    t.stop_after = -1;
    ck_assert_int_eq(revl_hyperopt_run(h), REVL_OK);
    ck_assert_uint_eq(t.n, 13);
    ck_assert_uint_eq(t.iter[12], 12);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ save and load */

static char *tmp_path(const char *tag)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *p = malloc(512);
    snprintf(p, 512, "%s/revl_hyperopt_%ld_%s.txt", dir, (long)getpid(), tag);
    return p;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Adam and RMSprop: every rate kind learned in its coordinate (log alpha, logit beta, logit
 * gamma, log eps); one SGD step without momentum moves each coordinate by -s times the
 * trainer's hypergradient (itself checked against finite differences in check_optim) chained
 * at the applied value. */
START_TEST(test_other_optimizers_chain_rule)
{
    const revl_optimizer opts[] = {REVL_OPTIM_ADAM, REVL_OPTIM_RMSPROP, REVL_OPTIM_ADAMW,
                                   REVL_OPTIM_MOMENTUM}; /* momentum, RMSprop: coupled decay */
    revl_optimizer opt = opts[_i];
    size_t steps = 10, n = steps * 2;
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.method = REVL_META_SGD;
    o.momentum = 0;
    o.step_size = 1e-4;
    o.seed = 3;
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_BETA1 | REVL_LEARN_BETA2 |
              REVL_LEARN_EPS | REVL_LEARN_WEIGHT_DECAY | REVL_LEARN_INIT_SCALE;
    o.objective = linreg_objective;
    o.objective_user = r;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, steps, opt, &o), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_optimizer(h), opt);
    size_t off[3] = {0, 2, 6};
    revl_schedule *sch = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&sch, opt, steps, 2, off, NULL), REVL_OK);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(sch, kinds);
    double vals[REVL_HYPER_COUNT][20], after[REVL_HYPER_COUNT][20], dk[REVL_HYPER_COUNT][20];
    for (size_t j = 0; j < nk; j++)
        for (size_t k = 0; k < n; k++) {
            double u = (double)((k * 7 + j * 3) % 10) / 10.0;
            switch (kinds[j]) {
            case REVL_HYPER_ALPHA: vals[j][k] = 0.02 + 0.02 * u; break;
            case REVL_HYPER_GAMMA: vals[j][k] = 0.5 + 0.4 * u; break;
            case REVL_HYPER_BETA1: vals[j][k] = 0.8 + 0.15 * u; break;
            case REVL_HYPER_BETA2: vals[j][k] = 0.9 + 0.09 * u; break;
            case REVL_HYPER_WEIGHT_DECAY: vals[j][k] = 0.5 + u; break;
            default: vals[j][k] = 1e-3 * (1 + u); break;
            }
            vals[j][k] = revl_hyper_applied(kinds[j], vals[j][k]);
        }
    double scales[2] = {-2.0, -2.5};
    for (size_t j = 0; j < nk; j++) {
        ck_assert_int_eq(revl_hyperopt_set_kind(h, kinds[j], vals[j]), REVL_OK);
        ck_assert_int_eq(revl_schedule_set_kind(sch, kinds[j], vals[j]), REVL_OK);
    }
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, scales, NULL), REVL_OK);
    /* the trainer's hypergradient at the same point, by hand */
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, sch, NULL), REVL_OK);
    double w0[6], wT[6], dfdw[6], f;
    ck_assert_int_eq(revl_model_init_weights(m, scales, o.seed, w0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    revl_trainer_weights(t, wT);
    linreg_objective(wT, NULL, &f, dfdw, NULL, r);
    double *dptr[REVL_HYPER_COUNT] = {0};
    for (size_t j = 0; j < nk; j++)
        dptr[kinds[j]] = dk[j];
    ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, NULL, REVL_HYPER_COUNT, dptr, NULL),
                     REVL_OK);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert(rep.valid_loss == f);
    for (size_t j = 0; j < nk; j++) {
        ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, kinds[j], after[j]), REVL_OK);
        int is_log = kinds[j] == REVL_HYPER_ALPHA || kinds[j] == REVL_HYPER_EPS ||
                     kinds[j] == REVL_HYPER_WEIGHT_DECAY;
        for (size_t k = 0; k < n; k++) {
            double x = vals[j][k], y = after[j][k];
            double moved = is_log ? log(y) - log(x) : logit(y) - logit(x);
            double want = -o.step_size * dk[j][k] * (is_log ? x : x * (1 - x));
            assert_close(moved, want, 1e-6, 1e-14, revl_hyper_name(kinds[j]), k);
        }
    }
    /* the best-so-far reads back as what was set */
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 1, kinds[1], after[1]), REVL_OK);
    ck_assert(memcmp(after[1], vals[1], n * sizeof(double)) == 0);
    revl_trainer_free(t);
    revl_schedule_free(sch);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* AdamW learning log weight_decay: a weight_decay of 0 (log 0 = -inf) is refused with the step
 * and group; positive, the step runs and moves it. */
START_TEST(test_adamw_learns_log_weight_decay)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_WEIGHT_DECAY;
    o.objective = linreg_objective;
    o.objective_user = r;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, 4, REVL_OPTIM_ADAMW, &o), REVL_OK);
    double wd[8] = {0.01, 0.01, 0.01, 0, 0.01, 0.01, 0.01, 0.01}, after[8];
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_ERR_INVALID);
    expect_msg(revl_hyperopt_last_error(h), "weight_decay = 0 at step 1, group 1: log "
                                            "weight_decay is learned");
    wd[3] = 0.02;
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_WEIGHT_DECAY, after), REVL_OK);
    ck_assert(memcmp(after, wd, sizeof wd) != 0);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* Learned log clip, every optimiser: one SGD step without momentum moves log clip by -s times
 * the trainer's d clip (the whole run's own kinds_n, at the same point) times clip, bit for bit;
 * that d clip against central differences of the whole run in log clip; and the hyper-optimiser
 * trains with the clip it holds (valid_loss is the trainer's f). Clip 0.2 is active on linreg's
 * first steps (gradient norms about 1). */
static double clip_run(const revl_hyperopt *h, revl_model *m, linreg *r, revl_optimizer opt,
                       size_t steps, const double *clip, const double *scales, uint64_t seed,
                       double *d_clip)
{
    size_t off[3] = {0, 2, 6};
    revl_schedule *sch = NULL;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&sch, opt, steps, 2, off, NULL), REVL_OK);
    ck_assert_int_eq(revl_schedule_set_kind(sch, REVL_HYPER_CLIP, clip), REVL_OK);
    revl_hyper kinds[REVL_HYPER_COUNT]; /* the optimiser's kinds where the hyper-optimiser is */
    double v[64];
    for (size_t j = 0, nk = revl_schedule_kinds(sch, kinds); j < nk; j++) {
        ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, kinds[j], v), REVL_OK);
        ck_assert_int_eq(revl_schedule_set_kind(sch, kinds[j], v), REVL_OK);
    }
    ck_assert_int_eq(revl_trainer_create(&t, m, sch, NULL), REVL_OK);
    double w0[6], wT[6], dfdw[6], f;
    ck_assert_int_eq(revl_model_init_weights(m, scales, seed, w0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    revl_trainer_weights(t, wT);
    linreg_objective(wT, NULL, &f, dfdw, NULL, r);
    if (d_clip) {
        double *dptr[REVL_HYPER_COUNT] = {0};
        dptr[REVL_HYPER_CLIP] = d_clip;
        ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, NULL, REVL_HYPER_COUNT,
                                                        dptr, NULL), REVL_OK);
    }
    revl_trainer_free(t);
    revl_schedule_free(sch);
    return f;
}

START_TEST(test_learns_log_clip_chain_rule)
{
    revl_optimizer opt = (revl_optimizer)_i;
    size_t steps = 6, n = steps * 2;
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.method = REVL_META_SGD;
    o.momentum = 0;
    o.step_size = 1e-3;
    o.seed = 3;
    o.learn = REVL_LEARN_CLIP;
    o.objective = linreg_objective;
    o.objective_user = r;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, steps, opt, &o), REVL_OK);
    double clip[12], after[12], d_clip[12], scales[2] = {-2.0, -2.5};
    for (size_t k = 0; k < n; k++)
        clip[k] = 0.15 + 0.01 * (double)k;
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_CLIP, after), REVL_OK);
    ck_assert(after[0] == INFINITY); /* starts from the schedule's clip */
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_CLIP, clip), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, scales, NULL), REVL_OK);
    double f = clip_run(h, m, r, opt, steps, clip, scales, o.seed, d_clip);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert(rep.valid_loss == f);
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_CLIP, after), REVL_OK);
    size_t active = 0;
    double sq = 0;
    for (size_t k = 0; k < n; k++) {
        double g = d_clip[k] * clip[k]; /* d f / d log clip */
        sq += g * g;
        ck_assert_msg(after[k] == exp(log(clip[k]) - o.step_size * g),
                      "%s: clip[%zu] %.17g, want exp(log %.17g - s %.17g)",
                      revl_optimizer_name(opt), k, after[k], clip[k], g);
        active += d_clip[k] != 0;
    }
    ck_assert(rep.hypergrad_norm == sqrt(sq));
    ck_assert_msg(active >= 2, "%s: the clip is active at %zu coordinates", revl_optimizer_name(opt),
                  active);
    /* central differences of the whole run in log clip, at each active coordinate */
    for (size_t k = 0; k < n; k++) {
        if (d_clip[k] == 0)
            continue;
        double cp[12], cm[12], e = 1e-5;
        memcpy(cp, clip, sizeof cp);
        memcpy(cm, clip, sizeof cm);
        cp[k] = clip[k] * exp(e);
        cm[k] = clip[k] * exp(-e);
        double fd = (clip_run(h, m, r, opt, steps, cp, scales, o.seed, NULL) -
                     clip_run(h, m, r, opt, steps, cm, scales, o.seed, NULL)) / (2 * e);
        assert_close(d_clip[k] * clip[k], fd, 1e-5, 1e-9, "d f / d log clip", k);
    }
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* A learned log clip must start finite: +inf (the default, log +inf = +inf) is refused naming
 * the step and group, and changes nothing; a fixed clip (not learned) lives in the owned
 * schedule and may be +inf. Checkpoints and text files carry the learned block. */
START_TEST(test_learned_clip_refuses_inf_and_round_trips)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_CLIP;
    o.objective = linreg_objective;
    o.objective_user = r;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, 4, REVL_OPTIM_ADAM, &o), REVL_OK);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_ERR_INVALID);
    expect_msg(revl_hyperopt_last_error(h), "clip = inf at step 0, group 0: log clip is learned");
    double clip[8] = {0.3, 0.3, 0.3, 0.3, 0.3, INFINITY, 0.3, 0.3}, got[8];
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_CLIP, clip), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_ERR_INVALID);
    expect_msg(revl_hyperopt_last_error(h), "clip = inf at step 2, group 1: log clip is learned");
    ck_assert_uint_eq(revl_hyperopt_iterations_done(h), 0);
    char *ck = tmp_path("clipck"), *txt = tmp_path("cliptxt");
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(h, ck), REVL_OK); /* +inf kept as it is */
    ck_assert_int_eq(revl_hyperopt_save(h, 0, txt), REVL_OK);          /* and written as inf */
    ck_assert_int_eq(revl_hyperopt_load(h, txt), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_CLIP, got), REVL_OK);
    ck_assert(memcmp(got, clip, sizeof got) == 0);
    clip[5] = 0.25;
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_CLIP, clip), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    double moved[8];
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_CLIP, moved), REVL_OK);
    ck_assert(memcmp(moved, clip, sizeof clip) != 0);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, txt), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(h, ck), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_CLIP, got), REVL_OK);
    ck_assert(got[5] == INFINITY && got[0] == 0.3);
    ck_assert_int_eq(revl_hyperopt_load(h, txt), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_CLIP, got), REVL_OK);
    ck_assert(memcmp(got, moved, sizeof got) == 0);
    revl_hyperopt_free(h);
    /* not learned: a fixed clip in the owned schedule, the files as before (no clip section) */
    o.learn = REVL_LEARN_ALPHA;
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, 4, REVL_OPTIM_ADAM, &o), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_CLIP, moved), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 1, REVL_HYPER_CLIP, got), REVL_OK);
    ck_assert(memcmp(got, moved, sizeof got) == 0);
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, txt), REVL_OK);
    char *text = read_text(txt);
    ck_assert_ptr_null(strstr(text, "# clip"));
    free(text);
    remove(ck);
    remove(txt);
    free(ck);
    free(txt);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* Learning only log clip on a run whose tight clip (0.02, gradient norms about 1) keeps it from
 * fitting: the validation loss falls well below the starting one. */
START_TEST(test_learned_clip_lowers_loss)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn = REVL_LEARN_CLIP;
    o.step_size = 0.3;
    o.chaos_factor = 0;
    o.objective = linreg_objective;
    o.objective_user = r;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, 12, REVL_OPTIM_ADAM, &o), REVL_OK);
    double alpha[24], clip[24];
    for (size_t k = 0; k < 24; k++)
        alpha[k] = 0.1, clip[k] = 0.02;
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_ALPHA, alpha), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_CLIP, clip), REVL_OK);
    revl_hyperopt_report rep = {.struct_size = sizeof rep};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    double first = rep.valid_loss, best = first;
    for (int i = 0; i < 25; i++) {
        ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
        best = fmin(best, rep.valid_loss);
    }
    ck_assert_msg(best < 0.3 * first, "best %g, first %g", best, first);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* Momentum's and RMSprop's weight_decay (added after their files' formats shipped): momentum
 * without decay still writes version 1 (revl 0.1's), with decay version 2 and a weight_decay
 * section, read back bit for bit; a file without the section (version 1, or an RMSprop file
 * written before the kind) loads with weight_decay 0. */
START_TEST(test_coupled_decay_files)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.objective = linreg_objective;
    o.objective_user = r;
    revl_hyperopt *h = NULL, *h2 = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, 2, REVL_OPTIM_MOMENTUM, &o), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_create_for(&h2, m, NULL, 2, REVL_OPTIM_MOMENTUM, &o), REVL_OK);
    char *path = tmp_path("wd");
    double wd[4] = {0.25, 0, 1e-300, 3}, got[4];
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, path), REVL_OK);
    char *text = read_text(path);
    ck_assert_msg(strncmp(text, "# revl hyperparameters 2\n# optimizer momentum\n", 46) == 0, "%s",
                  text);
    ck_assert_ptr_nonnull(strstr(text, "\n\n\n# weight_decay\n0 0.25 0\n1 1e-300 3\n\n\n"));
    free(text);
    ck_assert_int_eq(revl_hyperopt_load(h2, path), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(h2, 0, REVL_HYPER_WEIGHT_DECAY, got), REVL_OK);
    ck_assert(memcmp(got, wd, sizeof wd) == 0);
    /* no decay: version 1, which loads with weight_decay 0 */
    memset(wd, 0, sizeof wd);
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, path), REVL_OK);
    text = read_text(path);
    ck_assert_msg(strncmp(text, "# revl hyperparameters 1\n", 25) == 0 && !strstr(text, "decay"),
                  "%s", text);
    free(text);
    ck_assert_int_eq(revl_hyperopt_load(h2, path), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(h2, 0, REVL_HYPER_WEIGHT_DECAY, got), REVL_OK);
    ck_assert(memcmp(got, wd, sizeof wd) == 0);
    revl_hyperopt_free(h);
    revl_hyperopt_free(h2);
    /* RMSprop's file as written before weight_decay; then with a broken weight_decay section */
    ck_assert_int_eq(revl_hyperopt_create_for(&h, m, NULL, 1, REVL_OPTIM_RMSPROP, &o), REVL_OK);
    double one[2] = {0.5, 0.5};
    ck_assert_int_eq(revl_hyperopt_set_kind(h, REVL_HYPER_WEIGHT_DECAY, one), REVL_OK);
    const char *old = "# revl hyperparameters 2\n# optimizer rmsprop\n# n_steps 1\n# n_groups 2\n"
                      "# n_meta 0\n# alpha\n0 0.01 0.02\n\n\n# gamma\n0 0.5 0.5\n\n\n"
                      "# beta2\n0 0.99 0.99\n\n\n# eps\n0 1e-08 1e-08\n\n\n"
                      "# log_init_scale\n0 -3\n1 -3\n\n\n# meta\n";
    write_text(path, old);
    ck_assert_msg(revl_hyperopt_load(h, path) == REVL_OK, "%s", revl_hyperopt_last_error(h));
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_WEIGHT_DECAY, got), REVL_OK);
    ck_assert(got[0] == 0 && got[1] == 0);
    ck_assert_int_eq(revl_hyperopt_get_kind(h, 0, REVL_HYPER_ALPHA, got), REVL_OK);
    ck_assert(got[0] == 0.01 && got[1] == 0.02);
    write_text(path, "# revl hyperparameters 2\n# optimizer rmsprop\n# n_steps 1\n# n_groups 2\n"
                     "# n_meta 0\n# alpha\n0 0.01 0.02\n\n\n# gamma\n0 0.5 0.5\n\n\n"
                     "# beta2\n0 0.99 0.99\n\n\n# eps\n0 1e-08 1e-08\n\n\n"
                     "# weight_decay\n0 -1 0\n\n\n# log_init_scale\n0 -3\n1 -3\n\n\n# meta\n");
    ck_assert_int_eq(revl_hyperopt_load(h, path), REVL_ERR_IO);
    expect_msg(revl_hyperopt_last_error(h), "weight_decay line 0, column 1: weight_decay = -1 must "
                                            "be finite and >= 0");
    revl_hyperopt_free(h);
    unlink(path);
    free(path);
    revl_model_free(m);
}
END_TEST

/* Kinds the optimiser lacks, bad values, and the file format's optimiser line. */
START_TEST(test_other_optimizers_errors_and_files)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.objective = linreg_objective;
    o.objective_user = r;
    revl_hyperopt *ha = NULL, *hm = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&ha, m, NULL, 3, (revl_optimizer)7, &o),
                     REVL_ERR_INVALID);
    ck_assert_ptr_null(ha);
    ck_assert_int_eq(revl_hyperopt_create_for(&ha, m, NULL, 3, REVL_OPTIM_ADAM, &o), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_create(&hm, m, NULL, 3, &o), REVL_OK);
    double v[6] = {0.9, 0.9, 0.9, 0.9, 0.9, 0.9}, got[6];
    ck_assert_int_eq(revl_hyperopt_get_kind(ha, 0, REVL_HYPER_BETA2, got), REVL_OK);
    ck_assert(got[5] == 0.999); /* Adam's defaults */
    ck_assert_int_eq(revl_hyperopt_set_kind(ha, REVL_HYPER_GAMMA, v), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_hyperopt_last_error(ha), "this adam hyper-optimiser has no gamma"));
    ck_assert_int_eq(revl_hyperopt_set(ha, NULL, v, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_get(ha, 0, NULL, got, NULL, NULL), REVL_ERR_INVALID);
    v[4] = 1.0;
    ck_assert_int_eq(revl_hyperopt_set_kind(ha, REVL_HYPER_BETA1, v), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_hyperopt_last_error(ha),
                                 "beta1 = 1 outside [2^-24, 1-2^-24] at step 2, group 0"));
    v[4] = 0.9;
    ck_assert_int_eq(revl_hyperopt_get_kind(ha, 0, REVL_HYPER_BETA1, got), REVL_OK);
    ck_assert(got[4] == 0.9); /* unchanged by the refused call */
    /* an Adam file: version 2 with a section per kind, read back bit for bit */
    char *pa = tmp_path("adam"), *pm = tmp_path("mom");
    v[0] = 0.123456789;
    ck_assert_int_eq(revl_hyperopt_set_kind(ha, REVL_HYPER_BETA1, v), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(ha, 0, pa), REVL_OK);
    char *text = read_text(pa);
    ck_assert_ptr_nonnull(strstr(text, "# revl hyperparameters 2\n# optimizer adam\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n\n\n# beta1\n0 0.123456789 "));
    ck_assert_ptr_nonnull(strstr(text, "\n\n\n# eps\n"));
    free(text);
    revl_hyperopt *hb = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&hb, m, NULL, 3, REVL_OPTIM_ADAM, &o), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_load(hb, pa), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(hb, 0, REVL_HYPER_BETA1, got), REVL_OK);
    ck_assert(got[0] == 0.123456789);
    /* the wrong optimiser either way is an IO error naming both */
    ck_assert_int_eq(revl_hyperopt_load(hm, pa), REVL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(revl_hyperopt_last_error(hm),
                                 ":2: optimizer is 'adam' in the file, this hyper-optimiser is momentum"));
    ck_assert_int_eq(revl_hyperopt_save(hm, 0, pm), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_load(ha, pm), REVL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(revl_hyperopt_last_error(ha), ":1: a version 1 file holds "
                                                               "momentum's alpha and gamma"));
    /* a bad beta in the file */
    text = read_text(pa);
    char *at = strstr(text, "0 0.123456789 ");
    ck_assert_ptr_nonnull(at);
    memcpy(at, "0 1.123456789 ", 14);
    write_text(pa, text);
    free(text);
    ck_assert_int_eq(revl_hyperopt_load(hb, pa), REVL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(revl_hyperopt_last_error(hb), "beta1 = 1.123456789 outside"));
    /* a beta at the top of its grid keeps its coordinate: a tiny step leaves it there */
    revl_hyperopt_options o2 = o;
    o2.method = REVL_META_SGD;
    o2.step_size = 1e-12;
    o2.learn = REVL_LEARN_BETA1;
    revl_hyperopt *hc = NULL;
    ck_assert_int_eq(revl_hyperopt_create_for(&hc, m, NULL, 3, REVL_OPTIM_ADAM, &o2), REVL_OK);
    for (size_t k = 0; k < 6; k++)
        v[k] = 1.0 - 0x1p-24;
    ck_assert_int_eq(revl_hyperopt_set_kind(hc, REVL_HYPER_BETA1, v), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(hc, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_get_kind(hc, 0, REVL_HYPER_BETA1, got), REVL_OK);
    for (size_t k = 0; k < 6; k++)
        ck_assert_msg(fabs(got[k] - v[k]) < 1e-9, "beta1 moved from %.17g to %.17g", v[k], got[k]);
    revl_hyperopt_free(hc);
    remove(pa);
    remove(pm);
    free(pa);
    free(pm);
    revl_hyperopt_free(ha);
    revl_hyperopt_free(hb);
    revl_hyperopt_free(hm);
    revl_model_free(m);
}
END_TEST

START_TEST(test_save_load_round_trip)
{
    linreg *r = linreg_new(1);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn |= REVL_LEARN_META;
    o.iterations = 4;
    revl_hyperopt *h = make_hyperopt(m, r, 5, &o);
    ck_assert_int_eq(revl_hyperopt_run(h), REVL_OK);
    revl_hyperopt *h2 = make_hyperopt(m, r, 5, &o);
    char *path = tmp_path("rt");
    for (int best = 0; best < 2; best++) {
        ck_assert_int_eq(revl_hyperopt_save(h, best, path), REVL_OK);
        ck_assert_int_eq(revl_hyperopt_load(h2, path), REVL_OK);
        values a = values_get(h, best, 1), b = values_get(h2, 0, 1);
        ck_assert(values_equal(&a, &b));
        values_free(&a);
        values_free(&b);
    }
    /* awkward values: subnormal, negative zero, huge, the gamma bounds */
    double alpha[10], gamma[10], scales[2] = {-0.0, 1e-310}, meta[1] = {-1.2345678901234567e-300};
    for (size_t k = 0; k < 10; k++) {
        alpha[k] = k == 0 ? 4.9406564584124654e-324 : k == 1 ? -0.0 : k == 2 ? 1.7976931348623157e308
                                                                      : 0.1 * (double)k + 1e-17;
        gamma[k] = k == 0 ? 0x1p-16 : k == 1 ? 1.0 : 1.0 / 3.0 + 1e-3 * (double)k;
    }
    ck_assert_int_eq(revl_hyperopt_set(h, alpha, gamma, scales, meta), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, path), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_load(h2, path), REVL_OK);
    values a = values_get(h, 0, 1), b = values_get(h2, 0, 1);
    ck_assert(values_equal(&a, &b));
    ck_assert(signbit(b.s[0]) && signbit(b.a[1]));
    values_free(&a);
    values_free(&b);

    /* the layout other tools rely on */
    char *text = read_text(path);
    const char *head = "# revl hyperparameters 1\n# n_steps 5\n# n_groups 2\n# n_meta 1\n"
                       "# alpha\n0 4.9406564584124654e-324 -0\n1 1.7976931348623157e+308 ";
    ck_assert_msg(strncmp(text, head, strlen(head)) == 0, "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "\n\n\n# gamma\n0 1.52587890625e-05 1\n"));
    char want[128];
    snprintf(want, sizeof want, "\n\n\n# log_init_scale\n0 -0\n1 %.17g\n\n\n# meta\n0 %.17g\n",
             scales[1], meta[0]);
    ck_assert_msg(strstr(text, want) != NULL, "%s", text);
    free(text);
    unlink(path);
    free(path);
    revl_hyperopt_free(h);
    revl_hyperopt_free(h2);
    revl_model_free(m);
}
END_TEST

START_TEST(test_save_load_no_meta)
{
    linreg *r = linreg_new(0);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    revl_hyperopt *h = make_hyperopt(m, r, 1, &o);
    char *path = tmp_path("nometa");
    ck_assert_int_eq(revl_hyperopt_save(h, 1, path), REVL_OK);
    char *text = read_text(path);
    ck_assert_str_eq(text, "# revl hyperparameters 1\n# n_steps 1\n# n_groups 2\n# n_meta 0\n"
                           "# alpha\n0 0.36787944117144233 0.36787944117144233\n\n\n"
                           "# gamma\n0 0.5 0.5\n\n\n# log_init_scale\n0 -3\n1 -3\n\n\n# meta\n");
    free(text);
    ck_assert_int_eq(revl_hyperopt_load(h, path), REVL_OK);
    /* hand-written variants that are still well formed: CRLF, spacing, trailing blank lines */
    write_text(path, "# revl hyperparameters 1\r\n#  n_steps   1\n# n_groups 2\n# n_meta 0\n"
                     "# alpha\n0\t0.25   0x1p-3\n\n\n# gamma\n0 0.5 1\n\n\n# log_init_scale\n"
                     "0 -3\n1 -2.5\n\n\n# meta\n\n\n");
    ck_assert_msg(revl_hyperopt_load(h, path) == REVL_OK, "%s", revl_hyperopt_last_error(h));
    values v = values_get(h, 0, 0);
    ck_assert(v.a[0] == 0.25 && v.a[1] == 0.125 && v.gm[1] == 1.0 && v.s[1] == -2.5);
    values_free(&v);
    unlink(path);
    free(path);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

START_TEST(test_load_errors)
{
    linreg *r = linreg_new(1);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    revl_hyperopt *h = make_hyperopt(m, r, 2, &o);
    char *path = tmp_path("bad");
    /* a good file to start from: T = 2, G = 2, M = 1 */
    const char *good = "# revl hyperparameters 1\n# n_steps 2\n# n_groups 2\n# n_meta 1\n"
                       "# alpha\n0 0.1 0.2\n1 0.3 0.4\n\n\n"
                       "# gamma\n0 0.5 0.6\n1 0.7 0.8\n\n\n"
                       "# log_init_scale\n0 -1\n1 -2\n\n\n"
                       "# meta\n0 0.5\n";
    write_text(path, good);
    ck_assert_msg(revl_hyperopt_load(h, path) == REVL_OK, "%s", revl_hyperopt_last_error(h));
    values v0 = values_get(h, 0, 1);
    ck_assert(v0.a[3] == 0.4 && v0.gm[2] == 0.7 && v0.s[1] == -2 && v0.m[0] == 0.5);

    struct {
        const char *from, *to; /* replace the first `from` in the good file by `to` */
        int line;              /* where the message must point */
        const char *says;
    } cases[] = {
        {"# revl hyperparameters 1", "# revl hyperparameters 3", 1, "expected '# revl hyperparameters 1', found version '3'"},
        {"# revl hyperparameters 1", "revl hyperparameters 1", 1, "expected"},
        {"# n_steps 2", "# n_steps 3", 2, "n_steps is 3 in the file, this hyper-optimiser has 2"},
        {"# n_groups 2", "# n_groups 1", 3, "n_groups is 1"},
        {"# n_meta 1", "# n_meta 0", 4, "n_meta is 0"},
        {"# n_meta 1", "# n_meta -1", 4, "not a count"},
        {"# n_steps 2", "# n_steps", 2, "not a count"},
        {"0 0.1 0.2", "0 0.1 abc", 6, "'abc' is not a number"},
        {"0 0.1 0.2", "0 0.1 0.2x", 6, "'0.2x' is not a number"},
        {"0 0.1 0.2", "0 0.1 nan", 6, "'nan' is not finite"},
        {"0 0.1 0.2", "0 0.1 1e999", 6, "not finite"},
        {"0 0.1 0.2", "0 0.1 inf", 6, "not finite"},
        {"0 0.1 0.2", "0 0.1", 6, "missing value"},
        {"0 0.1 0.2", "0 0.1 0.2 0.3", 6, "unexpected '0.3' at the end of the line"},
        {"1 0.3 0.4", "2 0.3 0.4", 7, "expected index 1, found '2'"},
        {"1 0.3 0.4", "x 0.3 0.4", 7, "expected index 1"},
        {"0 0.5 0.6", "0 0.5 1.5", 11, "gamma = 1.5 outside [2^-16, 1]"},
        {"0 0.5 0.6", "0 0.5 0", 11, "gamma = 0 outside"},
        {"0 0.5 0.6", "0 0.5 -0.5", 11, "outside"},
        {"0 0.5 0.6", "0 0.5 1e-9", 11, "outside"},
        {"\n\n# gamma", "\n# gamma", 9, "expected a blank line before '# gamma', found '#'"},
        {"\n\n# gamma", "\n\n\n# gamma", 10, "expected '# gamma'"},
        {"# gamma", "# momentum", 10, "expected '# gamma'"},
        {"# meta\n0 0.5\n", "# meta\n0 0.5\n1 0.7\n", 22, "trailing garbage '1'"},
        {"# meta\n0 0.5\n", "# meta\n0 0.5\n\n\nx\n", 24, "trailing garbage 'x'"},
        {"# meta\n0 0.5\n", "# meta\n", 21, "unexpected end of file (truncated?): meta has 0 of 1 lines"},
        {"0 -1\n1 -2\n", "0 -1\n", 17, "log_init_scale: empty line, expected line 1 of 2"},
        {"0 0.1 0.2", "0 0.1 0.20000000000000000000000000000000000000000000000000000000000000001", 6, "too long"},
    };
    char buf[1024];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *at = strstr(good, cases[c].from);
        ck_assert_ptr_nonnull(at);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, cases[c].to,
                 at + strlen(cases[c].from));
        write_text(path, buf);
        int rc = revl_hyperopt_load(h, path);
        const char *msg = revl_hyperopt_last_error(h);
        char where[600];
        snprintf(where, sizeof where, "%s:%d: ", path, cases[c].line);
        ck_assert_msg(rc == REVL_ERR_IO, "case %zu: status %d (%s)", c, rc, msg);
        ck_assert_msg(strncmp(msg, where, strlen(where)) == 0 && strstr(msg, cases[c].says),
                      "case %zu: message '%s', expected '%s...%s'", c, msg, where, cases[c].says);
        values v = values_get(h, 0, 1);
        ck_assert_msg(values_equal(&v0, &v), "case %zu changed the hyperparameters", c);
        values_free(&v);
    }
    /* truncated at every byte: refused, unless the cut falls inside the last number (which
     * still parses: "0.5" cut to "0." or "0") or takes only the final newline */
    size_t len = strlen(good);
    for (size_t cut = 0; cut + 3 < len; cut++) {
        snprintf(buf, sizeof buf, "%.*s", (int)cut, good);
        write_text(path, buf);
        int rc = revl_hyperopt_load(h, path);
        ck_assert_msg(rc == REVL_ERR_IO, "cut at %zu: status %d", cut, rc);
        ck_assert_msg(strstr(revl_hyperopt_last_error(h), path) != NULL, "%s",
                      revl_hyperopt_last_error(h));
    }
    /* a NUL byte inside a number */
    {
        FILE *f = fopen(path, "w");
        const char *at = strstr(good, "0.1 0.2");
        fwrite(good, 1, (size_t)(at - good) + 2, f);
        fputc('\0', f);
        fputs(at + 2, f);
        fclose(f);
        ck_assert_int_eq(revl_hyperopt_load(h, path), REVL_ERR_IO);
        ck_assert_msg(strstr(revl_hyperopt_last_error(h), ":6: token contains a NUL byte"), "%s",
                      revl_hyperopt_last_error(h));
    }
    unlink(path);
    ck_assert_int_eq(revl_hyperopt_load(h, path), REVL_ERR_IO);
    ck_assert_msg(strstr(revl_hyperopt_last_error(h), "cannot open"), "%s",
                  revl_hyperopt_last_error(h));
    ck_assert_int_eq(revl_hyperopt_save(h, 0, "/nonexistent-dir/x.txt"), REVL_ERR_IO);
    ck_assert_msg(strstr(revl_hyperopt_last_error(h), "/nonexistent-dir/x.txt: cannot open"), "%s",
                  revl_hyperopt_last_error(h));
    values v = values_get(h, 0, 1);
    ck_assert(values_equal(&v0, &v));
    values_free(&v);
    values_free(&v0);
    free(path);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ errors */

START_TEST(test_bad_arguments)
{
    linreg *r = linreg_new(1);
    revl_model *m = linreg_model(r);
    revl_hyperopt_options o;
    revl_hyperopt *h = (revl_hyperopt *)&o; /* must be reset to NULL on failure */
    revl_hyperopt_options_init(&o);
    o.objective = linreg_objective;
    o.objective_user = r;
    ck_assert_int_eq(revl_hyperopt_create(NULL, m, NULL, 3, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_create(&h, NULL, NULL, 3, &o), REVL_ERR_INVALID);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 0, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, NULL), REVL_ERR_INVALID); /* no f */
    /* a validation set needs a built-in model to evaluate it */
    revl_dataset *ds = NULL;
    ck_assert_int_eq(revl_dataset_create(&ds, NULL), REVL_OK);
    revl_hyperopt_options o2;
    revl_hyperopt_options_init(&o2);
    ck_assert_int_eq(revl_hyperopt_create(&h, m, ds, 3, &o2), REVL_ERR_INVALID);
    revl_dataset_free(ds);

    struct {
        int field;
        double value;
    } bad[] = {{0, 0}, {1, 16}, {2, 2}, {3, 0}, {3, -1}, {3, NAN}, {3, INFINITY}, {4, 1},
               {4, -0.1}, {5, 1}, {6, 1}, {6, NAN}, {7, 0}, {7, NAN}, {8, -1}, {8, NAN},
               {9, 2}, {10, 0}, {10, 63}};
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        revl_hyperopt_options b = o;
        switch (bad[c].field) {
        case 0: b.struct_size = sizeof b - 1; break;
        case 1: b.learn = 512; break;
        case 2: b.method = (revl_meta_method)2; break;
        case 3: b.step_size = bad[c].value; break;
        case 4: b.momentum = bad[c].value; break;
        case 5: b.adam_beta1 = bad[c].value; break;
        case 6: b.adam_beta2 = bad[c].value; break;
        case 7: b.adam_eps = bad[c].value; break;
        case 8: b.chaos_factor = bad[c].value; break;
        case 9: b.chaos_action = (revl_chaos_action)2; break;
        case 10: b.frac_bits = (unsigned)bad[c].value; break;
        }
        ck_assert_msg(revl_hyperopt_create(&h, m, NULL, 3, &b) == REVL_ERR_INVALID, "case %zu", c);
        ck_assert_ptr_null(h);
    }

    h = make_hyperopt(m, r, 3, &o);
    values v0 = values_get(h, 0, 1);
    double a[6] = {0.1, 0.1, 0.1, 0.1, NAN, 0.1}, g[6] = {0.5, 0.5, 0.5, 0.5, 0.5, 1.5};
    double s[2] = {0, INFINITY}, mt[1] = {NAN};
    ck_assert_int_eq(revl_hyperopt_set(h, a, NULL, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_msg(strstr(revl_hyperopt_last_error(h), "alpha is not finite at step 2, group 0"),
                  "%s", revl_hyperopt_last_error(h));
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, g, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_msg(strstr(revl_hyperopt_last_error(h), "gamma = 1.5 outside [2^-16, 1] at step 2, group 1"),
                  "%s", revl_hyperopt_last_error(h));
    g[5] = 0;
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, g, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, s, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, NULL, mt), REVL_ERR_INVALID);
    a[4] = 0.2;
    ck_assert_int_eq(revl_hyperopt_set(h, a, g, NULL, NULL), REVL_ERR_INVALID); /* all or nothing */
    values v = values_get(h, 0, 1);
    ck_assert(values_equal(&v0, &v));
    values_free(&v);
    ck_assert_int_eq(revl_hyperopt_set(NULL, a, NULL, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, NULL, NULL), REVL_OK);

    /* learning log alpha needs alpha > 0 */
    a[4] = 0;
    ck_assert_int_eq(revl_hyperopt_set(h, a, NULL, NULL, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_ERR_INVALID);
    ck_assert_msg(strstr(revl_hyperopt_last_error(h), "step 2, group 0") &&
                      strstr(revl_hyperopt_last_error(h), "positive"),
                  "%s", revl_hyperopt_last_error(h));
    ck_assert_int_eq(revl_hyperopt_set(h, v0.a, NULL, NULL, NULL), REVL_OK);

    revl_hyperopt_report rep = {.struct_size = sizeof rep - 1};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_step(NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_run(NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_get(NULL, 0, a, NULL, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_get(h, 0, NULL, NULL, NULL, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(NULL, 0, "x"), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_load(NULL, "x"), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_load(h, NULL), REVL_ERR_INVALID);
    ck_assert_uint_eq(revl_hyperopt_n_steps(NULL), 0);
    ck_assert_uint_eq(revl_hyperopt_n_groups(NULL), 0);
    ck_assert_ptr_nonnull(revl_hyperopt_last_error(NULL));

    /* the model's groups changed under the hyper-optimiser */
    size_t off1[2] = {0, 6};
    ck_assert_int_eq(revl_model_set_groups(m, 1, off1), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_ERR_STATE);
    size_t off2[3] = {0, 2, 6};
    ck_assert_int_eq(revl_model_set_groups(m, 2, off2), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    values_free(&v0);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

START_TEST(test_failures_change_nothing)
{
    /* objective f NaN, dfdw NaN, an exploding dfdw, a failing objective, a failing gradient:
     * each is reported with a message and leaves the hyperparameters and the step count */
    const int modes[] = {1, 2, 3, 4, 5};
    const int want[] = {REVL_ERR_RANGE, REVL_ERR_RANGE, REVL_ERR_RANGE, REVL_ERR_CALLBACK,
                        REVL_ERR_CALLBACK};
    const char *says[] = {"validation objective is nan", "gradient of the validation objective is nan",
                          "", "objective callback returned 3", "gradient callback returned 5"};
    for (size_t c = 0; c < sizeof modes / sizeof modes[0]; c++) {
        linreg *r = linreg_new(1);
        revl_model *m = linreg_model(r);
        revl_hyperopt_options o;
        revl_hyperopt_options_init(&o);
        o.learn |= REVL_LEARN_META;
        revl_hyperopt *h = make_hyperopt(m, r, 5, &o);
        revl_hyperopt_report rep = {.struct_size = sizeof rep};
        ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
        values v0 = values_get(h, 0, 1), b0 = values_get(h, 1, 1);
        if (modes[c] == 5)
            r->fail_grad = 1;
        else
            r->obj_mode = modes[c];
        int rc = revl_hyperopt_step(h, &rep);
        ck_assert_msg(rc == want[c], "mode %d: %d (%s)", modes[c], rc, revl_hyperopt_last_error(h));
        ck_assert_msg(strstr(revl_hyperopt_last_error(h), says[c]) &&
                          strstr(revl_hyperopt_last_error(h), "meta-iteration 1"),
                      "mode %d: %s", modes[c], revl_hyperopt_last_error(h));
        ck_assert_int_eq(revl_hyperopt_run(h), rc);
        values v1 = values_get(h, 0, 1), b1 = values_get(h, 1, 1);
        ck_assert(values_equal(&v0, &v1) && values_equal(&b0, &b1));
        /* usable again once the cause is gone */
        r->fail_grad = 0;
        r->obj_mode = 0;
        ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
        ck_assert_uint_eq(rep.iteration, 1);
        values_free(&v0);
        values_free(&v1);
        values_free(&b0);
        values_free(&b1);
        revl_hyperopt_free(h);
        revl_model_free(m);
    }
}
END_TEST

/* ------------------------------------------------------------------ allocation failure */

START_TEST(test_allocation_failure_every_point)
{
    /* Fail the k-th allocation for every k along model and hyper-optimiser creation, two
     * meta-iterations, save and load: each run ends in REVL_ERR_NOMEM or succeeds (k past the
     * last allocation), the handle stays usable, and nothing is live after freeing. */
    char *path = tmp_path("alloc");
    long k;
    for (k = 0;; k++) {
        failing f = {.fail_at = k};
        revl_allocator a = failing_allocator(&f);
        linreg *r = linreg_new(1);
        int rc;
        revl_model *m = linreg_model_with(r, &a, &rc);
        revl_hyperopt *h = NULL;
        revl_hyperopt_options o;
        revl_hyperopt_options_init(&o);
        o.allocator = &a;
        o.objective = linreg_objective;
        o.objective_user = r;
        o.iterations = 2;
        if (rc == REVL_OK)
            rc = revl_hyperopt_create(&h, m, NULL, 4, &o);
        if (rc == REVL_OK)
            rc = revl_hyperopt_run(h);
        if (rc == REVL_OK)
            rc = revl_hyperopt_save(h, 1, path);
        if (rc == REVL_OK)
            rc = revl_hyperopt_load(h, path);
        int done = f.calls <= k;
        if (done)
            ck_assert_int_eq(rc, REVL_OK);
        else
            ck_assert_msg(rc == REVL_ERR_NOMEM, "k = %ld: status %d", k, rc);
        if (!done && h) {
            f.fail_at = -1;
            ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
            ck_assert_int_eq(revl_hyperopt_save(h, 0, path), REVL_OK);
            ck_assert_int_eq(revl_hyperopt_load(h, path), REVL_OK);
        }
        revl_hyperopt_free(h);
        revl_model_free(m);
        ck_assert_msg(f.live == 0, "k = %ld: %ld allocations leaked", k, f.live);
        if (done)
            break;
    }
    ck_assert(k > 10);
    unlink(path);
    free(path);
}
END_TEST

/* ------------------------------------------------------------------ validation-set path */

/* Separable points in 2-D: train (20) and valid (20) for logistic regression 2 -> 2. */
static void separable_sets(revl_dataset **train, revl_dataset **valid)
{
    double x[40 * 2];
    int32_t y[40];
    uint64_t s = 3;
    for (size_t e = 0; e < 40; e++) {
        x[2 * e] = lcg_uniform(&s);
        x[2 * e + 1] = lcg_uniform(&s);
        y[e] = x[2 * e] + 0.5 * x[2 * e + 1] > 0;
    }
    ck_assert_int_eq(revl_dataset_create(train, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(valid, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(*train, 20, 2, 2, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(*valid, 20, 2, 2, x + 40, y + 20), REVL_OK);
}

START_TEST(test_builtin_model_valid_set)
{
    /* The one test that uses the built-in MLP: f = revl_model_evaluate on a validation set,
     * with its accuracy in the report. Logistic regression 2 -> 2 on separable points. */
    revl_dataset *train = NULL, *valid = NULL;
    separable_sets(&train, &valid);
    size_t widths[2] = {2, 2};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 0;
    mo.threads = 1;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 2, widths, train, &mo), REVL_OK);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.iterations = 10;
    o.step_size = 0.1;
    o.threads = 1;
    trace t = {.stop_after = -1};
    o.report = record;
    o.report_user = &t;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, valid, 10, &o), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_run(h), REVL_OK);
    ck_assert_uint_eq(t.n, 10);
    for (size_t i = 0; i < t.n; i++)
        ck_assert_msg(t.acc[i] >= 0 && t.acc[i] <= 1, "accuracy %g", t.acc[i]);
    ck_assert_msg(t.loss[9] < t.loss[0], "valid loss %g -> %g", t.loss[0], t.loss[9]);
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_dataset_free(train);
    revl_dataset_free(valid);
}
END_TEST

/* The MLP's log L2 meta-parameters start at log 1e-4 (0 would be lambda = 1); a first
 * meta-iteration that trains no better than chance leaves a warning (status still OK). */
START_TEST(test_builtin_meta_start_and_chance_warning)
{
    revl_dataset *train = NULL, *valid = NULL;
    separable_sets(&train, &valid);
    size_t widths[2] = {2, 2};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 0;
    mo.penalty = REVL_PENALTY_PER_LAYER;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 2, widths, train, &mo), REVL_OK);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn |= REVL_LEARN_META;
    o.iterations = 2;
    o.step_size = 0.1;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, valid, 10, &o), REVL_OK);
    ck_assert(REVL_MLP_LOG_L2_START == log(1e-4));
    values v = values_get(h, 0, 1);
    ck_assert(v.m[0] == REVL_MLP_LOG_L2_START);
    values_free(&v);
    /* from the documented start it learns: no warning */
    revl_hyperopt_report r = {.struct_size = sizeof r};
    ck_assert_int_eq(revl_hyperopt_step(h, &r), REVL_OK);
    ck_assert_msg(r.train_loss < log(2.0), "train loss %g", r.train_loss);
    ck_assert_str_eq(revl_hyperopt_last_error(h), "");
    revl_hyperopt_free(h);

    /* lambda = e^5 and a tiny step: training cannot beat guessing, and the message says so,
     * from step and from run, on the first meta-iteration only */
    double meta = 5, alpha[10 * 2]; /* steps x groups (W, b) */
    for (int k = 0; k < 20; k++)
        alpha[k] = 1e-9;
    for (int via_run = 0; via_run < 2; via_run++) {
        ck_assert_int_eq(revl_hyperopt_create(&h, m, valid, 10, &o), REVL_OK);
        ck_assert_int_eq(revl_hyperopt_set(h, alpha, NULL, NULL, &meta), REVL_OK);
        int rc = via_run ? revl_hyperopt_run(h) : revl_hyperopt_step(h, &r);
        ck_assert_msg(rc == REVL_OK, "%d: %s", rc, revl_hyperopt_last_error(h));
        const char *msg = revl_hyperopt_last_error(h);
        ck_assert_msg(strstr(msg, "warning: training loss") == msg, "'%s'", msg);
        ck_assert_msg(strstr(msg, "no better than chance (0.6931") != NULL, "'%s'", msg);
        if (!via_run) {
            ck_assert(!(r.train_loss < log(2.0)));
            ck_assert_int_eq(revl_hyperopt_step(h, &r), REVL_OK); /* iteration 1: silent */
            ck_assert_str_eq(revl_hyperopt_last_error(h), "");
        }
        revl_hyperopt_free(h);
    }
    revl_model_free(m);
    revl_dataset_free(train);
    revl_dataset_free(valid);
}
END_TEST

static Suite *hyperopt_suite(void)
{
    Suite *s = suite_create("hyperopt");
    TCase *op = tcase_create("optimise");
    tcase_set_timeout(op, 300);
    tcase_add_test(op, test_defaults);
    tcase_add_test(op, test_lowers_objective_adam);
    tcase_add_test(op, test_lowers_objective_sgd);
    tcase_add_test(op, test_learn_bit_of_each_kind);
    tcase_add_test(op, test_learn_mask);
    tcase_add_test(op, test_chain_rule_against_trainer_and_fd);
    tcase_add_loop_test(op, test_other_optimizers_chain_rule, 0, 4);
    tcase_add_test(op, test_coupled_decay_files);
    tcase_add_test(op, test_adamw_learns_log_weight_decay);
    tcase_add_loop_test(op, test_learns_log_clip_chain_rule, 0, REVL_OPTIM_COUNT);
    tcase_add_test(op, test_learned_clip_refuses_inf_and_round_trips);
    tcase_add_test(op, test_learned_clip_lowers_loss);
    tcase_add_test(op, test_other_optimizers_errors_and_files);
    tcase_add_test(op, test_norm_counts_learned_only);
    tcase_add_test(op, test_gamma_clamped_alpha_finite);
    tcase_add_test(op, test_fresh_seed);
    suite_add_tcase(s, op);
    TCase *ch = tcase_create("chaos and report");
    tcase_set_timeout(ch, 300);
    tcase_add_test(ch, test_chaos_shrink_on_exploding_run);
    tcase_add_test(ch, test_chaos_stop_ends_run);
    tcase_add_test(ch, test_chaos_off);
    tcase_add_test(ch, test_chaos_steps_back);
    tcase_add_test(ch, test_report_stops_run);
    suite_add_tcase(s, ch);
    TCase *io = tcase_create("files");
    tcase_set_timeout(io, 300);
    tcase_add_test(io, test_save_load_round_trip);
    tcase_add_test(io, test_save_load_no_meta);
    tcase_add_test(io, test_load_errors);
    suite_add_tcase(s, io);
    TCase *er = tcase_create("errors");
    tcase_set_timeout(er, 300);
    tcase_add_test(er, test_bad_arguments);
    tcase_add_test(er, test_failures_change_nothing);
    tcase_add_test(er, test_allocation_failure_every_point);
    suite_add_tcase(s, er);
    TCase *bi = tcase_create("builtin");
    tcase_set_timeout(bi, 300);
    tcase_add_test(bi, test_builtin_model_valid_set);
    tcase_add_test(bi, test_builtin_meta_start_and_chance_warning);
    suite_add_tcase(s, bi);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hyperopt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
