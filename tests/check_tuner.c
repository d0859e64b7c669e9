/* check_tuner.c: the tuner (revl_tuner) through the public API, on a small built-in MLP over
 * separable blobs: it finds better hyperparameters than the defaults, its best point's weights
 * are those of the training that gave the best loss (and retraining its schedule reproduces
 * them bit for bit), runs are deterministic, a checkpoint resumes with the bits of an
 * uninterrupted run (in the search and in the refinement), the backtracking refinement never
 * keeps a worse point, a chaotic box still ends finite, minibatch orders, the MLP's order, and
 * every bad input and allocation failure. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "revl.h"
#include "testutil.h"

#define DIM 6
#define CLASSES 3
#define T_STEPS 12
/* momentum's z: log alpha, logit gamma, log weight_decay (T_STEPS x 4 groups each), then the 4
 * log init scales */
#define NZ_MOMENTUM (3 * T_STEPS * 4 + 4)

/* n examples of DIM features: class means apart on the first coordinates, noise from a fixed
 * generator, so that a network can learn them in a few steps */
static revl_dataset *blobs(size_t n, uint64_t seed)
{
    double *x = malloc(n * DIM * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    uint64_t s = seed * 2654435761u + 7;
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % CLASSES);
        for (size_t j = 0; j < DIM; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(s >> 11) * 0x1p-53 * 2 - 1;
            x[i * DIM + j] = u + (j == (size_t)y[i] ? 1.2 : 0.0);
        }
    }
    revl_dataset *d = NULL;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(d, n, DIM, CLASSES, x, y), REVL_OK);
    free(x);
    free(y);
    return d;
}

typedef struct fixture {
    revl_dataset *train, *valid, *test;
    revl_model *m;
} fixture;

static void setup(fixture *f)
{
    f->train = blobs(150, 1);
    f->valid = blobs(150, 2);
    f->test = blobs(150, 3);
    size_t widths[3] = {DIM, 8, CLASSES};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 25;
    ck_assert_int_eq(revl_mlp_create(&f->m, 3, widths, f->train, &mo), REVL_OK);
}

static void teardown(fixture *f)
{
    revl_model_free(f->m);
    revl_dataset_free(f->train);
    revl_dataset_free(f->valid);
    revl_dataset_free(f->test);
}

static revl_tuner_options opts_runs(size_t runs)
{
    revl_tuner_options o;
    revl_tuner_options_init(&o);
    o.budget_runs = runs;
    return o;
}

static revl_tuner *make(fixture *f, revl_optimizer opt, const revl_tuner_options *o)
{
    revl_tuner *t = NULL;
    int rc = revl_tuner_create(&t, f->m, f->valid, T_STEPS, opt, NULL, NULL, o);
    ck_assert_msg(rc == REVL_OK, "create: %s", revl_last_create_error());
    return t;
}

static void run_ok(revl_tuner *t)
{
    int rc = revl_tuner_run(t);
    ck_assert_msg(rc == REVL_OK, "run: %s", revl_tuner_last_error(t));
    ck_assert_int_eq(revl_tuner_phase(t), REVL_TUNE_PHASE_DONE);
}

/* Train the model with schedule s from log scales (seed 0) and return the validation loss;
 * w gets w_T. */
static double train_with(fixture *f, const revl_schedule *s, const double *log_scales, double *w)
{
    revl_trainer *tr = NULL;
    ck_assert_int_eq(revl_trainer_create(&tr, f->m, s, NULL), REVL_OK);
    ck_assert_int_eq(revl_model_init_weights(f->m, log_scales, 0, w), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(tr, w, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(tr, w), REVL_OK);
    revl_trainer_free(tr);
    double loss;
    ck_assert_int_eq(revl_model_evaluate(f->m, f->valid, w, &loss, NULL, NULL), REVL_OK);
    return loss;
}

static revl_schedule *schedule_for(fixture *f, revl_optimizer opt)
{
    size_t off[2 * 2 + 1];
    revl_model_group_offsets(f->m, off);
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, T_STEPS, 4, off, NULL), REVL_OK);
    return s;
}

/* ------------------------------------------------------------------ results */

START_TEST(test_tunes_and_keeps_its_weights)
{
    static const revl_optimizer opts[] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM};
    revl_optimizer opt = opts[_i];
    fixture f;
    setup(&f);
    size_t P = revl_model_n_params(f.m);
    double *w = malloc(P * sizeof *w), *wb = malloc(P * sizeof *wb);
    double scales[4] = {-3, -3, -3, -3};
    revl_schedule *s = schedule_for(&f, opt);
    double start = train_with(&f, s, scales, w); /* the optimiser's defaults */

    revl_tuner_options o = opts_runs(40);
    o.test = f.test;
    revl_tuner *t = make(&f, opt, &o);
    run_ok(t);
    revl_tuner_result r;
    revl_tuner_result_init(&r);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    ck_assert_msg(r.valid_loss < 0.8 * start, "tuned %g, defaults %g", r.valid_loss, start);
    ck_assert_msg(r.runs >= 40 && r.runs <= 42, "runs %zu", r.runs);
    ck_assert(r.search_evaluations >= 15 && r.refine_iterations >= 3);

    /* the best weights are the best training's: their validation loss is the best loss */
    double l, acc;
    ck_assert_int_eq(revl_tuner_best_weights(t, wb), REVL_OK);
    ck_assert_int_eq(revl_model_evaluate(f.m, f.valid, wb, &l, NULL, &acc), REVL_OK);
    ck_assert(l == r.valid_loss && acc == r.valid_accuracy);
    ck_assert_int_eq(revl_model_evaluate(f.m, f.test, wb, &l, NULL, &acc), REVL_OK);
    ck_assert(l == r.test_loss && acc == r.test_accuracy);

    /* and the best schedule with its init scales reproduces them bit for bit */
    ck_assert_int_eq(revl_tuner_best_schedule(t, s), REVL_OK);
    ck_assert_int_eq(revl_tuner_best_scales_meta(t, scales, NULL), REVL_OK);
    double again = train_with(&f, s, scales, w);
    ck_assert(again == r.valid_loss);
    ck_assert_mem_eq(w, wb, P * sizeof *w);

    /* best_kind agrees with the schedule */
    double *a = malloc(T_STEPS * 4 * sizeof *a), *b = malloc(T_STEPS * 4 * sizeof *b);
    ck_assert_int_eq(revl_tuner_best_kind(t, REVL_HYPER_ALPHA, a), REVL_OK);
    ck_assert_int_eq(revl_schedule_get_kind(s, REVL_HYPER_ALPHA, b), REVL_OK);
    ck_assert_mem_eq(a, b, T_STEPS * 4 * sizeof *a);
    free(a);
    free(b);
    revl_tuner_free(t);
    revl_schedule_free(s);
    free(w);
    free(wb);
    teardown(&f);
}
END_TEST

/* best_z of a whole run of `runs`, stepping and checkpointing after `cut` steps when cut > 0 */
static void run_cut(fixture *f, const revl_tuner_options *o, size_t cut, double *z, double *loss,
                    size_t *runs)
{
    revl_tuner *t = make(f, REVL_OPTIM_MOMENTUM, o);
    char path[] = "/tmp/revl_check_tuner_XXXXXX";
    if (cut) {
        int fd = mkstemp(path);
        ck_assert(fd >= 0);
        close(fd);
        for (size_t k = 0; k < cut; k++)
            ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
        ck_assert_msg(revl_tuner_checkpoint_save(t, path) == REVL_OK, "%s",
                      revl_tuner_last_error(t));
        revl_tuner_free(t);
        t = make(f, REVL_OPTIM_MOMENTUM, o);
        ck_assert_msg(revl_tuner_checkpoint_load(t, path) == REVL_OK, "%s",
                      revl_tuner_last_error(t));
        unlink(path);
    }
    run_ok(t);
    ck_assert_int_eq(revl_tuner_best_z(t, z), REVL_OK);
    revl_tuner_result r;
    revl_tuner_result_init(&r);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    *loss = r.valid_loss;
    *runs = r.runs;
    revl_tuner_free(t);
}

START_TEST(test_deterministic_and_resumes_bit_for_bit)
{
    fixture f;
    setup(&f);
    const size_t nz = NZ_MOMENTUM;
    double z0[NZ_MOMENTUM], z1[NZ_MOMENTUM], loss0, loss1;
    size_t runs0, runs1;
    revl_tuner_options o = opts_runs(36);
    run_cut(&f, &o, 0, z0, &loss0, &runs0);
    run_cut(&f, &o, 0, z1, &loss1, &runs1);
    ck_assert_mem_eq(z0, z1, nz * sizeof *z0);
    /* cut in the search (step 5), at the hand-over, and in the refinement (step 20) */
    static const size_t cuts[] = {5, 17, 20};
    for (size_t k = 0; k < 3; k++) {
        run_cut(&f, &o, cuts[k], z1, &loss1, &runs1);
        ck_assert_msg(loss1 == loss0 && runs1 == runs0, "cut %zu: %g vs %g, %zu vs %zu runs",
                      cuts[k], loss1, loss0, runs1, runs0);
        ck_assert_mem_eq(z0, z1, nz * sizeof *z0);
    }
    /* another seed, another search */
    o.seed = 9;
    run_cut(&f, &o, 0, z1, &loss1, &runs1);
    ck_assert(memcmp(z0, z1, nz * sizeof *z0) != 0);
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------ the refinement's rule */

typedef struct trace {
    size_t n;
    int phase[400], accepted[400];
    size_t start[400];
    double loss[400], best[400], step[400];
} trace;

static int record(const revl_tuner_report *r, void *user)
{
    trace *tr = user;
    if (tr->n < 400) {
        tr->phase[tr->n] = r->phase;
        tr->accepted[tr->n] = r->accepted;
        tr->start[tr->n] = r->start;
        tr->loss[tr->n] = r->loss;
        tr->best[tr->n] = r->best_loss;
        tr->step[tr->n] = r->step_size;
        tr->n++;
    }
    return 0;
}

/* Backtracking: a kept step lowered the current loss; a refused one did not; the step grows
 * after a kept step and shrinks after a refused one; best-so-far never rises. */
static void check_trace(const trace *tr, const revl_tuner_options *o)
{
    double cur = INFINITY, best = INFINITY;
    size_t kept = 0, start = SIZE_MAX;
    for (size_t i = 0; i < tr->n; i++) {
        ck_assert_msg(!(tr->best[i] > best), "best rose at report %zu", i);
        best = tr->best[i];
        if (tr->phase[i] != REVL_TUNE_PHASE_REFINE || isnan(tr->loss[i]))
            continue;
        if (tr->start[i] != start) { /* a start's first point */
            ck_assert(tr->step[i] == o->refine_step && tr->accepted[i]);
            start = tr->start[i];
            cur = tr->loss[i];
            continue;
        }
        if (tr->accepted[i]) {
            ck_assert_msg(tr->loss[i] < cur, "kept %g >= current %g at %zu", tr->loss[i], cur, i);
            cur = tr->loss[i];
            kept++;
            if (i + 1 < tr->n && tr->phase[i + 1] == REVL_TUNE_PHASE_REFINE &&
                tr->start[i + 1] == start)
                ck_assert(tr->step[i + 1] == fmin(tr->step[i] * o->step_grow, 1.0));
        } else {
            ck_assert_msg(!(tr->loss[i] < cur), "refused %g < current %g at %zu", tr->loss[i],
                          cur, i);
            if (i + 1 < tr->n && tr->phase[i + 1] == REVL_TUNE_PHASE_REFINE &&
                tr->start[i + 1] == start)
                ck_assert(tr->step[i + 1] == tr->step[i] * o->step_shrink);
        }
    }
    ck_assert_msg(kept > 0, "no step kept");
}

START_TEST(test_backtracking_never_keeps_worse)
{
    fixture f;
    setup(&f);
    static trace tr;
    memset(&tr, 0, sizeof tr);
    revl_tuner_options o = opts_runs(60);
    o.refine_step = 0.5; /* large: some steps must be refused */
    o.min_step = 1e-3;
    o.report = record;
    o.report_user = &tr;
    revl_tuner *t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    run_ok(t);
    check_trace(&tr, &o);
    size_t refused = 0;
    for (size_t i = 0; i < tr.n; i++)
        refused += tr.phase[i] == REVL_TUNE_PHASE_REFINE && !tr.accepted[i];
    ck_assert_msg(refused > 0, "no step was refused: the test does not exercise the rule");
    revl_tuner_free(t);
    teardown(&f);
}
END_TEST

/* A box of learning rates where most trainings diverge or are chaotic: the result is finite,
 * and the refinement never ends worse than its start. */
START_TEST(test_chaotic_box_ends_finite)
{
    fixture f;
    setup(&f);
    revl_family_options fo;
    revl_family_options_init(&fo);
    fo.type = REVL_FAMILY_SHAPE;
    revl_family *fam = NULL;
    ck_assert_int_eq(revl_family_create(&fam, REVL_OPTIM_MOMENTUM, T_STEPS, 4, 0, &fo), REVL_OK);
    double lo[64], hi[64];
    ck_assert_int_eq(revl_family_get_bounds(fam, lo, hi), REVL_OK);
    lo[0] = log(20.0);
    hi[0] = log(2000.0);
    ck_assert_int_eq(revl_family_set_bounds(fam, lo, hi), REVL_OK);
    static trace tr;
    memset(&tr, 0, sizeof tr);
    revl_tuner_options o = opts_runs(40);
    o.report = record;
    o.report_user = &tr;
    revl_tuner *t = NULL;
    ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, T_STEPS, REVL_OPTIM_MOMENTUM, fam, NULL,
                                       &o), REVL_OK);
    run_ok(t);
    revl_tuner_result r;
    revl_tuner_result_init(&r);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    ck_assert(isfinite(r.valid_loss));
    size_t diverged = 0;
    for (size_t i = 0; i < tr.n; i++)
        diverged += tr.loss[i] == INFINITY;
    ck_assert_msg(diverged > 0, "no training diverged: the box is not chaotic enough");
    check_trace(&tr, &o);
    revl_tuner_free(t);
    revl_family_free(fam);
    teardown(&f);
}
END_TEST

START_TEST(test_orders_and_strategies)
{
    fixture f;
    setup(&f);
    revl_tuner_options o = opts_runs(30);
    o.n_orders = 2;
    revl_tuner *t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    run_ok(t);
    revl_tuner_result r;
    revl_tuner_result_init(&r);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    ck_assert(isfinite(r.valid_loss));
    revl_tuner_free(t);
    /* the model's own order is back after the refinement's others */
    size_t idx[25], idx0[25], cnt;
    ck_assert_int_eq(revl_mlp_batch_indices(f.m, 3, idx, &cnt), REVL_OK);
    revl_model_free(f.m);
    size_t widths[3] = {DIM, 8, CLASSES};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 25;
    ck_assert_int_eq(revl_mlp_create(&f.m, 3, widths, f.train, &mo), REVL_OK);
    ck_assert_int_eq(revl_mlp_batch_indices(f.m, 3, idx0, &cnt), REVL_OK);
    ck_assert_mem_eq(idx, idx0, sizeof idx);

    /* search only and refine only */
    o = opts_runs(12);
    o.strategy = REVL_TUNE_SEARCH;
    t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    run_ok(t);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    ck_assert(r.refine_iterations == 0 && r.search_evaluations == 12);
    revl_tuner_free(t);
    o.strategy = REVL_TUNE_REFINE;
    t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    run_ok(t);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    ck_assert(r.search_evaluations == 0 && r.refine_iterations > 0);
    ck_assert_int_eq(r.best_phase, REVL_TUNE_PHASE_REFINE);
    revl_tuner_free(t);
    /* today's Adam with the chaos guard as the refinement */
    o = opts_runs(20);
    o.refine_method = REVL_REFINE_ADAM;
    o.refine_step = 0.02;
    o.min_step = 1e-3;
    t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    run_ok(t);
    revl_tuner_free(t);
    teardown(&f);
}
END_TEST

/* The refinement's hypergradient in the identity family is the chain rule of the trainer's
 * per-step one, bit for bit, and agrees with central differences of the whole training. Its
 * theta is log alpha, logit gamma and the log init scales (momentum's weight decay is not
 * learned by default: 0, no decay, as the schedule's default here). */
static double loss_at(fixture *f, const double *z, revl_trainer **trp, revl_schedule **sp,
                      double *w)
{
    const size_t n = T_STEPS * 4;
    revl_schedule *s = schedule_for(f, REVL_OPTIM_MOMENTUM);
    double a[T_STEPS * 4], g[T_STEPS * 4];
    for (size_t k = 0; k < n; k++) {
        a[k] = exp(z[k]);
        g[k] = 1.0 / (1.0 + exp(-z[n + k]));
    }
    ck_assert_int_eq(revl_schedule_set_all(s, a, g), REVL_OK);
    revl_trainer *tr = NULL;
    ck_assert_int_eq(revl_trainer_create(&tr, f->m, s, NULL), REVL_OK);
    ck_assert_int_eq(revl_model_init_weights(f->m, z + 2 * n, 0, w), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(tr, w, NULL), REVL_OK);
    double *wT = malloc(revl_model_n_params(f->m) * sizeof *wT);
    revl_trainer_weights(tr, wT);
    double loss;
    ck_assert_int_eq(revl_model_evaluate(f->m, f->valid, wT, &loss, NULL, NULL), REVL_OK);
    free(wT);
    if (trp) { /* the caller frees the trainer, then the schedule it reads */
        *trp = tr;
        *sp = s;
        return loss;
    }
    revl_trainer_free(tr);
    revl_schedule_free(s);
    return loss;
}

START_TEST(test_hypergradient_is_the_chain_rule)
{
    fixture f;
    setup(&f);
    const size_t n = T_STEPS * 4, nt = 2 * n + 4, P = revl_model_n_params(f.m);
    revl_tuner_options o = opts_runs(10);
    o.strategy = REVL_TUNE_REFINE;
    revl_tuner *t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    double theta[2 * T_STEPS * 4 + 4], grad[2 * T_STEPS * 4 + 4], loss;
    ck_assert_int_eq(revl_tuner_refine_point(t, theta, grad, &loss), REVL_ERR_STATE);
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    ck_assert_int_eq(revl_tuner_refine_point(t, theta, grad, &loss), REVL_OK);

    /* the same by hand: train, validation gradient, reverse pass, chain rule to z */
    double *w0 = malloc(P * sizeof *w0), *wT = malloc(P * sizeof *wT);
    double *dfdw = malloc(P * sizeof *dfdw), *dw0 = malloc(P * sizeof *dw0);
    revl_trainer *tr = NULL;
    revl_schedule *s = NULL;
    double l0 = loss_at(&f, theta, &tr, &s, w0);
    ck_assert(l0 == loss);
    revl_trainer_weights(tr, wT);
    ck_assert_int_eq(revl_model_evaluate(f.m, f.valid, wT, &l0, dfdw, NULL), REVL_OK);
    double da[T_STEPS * 4], dg[T_STEPS * 4], want[2 * T_STEPS * 4 + 4];
    ck_assert_int_eq(revl_trainer_hypergrad(tr, dfdw, NULL, dw0, da, dg, NULL), REVL_OK);
    for (size_t k = 0; k < n; k++) {
        double a = exp(theta[k]), g = revl_gamma_applied(1.0 / (1.0 + exp(-theta[n + k])));
        want[k] = da[k] * a;
        want[n + k] = dg[k] * (g * (1.0 - g));
    }
    ck_assert_int_eq(revl_model_init_scales_grad(f.m, w0, dw0, want + 2 * n), REVL_OK);
    ck_assert_mem_eq(grad, want, nt * sizeof *grad);

    /* central differences of the whole training along log alpha and the log init scales
     * (gamma is applied on its 2^-16 grid, where a small difference is a step function) */
    size_t coords[] = {0, 5, n - 1, 2 * n, 2 * n + 3};
    for (size_t c = 0; c < sizeof coords / sizeof coords[0]; c++) {
        size_t k = coords[c];
        double h = 1e-5, zp[2 * T_STEPS * 4 + 4], zm[2 * T_STEPS * 4 + 4];
        memcpy(zp, theta, sizeof zp);
        memcpy(zm, theta, sizeof zm);
        zp[k] += h;
        zm[k] -= h;
        double fd = (loss_at(&f, zp, NULL, NULL, wT) - loss_at(&f, zm, NULL, NULL, wT)) / (2 * h);
        ck_assert_msg(fabs(fd - grad[k]) <= 1e-5 * fmax(fabs(fd), 1e-3),
                      "theta[%zu]: hypergradient %.10g, differences %.10g", k, grad[k], fd);
    }
    revl_trainer_free(tr);
    revl_schedule_free(s);
    free(w0);
    free(wT);
    free(dfdw);
    free(dw0);
    revl_tuner_free(t);
    teardown(&f);
}
END_TEST

/* A refine family learning only log clip (PER_STEP, base clip 0.003: active on this MLP from its small init): the
 * refinement's gradient is the chain rule of the trainer's d clip, bit for bit, and agrees with
 * central differences; the best schedule carries the clip. A search family learning it and a
 * refine family not are refused (one z). */
static double clip_loss_at(fixture *f, const double *z, const double *log_clip, double *d_clip)
{
    const size_t n = T_STEPS * 4;
    revl_schedule *s = schedule_for(f, REVL_OPTIM_MOMENTUM);
    double a[T_STEPS * 4], g[T_STEPS * 4], c[T_STEPS * 4];
    for (size_t k = 0; k < n; k++) {
        a[k] = exp(z[k]);
        g[k] = 1.0 / (1.0 + exp(-z[n + k]));
        c[k] = exp(log_clip[k]);
    }
    ck_assert_int_eq(revl_schedule_set_all(s, a, g), REVL_OK);
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_CLIP, c), REVL_OK);
    revl_trainer *tr = NULL;
    size_t P = revl_model_n_params(f->m);
    double *w = malloc(P * sizeof *w), *dfdw = malloc(P * sizeof *dfdw), loss;
    ck_assert_int_eq(revl_trainer_create(&tr, f->m, s, NULL), REVL_OK);
    for (size_t k = 0; k < n; k++) /* momentum's coupled decay: at its base, exactly 0 */
        ck_assert(z[2 * n + k] == -700);
    ck_assert_int_eq(revl_model_init_weights(f->m, z + 3 * n, 0, w), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(tr, w, NULL), REVL_OK);
    revl_trainer_weights(tr, w);
    ck_assert_int_eq(revl_model_evaluate(f->m, f->valid, w, &loss, dfdw, NULL), REVL_OK);
    if (d_clip) {
        double *dk[REVL_HYPER_COUNT] = {0};
        dk[REVL_HYPER_CLIP] = d_clip;
        ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(tr, dfdw, NULL, NULL, REVL_HYPER_COUNT,
                                                        dk, NULL), REVL_OK);
    }
    revl_trainer_free(tr);
    revl_schedule_free(s);
    free(w);
    free(dfdw);
    return loss;
}

START_TEST(test_learns_log_clip)
{
    fixture f;
    setup(&f);
    const size_t n = T_STEPS * 4;
    revl_family_options fo;
    revl_family_options_init(&fo);
    fo.learn = REVL_LEARN_CLIP;
    revl_family *fam = NULL;
    ck_assert_int_eq(revl_family_create(&fam, REVL_OPTIM_MOMENTUM, T_STEPS, 4, 0, &fo), REVL_OK);
    size_t nz = revl_family_n_z(fam);
    ck_assert_uint_eq(nz, 4 * n + 4); /* momentum's 3 kinds, 4 init scales, clip */
    double *z0 = malloc(nz * sizeof *z0);
    ck_assert_int_eq(revl_family_get_base(fam, z0), REVL_OK);
    for (size_t k = 0; k < n; k++)
        z0[3 * n + 4 + k] = log(0.003);
    ck_assert_int_eq(revl_family_set_base(fam, z0), REVL_OK);
    revl_tuner_options o = opts_runs(10);
    o.strategy = REVL_TUNE_REFINE;
    revl_tuner *t = NULL;
    ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, T_STEPS, REVL_OPTIM_MOMENTUM, NULL, fam,
                                       &o), REVL_OK);
    ck_assert_uint_eq(revl_tuner_n_theta(t, REVL_TUNE_PHASE_REFINE), n);
    double theta[T_STEPS * 4], grad[T_STEPS * 4], loss, d_clip[T_STEPS * 4];
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    ck_assert_int_eq(revl_tuner_refine_point(t, theta, grad, &loss), REVL_OK);
    ck_assert(clip_loss_at(&f, z0, theta, d_clip) == loss);
    size_t active = 0;
    for (size_t k = 0; k < n; k++) {
        ck_assert_msg(grad[k] == d_clip[k] * exp(theta[k]), "log clip[%zu]: %.17g vs %.17g", k,
                      grad[k], d_clip[k] * exp(theta[k]));
        active += grad[k] != 0;
    }
    ck_assert_msg(active >= 4, "the clip is active at %zu coordinates", active);
    for (size_t k = 0; k < n; k += 7) {
        if (grad[k] == 0)
            continue;
        double h = 1e-5, tp[T_STEPS * 4], tm[T_STEPS * 4];
        memcpy(tp, theta, sizeof tp);
        memcpy(tm, theta, sizeof tm);
        tp[k] += h;
        tm[k] -= h;
        double fd = (clip_loss_at(&f, z0, tp, NULL) - clip_loss_at(&f, z0, tm, NULL)) / (2 * h);
        ck_assert_msg(fabs(fd - grad[k]) <= 1e-5 * fmax(fabs(fd), 1e-4),
                      "log clip[%zu]: hypergradient %.10g, differences %.10g", k, grad[k], fd);
    }
    /* a checkpoint carries the clip block of z: a tuner loaded from it ends where this one does */
    char path[128];
    snprintf(path, sizeof path, "%s/revl_tuner_clip_%d.ckpt",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    ck_assert_int_eq(revl_tuner_checkpoint_save(t, path), REVL_OK);
    revl_tuner *t2 = NULL;
    ck_assert_int_eq(revl_tuner_create(&t2, f.m, f.valid, T_STEPS, REVL_OPTIM_MOMENTUM, NULL, fam,
                                       &o), REVL_OK);
    ck_assert_int_eq(revl_tuner_checkpoint_load(t2, path), REVL_OK);
    remove(path);
    run_ok(t);
    run_ok(t2);
    double *za = malloc(nz * sizeof *za), *zb = malloc(nz * sizeof *zb);
    ck_assert_int_eq(revl_tuner_best_z(t, za), REVL_OK);
    ck_assert_int_eq(revl_tuner_best_z(t2, zb), REVL_OK);
    ck_assert(memcmp(za, zb, nz * sizeof *za) == 0);
    free(za);
    free(zb);
    revl_tuner_free(t2);
    revl_schedule *s = schedule_for(&f, REVL_OPTIM_MOMENTUM);
    double c[T_STEPS * 4];
    ck_assert_int_eq(revl_tuner_best_schedule(t, s), REVL_OK);
    ck_assert_int_eq(revl_schedule_get_kind(s, REVL_HYPER_CLIP, c), REVL_OK);
    ck_assert(isfinite(c[0]) && c[0] > 0);
    revl_schedule_free(s);
    revl_tuner_free(t);
    /* a search family without the clip and this refine family: refused */
    revl_family *plain = NULL;
    revl_family_options_init(&fo);
    ck_assert_int_eq(revl_family_create(&plain, REVL_OPTIM_MOMENTUM, T_STEPS, 4, 0, &fo), REVL_OK);
    revl_tuner_options_init(&o);
    o.budget_runs = 10;
    ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, T_STEPS, REVL_OPTIM_MOMENTUM, plain, fam,
                                       &o), REVL_ERR_INVALID);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(revl_last_create_error(),
                                 "the refine family learns log clip and the search family does not"));
    revl_family_free(plain);
    revl_family_free(fam);
    free(z0);
    teardown(&f);
}
END_TEST

/* With n_orders = 2 the refinement's loss and hypergradient are the means of those of the
 * model's own order (seed 0) and the next (seed 1), bit for bit. */
static void refine_start(fixture *f, size_t n_orders, double *theta, double *grad, double *loss)
{
    revl_tuner_options o = opts_runs(10);
    o.strategy = REVL_TUNE_REFINE;
    o.n_orders = n_orders;
    revl_tuner *t = make(f, REVL_OPTIM_MOMENTUM, &o);
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    ck_assert_int_eq(revl_tuner_refine_point(t, theta, grad, loss), REVL_OK);
    revl_tuner_free(t);
}

START_TEST(test_orders_are_averaged)
{
    fixture f;
    setup(&f);
    enum { NT = 2 * T_STEPS * 4 + 4 };
    double th[NT], g2[NT], g0[NT], g1[NT], l2, l0, l1;
    refine_start(&f, 2, th, g2, &l2);
    refine_start(&f, 1, th, g0, &l0);
    ck_assert_int_eq(revl_mlp_set_order_seed(f.m, 1), REVL_OK);
    refine_start(&f, 1, th, g1, &l1);
    ck_assert_int_eq(revl_mlp_set_order_seed(f.m, 0), REVL_OK);
    ck_assert(l2 == (l0 + l1) / 2 && l0 != l1);
    for (size_t k = 0; k < NT; k++)
        ck_assert_msg(g2[k] == (g0[k] + g1[k]) / 2, "theta[%zu]: %.17g vs mean of %.17g, %.17g",
                      k, g2[k], g0[k], g1[k]);
    teardown(&f);
}
END_TEST

/* Momentum's coupled weight decay learned when asked for: a SHAPE search family and a PER_STEP
 * refinement family with REVL_LEARN_WEIGHT_DECAY run, and the best schedule has a decay in the
 * family's box [1e-5, 0.3] at every step and group (by default it stays 0: above). */
START_TEST(test_momentum_learns_weight_decay)
{
    fixture f;
    setup(&f);
    revl_family_options so, ro;
    revl_family_options_init(&so);
    so.type = REVL_FAMILY_SHAPE;
    so.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_WEIGHT_DECAY | REVL_LEARN_INIT_SCALE;
    revl_family_options_init(&ro);
    ro.learn = so.learn;
    revl_family *search = NULL, *refine = NULL;
    ck_assert_int_eq(revl_family_create(&search, REVL_OPTIM_MOMENTUM, T_STEPS, 4, 0, &so), REVL_OK);
    ck_assert_int_eq(revl_family_create(&refine, REVL_OPTIM_MOMENTUM, T_STEPS, 4, 0, &ro), REVL_OK);
    revl_tuner_options o = opts_runs(16);
    revl_tuner *t = NULL;
    int rc = revl_tuner_create(&t, f.m, f.valid, T_STEPS, REVL_OPTIM_MOMENTUM, search, refine, &o);
    ck_assert_msg(rc == REVL_OK, "create: %s", revl_last_create_error());
    run_ok(t);
    double wd[T_STEPS * 4];
    ck_assert_int_eq(revl_tuner_best_kind(t, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    for (size_t k = 0; k < T_STEPS * 4; k++)
        ck_assert_msg(wd[k] > 0.9e-5 && wd[k] < 0.31, "weight_decay[%zu] = %g", k, wd[k]);
    revl_tuner_free(t);
    revl_family_free(search);
    revl_family_free(refine);
    teardown(&f);
}
END_TEST

START_TEST(test_mlp_order)
{
    fixture f;
    setup(&f);
    size_t idx[150], cnt = 0;
    int seen[150] = {0};
    /* the 6 steps of epoch 0 draw 150 distinct examples */
    for (size_t step = 0; step < 6; step++) {
        ck_assert_int_eq(revl_mlp_batch_indices(f.m, step, idx, &cnt), REVL_OK);
        ck_assert_uint_eq(cnt, 25);
        for (size_t r = 0; r < cnt; r++) {
            ck_assert(idx[r] < 150 && !seen[idx[r]]);
            seen[idx[r]] = 1;
        }
    }
    size_t a[25], b[25];
    ck_assert_int_eq(revl_mlp_batch_indices(f.m, 7, a, &cnt), REVL_OK);
    ck_assert_int_eq(revl_mlp_set_order_seed(f.m, 5), REVL_OK);
    ck_assert_int_eq(revl_mlp_batch_indices(f.m, 7, b, &cnt), REVL_OK);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    ck_assert_int_eq(revl_mlp_set_order_seed(f.m, 0), REVL_OK);
    ck_assert_int_eq(revl_mlp_batch_indices(f.m, 7, b, &cnt), REVL_OK);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_int_eq(revl_mlp_batch_indices(f.m, 7, NULL, &cnt), REVL_OK);
    ck_assert_int_eq(revl_mlp_batch_indices(f.m, 7, a, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_batch_indices(NULL, 7, a, &cnt), REVL_ERR_INVALID);
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------ errors */

static long quad_calls; /* gradient calls so far */

static int quad_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    quad_calls++;
    double l = 0;
    for (int i = 0; i < 3; i++) {
        double d = w[i] - (double)(i + 1) - 0.1 * (double)(step % 3);
        g[i] = d;
        l += 0.5 * d * d;
    }
    if (loss)
        *loss = l;
    return 0;
}

static int quad_obj(const double *w, const double *meta, double *f, double *dfdw, double *dfdm,
                    void *user)
{
    int *mode = user;
    *f = 0;
    for (int i = 0; i < 3; i++) {
        *f += 0.5 * (w[i] - 1) * (w[i] - 1);
        dfdw[i] = w[i] - 1;
    }
    if (*mode == 1)
        return 3;
    return 0;
}

static int fam_map_fail(const double *theta, double *z, void *user)
{
    int *mode = user;
    size_t nz = 3 * T_STEPS + 1; /* alpha, gamma, weight_decay (-700: 0), init scale */
    for (size_t i = 0; i < nz; i++)
        z[i] = i < T_STEPS ? theta[0] : i < 2 * T_STEPS ? 2.0 : i < 3 * T_STEPS ? -700.0 : -1.0;
    if (*mode == 1)
        return 7;
    if (*mode == 2)
        z[3] = NAN;
    return 0;
}

static int fam_vjp(const double *theta, const double *dz, double *dtheta, void *user)
{
    dtheta[0] = 0;
    for (size_t i = 0; i < T_STEPS; i++)
        dtheta[0] += dz[i];
    return 0;
}

START_TEST(test_bad_input)
{
    fixture f;
    setup(&f);
    revl_tuner *t = NULL;
    revl_tuner_options o = opts_runs(10);
    ck_assert_int_eq(revl_tuner_create(NULL, f.m, f.valid, T_STEPS, 0, NULL, NULL, &o),
                     REVL_ERR_INVALID);
    ck_assert_int_eq(revl_tuner_create(&t, NULL, f.valid, T_STEPS, 0, NULL, NULL, &o),
                     REVL_ERR_INVALID);
    ck_assert_ptr_null(t);
    expect_msg(revl_last_create_error(), "model is NULL");
    ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, 0, 0, NULL, NULL, &o), REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "n_steps is 0");
    ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, T_STEPS, 77, NULL, NULL, &o),
                     REVL_ERR_INVALID);
    ck_assert_int_eq(revl_tuner_create(&t, f.m, NULL, T_STEPS, 0, NULL, NULL, &o),
                     REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "no objective");

#define BAD(field, value, msg)                                                                 \
    do {                                                                                       \
        revl_tuner_options b_ = opts_runs(10);                                                 \
        b_.field = value;                                                                      \
        ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, T_STEPS, 0, NULL, NULL, &b_),     \
                         REVL_ERR_INVALID);                                                    \
        ck_assert_ptr_null(t);                                                                 \
        expect_msg(revl_last_create_error(), msg);                                             \
    } while (0)
    BAD(budget_runs, 0, "no budget");
    BAD(budget_seconds, NAN, "budget_seconds");
    BAD(budget_seconds, -1, "budget_seconds");
    BAD(search_fraction, 1.0, "search_fraction");
    BAD(search_fraction, NAN, "search_fraction");
    BAD(n_candidates, 0, "n_candidates");
    BAD(good_fraction, 0.0, "good_fraction");
    BAD(refine_starts, 0, "refine_starts");
    BAD(refine_step, 0.0, "refine_step");
    BAD(refine_step, 2.0, "refine_step");
    BAD(step_grow, 0.5, "step_grow");
    BAD(step_shrink, 1.0, "step_shrink");
    BAD(min_step, 0.5, "min_step");
    BAD(n_orders, 0, "n_orders");
    BAD(strategy, 9, "strategy");
    BAD(refine_method, 9, "refine_method");
    BAD(struct_size, 3, "struct_size");

    /* a family made for another run */
    revl_family *fam = NULL;
    ck_assert_int_eq(revl_family_create(&fam, REVL_OPTIM_MOMENTUM, T_STEPS + 1, 4, 0, NULL),
                     REVL_OK);
    ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, T_STEPS, 0, fam, NULL, &o),
                     REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "search family was made for");
    ck_assert_int_eq(revl_tuner_create(&t, f.m, f.valid, T_STEPS, 0, NULL, fam, &o),
                     REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "refine family was made for");
    revl_family_free(fam);

    /* results before any evaluation; bad kinds and schedules */
    t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    double buf[T_STEPS * 4];
    ck_assert_int_eq(revl_tuner_best_kind(t, REVL_HYPER_ALPHA, buf), REVL_ERR_STATE);
    expect_msg(revl_tuner_last_error(t), "no evaluation");
    ck_assert_int_eq(revl_tuner_best_weights(t, buf), REVL_ERR_STATE);
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    ck_assert_int_eq(revl_tuner_best_kind(t, REVL_HYPER_BETA1, buf), REVL_ERR_INVALID);
    revl_schedule *s = schedule_for(&f, REVL_OPTIM_ADAM);
    ck_assert_int_eq(revl_tuner_best_schedule(t, s), REVL_ERR_INVALID);
    expect_msg(revl_tuner_last_error(t), "schedule is not momentum");
    revl_schedule_free(s);
    revl_tuner_report rep;
    revl_tuner_report_init(&rep);
    rep.struct_size = 1;
    ck_assert_int_eq(revl_tuner_step(t, &rep), REVL_ERR_INVALID);
    revl_tuner_result res;
    revl_tuner_result_init(&res);
    res.struct_size = 5;
    ck_assert_int_eq(revl_tuner_get_result(t, &res), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_tuner_checkpoint_save(t, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_tuner_checkpoint_load(t, "/nonexistent/dir/ckpt"), REVL_ERR_IO);
    ck_assert_int_eq(revl_tuner_checkpoint_load(t, "/tmp"), REVL_ERR_IO);
    revl_tuner_free(t);
    ck_assert_int_eq(revl_tuner_step(NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_tuner_phase(NULL), REVL_TUNE_PHASE_DONE);
    teardown(&f);
}
END_TEST

START_TEST(test_callback_model_and_user_family)
{
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = 3;
    def.grad = quad_grad;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &def), REVL_OK);
    int mode = 0;
    revl_tuner_options o = opts_runs(20);
    o.objective = quad_obj;
    o.objective_user = &mode;
    revl_tuner *t = NULL;
    /* n_orders needs the built-in MLP; a test set needs a built-in model */
    o.n_orders = 2;
    ck_assert_int_eq(revl_tuner_create(&t, m, NULL, T_STEPS, 0, NULL, NULL, &o),
                     REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "n_orders");
    o.n_orders = 1;
    ck_assert_int_eq(revl_tuner_create(&t, m, NULL, T_STEPS, 0, NULL, NULL, &o), REVL_OK);
    run_ok(t);
    revl_tuner_result r;
    revl_tuner_result_init(&r);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    ck_assert(isfinite(r.valid_loss) && isnan(r.valid_accuracy) && isnan(r.test_loss));
    revl_tuner_free(t);

    /* a failing objective is an error naming it */
    mode = 1;
    ck_assert_int_eq(revl_tuner_create(&t, m, NULL, T_STEPS, 0, NULL, NULL, &o), REVL_OK);
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_ERR_CALLBACK);
    expect_msg(revl_tuner_last_error(t), "objective callback returned 3");
    revl_tuner_free(t);
    mode = 0;

    /* a user family: one theta (log alpha), failing or NaN on demand */
    int fmode = 0;
    revl_family_options fo;
    revl_family_options_init(&fo);
    fo.type = REVL_FAMILY_USER;
    fo.n_theta = 1;
    fo.map = fam_map_fail;
    fo.vjp = fam_vjp;
    fo.user = &fmode;
    revl_family *fam = NULL;
    ck_assert_int_eq(revl_family_create(&fam, REVL_OPTIM_MOMENTUM, T_STEPS, 1, 0, &fo), REVL_OK);
    ck_assert_int_eq(revl_tuner_create(&t, m, NULL, T_STEPS, 0, fam, NULL, &o), REVL_OK);
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    fmode = 1;
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_ERR_CALLBACK);
    expect_msg(revl_tuner_last_error(t), "search family");
    fmode = 2;
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_ERR_RANGE);
    expect_msg(revl_tuner_last_error(t), "search family");
    fmode = 0; /* usable again */
    ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    revl_tuner_free(t);
    revl_family_free(fam);
    revl_model_free(m);
}
END_TEST

/* A run whose training loss explodes is abandoned within a few steps (the trainer's progress
 * callback), counted as diverged (+inf), and the next evaluation trains normally. */
START_TEST(test_abandons_diverging_runs)
{
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = 3;
    def.grad = quad_grad;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &def), REVL_OK);
    int mode = 0, fmode = 0;
    revl_family_options fo;
    revl_family_options_init(&fo);
    fo.type = REVL_FAMILY_USER;
    fo.n_theta = 1;
    fo.map = fam_map_fail;
    fo.vjp = fam_vjp;
    fo.user = &fmode;
    revl_family *fam = NULL;
    ck_assert_int_eq(revl_family_create(&fam, REVL_OPTIM_MOMENTUM, T_STEPS, 1, 0, &fo), REVL_OK);
    double lo = log(50.0), hi = log(60.0); /* alpha (1 - gamma) about 6: |w| grows each step */
    ck_assert_int_eq(revl_family_set_bounds(fam, &lo, &hi), REVL_OK);
    static trace tr;
    memset(&tr, 0, sizeof tr);
    revl_tuner_options o = opts_runs(4);
    o.strategy = REVL_TUNE_SEARCH;
    o.objective = quad_obj;
    o.objective_user = &mode;
    o.report = record;
    o.report_user = &tr;
    revl_tuner *t = NULL;
    ck_assert_int_eq(revl_tuner_create(&t, m, NULL, T_STEPS, 0, fam, NULL, &o), REVL_OK);
    quad_calls = 0;
    run_ok(t);
    ck_assert_uint_eq(tr.n, 4);
    for (size_t i = 0; i < tr.n; i++)
        ck_assert(tr.loss[i] == INFINITY);
    ck_assert_msg(quad_calls <= 4 * 3, "%ld gradient calls for 4 diverging runs", quad_calls);
    revl_tuner_result r;
    revl_tuner_result_init(&r);
    ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
    ck_assert(r.valid_loss == INFINITY && r.runs == 4);
    ck_assert_int_eq(revl_tuner_best_weights(t, (double[3]){0}), REVL_ERR_STATE);
    revl_tuner_free(t);
    /* a sane box trains every step */
    lo = log(0.1), hi = log(0.2);
    ck_assert_int_eq(revl_family_set_bounds(fam, &lo, &hi), REVL_OK);
    ck_assert_int_eq(revl_tuner_create(&t, m, NULL, T_STEPS, 0, fam, NULL, &o), REVL_OK);
    quad_calls = 0;
    memset(&tr, 0, sizeof tr);
    run_ok(t);
    ck_assert_int_eq(quad_calls, 4 * T_STEPS);
    ck_assert(isfinite(tr.best[3]));
    revl_tuner_free(t);
    revl_family_free(fam);
    revl_model_free(m);
}
END_TEST

/* A checkpoint loaded from the objective, during a step, is refused. */
typedef struct reentry {
    revl_tuner *t;
    const char *path;
    int rc;
} reentry;

static int reenter_obj(const double *w, const double *meta, double *f, double *dfdw,
                       double *dfdm, void *user)
{
    reentry *re = user;
    re->rc = revl_tuner_checkpoint_load(re->t, re->path);
    int mode = 0;
    return quad_obj(w, meta, f, dfdw, dfdm, &mode);
}

START_TEST(test_checkpoint_refusals)
{
    fixture f;
    setup(&f);
    char path[] = "/tmp/revl_check_tuner_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    revl_tuner_options o = opts_runs(20);
    revl_tuner *t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    ck_assert_int_eq(revl_tuner_checkpoint_save(t, path), REVL_OK);
    revl_tuner_free(t);
    /* another seed, another optimiser, another budget: refused, nothing changed */
    o.seed = 4;
    t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    ck_assert_int_eq(revl_tuner_checkpoint_load(t, path), REVL_ERR_IO);
    expect_msg(revl_tuner_last_error(t), "other options");
    revl_tuner_free(t);
    o.seed = 0;
    t = make(&f, REVL_OPTIM_ADAM, &o);
    ck_assert_int_eq(revl_tuner_checkpoint_load(t, path), REVL_ERR_IO);
    revl_tuner_free(t);
    /* a damaged file */
    FILE *fp = fopen(path, "r+b");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 40, SEEK_SET);
    fputc(0x5a, fp);
    fclose(fp);
    t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    ck_assert_int_eq(revl_tuner_checkpoint_load(t, path), REVL_ERR_IO);
    ck_assert_int_eq(revl_tuner_phase(t), REVL_TUNE_PHASE_SEARCH);
    revl_tuner_free(t);
    unlink(path);
    teardown(&f);

    /* from the objective, during a step */
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = 3;
    def.grad = quad_grad;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &def), REVL_OK);
    reentry re = {.path = "/tmp/does-not-matter"};
    o = opts_runs(5);
    o.objective = reenter_obj;
    o.objective_user = &re;
    ck_assert_int_eq(revl_tuner_create(&re.t, m, NULL, T_STEPS, 0, NULL, NULL, &o), REVL_OK);
    ck_assert_int_eq(revl_tuner_step(re.t, NULL), REVL_OK);
    ck_assert_int_eq(re.rc, REVL_ERR_STATE);
    expect_msg(revl_tuner_last_error(re.t), "during a step");
    revl_tuner_free(re.t);
    revl_model_free(m);
}
END_TEST

/* A checkpoint whose checksum is right but whose contents are not (the library's file, one field
 * changed, the checksum recomputed): each structural check of the loader refuses it, naming
 * why, and the tuner is left as it was. Offsets from docs/file-formats.md's layout: magic 8,
 * version 4, optimiser name 16, 7 sizes, the options hash, 11 counters, 6 scalars, then the
 * told points (n_theta coordinates and the loss each), then the vectors, then the trailer. */
static void fix_crc(unsigned char *b, size_t n)
{
    uLong c = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

static void put_f64(unsigned char *b, double x)
{
    memcpy(b, &x, 8); /* the file is little-endian, as this machine */
}

START_TEST(test_checkpoint_forged)
{
    fixture f;
    setup(&f);
    char path[] = "/tmp/revl_check_tuner_XXXXXX", forged[64];
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    snprintf(forged, sizeof forged, "%s.forged", path);
    revl_tuner_options o = opts_runs(20);
    revl_tuner *t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(revl_tuner_step(t, NULL), REVL_OK);
    ck_assert_int_eq(revl_tuner_checkpoint_save(t, path), REVL_OK);
    size_t ns = revl_tuner_n_theta(t, REVL_TUNE_PHASE_SEARCH);
    revl_tuner_free(t);
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    static unsigned char orig[1 << 16], b[1 << 16];
    size_t n = fread(orig, 1, sizeof orig, fp);
    fclose(fp);
    ck_assert(n > 228 && n < sizeof orig);
    const size_t counts = 92, scalars = 180, told = 228;
    struct { size_t at; int is_double; double v; const char *why; } cases[] = {
        {counts + 8 * 0, 0, 7, "inconsistent counters"},          /* phase */
        {counts + 8 * 10, 0, 2, "inconsistent counters"},         /* search_rest */
        {counts + 8 * 1, 0, 4, "inconsistent counters"},          /* evaluations != told */
        {scalars + 8 * 4, 1, -1.0, "invalid time, loss, step"},   /* the step */
        {scalars + 8 * 0, 1, NAN, "invalid time, loss, step"},    /* seconds used */
        {told, 1, 1.5, "outside the unit cube"},
        {told + 8 * ns, 1, NAN, "loss is NaN or -inf"},
        {0, 1, NAN, "not finite"}, /* the last stored vector entry (placed below) */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(b, orig, n);
        size_t at = c + 1 == sizeof cases / sizeof cases[0] ? n - 12 - 8 : cases[c].at;
        if (cases[c].is_double) {
            put_f64(b + at, cases[c].v);
        } else {
            for (int i = 0; i < 8; i++)
                b[at + i] = (unsigned char)((uint64_t)cases[c].v >> (8 * i));
        }
        fix_crc(b, n);
        fp = fopen(forged, "wb");
        ck_assert(fp && fwrite(b, 1, n, fp) == n);
        fclose(fp);
        t = make(&f, REVL_OPTIM_MOMENTUM, &o);
        ck_assert_msg(revl_tuner_checkpoint_load(t, forged) == REVL_ERR_IO, "case %zu loaded", c);
        expect_msg(revl_tuner_last_error(t), cases[c].why);
        revl_tuner_result r;
        revl_tuner_result_init(&r);
        ck_assert_int_eq(revl_tuner_get_result(t, &r), REVL_OK);
        ck_assert(r.runs == 0 && r.search_evaluations == 0);
        ck_assert_int_eq(revl_tuner_phase(t), REVL_TUNE_PHASE_SEARCH);
        revl_tuner_free(t);
    }
    /* the unforged file loads (the cases above fail for their field, not for the layout) */
    t = make(&f, REVL_OPTIM_MOMENTUM, &o);
    ck_assert_int_eq(revl_tuner_checkpoint_load(t, path), REVL_OK);
    revl_tuner_free(t);
    unlink(path);
    unlink(forged);
    teardown(&f);
}
END_TEST

/* Allocation failure at every point of create and of the first steps: NOMEM, nothing leaked. */
START_TEST(test_allocation_failure)
{
    fixture f;
    setup(&f);
    int done = 0;
    for (long k = 0; !done && k < 400; k++) {
        failing fa = {.fail_at = k};
        revl_allocator a = failing_allocator(&fa);
        revl_tuner_options o = opts_runs(8);
        o.allocator = &a;
        revl_tuner *t = NULL;
        int rc = revl_tuner_create(&t, f.m, f.valid, T_STEPS, 0, NULL, NULL, &o);
        if (rc == REVL_OK) {
            for (int s = 0; s < 8 && rc == REVL_OK; s++)
                rc = revl_tuner_step(t, NULL);
            done = rc == REVL_OK && fa.calls <= k;
            revl_tuner_free(t);
        } else {
            ck_assert_int_eq(rc, REVL_ERR_NOMEM);
            ck_assert_ptr_null(t);
        }
        ck_assert_msg(rc == REVL_OK || rc == REVL_ERR_NOMEM, "k = %ld: %d", k, rc);
        ck_assert_int_eq(fa.live, 0);
    }
    ck_assert(done);
    teardown(&f);
}
END_TEST

static Suite *tuner_suite(void)
{
    Suite *s = suite_create("tuner");
    TCase *tc = tcase_create("results");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_tunes_and_keeps_its_weights, 0, 2);
    tcase_add_test(tc, test_deterministic_and_resumes_bit_for_bit);
    tcase_add_test(tc, test_backtracking_never_keeps_worse);
    tcase_add_test(tc, test_chaotic_box_ends_finite);
    tcase_add_test(tc, test_orders_and_strategies);
    tcase_add_test(tc, test_mlp_order);
    tcase_add_test(tc, test_hypergradient_is_the_chain_rule);
    tcase_add_test(tc, test_learns_log_clip);
    tcase_add_test(tc, test_orders_are_averaged);
    tcase_add_test(tc, test_momentum_learns_weight_decay);
    suite_add_tcase(s, tc);
    TCase *er = tcase_create("errors");
    tcase_set_timeout(er, 300);
    tcase_add_test(er, test_bad_input);
    tcase_add_test(er, test_callback_model_and_user_family);
    tcase_add_test(er, test_abandons_diverging_runs);
    tcase_add_test(er, test_checkpoint_refusals);
    tcase_add_test(er, test_checkpoint_forged);
    tcase_add_test(er, test_allocation_failure);
    suite_add_tcase(s, er);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tuner_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
