/* check_forward.c: forward-only training (revl_trainer_train_forward) and the progress callback
 * (revl_trainer_set_progress).
 *
 * Forward-only: the same w_T and last loss bits as revl_trainer_train for every optimiser, one
 * and two threads (the overlapped multiplies, and the block-parallel path of a large model), a
 * callback model and the built-in MLP, with and without truncation; hypergrad and save refused
 * afterwards, and a train after it reverses exactly (the hypergradients of a fresh trainer, bit
 * for bit); the buffer stays at one chunk's words per block and no step allocates; checkpoints
 * are not written. Progress: called at the right steps and phases with the step's loss, after
 * the last step, from train, train_forward, train_resume and hypergrad; a nonzero return stops
 * each of them with REVL_ERR_CALLBACK and leaves a trainer that trains again; argument errors;
 * both on a sharded trainer (one rank). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revl.h"
#include "testutil.h"
#include "exact/infobuf.h"
#include "optim/optim.h" /* RV_SINK_WORDS, RV_CHUNK: the forward-only buffer's bound */

/* ------------------------------------------------------------------ a callback model */

/* L_t = sum_i sc_i [a_i/2 (w_i - c_i - s_t)^2 + b sin(w_i)] + exp(meta0)/2 |w|^2, with sc_i over
 * four decades; records each step's loss of the forward (for the progress checks). */
typedef struct wavy {
    size_t p, n_steps;
    double *a, *c, *sc;
    double *losses; /* n_steps: the loss the gradient call of each step returned */
    revl_trainer *reenter; /* the progress callback calls this trainer back (NULL: none) */
} wavy;

static double shift(size_t step) { return 0.05 * (double)(step % 3); }

static int wavy_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    wavy *q = user;
    double lam = exp(meta[0]), l = 0;
    for (size_t i = 0; i < q->p; i++) {
        double d = w[i] - q->c[i] - shift(step);
        g[i] = q->sc[i] * (q->a[i] * d + 0.3 * cos(w[i])) + lam * w[i];
        l += q->sc[i] * (0.5 * q->a[i] * d * d + 0.3 * sin(w[i])) + 0.5 * lam * w[i] * w[i];
    }
    if (loss) {
        *loss = l;
        if (step < q->n_steps)
            q->losses[step] = l;
    }
    return 0;
}

static int wavy_hvp(size_t step, const double *w, const double *meta, const double *v,
                    double *g, double *hv, double *hm, void *user)
{
    const wavy *q = user;
    double lam = exp(meta[0]), wv = 0;
    for (size_t i = 0; i < q->p; i++) {
        hv[i] = (q->sc[i] * (q->a[i] - 0.3 * sin(w[i])) + lam) * v[i];
        wv += w[i] * v[i];
    }
    hm[0] = lam * wv;
    return 0;
}

static void wavy_free(void *user)
{
    wavy *q = user;
    free(q->a);
    free(q->c);
    free(q->sc);
    free(q->losses);
    free(q);
}

static revl_model *wavy_model(size_t p, size_t n_steps, wavy **out)
{
    wavy *q = calloc(1, sizeof *q);
    q->p = p;
    q->n_steps = n_steps;
    q->a = malloc(p * sizeof *q->a);
    q->c = malloc(p * sizeof *q->c);
    q->sc = malloc(p * sizeof *q->sc);
    q->losses = calloc(n_steps, sizeof *q->losses);
    for (size_t i = 0; i < p; i++) {
        q->a[i] = 0.5 + 1.5 * (double)((i * 7 + 3) % 11) / 10.0;
        q->c[i] = (double)((i * 3 + 1) % 5) - 2.0;
        q->sc[i] = pow(10.0, -2.0 + (double)(i % 5));
    }
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = p;
    d.n_meta = 1;
    d.grad = wavy_grad;
    d.hvp = wavy_hvp;
    d.user = q;
    d.user_free = wavy_free;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    size_t off[3] = {0, p / 3, p};
    ck_assert_int_eq(revl_model_set_groups(m, 2, off), REVL_OK);
    if (out)
        *out = q;
    return m;
}

/* ------------------------------------------------------------------ the MLP */

/* A 10-16-3 tanh MLP with per-layer L2 on 120 examples (*data must outlive it). */
static revl_model *mlp_model(revl_dataset **data)
{
    revl_dataset *d = *data = test_dataset(120, 10, 3, 5);
    ck_assert_ptr_nonnull(d);
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.batch_size = 40;
    o.penalty = REVL_PENALTY_PER_LAYER;
    size_t widths[3] = {10, 16, 3};
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 3, widths, d, &o), REVL_OK);
    return m;
}

/* ------------------------------------------------------------------ schedules, runs */

/* Every kind of opt varying with the step and group around values each optimiser trains
 * well with on these models; rate > 0: gamma, beta1 and beta2 all that value (0.5 keeps one bit
 * per parameter and step for each). */
static revl_schedule *schedule_for(revl_optimizer opt, const revl_model *m, size_t steps,
                                   double rate)
{
    size_t ng = revl_model_n_groups(m), *off = malloc((ng + 1) * sizeof *off);
    revl_model_group_offsets(m, off);
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, steps, ng, off, NULL), REVL_OK);
    free(off);
    double *v = malloc(steps * ng * sizeof *v);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < nk; k++) {
        for (size_t j = 0; j < steps * ng; j++) {
            double u = 0.5 + 0.5 * sin(1.0 + 0.7 * (double)j + (double)k);
            switch (kinds[k]) {
            case REVL_HYPER_ALPHA:
                v[j] = opt == REVL_OPTIM_MOMENTUM ? 0.002 + 0.002 * u : 0.003 + 0.006 * u;
                break;
            case REVL_HYPER_GAMMA:
                v[j] = rate > 0 ? rate : 0.6 + 0.3 * u;
                break;
            case REVL_HYPER_BETA1:
                v[j] = rate > 0 ? rate : 0.7 + 0.25 * u;
                break;
            case REVL_HYPER_BETA2:
                v[j] = rate > 0 ? rate : 0.9 + 0.09 * u;
                break;
            default: /* eps */
                v[j] = 1e-3 + 1e-3 * u;
            }
        }
        ck_assert_int_eq(revl_schedule_set_kind(s, kinds[k], v), REVL_OK);
    }
    free(v);
    return s;
}

static revl_trainer *trainer(revl_model *m, const revl_schedule *s, int threads, size_t truncate)
{
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = threads;
    o.truncate = truncate;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
    return t;
}

static void start_point(revl_model *m, double *w0, double *meta)
{
    size_t ng = revl_model_n_groups(m);
    double scales[8];
    for (size_t g = 0; g < ng; g++)
        scales[g] = log(0.3);
    ck_assert_int_eq(revl_model_init_weights(m, scales, 11, w0), REVL_OK);
    for (size_t j = 0; j < revl_model_n_meta(m); j++)
        meta[j] = -3.0 + 0.5 * (double)j;
}

static revl_trainer_stats stats_of(const revl_trainer *t)
{
    revl_trainer_stats st;
    revl_trainer_stats_init(&st);
    ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_OK);
    return st;
}

/* What a run leaves: w_T, its last loss, and (after a hypergradient) d_w0, d_meta and every
 * kind's hypergradient, all as bits in one array. */
typedef struct run {
    double *x;
    size_t n;
} run;

static void put(run *r, const double *x, size_t n)
{
    r->x = realloc(r->x, (r->n + n) * sizeof *r->x);
    memcpy(r->x + r->n, x, n * sizeof *x);
    r->n += n;
}

static void put_weights(run *r, revl_trainer *t, size_t p)
{
    double *w = malloc(p * sizeof *w);
    ck_assert_int_eq(revl_trainer_weights(t, w), REVL_OK);
    put(r, w, p);
    free(w);
    double loss = stats_of(t).last_loss;
    ck_assert(isfinite(loss));
    put(r, &loss, 1);
}

/* The hypergradient of f(w) = |w|^2 / 2 after a completed train. */
static void put_hypergrad(run *r, revl_trainer *t, const revl_schedule *s, size_t p, size_t nm)
{
    size_t n = revl_schedule_n_steps(s) * revl_schedule_n_groups(s);
    double *w = malloc(p * sizeof *w), *dw0 = malloc(p * sizeof *dw0), dmeta[8];
    double *kinds[REVL_HYPER_COUNT] = {0};
    revl_hyper ks[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, ks);
    for (size_t k = 0; k < nk; k++)
        kinds[ks[k]] = malloc(n * sizeof(double));
    ck_assert_int_eq(revl_trainer_weights(t, w), REVL_OK);
    /* _n: the shipped 5-entry call never fills weight_decay (kind 5) */
    int rc = revl_trainer_hypergrad_kinds_n(t, w, NULL, dw0, REVL_HYPER_COUNT, kinds, dmeta);
    ck_assert_msg(rc == REVL_OK, "hypergrad: %s", revl_trainer_last_error(t));
    put(r, dw0, p);
    put(r, dmeta, nm);
    for (size_t k = 0; k < nk; k++) {
        put(r, kinds[ks[k]], n);
        free(kinds[ks[k]]);
    }
    free(w);
    free(dw0);
}

static void expect_same_bits(const run *a, const run *b, const char *what)
{
    ck_assert_msg(a->n == b->n && a->n > 0, "%s: %zu vs %zu numbers", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        ck_assert_msg(memcmp(&a->x[i], &b->x[i], sizeof(double)) == 0,
                      "%s: number %zu of %zu differs: %.17g vs %.17g", what, i, a->n, a->x[i],
                      b->x[i]);
}

static const revl_optimizer optimizers[] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM,
                                            REVL_OPTIM_RMSPROP};

/* ------------------------------------------------------------------ same bits */

/* Case i: optimiser i % 3, model (callback, MLP) i / 3 % 2, threads 1 or 2 (i / 6 % 2),
 * truncate 0 or 5 (i / 12). The reference trains and reverses; another trainer trains forward
 * only (the same w_T and loss bits), is refused a hypergradient, then trains and reverses with
 * the reference's bits; the reference, reversed, trains forward only with the same bits too. */
START_TEST(test_same_bits)
{
    revl_optimizer opt = optimizers[_i % 3];
    int mlp = _i / 3 % 2, threads = 1 + _i / 6 % 2;
    size_t truncate = _i / 12 ? 5 : 0, steps = 12;
    revl_dataset *data = NULL;
    revl_model *m = mlp ? mlp_model(&data) : wavy_model(5000, steps, NULL);
    size_t p = revl_model_n_params(m), nm = revl_model_n_meta(m);
    revl_schedule *s = schedule_for(opt, m, steps, 0);
    double *w0 = malloc(p * sizeof *w0), meta[8];
    start_point(m, w0, meta);
    char what[96];
    snprintf(what, sizeof what, "%s, %s, %d thread(s), truncate %zu", revl_optimizer_name(opt),
             mlp ? "MLP" : "callback model", threads, truncate);

    revl_trainer *ref = trainer(m, s, 1, truncate), *fo = trainer(m, s, threads, truncate);
    run exact = {0}, fwd = {0}, exact_hg = {0}, fo_hg = {0}, again = {0};
    ck_assert_int_eq(revl_trainer_train(ref, w0, meta), REVL_OK);
    put_weights(&exact, ref, p);
    put_weights(&exact_hg, ref, p);
    put_hypergrad(&exact_hg, ref, s, p, nm);

    ck_assert_int_eq(revl_trainer_train_forward(fo, w0, meta), REVL_OK);
    ck_assert_int_eq(stats_of(fo).steps_done, steps);
    put_weights(&fwd, fo, p);
    expect_same_bits(&exact, &fwd, what);

    double *out = malloc(p * sizeof *out);
    out[0] = 42;
    ck_assert_int_eq(revl_trainer_hypergrad(fo, w0, NULL, out, NULL, NULL, NULL), REVL_ERR_STATE);
    expect_msg(revl_trainer_last_error(fo),
               "trained forward-only: nothing to reverse; use revl_trainer_train");
    ck_assert(out[0] == 42); /* outputs of a refused call untouched */
    /* refused twice: the trainer is still forward-trained, w_T still there */
    ck_assert_int_eq(revl_trainer_hypergrad(fo, w0, NULL, NULL, NULL, NULL, NULL), REVL_ERR_STATE);
    run still = {0};
    put_weights(&still, fo, p);
    expect_same_bits(&exact, &still, what);

    ck_assert_int_eq(revl_trainer_train(fo, w0, meta), REVL_OK);
    put_weights(&fo_hg, fo, p);
    put_hypergrad(&fo_hg, fo, s, p, nm);
    expect_same_bits(&exact_hg, &fo_hg, what);

    /* a reversed trainer trains forward-only again, the same bits */
    ck_assert_int_eq(revl_trainer_train_forward(ref, w0, meta), REVL_OK);
    put_weights(&again, ref, p);
    expect_same_bits(&exact, &again, what);

    free(exact.x);
    free(fwd.x);
    free(exact_hg.x);
    free(fo_hg.x);
    free(again.x);
    free(still.x);
    free(out);
    free(w0);
    revl_trainer_free(ref);
    revl_trainer_free(fo);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(data);
}
END_TEST

/* A model of 2^18 + parameters: two threads split the blocks themselves (OpenMP), rather than
 * overlapping the multiplies with the model; the same bits as one thread's exact forward. */
START_TEST(test_same_bits_block_threads)
{
    revl_optimizer opt = optimizers[_i];
    size_t steps = 4, p = 270000;
    revl_model *m = wavy_model(p, steps, NULL);
    revl_schedule *s = schedule_for(opt, m, steps, 0);
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    revl_trainer *ref = trainer(m, s, 1, 0);
    run exact = {0}, fwd = {0};
    ck_assert_int_eq(revl_trainer_train(ref, w0, meta), REVL_OK);
    put_weights(&exact, ref, p);
    revl_trainer_free(ref);
    revl_trainer *fo = trainer(m, s, 2, 0);
    ck_assert_int_eq(revl_trainer_train_forward(fo, w0, meta), REVL_OK);
    put_weights(&fwd, fo, p);
    expect_same_bits(&exact, &fwd, revl_optimizer_name(opt));
    free(exact.x);
    free(fwd.x);
    free(w0);
    revl_trainer_free(fo);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ memory */

/* Rates of 0.5 keep a bit or more per parameter and step: 300 steps of 5000 parameters are
 * ~190 kB of buffer or more for train; forward-only holds the coder's states and at most one
 * chunk's words per block, even after a train grew the stacks; its peak stays below train's by
 * the buffer. */
START_TEST(test_buffer_not_grown)
{
    size_t steps = 300, p = 5000, nb = (p + RV_BLOCK - 1) / RV_BLOCK;
    revl_model *m = wavy_model(p, steps, NULL);
    revl_schedule *s = schedule_for(optimizers[_i], m, steps, 0.5);
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    /* the states, the stack headers and one chunk's words (with the reservation's slack) */
    size_t bound = p * sizeof(uint64_t) + nb * sizeof(rv_stack) +
                   nb * sizeof(rv_word) * (RV_SINK_WORDS * RV_CHUNK * 1002 / 1000 + 17);

    revl_trainer *tr = trainer(m, s, 1, 0), *fo = trainer(m, s, 1, 0);
    ck_assert_int_eq(revl_trainer_train(tr, w0, meta), REVL_OK);
    revl_trainer_stats st_tr = stats_of(tr);
    ck_assert_msg(st_tr.buffer_bits > 0.9 * (double)(steps * p), "%g bits", st_tr.buffer_bits);
    ck_assert_uint_gt(st_tr.buffer_bytes, bound + steps * p / 8 * 9 / 10);

    ck_assert_int_eq(revl_trainer_train_forward(fo, w0, meta), REVL_OK);
    revl_trainer_stats st_fo = stats_of(fo);
    ck_assert_msg(st_fo.buffer_bytes <= bound, "forward-only buffer %zu bytes > %zu",
                  st_fo.buffer_bytes, bound);
    ck_assert_msg(st_fo.buffer_bits < 16.0 * (double)p, "%g bits left", st_fo.buffer_bits);
    ck_assert_msg(st_fo.peak_bytes + steps * p / 8 * 9 / 10 < st_tr.peak_bytes,
                  "peak %zu (forward-only) vs %zu (train)", st_fo.peak_bytes, st_tr.peak_bytes);

    /* the trained trainer's large stacks are given back by a forward-only train */
    ck_assert_int_eq(revl_trainer_train_forward(tr, w0, meta), REVL_OK);
    ck_assert_uint_le(stats_of(tr).buffer_bytes, bound);
    /* and a train after it reserves again and reverses */
    ck_assert_int_eq(revl_trainer_train(fo, w0, meta), REVL_OK);
    ck_assert_uint_eq(stats_of(fo).buffer_bytes, st_tr.buffer_bytes);
    ck_assert_int_eq(revl_trainer_hypergrad(fo, w0, NULL, NULL, NULL, NULL, NULL), REVL_OK);

    free(w0);
    revl_trainer_free(tr);
    revl_trainer_free(fo);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* No allocation per step: a forward-only train allocates the same number of times at T = 4 and
 * T = 60, for every optimiser, with rates (0.5) that would spill a word per parameter every 16
 * steps or sooner if its words were kept. */
START_TEST(test_no_allocation_per_step)
{
    revl_optimizer opt = optimizers[_i];
    long calls[2];
    for (int k = 0; k < 2; k++) {
        size_t steps = k ? 60 : 4, p = 5000;
        revl_model *m = wavy_model(p, steps, NULL);
        revl_schedule *s = schedule_for(opt, m, steps, 0.5);
        failing f = {.fail_at = -1};
        revl_allocator a = failing_allocator(&f);
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.allocator = &a;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        double *w0 = malloc(p * sizeof *w0), meta[1];
        start_point(m, w0, meta);
        long before = f.calls;
        ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_OK);
        calls[k] = f.calls - before;
        free(w0);
        revl_trainer_free(t);
        ck_assert_int_eq(f.live, 0);
        revl_schedule_free(s);
        revl_model_free(m);
    }
    ck_assert_msg(calls[0] == calls[1], "%s: %ld allocations at T = 4, %ld at T = 60",
                  revl_optimizer_name(opt), calls[0], calls[1]);
}
END_TEST

/* ------------------------------------------------------------------ checkpoints, arguments */

START_TEST(test_checkpoint_and_arguments)
{
    size_t steps = 6, p = 50;
    revl_model *m = wavy_model(p, steps, NULL);
    revl_schedule *s = schedule_for(REVL_OPTIM_MOMENTUM, m, steps, 0);
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    revl_trainer *t = trainer(m, s, 1, 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/revl-check-forward-%d.ckpt", (int)getpid());
    unlink(path);

    /* periodic checkpoints are not written by a forward-only train; save refuses after it */
    ck_assert_int_eq(revl_trainer_set_checkpoint(t, path, 2), REVL_OK);
    ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_OK);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(revl_trainer_save(t, path), REVL_ERR_STATE);
    expect_msg(revl_trainer_last_error(t), "revl_trainer_save: trained forward-only");
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(revl_trainer_train_resume(t), REVL_ERR_STATE);
    /* train writes them */
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(access(path, F_OK), 0);
    unlink(path);
    ck_assert_int_eq(revl_trainer_set_checkpoint(t, NULL, 0), REVL_OK);

    /* NULL arguments: clear errors, the call's name in the message, the trainer usable */
    ck_assert_int_eq(revl_trainer_train_forward(NULL, w0, meta), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_train_forward(t, NULL, meta), REVL_ERR_INVALID);
    expect_msg(revl_trainer_last_error(t), "revl_trainer_train_forward: w0 is NULL");
    ck_assert_int_eq(revl_trainer_train_forward(t, w0, NULL), REVL_ERR_INVALID);
    expect_msg(revl_trainer_last_error(t), "revl_trainer_train_forward: meta is NULL");
    ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, NULL, NULL, NULL, NULL), REVL_ERR_STATE);
    expect_msg(revl_trainer_last_error(t), "no completed training");
    w0[3] = NAN;
    ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_ERR_RANGE);
    w0[3] = 0.1;
    ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, NULL, NULL, NULL, NULL), REVL_OK);

    free(w0);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ progress */

#define MAX_CALLS 64
typedef struct seen {
    size_t n, step[MAX_CALLS];
    int phase[MAX_CALLS];
    double seconds[MAX_CALLS], loss[MAX_CALLS];
    size_t stop_at;   /* return 1 at this step (SIZE_MAX: never) */
    int stop_phase;
    revl_trainer *t;  /* when set: the callback checks the trainer's stats and calls it back */
    int reenter_rc;
    size_t stats_steps;
} seen;

static int on_progress(size_t step, int phase, double seconds, double loss, void *user)
{
    seen *s = user;
    if (s->n < MAX_CALLS) {
        s->step[s->n] = step;
        s->phase[s->n] = phase;
        s->seconds[s->n] = seconds;
        s->loss[s->n] = loss;
    }
    s->n++;
    if (s->t) {
        s->stats_steps = stats_of(s->t).steps_done;
        double w[1] = {0};
        s->reenter_rc = revl_trainer_train(s->t, w, w);
    }
    return step == s->stop_at && phase == s->stop_phase;
}

static seen watch(void)
{
    seen s;
    memset(&s, 0, sizeof s);
    s.stop_at = SIZE_MAX;
    return s;
}

static void expect_calls(const seen *s, const size_t *steps, size_t n, int phase,
                         const wavy *q)
{
    ck_assert_uint_eq(s->n, n);
    for (size_t k = 0; k < n; k++) {
        ck_assert_uint_eq(s->step[k], steps[k]);
        ck_assert_int_eq(s->phase[k], phase);
        ck_assert(s->seconds[k] >= 0 && (k == 0 || s->seconds[k] >= s->seconds[k - 1]));
        if (phase == 0) /* the loss of the step just taken, the model's own bits */
            ck_assert(memcmp(&s->loss[k], &q->losses[steps[k] - 1], sizeof(double)) == 0);
        else
            ck_assert(isnan(s->loss[k]));
    }
}

/* Called every 3 steps and after the last: forward at 3, 6, 9, 10 steps done (train and
 * train_forward alike, with the loss of that step); reverse back to 7, 4, 1 and 0, or with
 * truncate 4 to 7 and then 6, the first kept step; every = 1: every step. */
START_TEST(test_progress_steps)
{
    size_t steps = 10, p = 300;
    wavy *q;
    revl_model *m = wavy_model(p, steps, &q);
    revl_schedule *s = schedule_for(optimizers[_i], m, steps, 0);
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    for (size_t truncate = 0; truncate <= 4; truncate += 4) {
        revl_trainer *t = trainer(m, s, 1, truncate);
        seen w = watch();
        ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 3, &w), REVL_OK);
        const size_t fwd[] = {3, 6, 9, 10}, back[] = {7, 4, 1, 0}, back_trunc[] = {7, 6};
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        expect_calls(&w, fwd, 4, 0, q);
        w = watch();
        ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, NULL, NULL, NULL, NULL), REVL_OK);
        expect_calls(&w, truncate ? back_trunc : back, truncate ? 2 : 4, 1, q);
        w = watch();
        ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_OK);
        expect_calls(&w, fwd, 4, 0, q);

        /* every step; the callback sees the trainer standing at the step it is told */
        size_t all[10];
        for (size_t k = 0; k < steps; k++)
            all[k] = k + 1;
        w = watch();
        w.t = t;
        ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 1, &w), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        w.t = NULL; /* expect_calls does not look at these */
        expect_calls(&w, all, steps, 0, q);
        ck_assert_uint_eq(w.stats_steps, steps);
        ck_assert_int_eq(w.reenter_rc, REVL_ERR_STATE); /* the trainer is busy: refused */
        /* removed: no more calls */
        ck_assert_int_eq(revl_trainer_set_progress(t, NULL, 0, NULL), REVL_OK);
        w = watch();
        ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, NULL, NULL, NULL, NULL), REVL_OK);
        ck_assert_uint_eq(w.n, 0);
        /* every larger than the run: only after the last step */
        const size_t last[] = {10}, first_kept[] = {truncate ? 6 : 0};
        ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 1000, &w), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        expect_calls(&w, last, 1, 0, q);
        w = watch();
        ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, NULL, NULL, NULL, NULL), REVL_OK);
        expect_calls(&w, first_kept, 1, 1, q);
        revl_trainer_free(t);
    }
    free(w0);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

START_TEST(test_progress_arguments)
{
    size_t steps = 3, p = 20;
    revl_model *m = wavy_model(p, steps, NULL);
    revl_schedule *s = schedule_for(REVL_OPTIM_MOMENTUM, m, steps, 0);
    revl_trainer *t = trainer(m, s, 1, 0);
    seen w = watch();
    ck_assert_int_eq(revl_trainer_set_progress(NULL, on_progress, 1, &w), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 0, &w), REVL_ERR_INVALID);
    expect_msg(revl_trainer_last_error(t), "revl_trainer_set_progress: every must be at least 1");
    /* the refused call changed nothing: no callback set */
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_uint_eq(w.n, 0);
    /* a set callback survives a refused change */
    ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 2, &w), REVL_OK);
    ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 0, &w), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_uint_eq(w.n, 2); /* steps 2 and 3 */
    /* fn NULL removes, whatever every says */
    ck_assert_int_eq(revl_trainer_set_progress(t, NULL, 5, &w), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_uint_eq(w.n, 2);
    free(w0);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A nonzero return stops train (case 0), train_forward (1) and hypergrad (2) at the step it was
 * called for, with REVL_ERR_CALLBACK and the step in the message; the trainer then needs a
 * train (hypergrad refused), and trains and reverses with the bits of a trainer never stopped.
 * A stopped hypergrad writes no output. */
START_TEST(test_progress_stop)
{
    int which = _i % 3;
    revl_optimizer opt = optimizers[_i / 3];
    size_t steps = 10, p = 300;
    wavy *q;
    revl_model *m = wavy_model(p, steps, &q);
    revl_schedule *s = schedule_for(opt, m, steps, 0);
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    revl_trainer *ref = trainer(m, s, 1, 0), *t = trainer(m, s, 1, 0);
    run want = {0}, got = {0};
    ck_assert_int_eq(revl_trainer_train(ref, w0, meta), REVL_OK);
    put_weights(&want, ref, p);
    put_hypergrad(&want, ref, s, p, 1);

    seen w = watch();
    w.stop_at = 4;
    w.stop_phase = which == 2;
    ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 2, &w), REVL_OK);
    double *dw0 = malloc(p * sizeof *dw0);
    dw0[0] = 42;
    if (which == 2) {
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, dw0, NULL, NULL, NULL),
                         REVL_ERR_CALLBACK);
        expect_msg(revl_trainer_last_error(t), "stopped by the progress callback at step 4");
        ck_assert(dw0[0] == 42);
        ck_assert_uint_eq(w.n, 5 + 3); /* forward 2, 4, 6, 8, 10; reverse 8, 6, 4 */
    } else {
        int rc = which ? revl_trainer_train_forward(t, w0, meta) : revl_trainer_train(t, w0, meta);
        ck_assert_int_eq(rc, REVL_ERR_CALLBACK);
        expect_msg(revl_trainer_last_error(t), "stopped by the progress callback at step 4");
        ck_assert_uint_eq(w.n, 2);
        revl_trainer_stats st = stats_of(t);
        ck_assert_uint_eq(st.steps_done, 4);
        ck_assert(memcmp(&st.last_loss, &q->losses[3], sizeof(double)) == 0);
    }
    ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, dw0, NULL, NULL, NULL), REVL_ERR_STATE);
    expect_msg(revl_trainer_last_error(t), "no completed training");
    ck_assert(dw0[0] == 42);
    ck_assert_int_eq(revl_trainer_train_resume(t), REVL_ERR_STATE);

    /* the same callback, told not to stop: the trainer trains and reverses exactly */
    w.stop_at = SIZE_MAX;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    put_weights(&got, t, p);
    put_hypergrad(&got, t, s, p, 1);
    expect_same_bits(&want, &got, revl_optimizer_name(opt));

    free(want.x);
    free(got.x);
    free(dw0);
    free(w0);
    revl_trainer_free(ref);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* train_resume calls it too, counting from the loaded step: a train stopped at step 4 after its
 * checkpoint there, loaded into a trainer that last trained forward-only, resumes to the
 * uninterrupted run's bits (calls at 6, 8, 10) and reverses exactly. */
START_TEST(test_progress_resume)
{
    size_t steps = 10, p = 300;
    wavy *q;
    revl_model *m = wavy_model(p, steps, &q);
    revl_schedule *s = schedule_for(REVL_OPTIM_ADAM, m, steps, 0);
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    revl_trainer *ref = trainer(m, s, 1, 0), *a = trainer(m, s, 1, 0), *b = trainer(m, s, 1, 0);
    run want = {0}, got = {0};
    ck_assert_int_eq(revl_trainer_train(ref, w0, meta), REVL_OK);
    put_weights(&want, ref, p);
    put_hypergrad(&want, ref, s, p, 1);

    char path[64];
    snprintf(path, sizeof path, "/tmp/revl-check-forward-resume-%d.ckpt", (int)getpid());
    seen w = watch();
    w.stop_at = 4;
    ck_assert_int_eq(revl_trainer_set_checkpoint(a, path, 4), REVL_OK);
    ck_assert_int_eq(revl_trainer_set_progress(a, on_progress, 2, &w), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(a, w0, meta), REVL_ERR_CALLBACK);

    ck_assert_int_eq(revl_trainer_train_forward(b, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_load(b, path), REVL_OK);
    unlink(path);
    w = watch();
    ck_assert_int_eq(revl_trainer_set_progress(b, on_progress, 2, &w), REVL_OK);
    ck_assert_int_eq(revl_trainer_train_resume(b), REVL_OK);
    const size_t rest[] = {6, 8, 10};
    expect_calls(&w, rest, 3, 0, q);
    put_weights(&got, b, p);
    put_hypergrad(&got, b, s, p, 1);
    expect_same_bits(&want, &got, "resumed");

    free(want.x);
    free(got.x);
    free(w0);
    revl_trainer_free(ref);
    revl_trainer_free(a);
    revl_trainer_free(b);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A sharded trainer (one rank, the local communicator: every collective and vote runs):
 * forward-only gives the unsharded train's bits; a progress stop is voted on and carries the
 * rank in its message. */
START_TEST(test_sharded_one_rank)
{
    size_t steps = 8, p = 5000;
    revl_model *m = wavy_model(p, steps, NULL);
    revl_schedule *s = schedule_for(optimizers[_i], m, steps, 0);
    double *w0 = malloc(p * sizeof *w0), meta[1];
    start_point(m, w0, meta);
    revl_trainer *ref = trainer(m, s, 1, 0), *t = NULL;
    run want = {0}, got = {0};
    ck_assert_int_eq(revl_trainer_train(ref, w0, meta), REVL_OK);
    put_weights(&want, ref, p);
    revl_comm comm;
    revl_comm_init_local(&comm);
    ck_assert_int_eq(revl_trainer_create_sharded(&t, m, s, NULL, &comm), REVL_OK);
    ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_OK);
    put_weights(&got, t, p);
    expect_same_bits(&want, &got, "sharded");
    seen w = watch();
    w.stop_at = 4;
    ck_assert_int_eq(revl_trainer_set_progress(t, on_progress, 2, &w), REVL_OK);
    ck_assert_int_eq(revl_trainer_train_forward(t, w0, meta), REVL_ERR_CALLBACK);
    expect_msg(revl_trainer_last_error(t), "rank 0: stopped by the progress callback at step 4");
    ck_assert_uint_eq(w.n, 2);
    w.stop_at = SIZE_MAX;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, w0, NULL, NULL, NULL, NULL, NULL), REVL_OK);
    ck_assert_uint_eq(w.n, 2 + 4 + 4);
    free(want.x);
    free(got.x);
    free(w0);
    revl_trainer_free(ref);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

static Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_same_bits, 0, 24);
    tcase_add_loop_test(tc, test_same_bits_block_threads, 0, 3);
    tcase_add_loop_test(tc, test_buffer_not_grown, 0, 3);
    tcase_add_loop_test(tc, test_no_allocation_per_step, 0, 3);
    tcase_add_test(tc, test_checkpoint_and_arguments);
    tcase_add_loop_test(tc, test_progress_steps, 0, 3);
    tcase_add_test(tc, test_progress_arguments);
    tcase_add_loop_test(tc, test_progress_stop, 0, 9);
    tcase_add_test(tc, test_progress_resume);
    tcase_add_loop_test(tc, test_sharded_one_rank, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(forward_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
