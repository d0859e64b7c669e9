/* check_dp.c: exact data-parallel training without MPI. The ranks are threads joined by a
 * communicator of tests/thread_comm.h (the same contract librevl_mpi implements),
 * so that the bit-identity for any number of ranks and the failure vote are tested here too,
 * under the sanitizers and valgrind; tests/mpi/check_mpi.c repeats them over real MPI ranks. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "revl.h"
#include "testutil.h"
#include "testutil_dp.h"
#include "thread_comm.h"

#define MAX_RANKS 12

typedef struct rank_run {
    dp_case c;
    revl_comm comm;
    int rc;
    double *out;
    size_t n;
    char msg[256];
} rank_run;

static void *rank_main(void *arg)
{
    rank_run *r = arg;
    r->c.comm = &r->comm;
    r->rc = dp_run(&r->c, &r->out, &r->n, r->msg);
    return NULL;
}

/* The case on R thread ranks; runs[r] holds rank r's result. */
static void run_ranks(const dp_case *c, int R, rank_run *runs, thread_shared *s)
{
    thread_shared_init(s, R);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < R; r++) {
        memset(&runs[r], 0, sizeof runs[r]);
        runs[r].c = *c;
        thread_comm(&runs[r].comm, r, s);
        pthread_create(&th[r], NULL, rank_main, &runs[r]);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);
    thread_shared_destroy(s);
}

static thread_shared the_shared;

/* ---- the tests */
START_TEST(micro_range)
{
    size_t f, n, want[4][2] = {{0, 2}, {2, 2}, {4, 1}, {5, 1}};
    for (int r = 0; r < 4; r++) {
        ck_assert_int_eq(revl_dp_micro_range(6, r, 4, &f, &n), REVL_OK);
        ck_assert_uint_eq(f, want[r][0]);
        ck_assert_uint_eq(n, want[r][1]);
    }
    ck_assert_int_eq(revl_dp_micro_range(2, 2, 3, &f, &n), REVL_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(revl_dp_micro_range(6, 4, 4, &f, &n), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dp_micro_range(6, -1, 4, &f, &n), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dp_micro_range(6, 0, 0, &f, &n), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dp_micro_range(6, 0, 1, NULL, &n), REVL_ERR_INVALID);
}
END_TEST

static int dummy_grad(size_t step, size_t micro, const double *w, const double *meta, double *g,
                      double *loss, void *user)
{
    return 0;
}
static int dummy_hvp(size_t step, size_t micro, const double *w, const double *meta,
                     const double *v, double *g, double *hv, double *hm, void *user)
{
    return 0;
}

/* Contributions of 0.3 and -0.3 at F = 4 (4.8 and -4.8 units of 2^-4): rounded to nearest,
 * two micro-batches sum to +-10/16; truncated they would give +-8/16. */
static int third_grad(size_t step, size_t micro, const double *w, const double *meta, double *g,
                      double *loss, void *user)
{
    g[0] = 0.3;
    g[1] = -0.3;
    *loss = 0.3;
    return 0;
}

static int third_hvp(size_t step, size_t micro, const double *w, const double *meta,
                     const double *v, double *g, double *hv, double *hm, void *user)
{
    hv[0] = -0.3;
    hv[1] = 0.3;
    hm[0] = 0.3;
    return 0;
}

START_TEST(contributions_are_rounded_to_nearest)
{
    revl_dp_def d;
    revl_dp_def_init(&d);
    d.n_params = 2;
    d.n_meta = 1;
    d.n_micro = 2;
    d.grad_frac_bits = 4;
    d.grad = third_grad;
    d.hvp = third_hvp;
    revl_model *m;
    ck_assert_int_eq(revl_dp_model_create(&m, &d), REVL_OK);
    double w[2] = {0}, meta[1] = {0}, v[2] = {1, 1}, g[2], loss, hv[2], hm[1];
    ck_assert_int_eq(revl_model_grad(m, 0, w, meta, g, &loss), REVL_OK);
    ck_assert(g[0] == 0.625 && g[1] == -0.625 && loss == 0.625);
    ck_assert_int_eq(revl_model_hvp(m, 0, w, meta, v, hv, hm), REVL_OK);
    ck_assert(hv[0] == -0.625 && hv[1] == 0.625 && hm[0] == 0.625);
    revl_model_free(m);
}
END_TEST

START_TEST(bad_definitions)
{
    revl_model *m = (revl_model *)1;
    revl_dp_def d;
    revl_dp_def_init(&d);
    ck_assert_uint_eq(d.n_micro, 1);
    ck_assert_uint_eq(d.grad_frac_bits, 40);
    d.n_params = 3;
    d.grad = dummy_grad;
    d.hvp = dummy_hvp;
    ck_assert_int_eq(revl_dp_model_create(&m, &d), REVL_OK);
    revl_model_free(m);
    revl_comm c;
    revl_comm_init_local(&c);
    revl_dp_def bad[7];
    for (int i = 0; i < 7; i++)
        bad[i] = d;
    bad[0].n_params = 0;
    bad[1].n_micro = 0;
    bad[2].grad = NULL;
    bad[3].hvp = NULL;
    bad[4].grad_frac_bits = 61;
    bad[5].comm = &c;
    c.rank = 1; /* of size 1 */
    bad[6].struct_size = 8;
    for (int i = 0; i < 7; i++) {
        m = (revl_model *)1;
        ck_assert_int_eq(revl_dp_model_create(&m, &bad[i]), REVL_ERR_INVALID);
        ck_assert_ptr_null(m);
    }
    ck_assert_int_eq(revl_dp_model_create(NULL, &d), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_dp_create(&m, 0, NULL, NULL, NULL, 1, 0, NULL), REVL_ERR_INVALID);
}
END_TEST

static void expect_close(const double *a, const double *b, size_t n, double tol)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(a[i] - b[i]) <= tol * (1 + scale), "entry %zu: %.17g vs %.17g", i,
                      a[i], b[i]);
}

static const struct {
    int mlp;
    revl_optimizer opt;
} problems[] = {
    {0, REVL_OPTIM_MOMENTUM}, {0, REVL_OPTIM_ADAM}, {1, REVL_OPTIM_MOMENTUM}, {1, REVL_OPTIM_ADAM}};

/* 1..4 thread ranks give the bits of the single-process run; that run is within tolerance of
 * the ordinary model (floating-point batch sums). */
static void expect_identical_for_rank_counts(dp_case c, int max_ranks)
{
    double *ref, *plain;
    size_t n, np;
    char msg[256];
    ck_assert_msg(dp_run(&c, &ref, &n, msg) == REVL_OK, "%s", msg);
    dp_case p = c;
    p.plain = 1;
    ck_assert_msg(dp_run(&p, &plain, &np, msg) == REVL_OK, "%s", msg);
    ck_assert_uint_eq(n, np);
    expect_close(ref, plain, n - 1, 1e-8);
    rank_run runs[4];
    for (int R = 1; R <= max_ranks; R++) {
        run_ranks(&c, R, runs, &the_shared);
        for (int r = 0; r < R; r++) {
            ck_assert_msg(runs[r].rc == REVL_OK, "%s R=%d rank %d: %s",
                          revl_optimizer_name(c.optimizer), R, r, runs[r].msg);
            ck_assert_uint_eq(runs[r].n, n);
            ck_assert_msg(memcmp(runs[r].out, ref, n * sizeof *ref) == 0,
                          "%s R=%d rank %d differs from the single-process run",
                          revl_optimizer_name(c.optimizer), R, r);
            free(runs[r].out);
        }
    }
    free(ref);
    free(plain);
}

START_TEST(identical_for_any_rank_count)
{
    dp_case c = {.mlp = problems[_i].mlp, .optimizer = problems[_i].opt, .n_micro = 6};
    if (c.mlp)
        c.n_micro = 5;
    expect_identical_for_rank_counts(c, 4);
}
END_TEST

/* Every optimiser of the registry with its weight decay on where it has one (coupled for
 * momentum and RMSprop, decoupled for AdamW), both models: 1..3 thread ranks give the single-process bits, weight
 * decay's hypergradient included. */
START_TEST(every_optimizer_with_weight_decay_identical_for_any_rank_count)
{
    dp_case c = {.mlp = _i % 2, .optimizer = (revl_optimizer)(_i / 2), .n_micro = _i % 2 ? 5 : 6,
                 .weight_decay = 0.01};
    expect_identical_for_rank_counts(c, 3);
}
END_TEST

/* Gradient clipping by global norm through the data-parallel model: the norm the driver takes
 * is of the gradient already summed over every rank's micro-batches, so 1..3 thread ranks give
 * the clipped trajectory and every hypergradient, d clip included, of the single-process run
 * bit for bit; the reverse pass ends on w0 with an empty buffer (the library's own end check,
 * or hypergrad fails), the clip is active (d clip nonzero, w_T moved), and the run is within
 * rounding of the ordinary model's. */
START_TEST(clipped_identical_for_any_rank_count)
{
    dp_case c = {.mlp = problems[_i].mlp, .optimizer = problems[_i].opt, .n_micro = 6,
                 .clip = 0.05};
    if (c.mlp)
        c.n_micro = 5;
    size_t T = c.mlp ? DP_MLP_STEPS : DP_LR_STEPS, P = c.mlp ? 51 : 5, G = c.mlp ? 4 : 1;
    double *ref, *plain, *free_run;
    size_t n, np, nf;
    char msg[256];
    ck_assert_msg(dp_run(&c, &ref, &n, msg) == REVL_OK, "%s", msg);
    dp_case p = c;
    p.plain = 1;
    ck_assert_msg(dp_run(&p, &plain, &np, msg) == REVL_OK, "%s", msg);
    ck_assert_uint_eq(n, np);
    expect_close(ref, plain, n - 1, 1e-8);
    dp_case u = c;
    u.clip = 0;
    ck_assert_msg(dp_run(&u, &free_run, &nf, msg) == REVL_OK, "%s", msg);
    ck_assert_uint_eq(nf + T * G, n);
    ck_assert(memcmp(ref, free_run, P * sizeof *ref) != 0); /* the clip changed w_T */
    /* d clip: the block after the schedule's kinds, before d_w0 */
    revl_schedule *probe = NULL;
    size_t off[2] = {0, 1};
    revl_hyper kinds[REVL_HYPER_COUNT];
    ck_assert_int_eq(revl_schedule_create_for(&probe, c.optimizer, 1, 1, off, NULL), REVL_OK);
    const double *d_clip = ref + P + revl_schedule_kinds(probe, kinds) * T * G;
    revl_schedule_free(probe);
    size_t active = 0;
    for (size_t k = 0; k < T * G; k++)
        active += d_clip[k] != 0;
    ck_assert_msg(active > 0, "the clip is never active");
    rank_run runs[3];
    for (int R = 1; R <= 3; R++) {
        run_ranks(&c, R, runs, &the_shared);
        for (int r = 0; r < R; r++) {
            ck_assert_msg(runs[r].rc == REVL_OK, "R=%d rank %d: %s", R, r, runs[r].msg);
            ck_assert_uint_eq(runs[r].n, n);
            ck_assert_msg(memcmp(runs[r].out, ref, n * sizeof *ref) == 0,
                          "R=%d rank %d differs from the single-process run", R, r);
            free(runs[r].out);
        }
    }
    free(ref);
    free(plain);
    free(free_run);
}
END_TEST

/* The number of micro-batches is what fixes the bits: another number rounds differently. */
START_TEST(micro_batches_fix_the_bits)
{
    dp_case a = {.optimizer = REVL_OPTIM_MOMENTUM, .n_micro = 6}, b = a;
    b.n_micro = 4;
    double *ra, *rb;
    size_t n;
    char msg[256];
    ck_assert_int_eq(dp_run(&a, &ra, &n, msg), REVL_OK);
    ck_assert_int_eq(dp_run(&b, &rb, &n, msg), REVL_OK);
    ck_assert(memcmp(ra, rb, n * sizeof *ra) != 0);
    expect_close(ra, rb, n - 1, 1e-8);
    free(ra);
    free(rb);
}
END_TEST

/* f = |w_T - 0.5|^2 / 2 of a run (dp_run's dfdw is w_T - 0.5). */
static double objective(const dp_case *c)
{
    double *o;
    size_t n;
    char msg[256];
    ck_assert_msg(dp_run(c, &o, &n, msg) == REVL_OK, "%s", msg);
    size_t P = c->mlp ? 4 * 6 + 6 + 6 * 3 + 3 : 5;
    double f = 0;
    for (size_t i = 0; i < P; i++)
        f += (o[i] - 0.5) * (o[i] - 0.5) / 2;
    free(o);
    return f;
}

/* d_alpha of the data-parallel run against central differences of whole runs (momentum keeps
 * gamma 0.9 at the perturbed step; alpha is the first kind of the output). */
START_TEST(alpha_hypergrad_matches_finite_differences)
{
    dp_case c = {.mlp = _i, .optimizer = REVL_OPTIM_MOMENTUM, .n_micro = 5};
    size_t T = c.mlp ? DP_MLP_STEPS : DP_LR_STEPS, P = c.mlp ? 51 : 5, G = c.mlp ? 4 : 1;
    double *o;
    size_t n;
    char msg[256];
    ck_assert_msg(dp_run(&c, &o, &n, msg) == REVL_OK, "%s", msg);
    for (size_t s = 2; s < T; s += 6) {
        double analytic = 0;
        for (size_t g = 0; g < G; g++)
            analytic += o[P + s * G + g];
        double h = 1e-5;
        dp_case up = c, down = c;
        up.alpha_delta = h;
        down.alpha_delta = -h;
        up.delta_step = down.delta_step = s;
        double fd = (objective(&up) - objective(&down)) / (2 * h);
        ck_assert_msg(fabs(fd - analytic) <= 1e-5 * (fabs(fd) + 1e-3),
                      "step %zu: finite difference %.12g, reverse %.12g", s, fd, analytic);
    }
    free(o);
}
END_TEST

/* A fault on the last rank: every rank fails with the same status and message, naming it. */
/* text: in every rank's message; whole: every rank's whole message on one rank (R = 1), or
 * NULL. The library's own faults do not read as "callback returned 1" (issue 24). */
static void expect_fault_everywhere(enum dp_fault fault, int want, const char *text,
                                    const char *whole)
{
    for (int R = 1; R <= 4; R++) {
        dp_case c = {.mlp = 0, .optimizer = REVL_OPTIM_ADAM, .n_micro = 6, .fault = fault,
                     .fault_rank = R - 1, .fault_step = 3};
        rank_run runs[4];
        run_ranks(&c, R, runs, &the_shared);
        char rank_text[32];
        snprintf(rank_text, sizeof rank_text, "rank %d", R - 1);
        for (int r = 0; r < R; r++) {
            ck_assert_msg(runs[r].rc == want, "R=%d rank %d: status %d, %s", R, r, runs[r].rc,
                          runs[r].msg);
            ck_assert_msg(strstr(runs[r].msg, text), "R=%d rank %d: %s", R, r, runs[r].msg);
            if (want == REVL_ERR_CALLBACK)
                ck_assert_msg(strstr(runs[r].msg, rank_text), "R=%d: %s", R, runs[r].msg);
            ck_assert_str_eq(runs[r].msg, runs[0].msg);
            ck_assert_msg(!strstr(runs[r].msg, "callback returned 1"), "%s", runs[r].msg);
        }
        if (R == 1 && whole)
            ck_assert_str_eq(runs[0].msg, whole);
    }
}

START_TEST(callback_failure_on_one_rank)
{
    expect_fault_everywhere(DP_FAULT_CALLBACK, REVL_ERR_CALLBACK,
                            "'s gradient callback returned 7 at step 3 (forward)",
                            "rank 0: micro-batch 0's gradient callback returned 7 at step 3 "
                            "(forward)");
}
END_TEST

START_TEST(nan_on_one_rank)
{
    /* NaN said once (not "gradient[1] = nan at step 3 is NaN") */
    expect_fault_everywhere(DP_FAULT_NAN, REVL_ERR_CALLBACK, "gradient[1] is NaN at step 3",
                            "rank 0: micro-batch 0's gradient[1] is NaN at step 3 (reverse)");
}
END_TEST

/* The data-parallel MLP whose training set changed under it: the MLP's own check says so,
 * through the micro-batch that found it, and no callback is said to have returned 1. */
START_TEST(mlp_training_set_changed)
{
    revl_dataset *data = test_dataset(8, 3, 2, 8), *other = test_dataset(5, 3, 2, 9);
    size_t widths[2] = {3, 2};
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_dp_create(&m, 2, widths, data, NULL, 2, 0, NULL), REVL_OK);
    size_t off[2] = {0, revl_model_n_params(m)};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(data, other, 0, 5), REVL_OK);
    double w0[8] = {0};
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_CALLBACK);
    ck_assert_str_eq(revl_trainer_last_error(t),
                     "rank 0: micro-batch 0: the MLP's training set changed under it at step 0: "
                     "5 examples of 3 features, 8 of 3 at revl_mlp_create (forward)");
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(data);
    revl_dataset_free(other);
}
END_TEST

/* A rank whose gradient changes between the passes makes every rank's reversal inexact. */
START_TEST(drift_on_one_rank)
{
    expect_fault_everywhere(DP_FAULT_DRIFT, REVL_ERR_INEXACT, "step 3", NULL);
}
END_TEST

/* The callbacks' outputs are 0 on entry (docs/mpi.md), every one of them: a callback that
 * writes hv_meta only in micro-batch 0 (where the penalty is), or that adds into grad, hv_w and
 * hv_meta, gives the bits of one that writes every output, on any number of ranks. */
START_TEST(outputs_are_zero_on_entry)
{
    dp_case c = {.optimizer = _i ? REVL_OPTIM_ADAM : REVL_OPTIM_MOMENTUM, .n_micro = 6};
    double *ref;
    size_t n;
    char msg[256];
    ck_assert_msg(dp_run(&c, &ref, &n, msg) == REVL_OK, "%s", msg);
    for (int style = 1; style <= 2; style++)
        for (int R = 1; R <= 3; R++) {
            c.style = style;
            rank_run runs[4];
            run_ranks(&c, R, runs, &the_shared);
            for (int r = 0; r < R; r++) {
                ck_assert_msg(runs[r].rc == REVL_OK, "style %d R=%d rank %d: %s", style, R, r,
                              runs[r].msg);
                ck_assert_msg(memcmp(runs[r].out, ref, n * sizeof *ref) == 0,
                              "style %d R=%d rank %d: d_meta %g, want %g", style, R, r,
                              runs[r].out[n - 3], ref[n - 3]);
                free(runs[r].out);
            }
        }
    free(ref);
}
END_TEST

/* A rank that differs in what decides the bits (its model's definition, its schedule at a step
 * where w is still the same, its truncation or step count) makes every rank's train fail at
 * that step with the same message, instead of OK with other bits (or a w_T that differs per
 * rank, caught only by the reverse pass), or a hang. */
static const struct {
    enum dp_fault fault;
    size_t step;
    const char *pass;
} differ_cases[] = {{DP_FAULT_N_MICRO, 0, "(forward)"}, {DP_FAULT_FRAC_BITS, 0, "(forward)"},
                    {DP_FAULT_LAST_ALPHA, DP_LR_STEPS - 1, "(forward)"},
                    {DP_FAULT_TRUNCATE, 0, "(forward)"}, {DP_FAULT_STEPS, 0, "(forward)"},
                    /* meta held by micro-batch 0 only, so only the hash can see it */
                    {DP_FAULT_META, 0, "(forward)"},
                    /* the first Hessian-vector call's v = -alpha dfdw differs */
                    {DP_FAULT_DFDW, DP_LR_STEPS - 1, "(reverse)"}};

START_TEST(ranks_differ_in_what_decides_the_bits)
{
    char at[64];
    snprintf(at, sizeof at, "at step %zu at another", differ_cases[_i].step);
    for (int R = 2; R <= 4; R++)
        for (int opt = 0; opt < 2; opt++) {
            dp_case c = {.optimizer = opt ? REVL_OPTIM_ADAM : REVL_OPTIM_MOMENTUM, .n_micro = 6,
                         .fault = differ_cases[_i].fault, .fault_rank = R - 1};
            rank_run runs[4];
            run_ranks(&c, R, runs, &the_shared);
            for (int r = 0; r < R; r++) {
                ck_assert_msg(runs[r].rc == REVL_ERR_CALLBACK, "R=%d rank %d: %d %s", R, r,
                              runs[r].rc, runs[r].msg);
                ck_assert_msg(strstr(runs[r].msg, "not running the same training") &&
                                  strstr(runs[r].msg, at) &&
                                  strstr(runs[r].msg, differ_cases[_i].pass),
                              "R=%d rank %d: %s", R, r, runs[r].msg);
                ck_assert_str_eq(runs[r].msg, runs[0].msg);
            }
        }
}
END_TEST

/* A rank running another schedule is caught at the first step where its weights differ. */
START_TEST(ranks_out_of_step)
{
    for (int R = 2; R <= 4; R++) {
        dp_case c = {.optimizer = REVL_OPTIM_MOMENTUM, .n_micro = 6, .fault = DP_FAULT_ALPHA,
                     .fault_rank = R - 1};
        rank_run runs[4];
        run_ranks(&c, R, runs, &the_shared);
        for (int r = 0; r < R; r++) {
            ck_assert_int_eq(runs[r].rc, REVL_ERR_CALLBACK);
            ck_assert_msg(strstr(runs[r].msg, "not running the same training"), "%s",
                          runs[r].msg);
            ck_assert_str_eq(runs[r].msg, runs[0].msg);
        }
    }
}
END_TEST

/* ---- sharded trainers on thread ranks: a separable quadratic of SHP parameters (one block per
 * rank for up to 9 ranks), each rank its own local model; only the trainer communicates. */
#define SHP (9 * 4096)
#define SHT 4
enum sh_differ {
    SH_SAME, SH_TRUNCATE, SH_STEPS, SH_LAST_ALPHA, SH_DFDW_NAN, SH_DFDW_NAN_ALL, SH_W0_RANGE
};

typedef struct sh_rank {
    revl_comm comm;
    enum sh_differ differ; /* on the last rank */
    int fail_alloc;        /* rank 0's allocator fails every allocation after create */
    int armed;
    int rc;
    char msg[256];
} sh_rank;

static double sh_c(size_t i)
{
    return 1 + (double)(i % 7) / 7;
}

static int sh_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                   void *user)
{
    double l = 0;
    for (size_t i = 0; i < SHP; i++) {
        double d = w[i] - sin((double)i);
        g[i] = sh_c(i) * d;
        l += 0.5 * sh_c(i) * d * d;
    }
    if (loss)
        *loss = l;
    return 0;
}

static int sh_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
                  double *hv, double *hm, void *user)
{
    for (size_t i = 0; i < SHP; i++)
        hv[i] = sh_c(i) * v[i];
    return 0;
}

static void *sh_alloc(size_t n, void *user)
{
    sh_rank *r = user;
    return r->armed ? NULL : malloc(n);
}

static void sh_free(void *p, void *user)
{
    free(p);
}

static void *sh_rank_main(void *arg)
{
    sh_rank *r = arg;
    int last = r->comm.rank == r->comm.size - 1;
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = SHP;
    d.grad = sh_grad;
    d.hvp = sh_hvp;
    revl_model *m = NULL;
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    size_t off[] = {0, SHP};
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    size_t T = r->differ == SH_STEPS && last ? SHT - 1 : SHT;
    ck_assert_int_eq(revl_schedule_create(&s, T, 1, off), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill(s, 0.1, 0.9), REVL_OK);
    if (r->differ == SH_LAST_ALPHA && last)
        ck_assert_int_eq(revl_schedule_set(s, T - 1, 0, 0.11, 0.9), REVL_OK);
    revl_allocator a = test_allocator(sh_alloc, sh_free, r);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.allocator = &a;
    o.truncate = r->differ == SH_TRUNCATE && last ? 2 : 0;
    ck_assert_int_eq(revl_trainer_create_sharded(&t, m, s, &o, &r->comm), REVL_OK);
    r->armed = r->fail_alloc && r->comm.rank == 0;
    double *w0 = calloc(SHP, sizeof *w0), *dfdw = calloc(SHP, sizeof *dfdw);
    for (size_t i = 0; i < SHP; i++)
        dfdw[i] = 1;
    if (r->differ == SH_W0_RANGE && last)
        w0[7] = 1e300;
    if ((r->differ == SH_DFDW_NAN && last) || r->differ == SH_DFDW_NAN_ALL)
        dfdw[5] = NAN;
    double d_alpha[SHT];
    r->rc = revl_trainer_train(t, w0, NULL);
    if (!r->rc)
        r->rc = revl_trainer_hypergrad(t, dfdw, NULL, NULL, d_alpha, NULL, NULL);
    snprintf(r->msg, sizeof r->msg, "%s", revl_trainer_last_error(t));
    r->armed = 0;
    free(w0);
    free(dfdw);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return NULL;
}

/* R thread ranks of sharded trainers; every rank must return (no hang) with the status and
 * message of every other. */
static void sh_run_ranks(int R, enum sh_differ differ, int fail_alloc, sh_rank *runs)
{
    thread_shared *s = &the_shared;
    thread_shared_init(s, R);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < R; r++) {
        memset(&runs[r], 0, sizeof runs[r]);
        runs[r].differ = differ;
        runs[r].fail_alloc = fail_alloc;
        thread_comm(&runs[r].comm, r, s);
        pthread_create(&th[r], NULL, sh_rank_main, &runs[r]);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);
    thread_shared_destroy(s);
    for (int r = 0; r < R; r++) {
        ck_assert_msg(runs[r].rc == runs[0].rc, "R=%d rank %d: %d %s, rank 0: %d %s", R, r,
                      runs[r].rc, runs[r].msg, runs[0].rc, runs[0].msg);
        ck_assert_str_eq(runs[r].msg, runs[0].msg);
    }
}

/* More than 8 ranks (the vote no longer fits the stack) and no memory on rank 0 once
 * training starts: every rank fails the same way, none waits forever. */
START_TEST(sharded_no_memory_on_one_of_nine_ranks)
{
    sh_rank runs[9];
    sh_run_ranks(9, SH_SAME, 1, runs);
    ck_assert_msg(runs[0].rc == REVL_ERR_NOMEM && strncmp(runs[0].msg, "rank 0: ", 8) == 0,
                  "%d %s", runs[0].rc, runs[0].msg);
}
END_TEST

/* A rank whose truncation, step count or last step's alpha differs, or whose w0 is out of
 * range, fails every rank's train (one vote before anything runs); one whose dfdw is NaN
 * fails every rank's hypergrad. */
START_TEST(sharded_ranks_that_differ_fail_alike)
{
    static const enum sh_differ cases[] = {SH_LAST_ALPHA, SH_TRUNCATE, SH_STEPS, SH_DFDW_NAN,
                                           SH_W0_RANGE};
    for (int R = 2; R <= 4; R++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            sh_rank runs[4];
            sh_run_ranks(R, cases[k], 0, runs);
            char want[64];
            if (cases[k] == SH_DFDW_NAN) {
                snprintf(want, sizeof want, "rank %d: dfdw[5] is not finite", R - 1);
                ck_assert_int_eq(runs[0].rc, REVL_ERR_RANGE);
            } else if (cases[k] == SH_W0_RANGE) {
                snprintf(want, sizeof want, "rank %d: w0[7] = 1e+300 is outside", R - 1);
                ck_assert_int_eq(runs[0].rc, REVL_ERR_RANGE);
            } else {
                snprintf(want, sizeof want, "rank %d's training differs from rank 0's", R - 1);
                ck_assert_int_eq(runs[0].rc, REVL_ERR_INVALID);
            }
            ck_assert_msg(strstr(runs[0].msg, want), "R=%d case %zu: %s", R, k, runs[0].msg);
        }
    sh_rank same[3];
    sh_run_ranks(3, SH_SAME, 0, same);
    ck_assert_msg(same[0].rc == REVL_OK, "%s", same[0].msg);
}
END_TEST

/* Every rank's callback fails: the message is the lowest rank's (docs/mpi.md). */
START_TEST(lowest_failing_rank_is_blamed)
{
    for (int R = 2; R <= 4; R++) {
        dp_case c = {.optimizer = REVL_OPTIM_MOMENTUM, .n_micro = 6, .fault = DP_FAULT_CALLBACK,
                     .fault_rank = -1, .fault_step = 2};
        rank_run runs[4];
        run_ranks(&c, R, runs, &the_shared);
        for (int r = 0; r < R; r++) {
            ck_assert_int_eq(runs[r].rc, REVL_ERR_CALLBACK);
            ck_assert_msg(strstr(runs[r].msg, "rank 0: micro-batch 0's gradient callback returned 7"),
                          "R=%d rank %d: %s", R, r, runs[r].msg);
        }
    }
    /* sharded: every rank's dfdw is NaN */
    sh_rank sh[3];
    sh_run_ranks(3, SH_DFDW_NAN_ALL, 0, sh);
    ck_assert_msg(sh[0].rc == REVL_ERR_RANGE && strncmp(sh[0].msg, "rank 0: dfdw[5]", 15) == 0,
                  "%d %s", sh[0].rc, sh[0].msg);
}
END_TEST

/* ---- sharded checkpoints: each rank saves and loads its own share, all or none */
enum ck_case {
    CK_SAVE_UNWRITABLE, CK_CORRUPT, CK_MISSING, CK_OTHER_RUN, CK_FORGED_RANK, CK_FORGED_STEP,
    CK_FORGED_W, CK_CASES
};

typedef struct ck_rank {
    revl_comm comm;
    char base[256], other[256];
    int rc[CK_CASES], unchanged[CK_CASES];
    char msg[CK_CASES][256];
    double *w_resumed, *w_straight, *w_plain;
    double d_resumed[SHT], d_straight[SHT], d_plain[SHT];
} ck_rank;

static int ck_stop_at_2(size_t step, int phase, double seconds, double loss, void *user)
{
    return phase == 0 && step == 2;
}

static revl_trainer *ck_trainer(ck_rank *r, revl_model *m, const revl_schedule *s, int sharded)
{
    revl_trainer *t = NULL;
    if (sharded)
        ck_assert_int_eq(revl_trainer_create_sharded(&t, m, s, NULL, &r->comm), REVL_OK);
    else
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    return t;
}

/* Train with a checkpoint every 2 steps, stopped after step 2 (a killed run); w0 by `seed`. */
static void ck_interrupted(ck_rank *r, revl_model *m, const revl_schedule *s, const char *path,
                           double seed)
{
    double *w0 = calloc(SHP, sizeof *w0);
    for (size_t i = 0; i < SHP; i++)
        w0[i] = seed * cos((double)i);
    revl_trainer *t = ck_trainer(r, m, s, 1);
    ck_assert_int_eq(revl_trainer_set_checkpoint(t, path, 2), REVL_OK);
    ck_assert_int_eq(revl_trainer_set_progress(t, ck_stop_at_2, 1, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_CALLBACK);
    revl_trainer_free(t);
    free(w0);
}

/* Train (or resume), then w_T and the alpha hypergradient. */
static void ck_finish(revl_trainer *t, int resume, double *w, double *d_alpha)
{
    double *w0 = calloc(SHP, sizeof *w0), *dfdw = calloc(SHP, sizeof *dfdw);
    for (size_t i = 0; i < SHP; i++) {
        w0[i] = 0.5 * cos((double)i);
        dfdw[i] = sh_c(i + 3) - 1.5;
    }
    ck_assert_int_eq(resume ? revl_trainer_train_resume(t) : revl_trainer_train(t, w0, NULL),
                     REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(t, w), REVL_OK);
    int hrc = revl_trainer_hypergrad(t, dfdw, NULL, NULL, d_alpha, NULL, NULL);
    ck_assert_msg(hrc == REVL_OK, "%d %s", hrc, revl_trainer_last_error(t));
    free(w0);
    free(dfdw);
}

static unsigned char *ck_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void ck_spill(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* The library's writer, one 8-byte word at `at` xor-ed with x, the checksum recomputed. */
static void ck_forge(const char *path, size_t at, uint64_t x)
{
    size_t n;
    unsigned char *b = ck_slurp(path, &n);
    for (int i = 0; i < 8; i++)
        b[at + i] ^= (unsigned char)(x >> (8 * i));
    uLong c = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        b[n - 4 + i] = (unsigned char)(c >> (8 * i));
    ck_spill(path, b, n);
    free(b);
}

static void ck_rank_file(char *out, size_t cap, const char *base, int rank, int size)
{
    snprintf(out, cap, "%s.rank%d-of-%d", base, rank, size);
}

/* Rank 0 damages rank 1's file in case k (between barriers: no rank reads meanwhile). */
static void ck_damage(ck_rank *r, enum ck_case k)
{
    char f1[300], o1[300];
    ck_rank_file(f1, sizeof f1, r->base, 1, r->comm.size);
    ck_rank_file(o1, sizeof o1, r->other, 1, r->comm.size);
    size_t n, shard = 28 + 64 + 8; /* magic, version, name, 8 sizes, momentum's 1 state */
    unsigned char *b;
    switch (k) {
    case CK_CORRUPT:
        b = ck_slurp(f1, &n);
        b[n / 2] ^= 1;
        ck_spill(f1, b, n);
        free(b);
        break;
    case CK_MISSING:
        ck_assert_int_eq(remove(f1), 0);
        break;
    case CK_OTHER_RUN: /* the same trainer's file of the same step, from a run with another w0 */
        b = ck_slurp(o1, &n);
        ck_spill(f1, b, n);
        free(b);
        break;
    case CK_FORGED_RANK:
        ck_forge(f1, shard, 3); /* rank 1 -> 2 */
        break;
    case CK_FORGED_STEP:
        ck_forge(f1, shard + 8 * 8 + 3 * 8, 1); /* step 2 -> 3: a valid partial step */
        break;
    case CK_FORGED_W:
        ck_forge(f1, shard + 8 * 8 + 6 * 8, 1); /* its share's first word of w */
        break;
    default:
        break;
    }
}

static void *ck_rank_main(void *arg)
{
    ck_rank *r = arg;
    thread_shared *sh = &the_shared;
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = SHP;
    d.grad = sh_grad;
    d.hvp = sh_hvp;
    revl_model *m = NULL;
    revl_schedule *s = NULL;
    size_t off[] = {0, SHP};
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    ck_assert_int_eq(revl_schedule_create(&s, SHT, 1, off), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill(s, 0.1, 0.9), REVL_OK);

    ck_interrupted(r, m, s, r->other, 0.25);
    ck_interrupted(r, m, s, r->base, 0.5); /* the w0 of ck_finish */
    revl_trainer *t = ck_trainer(r, m, s, 1);
    ck_assert_int_eq(revl_trainer_load(t, r->base), REVL_OK);
    ck_finish(t, 1, r->w_resumed, r->d_resumed);
    revl_trainer_free(t);
    /* the uninterrupted run with checkpoints set: saved in training and in the reverse pass */
    t = ck_trainer(r, m, s, 1);
    char fwd[300], fwd_mine[320];
    snprintf(fwd, sizeof fwd, "%s.fwd", r->base);
    ck_rank_file(fwd_mine, sizeof fwd_mine, fwd, r->comm.rank, r->comm.size);
    ck_assert_int_eq(revl_trainer_set_checkpoint(t, fwd, 1), REVL_OK);
    ck_finish(t, 0, r->w_straight, r->d_straight);
    ck_assert_int_eq(revl_trainer_hypergrad_resume(t, NULL, 0, NULL, NULL), REVL_ERR_STATE);
    revl_trainer_free(t);
    t = ck_trainer(r, m, s, 1); /* the last save: mid-reverse, at step 1 */
    ck_assert_int_eq(revl_trainer_load(t, fwd), REVL_OK);
    ck_assert_int_eq(revl_trainer_train_resume(t), REVL_ERR_STATE);
    revl_trainer_free(t);
    ck_assert_int_eq(remove(fwd_mine), 0);
    t = ck_trainer(r, m, s, 0);
    ck_finish(t, 0, r->w_plain, r->d_plain);
    revl_trainer_free(t);

    char mine[300];
    ck_rank_file(mine, sizeof mine, r->base, r->comm.rank, r->comm.size);
    size_t n0, n1;
    unsigned char *before = ck_slurp(mine, &n0), *saved1 = NULL;
    if (r->comm.rank == 0) {
        char f1[300];
        ck_rank_file(f1, sizeof f1, r->base, 1, r->comm.size);
        saved1 = ck_slurp(f1, &n1);
    }
    for (int k = 0; k < CK_CASES; k++) {
        if (r->comm.rank == 0)
            ck_damage(r, (enum ck_case)k);
        pthread_barrier_wait(&sh->barrier);
        t = ck_trainer(r, m, s, 1);
        revl_trainer_stats st = {.struct_size = sizeof st};
        if (k == CK_SAVE_UNWRITABLE) { /* trained on to step 4; rank 1's path unwritable */
            ck_assert_int_eq(revl_trainer_load(t, r->base), REVL_OK);
            ck_assert_int_eq(revl_trainer_train_resume(t), REVL_OK);
            r->rc[k] = revl_trainer_save(t, r->comm.rank == 1 ? "/nonexistent/dir/ck" : r->base);
            snprintf(r->msg[k], sizeof r->msg[k], "%s", revl_trainer_last_error(t));
            r->unchanged[k] = revl_trainer_get_stats(t, &st) == REVL_OK && st.steps_done == SHT;
        } else { /* nothing loaded: the fresh trainer at step 0, w all 0 */
            r->rc[k] = revl_trainer_load(t, r->base);
            snprintf(r->msg[k], sizeof r->msg[k], "%s", revl_trainer_last_error(t));
            double *w = malloc(SHP * sizeof *w);
            revl_trainer_weights(t, w);
            r->unchanged[k] = revl_trainer_get_stats(t, &st) == REVL_OK && st.steps_done == 0;
            for (size_t i = 0; i < SHP; i++)
                r->unchanged[k] = r->unchanged[k] && w[i] == 0;
            free(w);
        }
        revl_trainer_free(t);
        pthread_barrier_wait(&sh->barrier);
        if (r->comm.rank == 0) { /* rank 1's file as it was */
            char f1[300];
            ck_rank_file(f1, sizeof f1, r->base, 1, r->comm.size);
            ck_spill(f1, saved1, n1);
        }
        pthread_barrier_wait(&sh->barrier);
        size_t n;
        unsigned char *now = ck_slurp(mine, &n);
        r->unchanged[k] = r->unchanged[k] && now && n == n0 && memcmp(now, before, n) == 0;
        free(now);
        pthread_barrier_wait(&sh->barrier); /* read before rank 0 damages the next case */
    }
    free(before);
    free(saved1);
    revl_schedule_free(s);
    revl_model_free(m);
    return NULL;
}

START_TEST(sharded_checkpoint_resumes_bit_for_bit)
{
    int R = _i ? 3 : 2;
    thread_shared *s = &the_shared;
    ck_rank runs[3];
    char dir[] = "/tmp/revl_shardckpt_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    thread_shared_init(s, R);
    pthread_t th[3];
    for (int r = 0; r < R; r++) {
        memset(&runs[r], 0, sizeof runs[r]);
        thread_comm(&runs[r].comm, r, s);
        snprintf(runs[r].base, sizeof runs[r].base, "%s/ck", dir);
        snprintf(runs[r].other, sizeof runs[r].other, "%s/other", dir);
        runs[r].w_resumed = calloc(SHP, sizeof(double));
        runs[r].w_straight = calloc(SHP, sizeof(double));
        runs[r].w_plain = calloc(SHP, sizeof(double));
        pthread_create(&th[r], NULL, ck_rank_main, &runs[r]);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);
    thread_shared_destroy(s);
    static const struct {
        int rc;
        const char *want;
    } expect[CK_CASES] = {
        [CK_SAVE_UNWRITABLE] = {REVL_ERR_IO, "rank 1: /nonexistent/dir/ck.rank1-of-"},
        [CK_CORRUPT] = {REVL_ERR_IO, "rank 1: "},
        [CK_MISSING] = {REVL_ERR_IO, "rank 1: "},
        [CK_OTHER_RUN] = {REVL_ERR_IO, "rank 1's file is not of the same save as rank 0's"},
        [CK_FORGED_RANK] = {REVL_ERR_IO, "rank 1: "},
        [CK_FORGED_STEP] = {REVL_ERR_IO, "rank 1's file is not of the same save as rank 0's"},
        [CK_FORGED_W] = {REVL_ERR_IO, "rank 0: "},
    };
    for (int r = 0; r < R; r++) {
        ck_assert(memcmp(runs[r].w_resumed, runs[r].w_straight, SHP * sizeof(double)) == 0);
        ck_assert(memcmp(runs[r].w_resumed, runs[0].w_plain, SHP * sizeof(double)) == 0);
        ck_assert(memcmp(runs[r].d_resumed, runs[r].d_straight, sizeof runs[r].d_resumed) == 0);
        ck_assert(memcmp(runs[r].d_resumed, runs[0].d_plain, sizeof runs[r].d_resumed) == 0);
        for (int k = 0; k < CK_CASES; k++) {
            ck_assert_msg(runs[r].rc[k] == expect[k].rc && strstr(runs[r].msg[k], expect[k].want),
                          "R=%d rank %d case %d: %d %s", R, r, k, runs[r].rc[k], runs[r].msg[k]);
            ck_assert_str_eq(runs[r].msg[k], runs[0].msg[k]);
            ck_assert_msg(runs[r].unchanged[k], "R=%d rank %d case %d changed", R, r, k);
        }
    }
    for (int r = 0; r < R; r++) {
        free(runs[r].w_resumed);
        free(runs[r].w_straight);
        free(runs[r].w_plain);
    }
    ck_assert_msg(strstr(runs[0].msg[CK_FORGED_RANK], "has 1 as its rank; the file 2"), "%s",
                  runs[0].msg[CK_FORGED_RANK]);
    ck_assert_msg(strstr(runs[0].msg[CK_FORGED_W], "shares of w are not the w"), "%s",
                  runs[0].msg[CK_FORGED_W]);
    char cmd[128]; /* no temporary left behind */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep tmp)\" && rm -r %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST


/* ---- a sharded trainer's reverse pass checkpointed (every step: at steps 3 and 2 of 4), stopped
 * after step 2, and resumed by fresh trainers from the files, all or none; 2 and 3 ranks,
 * momentum and Adam; damaged files (rank 1's) refused on every rank, each trainer unchanged.
 * RK_FORGED_STATE, last, is Adam's only (momentum's state is not 128-bit: no range to check) */
enum rk_case { RK_CORRUPT, RK_EARLIER_STEP, RK_FORGED_D_GAMMA, RK_FORGED_STATE, RK_CASES };

/* The cases a run of opt tries. */
static int rk_cases(revl_optimizer opt)
{
    return opt == REVL_OPTIM_ADAM ? RK_CASES : RK_FORGED_STATE;
}

/* Rank 1's first parameter (the sharded loader names parameters by their global index) and,
 * in *n, its number of parameters: its blocks of 4,096 (RV_BLOCK). */
static size_t rk_share1(int size, size_t *n)
{
    size_t first, count;
    ck_assert_int_eq(revl_dp_micro_range(SHP / 4096, 1, size, &first, &count), REVL_OK);
    *n = count * 4096;
    return first * 4096;
}
#define RK_STATE_AT 5 /* the forged parameter of rank 1's share, counted from its first */

typedef struct rk_rank {
    revl_comm comm;
    revl_optimizer opt; /* momentum (one adjoint, dv) or Adam (dm, ds and per-group r1, r2) */
    char base[256];
    int rc[RK_CASES], unchanged[RK_CASES], kinds_rc;
    char msg[RK_CASES][256], kinds_msg[256];
    double *w[3], *d_w0[3]; /* resumed, straight (sharded, uninterrupted), plain (unsharded) */
    double d_alpha[3][SHT], d_gamma[3][SHT]; /* d_gamma: Adam's d_beta1 */
} rk_rank;

/* Rank 1 keeps its file of step 3 (for RK_EARLIER_STEP); every rank stops after step 2. */
static int rk_progress(size_t step, int phase, double seconds, double loss, void *user)
{
    rk_rank *r = user;
    if (phase == 1 && step == 3 && r->comm.rank == 1) {
        char f1[300], early[300];
        size_t n;
        ck_rank_file(f1, sizeof f1, r->base, 1, r->comm.size);
        snprintf(early, sizeof early, "%s.early", r->base);
        unsigned char *b = ck_slurp(f1, &n);
        ck_assert_ptr_nonnull(b);
        ck_spill(early, b, n);
        free(b);
    }
    return phase == 1 && step == 2;
}

/* Train from w0 and reverse (resume: continue the loaded pass instead) into slot k. */
static int rk_reverse(rk_rank *r, revl_trainer *t, int resume, int k)
{
    double *w0 = calloc(SHP, sizeof *w0), *dfdw = calloc(SHP, sizeof *dfdw);
    for (size_t i = 0; i < SHP; i++) {
        w0[i] = 0.5 * cos((double)i);
        dfdw[i] = sh_c(i + 3) - 1.5;
    }
    double *d_kinds[REVL_HYPER_COUNT] = {r->d_alpha[k]};
    d_kinds[r->opt == REVL_OPTIM_ADAM ? REVL_HYPER_BETA1 : REVL_HYPER_GAMMA] = r->d_gamma[k];
    int rc = resume ? REVL_OK : revl_trainer_train(t, w0, NULL);
    if (!rc)
        rc = resume ? revl_trainer_hypergrad_resume(t, r->d_w0[k], REVL_HYPER_COUNT, d_kinds, NULL)
                    : revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, r->d_w0[k],
                                                     REVL_HYPER_COUNT, d_kinds, NULL);
    if (!rc)
        ck_assert_int_eq(revl_trainer_weights(t, r->w[k]), REVL_OK);
    free(w0);
    free(dfdw);
    return rc;
}

/* Rank 0 damages rank 1's file in case k (between barriers). */
static void rk_damage(rk_rank *r, enum rk_case k)
{
    char f1[300], early[300];
    size_t n;
    ck_rank_file(f1, sizeof f1, r->base, 1, r->comm.size);
    snprintf(early, sizeof early, "%s.early", r->base);
    unsigned char *b = ck_slurp(k == RK_EARLIER_STEP ? early : f1, &n);
    ck_assert_ptr_nonnull(b);
    if (k == RK_CORRUPT)
        b[n / 2] ^= 1;
    if (k == RK_FORGED_D_GAMMA) { /* the last word before the trailer (length, CRC):
                                    * d_gamma (d_beta1) at step 3 */
        ck_forge(f1, n - 12 - 8, 1);
    } else if (k == RK_FORGED_STATE) {
        /* Adam's m of parameter RK_STATE_AT of the share out of range: its high word's bit 62
         * flipped makes |m| >= 2^126 whatever its sign. The layout of docs/file-formats.md:
         * magic, version, name, 8 sizes, 2 state sizes, the shard section (8 words), 2 hashes,
         * state, steps, last loss (no meta), then w and its start copy, then m (16 bytes each) */
        size_t p;
        rk_share1(r->comm.size, &p);
        size_t off_m = 28 + 64 + 16 + 64 + 16 + 24 + 2 * 8 * p;
        ck_forge(f1, off_m + 16 * RK_STATE_AT + 8, 1ull << 62);
    } else {
        ck_spill(f1, b, n);
    }
    free(b);
}

static void *rk_rank_main(void *arg)
{
    rk_rank *r = arg;
    thread_shared *sh = &the_shared;
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = SHP;
    d.grad = sh_grad;
    d.hvp = sh_hvp;
    revl_model *m = NULL;
    revl_schedule *s = NULL;
    size_t off[] = {0, SHP};
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    ck_assert_int_eq(revl_schedule_create_for(&s, r->opt, SHT, 1, off, NULL), REVL_OK);
    if (r->opt == REVL_OPTIM_MOMENTUM)
        ck_assert_int_eq(revl_schedule_fill(s, 0.1, 0.9), REVL_OK);
    ck_rank dummy; /* ck_trainer's communicator */
    dummy.comm = r->comm;

    revl_trainer *t = ck_trainer(&dummy, m, s, 1);
    ck_assert_int_eq(revl_trainer_set_checkpoint(t, r->base, 1), REVL_OK);
    ck_assert_int_eq(revl_trainer_set_progress(t, rk_progress, 1, r), REVL_OK);
    ck_assert_int_eq(rk_reverse(r, t, 0, 0), REVL_ERR_CALLBACK);
    revl_trainer_free(t);

    char f1[300], mine[300];
    size_t n1 = 0, n0;
    ck_rank_file(f1, sizeof f1, r->base, 1, r->comm.size);
    ck_rank_file(mine, sizeof mine, r->base, r->comm.rank, r->comm.size);
    unsigned char *saved1 = r->comm.rank == 0 ? ck_slurp(f1, &n1) : NULL;
    unsigned char *before = ck_slurp(mine, &n0);
    pthread_barrier_wait(&sh->barrier); /* rank 0 read rank 1's file before damaging it */
    for (int k = 0; k < rk_cases(r->opt); k++) {
        if (r->comm.rank == 0)
            rk_damage(r, (enum rk_case)k);
        pthread_barrier_wait(&sh->barrier);
        t = ck_trainer(&dummy, m, s, 1);
        r->rc[k] = revl_trainer_load(t, r->base);
        snprintf(r->msg[k], sizeof r->msg[k], "%s", revl_trainer_last_error(t));
        revl_trainer_stats st = {.struct_size = sizeof st};
        double *w = malloc(SHP * sizeof *w);
        revl_trainer_weights(t, w);
        r->unchanged[k] = revl_trainer_get_stats(t, &st) == REVL_OK && st.steps_done == 0 &&
                          revl_trainer_hypergrad_resume(t, NULL, 0, NULL, NULL) == REVL_ERR_STATE;
        for (size_t i = 0; i < SHP; i++)
            r->unchanged[k] = r->unchanged[k] && w[i] == 0;
        free(w);
        revl_trainer_free(t);
        pthread_barrier_wait(&sh->barrier);
        if (r->comm.rank == 0)
            ck_spill(f1, saved1, n1);
        pthread_barrier_wait(&sh->barrier);
        size_t n;
        unsigned char *now = ck_slurp(mine, &n);
        r->unchanged[k] = r->unchanged[k] && now && n == n0 && memcmp(now, before, n) == 0;
        free(now);
        pthread_barrier_wait(&sh->barrier);
    }
    free(before);
    free(saved1);

    t = ck_trainer(&dummy, m, s, 1);
    ck_assert_int_eq(revl_trainer_load(t, r->base), REVL_OK);
    /* rank 1 alone asks for a kind the pass did not accumulate: every rank refuses, none waits */
    double clip[SHT], *bad_kinds[REVL_HYPER_COUNT] = {[REVL_HYPER_CLIP] = clip};
    r->kinds_rc = revl_trainer_hypergrad_resume(t, NULL, REVL_HYPER_COUNT,
                                                r->comm.rank == 1 ? bad_kinds : NULL, NULL);
    snprintf(r->kinds_msg, sizeof r->kinds_msg, "%s", revl_trainer_last_error(t));
    int rc = rk_reverse(r, t, 1, 0);
    ck_assert_msg(rc == REVL_OK, "%d %s", rc, revl_trainer_last_error(t));
    revl_trainer_free(t);
    t = ck_trainer(&dummy, m, s, 1);
    ck_assert_int_eq(rk_reverse(r, t, 0, 1), REVL_OK);
    revl_trainer_free(t);
    t = ck_trainer(&dummy, m, s, 0);
    ck_assert_int_eq(rk_reverse(r, t, 0, 2), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return NULL;
}

START_TEST(sharded_reverse_checkpoint_resumes_bit_for_bit)
{
    int R = _i % 2 ? 3 : 2;
    thread_shared *s = &the_shared;
    rk_rank runs[3];
    char dir[] = "/tmp/revl_shardrev_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    thread_shared_init(s, R);
    pthread_t th[3];
    for (int r = 0; r < R; r++) {
        memset(&runs[r], 0, sizeof runs[r]);
        thread_comm(&runs[r].comm, r, s);
        runs[r].opt = _i / 2 ? REVL_OPTIM_ADAM : REVL_OPTIM_MOMENTUM;
        snprintf(runs[r].base, sizeof runs[r].base, "%s/ck", dir);
        for (int k = 0; k < 3; k++) {
            runs[r].w[k] = calloc(SHP, sizeof(double));
            runs[r].d_w0[k] = calloc(SHP, sizeof(double));
        }
        pthread_create(&th[r], NULL, rk_rank_main, &runs[r]);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);
    thread_shared_destroy(s);
    static const char *const want[RK_CASES] = {
        [RK_CORRUPT] = "rank 1: ",
        [RK_EARLIER_STEP] = "rank 1's file is not of the same save as rank 0's",
        [RK_FORGED_D_GAMMA] = "rank 1's file is not of the same save as rank 0's",
        [RK_FORGED_STATE] = "rank 1: ",
    };
    char state_msg[96]; /* rank 1's message names the parameter by its global index */
    size_t n1, lo1 = rk_share1(R, &n1);
    snprintf(state_msg, sizeof state_msg, ": state m of parameter %zu out of range (|x| >= 2^126)",
             lo1 + RK_STATE_AT);
    for (int r = 0; r < R; r++) {
        for (int k = 1; k < 3; k++) { /* resumed = straight = plain, bit for bit */
            ck_assert_msg(memcmp(runs[r].w[0], runs[r].w[k], SHP * sizeof(double)) == 0,
                          "R=%d rank %d: w0 differs from run %d", R, r, k);
            ck_assert_msg(memcmp(runs[r].d_w0[0], runs[r].d_w0[k], SHP * sizeof(double)) == 0,
                          "R=%d rank %d: d_w0 differs from run %d", R, r, k);
            ck_assert(memcmp(runs[r].d_alpha[0], runs[r].d_alpha[k], sizeof runs[r].d_alpha[0]) == 0);
            ck_assert(memcmp(runs[r].d_gamma[0], runs[r].d_gamma[k], sizeof runs[r].d_gamma[0]) == 0);
        }
        ck_assert(runs[r].w[0][1] == 0.5 * cos(1.0) && runs[r].d_alpha[0][0] != 0);
        ck_assert_msg(runs[r].kinds_rc == REVL_ERR_INVALID &&
                          strstr(runs[r].kinds_msg, "rank 1: revl_trainer_hypergrad_resume"),
                      "R=%d rank %d: %d %s", R, r, runs[r].kinds_rc, runs[r].kinds_msg);
        for (int k = 0; k < rk_cases(runs[r].opt); k++) {
            ck_assert_msg(runs[r].rc[k] == REVL_ERR_IO && strstr(runs[r].msg[k], want[k]) &&
                              (k != RK_FORGED_STATE || strstr(runs[r].msg[k], state_msg)),
                          "R=%d rank %d case %d: %d %s", R, r, k, runs[r].rc[k], runs[r].msg[k]);
            ck_assert_str_eq(runs[r].msg[k], runs[0].msg[k]);
            ck_assert_msg(runs[r].unchanged[k], "R=%d rank %d case %d changed", R, r, k);
        }
        for (int k = 0; k < 3; k++) {
            free(runs[r].w[k]);
            free(runs[r].d_w0[k]);
        }
    }
    char cmd[160]; /* no temporary left behind */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep tmp)\" && rm -r %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *dp_suite(void)
{
    Suite *s = suite_create("dp");
    TCase *tc = tcase_create("dp");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, micro_range);
    tcase_add_test(tc, bad_definitions);
    tcase_add_loop_test(tc, identical_for_any_rank_count, 0, 4);
    tcase_add_loop_test(tc, every_optimizer_with_weight_decay_identical_for_any_rank_count, 0,
                        2 * REVL_OPTIM_COUNT);
    tcase_add_loop_test(tc, clipped_identical_for_any_rank_count, 0, 4);
    tcase_add_test(tc, micro_batches_fix_the_bits);
    tcase_add_loop_test(tc, alpha_hypergrad_matches_finite_differences, 0, 2);
    tcase_add_test(tc, callback_failure_on_one_rank);
    tcase_add_test(tc, nan_on_one_rank);
    tcase_add_test(tc, mlp_training_set_changed);
    tcase_add_test(tc, drift_on_one_rank);
    tcase_add_test(tc, ranks_out_of_step);
    tcase_add_loop_test(tc, ranks_differ_in_what_decides_the_bits, 0, 7);
    tcase_add_test(tc, contributions_are_rounded_to_nearest);
    tcase_add_test(tc, lowest_failing_rank_is_blamed);
    tcase_add_test(tc, sharded_no_memory_on_one_of_nine_ranks);
    tcase_add_loop_test(tc, outputs_are_zero_on_entry, 0, 2);
    tcase_add_test(tc, sharded_ranks_that_differ_fail_alike);
    tcase_add_loop_test(tc, sharded_checkpoint_resumes_bit_for_bit, 0, 2);
    tcase_add_loop_test(tc, sharded_reverse_checkpoint_resumes_bit_for_bit, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(dp_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
