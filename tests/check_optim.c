/* check_optim.c: every registered optimiser through the public API, parameterised: exact
 * reversal bit for bit (random schedules, many P and T, 1-4 threads, frac_bits 40 and 52, the
 * buffer holding the information to 1e-3 and ending empty); every hypergradient kind, d_w0 and
 * d_meta against central finite differences of the whole training run on a model whose
 * gradients span five decades (truncated d_w0 and d_meta too); the forward trajectory against a
 * plain double-precision loop of the same optimiser; Adam's zero-gradient weights and its
 * singular case; and the optimiser-specific error rows with status and message. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "revl.h"
#include "testutil.h"
#include "core/overlap.h"
#include "core/trainer.h" /* the corruption tests reach into the trainer */
#include "exact/coder_vec.h"
#include "exact/wide_vec.h"
#include "exact/wide.h"
#include "optim/adam_dir.h"
#include "optim/rms_dir.h"


/* ------------------------------------------------------------------ the model */

/* L_t = sum_i sc_i [a_i/2 (w_i - c_i - s_t)^2 + b sin(w_i) + exp(meta0)/2 w_i^2] for steps
 * t >= active_from (0 before): smooth, not quadratic, step-dependent, with one meta-parameter;
 * sc_i spans 1e-3 .. 1e2 (gradients over five decades) and is 0 for the "dead" weights (their
 * gradient and Hessian are exactly 0). */
#define N_REENTRY 6 /* train, hypergrad, save, load, train_resume, set_checkpoint */

typedef struct model {
    size_t p;
    double *a, *c, *sc;
    double b;
    size_t active_from, active_until; /* the loss is 0 outside [from, until) (until 0: none) */
    long nan_at, huge_at; /* step with a NaN / huge gradient (-1 never) */
    long fail_affine_at;  /* step whose fused callback fails (-1 never) */
    long misuse_dir_at;   /* step whose fused direction callback misbehaves as misuse_dir says */
    int misuse_dir;       /* 1 never calls dir, 2 calls it twice, 3 returns 5, 5 gives it NULL */
    int own_grad;         /* m_hvp_dir hands dir its own copy of the gradient, not g */
    size_t n_grad, n_hvp, n_hvp_dir; /* the library's calls of each callback */
    long drift_at;        /* step whose gradient changes by 1 ulp after `armed` (-1 never) */
    int armed;
    long nan_hm_at;       /* step whose mixed product (meta) is NaN (-1 never) */
    revl_trainer *reenter; /* a trainer the gradient callback calls back (NULL: none) */
    revl_trainer *wait_worker; /* the gradient waits for this trainer's overlap worker */
    long fail_grad_at;         /* step whose gradient callback returns 7 (-1 never) */
    int reenter_rc[N_REENTRY]; /* what each call of the trainer's returned, last time */
    char reenter_msg[N_REENTRY][256];
} model;

static double shift(size_t step) { return 0.05 * (double)(step % 3); }

static int active(const model *q, size_t step)
{
    return step >= q->active_from && (q->active_until == 0 || step < q->active_until);
}

static int m_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                  void *user)
{
    model *q = user;
    double lam = exp(meta[0]), l = 0;
    q->n_grad++;
    for (size_t i = 0; i < q->p; i++) {
        double d = w[i] - q->c[i] - shift(step), sc = active(q, step) ? q->sc[i] : 0.0;
        g[i] = sc * (q->a[i] * d + q->b * cos(w[i]) + lam * w[i]);
        l += sc * (0.5 * q->a[i] * d * d + q->b * sin(w[i]) + 0.5 * lam * w[i] * w[i]);
    }
    if ((long)step == q->nan_at)
        g[q->p / 2] = NAN;
    if ((long)step == q->huge_at)
        g[q->p - 1] = 1e12;
    if ((long)step == q->drift_at && q->armed)
        g[1] = nextafter(g[1], INFINITY);
    /* the worker must do every block of the step while this callback runs (after 2 s without
     * it, the test stops waiting and fails on the worker's count) */
    for (int k = 0; q->wait_worker && q->wait_worker->overlap &&
                    rv_overlap_busy(q->wait_worker->overlap);
         k++) {
        if (k == 20000)
            q->wait_worker = NULL;
        nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    if ((long)step == q->fail_grad_at)
        return 7;
    if (q->reenter) { /* a callback that calls the trainer running it: refused, not obeyed */
        double w0[64] = {0};
        revl_trainer *t = q->reenter;
        const char *path = "/tmp/revl-check-optim-reentry.ckpt"; /* never written or read */
        for (int k = 0; k < N_REENTRY; k++) {
            int rc = k == 0   ? revl_trainer_train(t, w0, meta)
                     : k == 1 ? revl_trainer_hypergrad(t, w0, NULL, NULL, NULL, NULL, NULL)
                     : k == 2 ? revl_trainer_save(t, path)
                     : k == 3 ? revl_trainer_load(t, path)
                     : k == 4 ? revl_trainer_train_resume(t)
                              : revl_trainer_set_checkpoint(t, path, 1);
            q->reenter_rc[k] = rc;
            snprintf(q->reenter_msg[k], sizeof q->reenter_msg[k], "%s", revl_trainer_last_error(t));
        }
    }
    if (loss)
        *loss = l;
    return 0;
}

static int m_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
                 double *hv, double *hm, void *user)
{
    model *q = user;
    double lam = exp(meta[0]), wv = 0;
    q->n_hvp++;
    for (size_t i = 0; i < q->p; i++) {
        double sc = active(q, step) ? q->sc[i] : 0.0;
        hv[i] = sc * (q->a[i] - q->b * sin(w[i]) + lam) * v[i];
        wv += sc * w[i] * v[i];
    }
    hm[0] = (long)step == q->nan_hm_at ? NAN : lam * wv;
    return 0;
}

/* The fused gradient + H (a + b g), with the library's formula for the direction; fails at
 * step fail_affine_at. */
static int m_hvp_affine(size_t step, const double *w, const double *meta, const double *a,
                        const double *b, double *g, double *hv, double *hm, void *user)
{
    model *q = user;
    if ((long)step == q->fail_affine_at)
        return 3;
    double *v = malloc(q->p * sizeof *v);
    m_grad(step, w, meta, g, NULL, user);
    for (size_t i = 0; i < q->p; i++)
        v[i] = a[i] + b[i] * g[i];
    m_hvp(step, w, meta, v, NULL, hv, hm, user);
    free(v);
    return 0;
}

/* The fused gradient + H v, v from the library's direction (revl_hvp_dir_fn); misbehaves at step
 * misuse_dir_at. Its own calls of m_grad and m_hvp are not the library's: not counted. */
static int m_hvp_dir(size_t step, const double *w, const double *meta, revl_dir_fn dir,
                     void *ctx, const double *v, double *g, double *hv, double *hm, void *user)
{
    model *q = user;
    size_t n_grad = q->n_grad, n_hvp = q->n_hvp;
    int misuse = (long)step == q->misuse_dir_at ? q->misuse_dir : 0;
    q->n_hvp_dir++;
    if (misuse == 3)
        return 5;
    double *own = q->own_grad ? malloc(q->p * sizeof *own) : NULL, *gw = own ? own : g;
    m_grad(step, w, meta, gw, NULL, user);
    int rc = misuse == 1 ? 0 : dir(ctx, misuse == 5 ? NULL : gw);
    if (!rc && misuse == 2)
        rc = dir(ctx, gw);
    if (!rc)
        m_hvp(step, w, meta, v, NULL, hv, hm, user);
    free(own);
    q->n_grad = n_grad;
    q->n_hvp = n_hvp;
    return rc;
}

static void m_free(void *u)
{
    model *q = u;
    free(q->a);
    free(q->c);
    free(q->sc);
    free(q);
}

/* dead: every dead-th weight has sc = 0 (0: none) */
static revl_model *make_model(size_t p, size_t dead, model **out)
{
    model *q = calloc(1, sizeof *q);
    q->p = p;
    q->a = malloc(p * sizeof *q->a);
    q->c = malloc(p * sizeof *q->c);
    q->sc = malloc(p * sizeof *q->sc);
    q->b = 0.3;
    q->nan_at = q->huge_at = q->fail_affine_at = q->drift_at = q->nan_hm_at = -1;
    q->misuse_dir_at = -1;
    q->fail_grad_at = -1;
    for (size_t i = 0; i < p; i++) {
        q->a[i] = 0.5 + 1.5 * (double)((i * 7 + 3) % 11) / 10.0;
        q->c[i] = (double)((i * 3 + 1) % 5) - 2.0;
        q->sc[i] = pow(10.0, -3.0 + (double)(i % 6));
        if (dead && i % dead == dead - 1)
            q->sc[i] = 0.0;
    }
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = p;
    d.n_meta = 1;
    d.grad = m_grad;
    d.hvp = m_hvp;
    d.user = q;
    d.user_free = m_free;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    if (out)
        *out = q;
    return m;
}

/* ------------------------------------------------------------------ schedules */

#ifndef RNG_SEED
#define RNG_SEED 7
#endif
static uint64_t rng = RNG_SEED;
static double uniform(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) * 0x1p-53;
}

/* A random value of a kind in a range each optimiser trains well with. */
static double random_value(revl_optimizer opt, revl_hyper kind)
{
    double u = uniform();
    switch (kind) {
    case REVL_HYPER_ALPHA:
        return opt == REVL_OPTIM_MOMENTUM ? 0.001 + 0.003 * u : 0.003 + 0.01 * u;
    case REVL_HYPER_GAMMA:
        return 0.5 + 0.45 * u;
    case REVL_HYPER_BETA1:
        return 0.7 + 0.25 * u;
    case REVL_HYPER_BETA2:
        return 0.9 + 0.099 * u;
    case REVL_HYPER_EPS:
        return 1e-3 + 1e-2 * u;
    case REVL_HYPER_WEIGHT_DECAY: /* AdamW: alpha lambda from 1.5e-3 to 2.6e-2; coupled (momentum,
                                   * RMSprop): lambda beside the loss's curvature 1 */
        return opt == REVL_OPTIM_ADAMW ? 0.5 + 1.5 * u : 0.05 + 0.45 * u;
    case REVL_HYPER_CLIP: /* the driver's kind, in no optimiser's list: check_clip tests it */
        break;
    }
    ck_abort_msg("no random value for kind %d: a new kind must be tested", (int)kind);
    return 0;
}

/* Does the schedule have the kind? (Adam-like optimisers: beta1; those with gamma.) */
static int has_kind(const revl_schedule *s, revl_hyper kind)
{
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < nk; k++)
        if (kinds[k] == kind)
            return 1;
    return 0;
}

static revl_schedule *random_schedule(revl_optimizer opt, size_t steps, size_t ng, size_t p)
{
    size_t *off = malloc((ng + 1) * sizeof *off);
    for (size_t g = 0; g <= ng; g++)
        off[g] = g * p / ng;
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, steps, ng, off, NULL), REVL_OK);
    free(off);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    double *v = malloc(steps * ng * sizeof *v);
    for (size_t k = 0; k < nk; k++) {
        for (size_t j = 0; j < steps * ng; j++)
            v[j] = random_value(opt, kinds[k]);
        ck_assert_int_eq(revl_schedule_set_kind(s, kinds[k], v), REVL_OK);
    }
    free(v);
    return s;
}

/* f(w) = sum_i (w_i^2/2 + w_i k_i), k_i = 0.1 (i mod 7) - 0.3 */
static double objective(const double *w, size_t p, double *grad)
{
    double f = 0;
    for (size_t i = 0; i < p; i++) {
        double k = 0.1 * (double)(i % 7) - 0.3;
        f += 0.5 * w[i] * w[i] + w[i] * k;
        if (grad)
            grad[i] = w[i] + k;
    }
    return f;
}

static void init_w0(double *w0, size_t p)
{
    for (size_t i = 0; i < p; i++)
        w0[i] = 0.3 * sin(1.0 + (double)i);
}

static double train_f(revl_trainer *t, const double *w0, const double *meta, size_t p)
{
    double *w = malloc(p * sizeof *w);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(t, w), REVL_OK);
    double f = objective(w, p, NULL);
    free(w);
    return f;
}

/* Hypergradients of every kind the schedule has (NULL entries for the others). */
typedef struct hg {
    double *w0, *meta, *kind[REVL_HYPER_COUNT];
} hg;

static int run_hypergrad(revl_trainer *t, const revl_schedule *s, const double *w0,
                         const double *meta, size_t p, hg *h)
{
    size_t n = revl_schedule_n_steps(s) * revl_schedule_n_groups(s);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    memset(h, 0, sizeof *h);
    h->w0 = malloc(p * sizeof *h->w0);
    h->meta = malloc(sizeof *h->meta);
    for (size_t k = 0; k < nk; k++)
        h->kind[kinds[k]] = malloc(n * sizeof(double));
    double *w = malloc(p * sizeof *w), *dfdw = malloc(p * sizeof *dfdw);
    int rc = revl_trainer_train(t, w0, meta);
    if (!rc) {
        revl_trainer_weights(t, w);
        objective(w, p, dfdw);
        rc = revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, h->w0, REVL_HYPER_COUNT, h->kind,
                                             h->meta);
    }
    free(w);
    free(dfdw);
    return rc; /* the message stays in t: printed by hypergrad_ok on a real failure only, so
                * that a test expecting a failure prints nothing that reads like one */
}

/* run_hypergrad, asserting success with the trainer's message */
#define hypergrad_ok(t, s, w0, meta, p, h)                                                     \
    do {                                                                                       \
        int rc_ = run_hypergrad(t, s, w0, meta, p, h);                                         \
        ck_assert_msg(rc_ == REVL_OK, "hypergrad: status %d: %s", rc_,                          \
                      revl_trainer_last_error(t));                                             \
    } while (0)

/* a and b bit for bit: d w0, d meta and every kind a has (n values each) */
static void expect_same_hg(const hg *a, const hg *b, size_t p, size_t n)
{
    ck_assert(memcmp(a->w0, b->w0, p * sizeof(double)) == 0);
    ck_assert(memcmp(a->meta, b->meta, sizeof(double)) == 0);
    for (int k = 0; k < REVL_HYPER_COUNT; k++)
        if (a->kind[k])
            ck_assert_msg(memcmp(a->kind[k], b->kind[k], n * sizeof(double)) == 0, "d_%s differs",
                          revl_hyper_name((revl_hyper)k));
}

static void hg_free(hg *h)
{
    free(h->w0);
    free(h->meta);
    for (int k = 0; k < REVL_HYPER_COUNT; k++)
        free(h->kind[k]);
}

/* Every registered optimiser: the loop tests run over revl_optimizer 0 .. REVL_OPTIM_COUNT-1. */
#define N_OPT REVL_OPTIM_COUNT

/* ------------------------------------------------------------------ exact reversal */

/* AdamW's decay W <- ceil((1 - c) W) (exact/ratio.h) keeps W's place among the n0 or n0 + 1
 * values it maps together, n0 = floor(1/rho): the entropy of that place, 2c bits for c <= 1/2
 * (log2(1/rho) = c / ln 2 is what the multiply destroys on average). */
static double decay_bits(double c)
{
    double rho = 1 - c, n0 = floor(1 / rho), share = (n0 + 1) * (1 - n0 * rho);
    return c == 0 ? 0 : share * log2(n0 + 1) + (1 - share) * log2(n0);
}

/* The information the schedule's kept steps put in the buffer, in bits. Adam's and RMSprop's
 * 128-bit states cost nothing while they are exactly 0: at step 0, and at dead weights (sc 0).
 * *decay: AdamW's decay's share of it, which is a count of kept uniform bits (one where a run
 * of inputs has two members), so the measured value spreads around it like a binomial. */
static double expected_bits(const revl_schedule *s, const model *q, double *decay)
{
    *decay = 0;
    int wide = revl_schedule_optimizer(s) != REVL_OPTIM_MOMENTUM;
    size_t steps = revl_schedule_n_steps(s), ng = revl_schedule_n_groups(s);
    size_t *off = malloc((ng + 1) * sizeof *off);
    revl_schedule_offsets(s, off);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    double *v = malloc(steps * ng * sizeof *v), bits = 0;
    /* RMSprop's coupled decay makes a dead weight's gradient lambda w != 0: its states live from
     * the step after the first lambda != 0 of its group */
    size_t *decay_from = malloc(ng * sizeof *decay_from);
    for (size_t g = 0; g < ng; g++)
        decay_from[g] = SIZE_MAX;
    if (revl_schedule_optimizer(s) == REVL_OPTIM_RMSPROP) {
        revl_schedule_get_kind(s, REVL_HYPER_WEIGHT_DECAY, v);
        for (size_t j = steps * ng; j-- > 0;)
            if (v[j] != 0)
                decay_from[j % ng] = j / ng + 1;
    }
    if (revl_schedule_optimizer(s) == REVL_OPTIM_ADAMW) { /* its decay: every weight (w != 0);
                                                            * coupled decay keeps no bits */
        double *al = malloc(steps * ng * sizeof *al);
        revl_schedule_get_kind(s, REVL_HYPER_ALPHA, al);
        revl_schedule_get_kind(s, REVL_HYPER_WEIGHT_DECAY, v);
        for (size_t j = 0; j < steps * ng; j++)
            *decay += decay_bits(al[j] * v[j]) * (double)(off[j % ng + 1] - off[j % ng]);
        bits += *decay;
        free(al);
    }
    for (size_t k = 0; k < nk; k++) {
        revl_hyper kind = kinds[k];
        if (kind != REVL_HYPER_GAMMA && kind != REVL_HYPER_BETA1 && kind != REVL_HYPER_BETA2)
            continue;
        revl_schedule_get_kind(s, kind, v);
        for (size_t j = 0; j < steps * ng; j++) {
            if (wide && j / ng == 0)
                continue;
            size_t live = 0;
            for (size_t i = off[j % ng]; i < off[j % ng + 1]; i++)
                live += !wide || q->sc[i] != 0 || j / ng >= decay_from[j % ng];
            bits -= log2(revl_hyper_applied(kind, v[j])) * (double)live;
        }
    }
    free(v);
    free(off);
    free(decay_from);
    return bits;
}

static void reverse_case(revl_optimizer opt, size_t p, size_t steps, size_t ng, unsigned frac_bits)
{
    model *q;
    revl_model *m = make_model(p, 5, &q);
    revl_schedule *s = random_schedule(opt, steps, ng, p);
    double *w0 = malloc(p * sizeof *w0), meta[1] = {-1.0};
    init_w0(w0, p);
    double *ref_w = NULL, *ref_dw0 = NULL;
    for (int threads = 1; threads <= 4; threads++) {
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.threads = threads;
        o.frac_bits = frac_bits;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        double *w = malloc(p * sizeof *w), *dfdw = malloc(p * sizeof *dfdw);
        revl_trainer_weights(t, w);
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        double decay, want = expected_bits(s, q, &decay);
        /* plus a constant under half a bit per parameter that does not grow with T (each coder
         * state starts at its lower bound; measured 0.03-0.4 bits), and for AdamW's decay five
         * standard deviations of its count of kept bits (variance at most its mean) */
        ck_assert_msg(fabs(st.buffer_bits - want) <=
                          1e-3 * want + 0.5 * (double)p + 5 * sqrt(decay),
                      "%s: buffer holds %.1f bits, information %.1f (decay %.1f, %zu parameters)",
                      revl_optimizer_name(opt), st.buffer_bits, want, decay, p);
        objective(w, p, dfdw);
        hg h;
        hypergrad_ok(t, s, w0, meta, p, &h);
        revl_trainer_get_stats(t, &st);
        ck_assert_msg(st.buffer_bits < 1e-6, "buffer not empty after reverse: %g", st.buffer_bits);
        /* the trainer stands on w0 rounded to the grid */
        double *back = malloc(p * sizeof *back);
        revl_trainer_weights(t, back);
        for (size_t i = 0; i < p; i++)
            ck_assert(fabs(back[i] - w0[i]) <= ldexp(1.0, -(int)frac_bits));
        if (!ref_w) {
            ref_w = w;
            ref_dw0 = h.w0;
            h.w0 = NULL;
        } else {
            ck_assert_msg(memcmp(ref_w, w, p * sizeof *w) == 0, "w_T differs with %d threads",
                          threads);
            ck_assert_msg(memcmp(ref_dw0, h.w0, p * sizeof *w) == 0,
                          "d_w0 differs with %d threads", threads);
            free(w);
        }
        free(dfdw);
        free(back);
        hg_free(&h);
        revl_trainer_free(t);
    }
    free(ref_w);
    free(ref_dw0);
    free(w0);
    revl_schedule_free(s);
    revl_model_free(m);
}

START_TEST(test_reverse_exact)
{
    revl_optimizer opt = (revl_optimizer)_i;
    reverse_case(opt, 1, 40, 1, 52);
    reverse_case(opt, 37, 200, 3, 52);
    reverse_case(opt, 37, 200, 3, 40);
    reverse_case(opt, 9000, 12, 5, 52); /* three coder blocks, groups across their edges */
    reverse_case(opt, 9000, 12, 5, 40);
}
END_TEST

/* Momentum's exact multiply in vector lanes (coder_vec.h, chosen at run time) gives the plain
 * loop's bits end to end: w_T, the buffer and every hypergradient. */
/* The forward's second thread (threads >= 2 below 2^18 parameters, core/overlap.h) runs each
 * step's exact multiplies while the gradient is computed: the same w_T and hypergradients as
 * one thread, with and without truncation; the worker really does the blocks (the gradient
 * callback waits for it); a NaN gradient or a failing callback with the worker's multiplies
 * done fails the call with its message, and the trainer then trains to the same bits. */
START_TEST(test_overlap_same_bits)
{
    revl_optimizer opt = (revl_optimizer)_i;
    size_t p = 3 * 4096 + 77, steps = 12, ng = 3, n_blocks = 4;
    double *w0 = malloc(p * sizeof *w0), *wt[2];
    init_w0(w0, p);
    double meta = -1.0;
    for (size_t truncate = 0; truncate <= 5; truncate += 5) {
        hg res[2];
        for (int k = 0; k < 2; k++) {
            model *q;
            revl_model *m = make_model(p, 5, &q);
            rng = 99;
            revl_schedule *s = random_schedule(opt, steps, ng, p);
            revl_trainer_options o;
            revl_trainer_options_init(&o);
            o.threads = k ? 2 : 1;
            o.truncate = truncate;
            revl_trainer *t = NULL;
            ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
            if (k) {
                q->wait_worker = t;
                q->nan_at = 4;
                ck_assert_int_eq(revl_trainer_train(t, w0, &meta), REVL_ERR_RANGE);
                expect_msg(revl_trainer_last_error(t), "gradient is NaN at step 4");
                q->nan_at = -1;
                q->fail_grad_at = 7;
                ck_assert_int_eq(revl_trainer_train(t, w0, &meta), REVL_ERR_CALLBACK);
                q->fail_grad_at = -1;
            }
            wt[k] = malloc(p * sizeof *wt[k]);
            ck_assert_int_eq(revl_trainer_train(t, w0, &meta), REVL_OK);
            ck_assert_int_eq(revl_trainer_weights(t, wt[k]), REVL_OK);
            hypergrad_ok(t, s, w0, &meta, p, &res[k]);
            if (k) /* 5 + 8 + 12 + 12 forward steps, every block on the worker */
                ck_assert_uint_eq(rv_overlap_worker_blocks(t->overlap), (5 + 8 + 2 * steps) * n_blocks);
            else
                ck_assert_ptr_null(t->overlap);
            revl_trainer_free(t);
            revl_schedule_free(s);
            revl_model_free(m);
        }
        ck_assert_mem_eq(wt[0], wt[1], p * sizeof *wt[0]);
        ck_assert_mem_eq(res[0].w0, res[1].w0, p * sizeof *res[0].w0);
        ck_assert_mem_eq(res[0].meta, res[1].meta, sizeof *res[0].meta);
        for (int kind = 0; kind < REVL_HYPER_COUNT; kind++)
            if (res[0].kind[kind])
                ck_assert_mem_eq(res[0].kind[kind], res[1].kind[kind], steps * ng * sizeof(double));
        for (int k = 0; k < 2; k++) {
            hg_free(&res[k]);
            free(wt[k]);
        }
    }
    free(w0);
}
END_TEST

/* The run-level exact multiplies (momentum's coder_vec.h, Adam's and RMSprop's wide_vec.h) and
 * the per-parameter arithmetic (adam_dir.h, rms_dir.h) in lanes against the plain loops, end to
 * end: the same weights, buffer and hypergradients. */
START_TEST(test_coder_lanes_same_bits)
{
    static const revl_optimizer lane_opts[] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM,
                                               REVL_OPTIM_RMSPROP};
    revl_optimizer opt = lane_opts[_i];
    size_t p = 9000, steps = 30, ng = 5;
    model *q;
    revl_model *m = make_model(p, 5, &q);
    revl_schedule *s = random_schedule(opt, steps, ng, p);
    double *w0 = malloc(p * sizeof *w0), meta[1] = {-1.0}, *w[2], bits[2];
    init_w0(w0, p);
    hg h[2];
    size_t n = steps * ng;
    for (int plain = 0; plain < 2; plain++) {
        rv_coder_plain_only(plain);
        rv_adam_steps_narrow = plain;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        w[plain] = malloc(p * sizeof *w[plain]);
        revl_trainer_weights(t, w[plain]);
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        bits[plain] = st.buffer_bits;
        hypergrad_ok(t, s, w0, meta, p, &h[plain]);
        revl_trainer_free(t);
    }
    rv_coder_plain_only(0);
    rv_adam_steps_narrow = 0;
    static const char *const names[] = {"momentum", "adam", "rmsprop"};
    printf("%s end to end: %s against plain%s\n", names[_i],
           opt == REVL_OPTIM_MOMENTUM ? rv_coder_run_select().name
           : opt == REVL_OPTIM_ADAM   ? rv_moments_run_select().name
                                      : rv_moments16_run_select().name,
           opt != REVL_OPTIM_RMSPROP ? ""
           : rv_rms_lanes()          ? "; rms_dir.h's lanes AVX-512 (8 lanes)"
                                     : "; rms_dir.h's lanes NOT RUN");
    ck_assert_mem_eq(w[0], w[1], p * sizeof *w[0]);
    ck_assert(bits[0] == bits[1]);
    ck_assert_mem_eq(h[0].w0, h[1].w0, p * sizeof *h[0].w0);
    int kinds = 0;
    for (int kind = 0; kind < REVL_HYPER_COUNT; kind++)
        if (h[0].kind[kind]) {
            ck_assert_mem_eq(h[0].kind[kind], h[1].kind[kind], n * sizeof(double));
            kinds++;
        }
    ck_assert_int_eq(kinds, (int)revl_schedule_kinds(s, NULL));
    for (int k = 0; k < 2; k++) {
        free(w[k]);
        hg_free(&h[k]);
    }
    free(w0);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ finite differences */

#define FD_REL 2e-5
#define FD_ABS 1e-8
static void assert_close(double fd, double rev, const char *what, size_t idx)
{
    ck_assert_msg(fabs(fd - rev) <= FD_REL * fmax(fabs(fd), fabs(rev)) + FD_ABS,
                  "%s[%zu]: finite difference %.12g, reverse %.12g", what, idx, fd, rev);
}

/* The step for a kind's central difference: rates move by whole grid units around the
 * applied value (the hypergradient is taken there). */
static double fd_step(revl_hyper kind, double v)
{
    switch (kind) {
    case REVL_HYPER_GAMMA:
        return 8 * 0x1p-16;
    case REVL_HYPER_BETA1:
    case REVL_HYPER_BETA2:
        return 64 * 0x1p-24;
    case REVL_HYPER_EPS: /* f bends on the scale of eps where sqrt(s) is as small: a short step */
        return 2e-4 * v;
    case REVL_HYPER_WEIGHT_DECAY: /* alpha h far above the decay fraction's precision */
        return 1e-4 * v;
    default:
        return 1e-6;
    }
}

static void fd_case(revl_optimizer opt, size_t truncate, size_t active_from, size_t dead)
{
    const size_t p = 24, steps = 16, ng = 2;
    model *q;
    revl_model *m = make_model(p, dead, &q);
    q->active_from = active_from;
    revl_schedule *s = random_schedule(opt, steps, ng, p);
    if (active_from && has_kind(s, REVL_HYPER_WEIGHT_DECAY)) {
        /* no decay either while the loss is off, so that w_{T-K} = w0 there too */
        double wd[32];
        revl_schedule_get_kind(s, REVL_HYPER_WEIGHT_DECAY, wd);
        for (size_t j = 0; j < active_from * ng; j++)
            wd[j] = 0;
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    }
    double w0[24], wp[24], meta[1] = {-1.0};
    init_w0(w0, p);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.truncate = truncate;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
    hg h;
    hypergrad_ok(t, s, w0, meta, p, &h);
    /* a trainer without truncation for the differences of the whole run */
    revl_trainer *full = NULL;
    ck_assert_int_eq(revl_trainer_create(&full, m, s, NULL), REVL_OK);
    for (size_t i = 0; i < p; i++) {
        double hh = 1e-5;
        memcpy(wp, w0, sizeof wp);
        wp[i] = w0[i] + hh;
        double fp = train_f(full, wp, meta, p);
        wp[i] = w0[i] - hh;
        double fm = train_f(full, wp, meta, p);
        assert_close((fp - fm) / (2 * hh), h.w0[i], "d_w0", i);
    }
    {
        double m0 = meta[0], hh = 1e-5;
        meta[0] = m0 + hh;
        double fp = train_f(full, w0, meta, p);
        meta[0] = m0 - hh;
        double fm = train_f(full, w0, meta, p);
        meta[0] = m0;
        assert_close((fp - fm) / (2 * hh), h.meta[0], "d_meta", 0);
    }
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    double *v = malloc(steps * ng * sizeof *v);
    size_t first = truncate ? steps - truncate : 0;
    for (size_t k = 0; k < nk; k++) {
        revl_hyper kind = kinds[k];
        revl_schedule_get_kind(s, kind, v);
        for (size_t j = 0; j < steps * ng; j++) {
            if (j / ng < first) {
                ck_assert_msg(h.kind[kind][j] == 0.0, "truncated step %zu has a %s gradient",
                              j / ng, revl_hyper_name(kind));
                continue;
            }
            if (j / ng < active_from)
                continue; /* the model does not depend on w there: see the truncation case */
            double v0 = revl_hyper_applied(kind, v[j]), hh = fd_step(kind, v0);
            v[j] = v0 + hh;
            ck_assert_int_eq(revl_schedule_set_kind(s, kind, v), REVL_OK);
            double fp = train_f(full, w0, meta, p);
            v[j] = v0 - hh;
            ck_assert_int_eq(revl_schedule_set_kind(s, kind, v), REVL_OK);
            double fm = train_f(full, w0, meta, p);
            v[j] = v0;
            ck_assert_int_eq(revl_schedule_set_kind(s, kind, v), REVL_OK);
            /* rate steps are larger, so the O(h^2) truncation term is too */
            double fd = (fp - fm) / (2 * hh), rev = h.kind[kind][j];
            double tol = (kind == REVL_HYPER_ALPHA || kind == REVL_HYPER_EPS) ? FD_REL : 2e-4;
            ck_assert_msg(fabs(fd - rev) <= tol * fmax(fabs(fd), fabs(rev)) + 1e-7,
                          "%s: d_%s at step %zu group %zu: finite difference %.12g, reverse %.12g",
                          revl_optimizer_name(opt), revl_hyper_name(kind), j / ng, j % ng, fd, rev);
        }
    }
    free(v);
    hg_free(&h);
    revl_trainer_free(full);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}

START_TEST(test_fd_every_kind) { fd_case((revl_optimizer)_i, 0, 0, 0); }
END_TEST

/* Weights whose gradient is exactly 0 at every step (Adam: m = s = 0): finite, correct. */
START_TEST(test_fd_dead_weights) { fd_case((revl_optimizer)_i, 0, 0, 4); }
END_TEST

/* Truncated to the last K steps of a run whose loss does not depend on w before step T - K:
 * there w_{T-K} = w0 and the states are 0, so the truncated d_w0 and d_meta are the whole
 * run's (checked by finite differences), and earlier steps' entries are 0. */
START_TEST(test_fd_truncated) { fd_case((revl_optimizer)_i, 6, 10, 0); }
END_TEST

/* ------------------------------------------------------------------ the plain double loop */

/* The optimiser's update in plain double precision, with the applied rates. */
static void double_loop(revl_optimizer opt, revl_model *mdl, const revl_schedule *s,
                        const double *w0, const double *meta, double *w)
{
    size_t p = revl_model_n_params(mdl), steps = revl_schedule_n_steps(s);
    size_t ng = revl_schedule_n_groups(s);
    size_t off[8];
    revl_schedule_offsets(s, off);
    double *g = malloc(p * 8), *st1 = calloc(p, 8), *st2 = calloc(p, 8);
    double *val[REVL_HYPER_COUNT] = {0};
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    for (size_t k = 0; k < nk; k++) {
        val[kinds[k]] = malloc(steps * ng * 8);
        revl_schedule_get_kind(s, kinds[k], val[kinds[k]]);
        for (size_t j = 0; j < steps * ng; j++)
            val[kinds[k]][j] = revl_hyper_applied(kinds[k], val[kinds[k]][j]);
    }
    double p1[8], p2[8];
    for (size_t gr = 0; gr < ng; gr++)
        p1[gr] = p2[gr] = 1.0;
    memcpy(w, w0, p * 8);
    for (size_t t = 0; t < steps; t++) {
        ck_assert_int_eq(revl_model_grad(mdl, t, w, meta, g, NULL), REVL_OK);
        for (size_t gr = 0; gr < ng; gr++) {
            size_t k = t * ng + gr;
            double al = val[REVL_HYPER_ALPHA][k];
            if (opt == REVL_OPTIM_ADAM || opt == REVL_OPTIM_ADAMW) {
                double b1 = val[REVL_HYPER_BETA1][k], b2 = val[REVL_HYPER_BETA2][k];
                double eps = val[REVL_HYPER_EPS][k];
                /* torch.optim.AdamW: p.mul_(1 - lr * weight_decay), then Adam's step */
                double rho = opt == REVL_OPTIM_ADAMW ? 1 - al * val[REVL_HYPER_WEIGHT_DECAY][k] : 1;
                p1[gr] *= b1;
                p2[gr] *= b2;
                for (size_t i = off[gr]; i < off[gr + 1]; i++) {
                    w[i] *= rho;
                    st1[i] = b1 * st1[i] + (1 - b1) * g[i];
                    st2[i] = b2 * st2[i] + (1 - b2) * g[i] * g[i];
                    double mh = st1[i] / (1 - p1[gr]), sh = st2[i] / (1 - p2[gr]);
                    w[i] -= al * mh / (sqrt(sh) + eps);
                }
            } else if (opt == REVL_OPTIM_RMSPROP) {
                double mu = val[REVL_HYPER_GAMMA][k], b2 = val[REVL_HYPER_BETA2][k];
                double eps = val[REVL_HYPER_EPS][k], lam = val[REVL_HYPER_WEIGHT_DECAY][k];
                for (size_t i = off[gr]; i < off[gr + 1]; i++) {
                    double gi = g[i] + lam * w[i]; /* torch.optim.RMSprop(weight_decay=) */
                    st2[i] = b2 * st2[i] + (1 - b2) * gi * gi;
                    st1[i] = mu * st1[i] + gi / (sqrt(st2[i]) + eps);
                    w[i] -= al * st1[i];
                }
            } else {
                double ga = val[REVL_HYPER_GAMMA][k], lam = val[REVL_HYPER_WEIGHT_DECAY][k];
                for (size_t i = off[gr]; i < off[gr + 1]; i++) {
                    double gi = g[i] + lam * w[i]; /* torch.optim.SGD(weight_decay=) */
                    st1[i] = ga * st1[i] - (1 - ga) * gi;
                    w[i] += al * st1[i];
                }
            }
        }
    }
    for (int k = 0; k < REVL_HYPER_COUNT; k++)
        free(val[k]);
    free(g);
    free(st1);
    free(st2);
}

/* w_T against the plain double loop: with every bit kept at frac_bits 52, with the first half
 * truncated (those steps round the multiply to nearest and keep nothing), and at frac_bits 40
 * (w's quantum 2^-40, and the exact multiply injecting up to n units of it into momentum's v). */
static double double_loop_gap(revl_optimizer opt, unsigned frac_bits, size_t truncate)
{
    const size_t p = 60, steps = 100, ng = 3;
    revl_model *m = make_model(p, 0, NULL); /* gradients from about 1e-5 to 1e2 */
    uint64_t saved = rng; /* the same schedule for every case, the other tests' draws as before */
    rng = 7;
    revl_schedule *s = random_schedule(opt, steps, ng, p);
    rng = saved;
    double w0[60], w[60], wd[60], meta[1] = {-1.0};
    init_w0(w0, p);
    for (size_t i = 0; i < p; i++) /* w0 on the fixed-point grid, so both loops start equal */
        w0[i] = ldexp(nearbyint(ldexp(w0[i], (int)frac_bits)), -(int)frac_bits);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.frac_bits = frac_bits;
    o.truncate = truncate;
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    revl_trainer_weights(t, w);
    double_loop(opt, m, s, w0, meta, wd);
    double gmin = INFINITY, gmax = 0, worst = 0;
    double g0[60];
    revl_model_grad(m, 0, w0, meta, g0, NULL);
    for (size_t i = 0; i < p; i++) {
        gmin = fmin(gmin, fabs(g0[i]));
        gmax = fmax(gmax, fabs(g0[i]));
        worst = fmax(worst, fabs(w[i] - wd[i]) / fmax(fabs(wd[i]), 1e-3));
    }
    ck_assert_msg(gmin < 1e-4 && gmax > 1e1, "gradients span %g .. %g only", gmin, gmax);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return worst;
}

START_TEST(test_against_double_loop)
{
    revl_optimizer opt = (revl_optimizer)_i;
    const struct {
        unsigned frac_bits;
        size_t truncate;
        double tol;
    } cases[] = {{52, 0, 1e-12}, {52, 50, 1e-12}, {40, 0, 5e-9}}; /* measured: <= 5.5e-14, 4.7e-10 */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double gap = double_loop_gap(opt, cases[c].frac_bits, cases[c].truncate);
        printf("%s: frac_bits %u, truncate %zu: w_T within %.2g of the double loop\n",
               revl_optimizer_name(opt), cases[c].frac_bits, cases[c].truncate, gap);
        ck_assert_msg(gap <= cases[c].tol, "%s (frac_bits %u, truncate %zu): w_T differs from "
                      "the double loop by %g relative", revl_optimizer_name(opt),
                      cases[c].frac_bits, cases[c].truncate, gap);
    }
}
END_TEST

/* ------------------------------------------------------------------ errors */

START_TEST(test_schedule_errors)
{
    size_t off[2] = {0, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, (revl_optimizer)9, 3, 1, off, NULL),
                     REVL_ERR_INVALID);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(revl_schedule_create_for(&s, REVL_OPTIM_ADAM, 3, 1, off, NULL), REVL_OK);
    ck_assert_int_eq(revl_schedule_optimizer(s), REVL_OPTIM_ADAM);
    double v[3] = {0.9, 0.9, 0.9}, got[3];
    /* defaults */
    ck_assert_int_eq(revl_schedule_get_kind(s, REVL_HYPER_BETA2, got), REVL_OK);
    ck_assert(got[0] == 0.999);
    ck_assert_int_eq(revl_schedule_get_kind(s, REVL_HYPER_EPS, got), REVL_OK);
    ck_assert(got[2] == 1e-8);
    const double bad_beta[] = {0.0, 1.0, NAN, 1.5, -0.1};
    for (size_t k = 0; k < sizeof bad_beta / sizeof bad_beta[0]; k++) {
        v[1] = bad_beta[k];
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_BETA1, v), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), "beta1 = ");
        expect_msg(revl_schedule_last_error(s), "outside [2^-24, 1-2^-24] at step 1, group 0");
        ck_assert_int_eq(revl_schedule_get_kind(s, REVL_HYPER_BETA1, got), REVL_OK);
        ck_assert(got[1] == 0.9); /* nothing changed */
    }
    /* just outside, shown with the digits that make it so */
    v[1] = 1 - 0x1p-25;
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_BETA1, v), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "beta1 = 0.9999999701976776 outside [2^-24, 1-2^-24]");
    v[1] = 0x1p-25;
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_BETA2, v), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "beta2 = 2.9802322387695312e-08 outside");
    v[1] = 0.9;
    const double bad_eps[] = {0.0, -1e-8, INFINITY, NAN};
    for (size_t k = 0; k < sizeof bad_eps / sizeof bad_eps[0]; k++) {
        v[2] = bad_eps[k];
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_EPS, v), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), "must be finite and > 0 at step 2, group 0");
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_EPS, bad_eps[k]), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), "revl_schedule_fill_kind: eps = ");
    }
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_GAMMA, v), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "this adam schedule has no gamma");
    ck_assert_int_eq(revl_schedule_set(s, 0, 0, 0.1, 0.9), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "revl_schedule_set: this adam schedule has no gamma");
    ck_assert_int_eq(revl_schedule_set_kind(s, (revl_hyper)17, v), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "unknown hyperparameter kind 17");
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_BETA1, NULL), REVL_ERR_INVALID);
    /* the grid: 1 - beta within 1% of the request for the betas users type */
    const double typed[] = {0.9, 0.99, 0.999, 0.9999};
    for (size_t k = 0; k < 4; k++) {
        double ap = revl_hyper_applied(REVL_HYPER_BETA2, typed[k]);
        ck_assert_msg(fabs((1 - ap) - (1 - typed[k])) <= 0.01 * (1 - typed[k]),
                      "beta %g applied as %.10g", typed[k], ap);
    }
    ck_assert(isnan(revl_hyper_applied(REVL_HYPER_BETA1, 1.0)));
    ck_assert(revl_hyper_applied(REVL_HYPER_GAMMA, 1.0) == 1.0);
    ck_assert(isnan(revl_hyper_applied(REVL_HYPER_EPS, 0.0)));
    ck_assert_str_eq(revl_optimizer_name(REVL_OPTIM_RMSPROP), "rmsprop");
    ck_assert_ptr_null(revl_optimizer_name((revl_optimizer)5));
    ck_assert_str_eq(revl_hyper_name(REVL_HYPER_BETA2), "beta2");
    ck_assert_ptr_null(revl_hyper_name((revl_hyper)-1));
    revl_schedule_free(s);
}
END_TEST

START_TEST(test_hypergrad_wrong_kind)
{
    revl_model *m = make_model(4, 0, NULL);
    size_t off[2] = {0, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, REVL_OPTIM_ADAM, 3, 1, off, NULL), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[4] = {0.1, 0.2, 0.3, 0.4}, meta[1] = {0}, dfdw[4] = {1, 1, 1, 1}, da[3], dg[3];
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, NULL, da, dg, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_trainer_last_error(t), "revl_trainer_hypergrad: this adam schedule has "
                                                 "no gamma (its entry must be NULL)");
    /* still trained: the right call works */
    ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, NULL, da, NULL, NULL), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* revl_trainer_hypergrad_kinds reads exactly the 5 entries it shipped with, never
 * REVL_HYPER_COUNT (an old program's array has 5): a heap array of exactly 5 (AddressSanitizer
 * sees a sixth read), and a poison pointer right after 5 entries that must never be used. The
 * counted call reads n_kinds entries, refuses a non-NULL entry past the kinds it knows, and
 * takes kinds past n_kinds as not wanted. */
START_TEST(test_hypergrad_kinds_shipped_count)
{
    revl_model *m = make_model(4, 0, NULL);
    size_t off[2] = {0, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, REVL_OPTIM_ADAM, 3, 1, off, NULL), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[4] = {0.1, 0.2, 0.3, 0.4}, meta[1] = {0}, dfdw[4] = {1, 1, 1, 1}, ref[3], da[3];
    double **five = malloc(5 * sizeof *five);
    for (int k = 0; k < 5; k++)
        five[k] = NULL;
    five[REVL_HYPER_ALPHA] = ref;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds(t, dfdw, NULL, NULL, five, NULL), REVL_OK);
    free(five);
    struct {
        double *d[5];
        double *poison;
    } old = {{NULL}, (double *)(uintptr_t)8};
    old.d[REVL_HYPER_ALPHA] = da;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds(t, dfdw, NULL, NULL, old.d, NULL), REVL_OK);
    ck_assert(memcmp(da, ref, sizeof da) == 0);
    /* the counted call: kinds past n_kinds are not wanted; entries past the library's kinds
     * must be NULL */
    double *more[REVL_HYPER_COUNT + 2] = {NULL};
    more[REVL_HYPER_ALPHA] = da;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, NULL, REVL_HYPER_COUNT + 2,
                                                    more, NULL),
                     REVL_OK);
    ck_assert(memcmp(da, ref, sizeof da) == 0);
    more[REVL_HYPER_COUNT + 1] = ref;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, NULL, REVL_HYPER_COUNT + 2,
                                                    more, NULL),
                     REVL_ERR_INVALID);
    char want[96];
    snprintf(want, sizeof want,
             "revl_trainer_hypergrad_kinds_n: d_kinds[%d] is not NULL, but this library knows "
             "%d kinds",
             REVL_HYPER_COUNT + 1, REVL_HYPER_COUNT);
    ck_assert_str_eq(revl_trainer_last_error(t), want);
    /* still trained; n_kinds 0 with a poison array reads nothing */
    ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, NULL, 0,
                                                    (double *const *)(uintptr_t)8, NULL),
                     REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, NULL, REVL_HYPER_ALPHA + 1,
                                                    old.d, NULL),
                     REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* AdamW with weight_decay 0 (or 1e-30) everywhere is Adam bit for bit: w_T, every hypergradient, d_w0,
 * d_meta and the buffer (the decay's fast path: no multiply, no bits). */
START_TEST(test_adamw_lambda0_is_adam)
{
    const size_t p = 40, steps = 20, ng = 2;
    revl_model *m = make_model(p, 5, NULL);
    revl_schedule *sa = random_schedule(REVL_OPTIM_ADAM, steps, ng, p), *sw = NULL;
    size_t off[3];
    revl_schedule_offsets(sa, off);
    ck_assert_int_eq(revl_schedule_create_for(&sw, REVL_OPTIM_ADAMW, steps, ng, off, NULL),
                     REVL_OK);
    double v[40];
    const revl_hyper shared[] = {REVL_HYPER_ALPHA, REVL_HYPER_BETA1, REVL_HYPER_BETA2,
                                 REVL_HYPER_EPS};
    for (size_t k = 0; k < 4; k++) {
        revl_schedule_get_kind(sa, shared[k], v);
        ck_assert_int_eq(revl_schedule_set_kind(sw, shared[k], v), REVL_OK);
    }
    /* 0, and a weight_decay whose alpha lambda is below 2^-65: k = 0, the identity, which the
     * decay's run (ratio_run.h, for rho >= 1/2) must not be given */
    static const double decays[] = {0.0, 1e-30};
    for (int z = 0; z < 2; z++) {
        ck_assert_int_eq(revl_schedule_fill_kind(sw, REVL_HYPER_WEIGHT_DECAY, decays[z]),
                         REVL_OK);
        double w0[40], meta[1] = {-1}, w[2][40];
        init_w0(w0, p);
        hg h[2];
        double bits[2];
        for (int which = 0; which < 2; which++) {
            revl_schedule *s = which ? sw : sa;
            revl_trainer *t = NULL;
            ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
            ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
            revl_trainer_weights(t, w[which]);
            revl_trainer_stats st = {.struct_size = sizeof st};
            revl_trainer_get_stats(t, &st);
            bits[which] = st.buffer_bits;
            hypergrad_ok(t, s, w0, meta, p, &h[which]);
            revl_trainer_free(t);
        }
        ck_assert(memcmp(w[0], w[1], sizeof w[0]) == 0);
        ck_assert(bits[0] == bits[1]);
        ck_assert(memcmp(h[0].w0, h[1].w0, p * sizeof(double)) == 0);
        ck_assert(memcmp(h[0].meta, h[1].meta, sizeof(double)) == 0);
        for (size_t k = 0; k < 4; k++)
            ck_assert_msg(memcmp(h[0].kind[shared[k]], h[1].kind[shared[k]],
                                 steps * ng * sizeof(double)) == 0,
                          "d_%s differs from Adam's", revl_hyper_name(shared[k]));
        /* d_weight_decay at 0 is -alpha sum dw w: not 0 */
        ck_assert(h[1].kind[REVL_HYPER_WEIGHT_DECAY][0] != 0);
        hg_free(&h[0]);
        hg_free(&h[1]);
    }
    revl_schedule_free(sa);
    revl_schedule_free(sw);
    revl_model_free(m);
}
END_TEST

/* d_alpha and d_weight_decay against central differences of the whole run at the edges: alpha
 * lambda = 1e-8 (lambda near 0) and alpha lambda = 0.97 (a decay factor of 0.03) at one step. */
START_TEST(test_adamw_fd_edges)
{
    const size_t p = 12, steps = 8, ng = 2;
    revl_model *m = make_model(p, 0, NULL);
    revl_schedule *s = random_schedule(REVL_OPTIM_ADAMW, steps, ng, p);
    double al[16], wd[16];
    revl_schedule_get_kind(s, REVL_HYPER_ALPHA, al);
    for (size_t j = 0; j < steps * ng; j++)
        wd[j] = 1e-8 / al[j];
    const size_t edge = 5 * ng + 1; /* step 5, group 1 */
    wd[edge] = 0.97 / al[edge];
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[12], meta[1] = {-1};
    init_w0(w0, p);
    hg h;
    hypergrad_ok(t, s, w0, meta, p, &h);
    const size_t js[] = {0, 3, edge, steps * ng - 1};
    for (size_t c = 0; c < 4; c++)
        for (int kind = 0; kind < 2; kind++) {
            revl_hyper k = kind ? REVL_HYPER_WEIGHT_DECAY : REVL_HYPER_ALPHA;
            double *v = kind ? wd : al, v0 = v[js[c]];
            /* lambda near 0: half of it (alpha h = 5e-9, far above the fraction's 2^-51 and
             * f's rounding; f is linear in lambda there) */
            double hh = kind ? (js[c] == edge ? 1e-4 : 0.5) * v0 : 1e-6 * (js[c] == edge ? 0.01 : 1);
            v[js[c]] = v0 + hh;
            ck_assert_int_eq(revl_schedule_set_kind(s, k, v), REVL_OK);
            double fp = train_f(t, w0, meta, p);
            v[js[c]] = v0 - hh;
            ck_assert_int_eq(revl_schedule_set_kind(s, k, v), REVL_OK);
            double fm = train_f(t, w0, meta, p);
            v[js[c]] = v0;
            ck_assert_int_eq(revl_schedule_set_kind(s, k, v), REVL_OK);
            double fd = (fp - fm) / (2 * hh), rev = h.kind[k][js[c]];
            ck_assert_msg(fabs(fd - rev) <= 1e-5 * fmax(fabs(fd), fabs(rev)) + 1e-9,
                          "d_%s at step %zu group %zu (alpha lambda %g): finite difference "
                          "%.12g, reverse %.12g", revl_hyper_name(k), js[c] / ng, js[c] % ng,
                          al[js[c]] * wd[js[c]], fd, rev);
        }
    hg_free(&h);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A bad weight decay is INVALID naming step and group: negative or NaN when set (nothing
 * changed), alpha lambda outside [0, 1 - 2^-18] when training (the trainer usable again). */
/* Coupled weight decay (momentum, RMSprop; _i 0, 1) near and at 0: d_weight_decay against
 * differences of the whole run at lambda = 0 (one-sided: lambda < 0 is refused; f is linear in
 * lambda to O(h^2) there) and at lambda = 1e-7 (central); d_alpha beside it. */
START_TEST(test_coupled_decay_near_0)
{
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_MOMENTUM;
    const size_t p = 12, steps = 8, ng = 2;
    revl_model *m = make_model(p, 0, NULL);
    revl_schedule *s = random_schedule(opt, steps, ng, p);
    double wd[16];
    for (size_t j = 0; j < steps * ng; j++)
        wd[j] = j % 2 ? 1e-7 : 0.0;
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[12], meta[1] = {-1};
    init_w0(w0, p);
    hg h;
    hypergrad_ok(t, s, w0, meta, p, &h);
    for (size_t j = 0; j < steps * ng; j++) {
        double v0 = wd[j], hh = v0 ? 0.5 * v0 : 1e-7, fp, fm;
        wd[j] = v0 + hh;
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
        fp = train_f(t, w0, meta, p);
        wd[j] = v0 ? v0 - hh : v0;
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
        fm = train_f(t, w0, meta, p);
        wd[j] = v0;
        double fd = (fp - fm) / (v0 ? 2 * hh : hh), rev = h.kind[REVL_HYPER_WEIGHT_DECAY][j];
        ck_assert_msg(rev != 0, "%s: d_weight_decay at step %zu is 0", revl_optimizer_name(opt),
                      j / ng);
        ck_assert_msg(fabs(fd - rev) <= 1e-4 * fabs(rev) + 1e-9,
                      "%s: d_weight_decay at step %zu group %zu (lambda %g): finite difference "
                      "%.12g, reverse %.12g", revl_optimizer_name(opt), j / ng, j % ng, v0, fd, rev);
    }
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, wd), REVL_OK);
    hg_free(&h);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A bad coupled weight decay (negative, NaN, Inf) is refused by the schedule, naming the step
 * and group, the values unchanged; the same check as AdamW's (no cross-kind condition: the
 * coupled decay has no 1 - alpha lambda). */
START_TEST(test_coupled_decay_bad)
{
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_MOMENTUM;
    size_t off[3] = {0, 2, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, 3, 2, off, NULL), REVL_OK);
    double v[6], got[6];
    revl_schedule_get_kind(s, REVL_HYPER_WEIGHT_DECAY, got);
    for (int k = 0; k < 6; k++)
        ck_assert(got[k] == 0.0 && !signbit(got[k])); /* the default: no decay */
    const double bad[] = {-1e-300, NAN, INFINITY, -INFINITY};
    const char *msg[] = {"weight_decay = -1e-300 must be finite and >= 0 at step 2, group 1",
                         "weight_decay = nan must be finite and >= 0 at step 2, group 1",
                         "weight_decay = inf must be finite and >= 0 at step 2, group 1",
                         "weight_decay = -inf must be finite and >= 0 at step 2, group 1"};
    for (int b = 0; b < 4; b++) {
        for (int k = 0; k < 6; k++)
            v[k] = 0.25;
        v[5] = bad[b];
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, v), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), msg[b]);
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, bad[b]),
                         REVL_ERR_INVALID);
        revl_schedule_get_kind(s, REVL_HYPER_WEIGHT_DECAY, got);
        for (int k = 0; k < 6; k++)
            ck_assert(got[k] == 0.0);
    }
    /* large is allowed (no cross-kind condition); lambda w overflowing a double is a range
     * error that names the decay, not the model's gradient */
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, DBL_MAX), REVL_OK);
    revl_model *m = make_model(4, 0, NULL);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[4] = {0, 3.0, 0, 0}, meta[1] = {-1}; /* lambda w: 0, inf, 0, 0 */
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_RANGE);
    expect_msg(revl_trainer_last_error(t), "gradient+weight_decay*w = inf outside the fixed-point "
                                           "range (|x| < 2^1024) at step 0, parameter 1 (forward)");
    revl_trainer_free(t);
    revl_model_free(m);
    revl_schedule_free(s);
}
END_TEST

START_TEST(test_adamw_bad_lambda)
{
    revl_model *m = make_model(4, 0, NULL);
    size_t off[3] = {0, 2, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, REVL_OPTIM_ADAMW, 3, 2, off, NULL), REVL_OK);
    double v[6] = {0.01, 0.01, 0.01, 0.01, -1, 0.01}, got[6];
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, v), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "weight_decay = -1 must be finite and >= 0 at step 2, "
                                            "group 0");
    v[4] = NAN;
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, v), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "weight_decay = nan must be finite and >= 0");
    revl_schedule_get_kind(s, REVL_HYPER_WEIGHT_DECAY, got);
    for (int j = 0; j < 6; j++)
        ck_assert(got[j] == 0.01); /* the default, unchanged */
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[4] = {0.1, 0.2, 0.3, 0.4}, meta[1] = {0};
    const struct {
        double alpha, lambda;
        const char *want;
    } bad[] = {{0.5, 2.0, "alpha*weight_decay = 1 outside [0, 1 - 2^-18]"},
               {0.5, 3.0, "alpha*weight_decay = 1.5 outside [0, 1 - 2^-18]"},
               {-0.1, 0.5, "alpha*weight_decay = -0.05 outside [0, 1 - 2^-18]"}};
    for (size_t c = 0; c < 3; c++) {
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_ALPHA, 1e-3), REVL_OK);
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, 0.01), REVL_OK);
        double a[6], l[6];
        for (int j = 0; j < 6; j++) {
            a[j] = j == 3 ? bad[c].alpha : 1e-3;
            l[j] = j == 3 ? bad[c].lambda : 0.01;
        }
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_ALPHA, a), REVL_OK);
        ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_WEIGHT_DECAY, l), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_INVALID);
        expect_msg(revl_trainer_last_error(t), bad[c].want);
        expect_msg(revl_trainer_last_error(t), "at step 1, group 1");
    }
    /* alpha negative with no decay is fine; the trainer works again */
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, 0.0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* NaN and out-of-range gradients name the step and parameter for every optimiser. */
START_TEST(test_gradient_errors)
{
    revl_optimizer opt = (revl_optimizer)_i;
    model *q;
    revl_model *m = make_model(10, 0, &q);
    revl_schedule *s = random_schedule(opt, 6, 2, 10);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[10], meta[1] = {0};
    init_w0(w0, 10);
    q->nan_at = 3;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_RANGE);
    expect_msg(revl_trainer_last_error(t), "gradient is NaN at step 3, parameter 5 (forward)");
    q->nan_at = -1;
    q->huge_at = 4;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_RANGE);
    expect_msg(revl_trainer_last_error(t), "outside the fixed-point range");
    expect_msg(revl_trainer_last_error(t), "at step 4, parameter 9 (forward)");
    if (has_kind(s, REVL_HYPER_BETA2))
        expect_msg(revl_trainer_last_error(t), "(1-beta");
    q->huge_at = -1;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK); /* usable again */
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* Adam's and RMSprop's forward passes sum a chunk's states before they move the chunk's weights;
 * the failure reported is still the first parameter's in order: a weight out of range at
 * parameter 0 (alpha 1e4 moves it past 2^11) before the NaN gradient at parameter 5 of the same
 * step. */
START_TEST(test_adam_failure_order)
{
    model *q;
    revl_model *m = make_model(10, 0, &q);
    size_t off[2] = {0, 10};
    revl_schedule *s = NULL;
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_ADAM;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, 4, 1, off, NULL), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_ALPHA, 1e4), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[10], meta[1] = {0};
    init_w0(w0, 10);
    q->nan_at = 0;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_ERR_RANGE);
    expect_msg(revl_trainer_last_error(t), "at step 0, parameter 0 (forward)");
    ck_assert_ptr_null(strstr(revl_trainer_last_error(t), "NaN"));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A state that is not 0 never becomes 0 by the exact multiply (it maps 0 to 0 and nothing else
 * to 0): gradients at step 0 only, beta2 at its smallest (s loses 24 bits a step), beta1 near
 * 1 (m keeps its value) trains and reverses without a singularity, all hypergradients finite. */
START_TEST(test_adam_singular)
{
    model *q;
    revl_model *m = make_model(6, 0, &q);
    q->active_until = 1; /* gradients at step 0 only */
    size_t off[2] = {0, 6};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, REVL_OPTIM_ADAM, 12, 1, off, NULL), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_BETA2, 0x1p-24), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_BETA1, 0.9999), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_EPS, 1.0), REVL_OK); /* w stays in range */
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, meta[1] = {0};
    hg h;
    hypergrad_ok(t, s, w0, meta, 6, &h);
    for (size_t k = 0; k < 12; k++)
        ck_assert(isfinite(h.kind[REVL_HYPER_BETA2][k]) && isfinite(h.kind[REVL_HYPER_BETA1][k]));
    hg_free(&h);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A gradient so small that (1-beta2) g^2 is below s's unit while (1-beta1) g is not below m's:
 * for g != 0 the true increment of s is > 0, so s grows by at least one unit and training and
 * its exact reversal go on (this was "s is 0 while m is not" at step 0), also when exact zeros
 * follow it. */
START_TEST(test_tiny_gradient_singular)
{
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_ADAM;
    model *q;
    revl_model *m = make_model(6, 0, &q);
    for (size_t i = 0; i < 6; i++)
        q->sc[i] = 1.0;
    q->sc[4] = 1e-18;
    revl_schedule *s = random_schedule(opt, 5, 1, 6);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, meta[1] = {0}, dfdw[6] = {1, 1, 1, 1, 1, 1};
    double dw0[6], dmeta[1];
    ck_assert_msg(revl_trainer_train(t, w0, meta) == REVL_OK, "%s", revl_trainer_last_error(t));
    size_t k_s = opt == REVL_OPTIM_ADAM ? 1 : 0; /* s among the optimiser's states */
    ck_assert(((const rv_wide *)t->opt->state(t->opt_self, k_s).data)[4] > 0);
    ck_assert_msg(revl_trainer_hypergrad(t, dfdw, NULL, dw0, NULL, NULL, dmeta) == REVL_OK, "%s",
                  revl_trainer_last_error(t));
    for (size_t i = 0; i < 6; i++)
        ck_assert(isfinite(dw0[i]));
    /* the tiny gradient at step 0 only, exact zeros after */
    q->active_until = 1;
    ck_assert_msg(revl_trainer_train(t, w0, meta) == REVL_OK, "%s", revl_trainer_last_error(t));
    ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, dw0, NULL, NULL, dmeta), REVL_OK);
    q->active_until = 0;
    q->sc[4] = 1.0;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A model's fused gradient + H (a + b g) gives the bits of the gradient-then-hvp fallback, for
 * every optimiser (momentum and RMSprop never call it); a failing one names its step. */
START_TEST(test_fused_callback_same_bits)
{
    revl_optimizer opt = (revl_optimizer)_i;
    const size_t p = 30, steps = 20;
    model *q;
    revl_model *m = make_model(p, 4, &q);
    revl_schedule *s = random_schedule(opt, steps, 3, p);
    double w0[30], meta[1] = {-1.0};
    init_w0(w0, p);
    hg h[2];
    for (int fused = 0; fused < 2; fused++) {
        ck_assert_int_eq(revl_model_set_hvp_affine(m, fused ? m_hvp_affine : NULL), REVL_OK);
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        hypergrad_ok(t, s, w0, meta, p, &h[fused]);
        revl_trainer_free(t);
    }
    expect_same_hg(&h[0], &h[1], p, steps * 3);
    hg_free(&h[0]);
    hg_free(&h[1]);
    if (has_kind(s, REVL_HYPER_BETA1)) { /* Adam and AdamW use the fused callback */
        q->fail_affine_at = 9;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        hg hf;
        ck_assert_int_eq(run_hypergrad(t, s, w0, meta, p, &hf), REVL_ERR_CALLBACK);
        expect_msg(revl_trainer_last_error(t),
                   "fused gradient and Hessian-vector callback returned 3 at step 9 (reverse)");
        hg_free(&hf);
        revl_trainer_free(t);
    }
    ck_assert_int_eq(revl_model_set_hvp_affine(NULL, NULL), REVL_ERR_INVALID);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A model's fused gradient + H v with v from the library's direction (revl_model_set_hvp_dir)
 * gives the bits of the gradient-then-hvp fallback, in one callback per reverse step where the
 * direction needs the gradient (RMSprop; the others never call it), also when the callback
 * hands the direction its own copy of the gradient. A callback that does not call the
 * direction once, gives it no gradient (NULL) or fails, names its step; the direction's own
 * failure (a gradient that differs from the forward pass's) is reported as itself. (The hook
 * refused on a built-in model: check_mlp's test_fused_bit_identical.) */
START_TEST(test_fused_dir_callback)
{
    revl_optimizer opt = (revl_optimizer)_i;
    const size_t p = 30, steps = 20;
    model *q;
    revl_model *m = make_model(p, 4, &q);
    revl_schedule *s = random_schedule(opt, steps, 3, p);
    double w0[30], meta[1] = {-1.0};
    init_w0(w0, p);
    const int uses = opt == REVL_OPTIM_RMSPROP;
    hg h[3];
    for (int run = 0; run < 3; run++) { /* fallback, fused, fused with its own gradient copy */
        ck_assert_int_eq(revl_model_set_hvp_dir(m, run ? m_hvp_dir : NULL), REVL_OK);
        q->own_grad = run == 2;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        size_t n_fwd = q->n_grad;
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        n_fwd = q->n_grad - n_fwd;
        q->n_grad = q->n_hvp = q->n_hvp_dir = 0;
        hypergrad_ok(t, s, w0, meta, p, &h[run]);
        size_t rev_grad = q->n_grad - n_fwd; /* hypergrad_ok trains again first */
        if (uses && run) {
            ck_assert_uint_eq(q->n_hvp_dir, steps);
            ck_assert_uint_eq(rev_grad, 0);
            ck_assert_uint_eq(q->n_hvp, 0);
        } else {
            ck_assert_uint_eq(q->n_hvp_dir, 0);
            if (uses)
                ck_assert_uint_eq(rev_grad, steps);
        }
        revl_trainer_free(t);
    }
    for (int run = 1; run < 3; run++)
        expect_same_hg(&h[0], &h[run], p, steps * 3);
    for (int run = 0; run < 3; run++)
        hg_free(&h[run]);
    q->own_grad = 0;
    ck_assert_int_eq(revl_model_set_hvp_dir(m, m_hvp_dir), REVL_OK);
    static const struct {
        int misuse;
        const char *want;
    } bad[] = {
        {1, "called the direction 0 times at step 9 (once per call)"},
        {2, "called the direction 2 times at step 9 (once per call)"},
        {3, "fused gradient and Hessian-direction callback returned 5 at step 9 (reverse)"},
        {4, "the gradient at step 9 differs from the forward pass's"},
        {5, "callback gave the direction a NULL gradient at step 9 (reverse)"},
    };
    for (size_t c = 0; uses && c < sizeof bad / sizeof bad[0]; c++) {
        q->misuse_dir_at = 9;
        q->misuse_dir = bad[c].misuse;
        q->drift_at = bad[c].misuse == 4 ? 9 : -1;
        q->armed = 0;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        double w[30], dw0[30];
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        revl_trainer_weights(t, w);
        q->armed = 1;
        int rc = revl_trainer_hypergrad(t, w, NULL, dw0, NULL, NULL, NULL);
        ck_assert_int_eq(rc, bad[c].misuse == 4 ? REVL_ERR_INEXACT : REVL_ERR_CALLBACK);
        expect_msg(revl_trainer_last_error(t), bad[c].want);
        revl_trainer_free(t);
    }
    q->misuse_dir_at = q->drift_at = -1;
    ck_assert_int_eq(revl_model_set_hvp_dir(NULL, m_hvp_dir), REVL_ERR_INVALID);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* A gradient that differs in the reverse pass by one ulp at one step is caught there, by its
 * fingerprint, for every optimiser, also where no state would show it (momentum with gamma = 1
 * keeps no bits); the caller's outputs are untouched by the failed call. */
START_TEST(test_fingerprint_and_outputs_untouched)
{
    revl_optimizer opt = (revl_optimizer)_i;
    const size_t p = 12, steps = 10, ng = 2;
    model *q;
    revl_model *m = make_model(p, 0, &q);
    revl_schedule *s = random_schedule(opt, steps, ng, p);
    if (has_kind(s, REVL_HYPER_GAMMA))
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_GAMMA, 1.0), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[12], meta[1] = {-1}, dfdw[12], out[5][20], dw0[12], dmeta[1] = {-7};
    init_w0(w0, p);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    for (size_t step = 0; step < steps; step += 3) {
        q->drift_at = (long)step;
        q->armed = 0;
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        revl_trainer_weights(t, dfdw);
        q->armed = 1;
        double *d[REVL_HYPER_COUNT] = {0};
        for (size_t k = 0; k < nk; k++) {
            d[kinds[k]] = out[k];
            for (size_t j = 0; j < steps * ng; j++)
                out[k][j] = -7;
        }
        for (size_t i = 0; i < p; i++)
            dw0[i] = -7;
        ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, dw0, REVL_HYPER_COUNT, d, dmeta),
                         REVL_ERR_INEXACT);
        char want[96];
        snprintf(want, sizeof want, "the gradient at step %zu differs from the forward pass's",
                 step);
        expect_msg(revl_trainer_last_error(t), want);
        for (size_t k = 0; k < nk; k++)
            for (size_t j = 0; j < steps * ng; j++)
                ck_assert_msg(out[k][j] == -7, "%s[%zu] written by a failed call",
                              revl_hyper_name(kinds[k]), j);
        for (size_t i = 0; i < p; i++)
            ck_assert(dw0[i] == -7);
        ck_assert(dmeta[0] == -7);
    }
    q->drift_at = -1;
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* The end-of-run checks, reached by corrupting what the gradient cannot see: a dead weight's w
 * or (Adam) s, and the buffer's integrity flag. */
START_TEST(test_verify_catches_corruption)
{
    revl_optimizer opt = (revl_optimizer)_i;
    const size_t p = 8;
    revl_model *m = make_model(p, 4, NULL); /* weights 3 and 7 are dead */
    revl_schedule *s = random_schedule(opt, 6, 1, p);
    if (opt != REVL_OPTIM_ADAMW && has_kind(s, REVL_HYPER_WEIGHT_DECAY)) /* coupled decay: the */
        revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, 0); /* update of a dead w sees w */
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[8], meta[1] = {-1}, dfdw[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    init_w0(w0, p);
    for (int what = 0; what < 4; what++) {
        if (what == 1 && !has_kind(s, REVL_HYPER_BETA1)) /* Adam-like: state 1 is s */
            continue;
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        if (what == 0)
            t->w[3] += 1;
        else if (what == 3)
            t->w[p - 1] += 1; /* the last weight is checked too */
        else if (what == 1)
            ((rv_wide *)t->opt->state(t->opt_self, 1).data)[7] += 1; /* Adam's s */
        else
            t->buf.stacks[0].broken = 1;
        ck_assert_int_eq(revl_trainer_hypergrad_kinds(t, dfdw, NULL, NULL, NULL, NULL),
                         REVL_ERR_INEXACT);
        const char *want[] = {"reverse pass did not reproduce w at step 0: first difference at "
                              "parameter 3 ",
                              /* s shares its coder state with m: either may show it */
                              "at step 0: first difference at parameter 7 ",
                              "reverse pass ended with a non-empty information buffer",
                              "reverse pass did not reproduce w at step 0: first difference at "
                              "parameter 7 "};
        expect_msg(revl_trainer_last_error(t), want[what]);
    }
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* L = 1e-14 w_0 + w_1^2 / 2: w_0's gradient is tiny and constant, so with beta2 = 2^-24 its s
 * is tiny and d u / d s huge, while d u / d m is not. */
static int tiny_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    (void)step, (void)meta, (void)user;
    g[0] = 1e-14;
    g[1] = w[1];
    if (loss)
        *loss = 1e-14 * w[0] + 0.5 * w[1] * w[1];
    return 0;
}

static int tiny_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
                    double *hv, double *hm, void *user)
{
    (void)hm;
    if (g)
        tiny_grad(step, w, meta, g, NULL, user);
    hv[0] = 0;
    hv[1] = v[1];
    return 0;
}

/* Adam's Hessian direction is a + b g: an overflow in b alone (s's adjoint, for a dfdw of
 * 4e283 on a weight whose s is about 1e-28) is the direction's overflow, reported as such,
 * not an Inf handed to the model. */
START_TEST(test_verify_direction_b_overflow)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = 2;
    d.grad = tiny_grad;
    d.hvp = tiny_hvp;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    size_t off[2] = {0, 2};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, REVL_OPTIM_ADAM, 2, 1, off, NULL), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_BETA2, 0x1p-24), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_EPS, 1e-300), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[2] = {0.5, 0.5}, dfdw[2] = {4e283, 1};
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds(t, dfdw, NULL, NULL, NULL, NULL),
                     REVL_ERR_RANGE);
    expect_msg(revl_trainer_last_error(t), "the Hessian-vector direction is not finite at step 1");
    /* a is finite there: it is b's overflow that was caught */
    ck_assert(isfinite(t->dir_a[0]) && !isfinite(t->dir_b[0]));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* Every call the callback made (train, hypergrad, save, load, train_resume, set_checkpoint) was
 * refused with
 * STATE naming the call that runs. */
static void check_reentry_refused(const model *q, const char *running)
{
    char want[128];
    snprintf(want, sizeof want, "called while %s runs on the same trainer", running);
    for (int k = 0; k < N_REENTRY; k++) {
        ck_assert_msg(q->reenter_rc[k] == REVL_ERR_STATE, "re-entry %d during %s: status %d (%s)",
                      k, running, q->reenter_rc[k], q->reenter_msg[k]);
        ck_assert_msg(strstr(q->reenter_msg[k], want), "re-entry %d: message '%s'", k,
                      q->reenter_msg[k]);
    }
}

/* Issue 11's misleading statuses: a trainer called back from its own model's callback (STATE,
 * naming both calls, the running call unharmed), a dfdw so large that the adjoints overflow
 * (RANGE saying so, not blaming the model), a NaN mixed product (RANGE naming it). */
START_TEST(test_reentry_overflow_hv_meta)
{
    revl_optimizer opt = (revl_optimizer)_i;
    const size_t p = 10, steps = 6;
    model *q;
    revl_model *m = make_model(p, 0, &q);
    revl_schedule *s = random_schedule(opt, steps, 2, p);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[10], meta[1] = {-1}, dfdw[10];
    init_w0(w0, p);
    q->reenter = t;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    check_reentry_refused(q, "revl_trainer_train");
    revl_trainer_weights(t, dfdw);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds(t, dfdw, NULL, NULL, NULL, NULL), REVL_OK);
    check_reentry_refused(q, "revl_trainer_hypergrad_kinds"); /* the call made, by its name */
    q->reenter = NULL;
    /* huge but finite dfdw */
    for (size_t i = 0; i < p; i++)
        dfdw[i] = 1.5e308;
    /* never OK with a NaN or Inf in an output: either every output is finite (momentum, whose
     * adjoints stay below DBL_MAX here) or RANGE says what overflowed (Adam: 1/(c1 D) ~ 1e4) */
    {
        double dk[REVL_HYPER_COUNT][12], dw0[10], dme[1];
        double *d[REVL_HYPER_COUNT] = {0};
        revl_hyper kinds[REVL_HYPER_COUNT];
        size_t nk = revl_schedule_kinds(s, kinds);
        for (size_t k = 0; k < nk; k++)
            d[kinds[k]] = dk[k];
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        int rc = revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, dw0, REVL_HYPER_COUNT, d, dme);
        if (has_kind(s, REVL_HYPER_BETA1))
            ck_assert_int_eq(rc, REVL_ERR_RANGE);
        if (rc == REVL_OK) {
            for (size_t i = 0; i < p; i++)
                ck_assert(isfinite(dw0[i]));
            for (size_t k = 0; k < nk; k++)
                for (size_t j = 0; j < steps * 2; j++)
                    ck_assert(isfinite(dk[k][j]));
        } else {
            ck_assert_int_eq(rc, REVL_ERR_RANGE);
            expect_msg(revl_trainer_last_error(t), "the adjoints overflowed; is dfdw too large? "
                                                   "(its largest |entry| is 1.5e+308)");
        }
    }
    /* NaN in the mixed product */
    q->nan_hm_at = 2;
    for (size_t i = 0; i < p; i++)
        dfdw[i] = 1;
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad_kinds(t, dfdw, NULL, NULL, NULL, NULL),
                     REVL_ERR_RANGE);
    expect_msg(revl_trainer_last_error(t), "mixed Hessian-vector product (meta) is NaN at step 2");
    q->nan_hm_at = -1;
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* No allocation per step: a train and a hypergradient allocate the same number of times for
 * T = 4 and T = 40 (the buffer is reserved from the schedule up front). */
START_TEST(test_no_allocation_per_step)
{
    revl_optimizer opt = (revl_optimizer)_i;
    long calls[2];
    for (int k = 0; k < 2; k++) {
        size_t steps = k ? 40 : 4, p = 5000;
        revl_model *m = make_model(p, 3, NULL);
        revl_schedule *s = random_schedule(opt, steps, 2, p);
        failing f = {.fail_at = -1};
        revl_allocator a = failing_allocator(&f);
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.allocator = &a;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        double *w0 = malloc(p * sizeof *w0), meta[1] = {-1};
        init_w0(w0, p);
        long before = f.calls;
        ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        ck_assert_int_eq(revl_trainer_hypergrad_kinds(t, w0, NULL, NULL, NULL, NULL), REVL_OK);
        calls[k] = f.calls - before;
        free(w0);
        revl_trainer_free(t);
        ck_assert_int_eq(f.live, 0);
        revl_schedule_free(s);
        revl_model_free(m);
    }
    ck_assert_msg(calls[0] == calls[1], "%s: %ld allocations at T = 4, %ld at T = 40",
                  revl_optimizer_name(opt), calls[0], calls[1]);
}
END_TEST

/* A failed create has no handle: revl_last_create_error says why (thread-local), and a
 * successful one clears it. */
START_TEST(test_create_errors_say_why)
{
    revl_model *m = make_model(4, 0, NULL);
    size_t off[2] = {0, 5};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, (revl_optimizer)9, 3, 1, off, NULL),
                     REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "revl_schedule_create_for: invalid argument");
    ck_assert_int_eq(revl_schedule_create_for(&s, REVL_OPTIM_ADAM, 3, 1, off, NULL), REVL_OK);
    ck_assert_str_eq(revl_last_create_error(), "");
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "revl_trainer_create: the schedule's groups cover 5 "
                                         "parameters, the model has 4");
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.struct_size = 7;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "revl_trainer_options");
    expect_msg(revl_last_create_error(), "7");
    revl_trainer_options_init(&o);
    o.frac_bits = 63;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "revl_trainer_create: frac_bits = 63 outside 1..62");
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    ho.step_size = -1;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, &ho), REVL_ERR_INVALID);
    expect_msg(revl_last_create_error(), "revl_hyperopt_create: step_size = -1 must be finite");
    ck_assert_ptr_null(h);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("reverse");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_reverse_exact, 0, N_OPT);
    tcase_add_loop_test(tc, test_against_double_loop, 0, N_OPT);
    suite_add_tcase(s, tc);
    tc = tcase_create("fd");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_fd_every_kind, 0, N_OPT);
    tcase_add_loop_test(tc, test_fd_dead_weights, 0, N_OPT);
    tcase_add_loop_test(tc, test_fd_truncated, 0, N_OPT);
    tcase_add_test(tc, test_adamw_fd_edges);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_coder_lanes_same_bits, 0, 3);
    tcase_add_loop_test(tc, test_overlap_same_bits, 0, N_OPT);
    tcase_add_test(tc, test_schedule_errors);
    tcase_add_test(tc, test_hypergrad_wrong_kind);
    tcase_add_test(tc, test_hypergrad_kinds_shipped_count);
    tcase_add_test(tc, test_adamw_lambda0_is_adam);
    tcase_add_test(tc, test_adamw_bad_lambda);
    tcase_add_loop_test(tc, test_coupled_decay_near_0, 0, 2);
    tcase_add_loop_test(tc, test_coupled_decay_bad, 0, 2);
    tcase_add_loop_test(tc, test_gradient_errors, 0, N_OPT);
    tcase_add_test(tc, test_adam_singular);
    tcase_add_loop_test(tc, test_adam_failure_order, 0, 2);
    tcase_add_loop_test(tc, test_tiny_gradient_singular, 0, 2);
    tcase_add_loop_test(tc, test_fused_callback_same_bits, 0, N_OPT);
    tcase_add_loop_test(tc, test_fused_dir_callback, 0, N_OPT);
    tcase_add_loop_test(tc, test_fingerprint_and_outputs_untouched, 0, N_OPT);
    tcase_add_loop_test(tc, test_verify_catches_corruption, 0, N_OPT);
    tcase_add_test(tc, test_verify_direction_b_overflow);
    tcase_add_loop_test(tc, test_reentry_overflow_hv_meta, 0, N_OPT);
    tcase_add_loop_test(tc, test_no_allocation_per_step, 0, N_OPT);
    tcase_add_test(tc, test_create_errors_say_why);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(optim_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
