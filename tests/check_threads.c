/* check_threads.c: the thread-safety promise of revl.h ("distinct handles may be used from
 * different threads at once, and give the same bits as when used one after another"). Jobs
 * (a callback model with its schedule and trainer, the built-in MLP on its own synthetic data
 * set, a hyper-optimiser) run first one after another, then on several threads at once, started
 * together at a barrier; weights after training, every hypergradient, every evaluated loss and
 * every hyperparameter must be the same bits. The jobs never call Check from their threads:
 * they return a status and a message that the main thread asserts. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revl.h"

#define N_THREADS 4

/* ------------------------------------------------------------------ results */

/* Everything a job produced, as one growing array of doubles. */
typedef struct result {
    double *x;
    size_t n, cap;
    int rc;
    char msg[320];
} result;

static void put(result *r, const double *x, size_t n)
{
    if (r->n + n > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->n + n)
            cap *= 2;
        double *nx = realloc(r->x, cap * sizeof *nx);
        if (!nx) {
            r->rc = REVL_ERR_NOMEM;
            return;
        }
        r->x = nx;
        r->cap = cap;
    }
    memcpy(r->x + r->n, x, n * sizeof *x);
    r->n += n;
}

static int job_fail(result *r, int rc, const char *what, const char *detail)
{
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s: %s (%s)", what, revl_strerror(rc), detail);
    return rc;
}

static void result_free(result *r)
{
    free(r->x);
    memset(r, 0, sizeof *r);
}

static void expect_same(const result *seq, const result *par, const char *what, int job)
{
    ck_assert_msg(seq->rc == REVL_OK, "%s job %d sequential: %s", what, job, seq->msg);
    ck_assert_msg(par->rc == REVL_OK, "%s job %d threaded: %s", what, job, par->msg);
    ck_assert_msg(seq->n == par->n && seq->n > 0, "%s job %d: %zu vs %zu numbers", what, job,
                  seq->n, par->n);
    ck_assert_mem_eq(seq->x, par->x, seq->n * sizeof *seq->x);
}

/* ------------------------------------------------------------------ a callback model */

/* L = sum_i a_i/2 (w_i - c_i - s_t)^2 + b sin(w_i) + exp(meta0)/2 w_i^2, with s_t depending on
 * the step, per-parameter a_i and c_i from the job's seed; exact HVP, or none (the library's
 * finite differences, which use the model's own workspace). */
typedef struct wavy {
    size_t p;
    double *a, *c;
    double b;
} wavy;

static double shift(size_t step) { return 0.05 * (double)(step % 3); }

static int wavy_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    const wavy *q = user;
    double lam = meta ? exp(meta[0]) : 0.0, l = 0;
    for (size_t i = 0; i < q->p; i++) {
        double d = w[i] - q->c[i] - shift(step);
        g[i] = q->a[i] * d + q->b * cos(w[i]) + lam * w[i];
        l += 0.5 * q->a[i] * d * d + q->b * sin(w[i]) + 0.5 * lam * w[i] * w[i];
    }
    if (loss)
        *loss = l;
    return 0;
}

static int wavy_hvp(size_t step, const double *w, const double *meta, const double *v,
                    double *g, double *hv, double *hm, void *user)
{
    const wavy *q = user;
    double lam = meta ? exp(meta[0]) : 0.0, wv = 0;
    for (size_t i = 0; i < q->p; i++) {
        hv[i] = (q->a[i] - q->b * sin(w[i]) + lam) * v[i];
        wv += w[i] * v[i];
    }
    if (hm)
        hm[0] = lam * wv;
    return 0;
}

static void wavy_free(void *user)
{
    wavy *q = user;
    if (!q)
        return;
    free(q->a);
    free(q->c);
    free(q);
}

static revl_model *wavy_model(size_t p, uint64_t seed, int with_hvp)
{
    wavy *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->p = p;
    q->b = 0.3;
    q->a = malloc(p * sizeof *q->a);
    q->c = malloc(p * sizeof *q->c);
    if (!q->a || !q->c) {
        wavy_free(q);
        return NULL;
    }
    for (size_t i = 0; i < p; i++) {
        q->a[i] = 0.5 + 1.5 * (double)((i * 7 + seed) % 11) / 10.0;
        q->c[i] = (double)((i * 3 + seed) % 5) - 2.0;
    }
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = p;
    d.n_meta = 1;
    d.grad = wavy_grad;
    d.hvp = with_hvp ? wavy_hvp : NULL;
    d.user = q;
    d.user_free = wavy_free;
    revl_model *m = NULL;
    if (revl_model_create(&m, &d) != REVL_OK) {
        wavy_free(q);
        return NULL;
    }
    return m;
}

/* Train a model with a per-step, per-group schedule from `seed`, take every hypergradient and
 * record w_T and all of them. threads: the trainer's own option. */
static int train_and_reverse(result *r, revl_model *m, const double *meta, uint64_t seed,
                             size_t T, int threads)
{
    size_t p = revl_model_n_params(m), G = revl_model_n_groups(m), nm = revl_model_n_meta(m);
    size_t *off = malloc((G + 1) * sizeof *off);
    double *alpha = malloc(T * G * sizeof *alpha), *gamma = malloc(T * G * sizeof *gamma);
    double *w0 = malloc(p * sizeof *w0), *wT = malloc(p * sizeof *wT);
    double *dfdw = malloc(p * sizeof *dfdw), *d_w0 = malloc(p * sizeof *d_w0);
    double *d_alpha = malloc(T * G * sizeof *d_alpha), *d_gamma = malloc(T * G * sizeof *d_gamma);
    double *d_meta = malloc((nm ? nm : 1) * sizeof *d_meta), *ls = malloc(G * sizeof *ls);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    int rc = REVL_ERR_NOMEM;
    if (!off || !alpha || !gamma || !w0 || !wT || !dfdw || !d_w0 || !d_alpha || !d_gamma ||
        !d_meta || !ls) {
        job_fail(r, rc, "setup", "malloc");
        goto out;
    }
    revl_model_group_offsets(m, off);
    if ((rc = revl_schedule_create(&s, T, G, off))) {
        job_fail(r, rc, "schedule", "create");
        goto out;
    }
    for (size_t k = 0; k < T * G; k++) {
        alpha[k] = 0.05 + 0.01 * (double)((k * 13 + seed) % 7);
        gamma[k] = 0.5 + 0.05 * (double)((k * 5 + seed) % 9);
    }
    for (size_t g = 0; g < G; g++)
        ls[g] = -1.5 - 0.1 * (double)g;
    if ((rc = revl_schedule_set_all(s, alpha, gamma))) {
        job_fail(r, rc, "schedule", revl_schedule_last_error(s));
        goto out;
    }
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = threads;
    if ((rc = revl_trainer_create(&t, m, s, &o))) {
        job_fail(r, rc, "trainer", "create");
        goto out;
    }
    if ((rc = revl_model_init_weights(m, ls, seed, w0))) {
        job_fail(r, rc, "init", revl_model_last_error(m));
        goto out;
    }
    if ((rc = revl_trainer_train(t, w0, meta))) {
        job_fail(r, rc, "train", revl_trainer_last_error(t));
        goto out;
    }
    revl_trainer_weights(t, wT);
    put(r, wT, p);
    revl_trainer_stats st = {.struct_size = sizeof st};
    revl_trainer_get_stats(t, &st);
    put(r, &st.last_loss, 1);
    put(r, &st.buffer_bits, 1);
    for (size_t i = 0; i < p; i++)
        dfdw[i] = wT[i] - 0.5; /* f = |w_T - 0.5|^2 / 2 */
    if ((rc = revl_trainer_hypergrad(t, dfdw, NULL, d_w0, d_alpha, d_gamma, nm ? d_meta : NULL))) {
        job_fail(r, rc, "hypergrad", revl_trainer_last_error(t));
        goto out;
    }
    put(r, d_w0, p);
    put(r, d_alpha, T * G);
    put(r, d_gamma, T * G);
    put(r, d_meta, nm);
    /* back at w0: the trainer's weights are w0 rounded to the fixed point */
    revl_trainer_weights(t, wT);
    put(r, wT, p);
    rc = r->rc;
out:
    revl_trainer_free(t);
    revl_schedule_free(s);
    free(off);
    free(alpha);
    free(gamma);
    free(w0);
    free(wT);
    free(dfdw);
    free(d_w0);
    free(d_alpha);
    free(d_gamma);
    free(d_meta);
    free(ls);
    return rc;
}

/* ------------------------------------------------------------------ the jobs */

/* A data set of n examples: features a fixed function of (seed, i, j), labels from a linear
 * rule so that there is something to learn. */
static revl_dataset *synthetic(size_t n, size_t dim, size_t classes, uint64_t seed)
{
    double *x = malloc(n * dim * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    revl_dataset *d = NULL;
    if (!x || !y)
        goto out;
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 12345;
    for (size_t i = 0; i < n; i++) {
        double score = 0;
        for (size_t j = 0; j < dim; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double v = (double)(s >> 11) * 0x1p-53 * 2 - 1;
            x[i * dim + j] = v;
            score += v * (double)((j % 3) + 1);
        }
        y[i] = (int32_t)((size_t)(fabs(score) * 3.0) % classes);
    }
    y[0] = (int32_t)(classes - 1);
    if (revl_dataset_create(&d, NULL) != REVL_OK)
        goto out;
    if (revl_dataset_set(d, n, dim, classes, x, y) != REVL_OK) {
        revl_dataset_free(d);
        d = NULL;
    }
out:
    free(x);
    free(y);
    return d;
}

/* Job "callback": the wavy model over 2 groups (with an hvp, or with finite differences). */
static void job_callback(result *r, uint64_t seed, int with_hvp, int threads)
{
    size_t p = with_hvp ? 9000 : 700; /* 9000: three blocks of the trainer's buffer */
    revl_model *m = wavy_model(p, seed, with_hvp);
    if (!m) {
        job_fail(r, REVL_ERR_NOMEM, "model", "create");
        return;
    }
    size_t off[3] = {0, p / 3, p};
    int rc = revl_model_set_groups(m, 2, off);
    if (rc) {
        job_fail(r, rc, "groups", revl_model_last_error(m));
    } else {
        double meta[1] = {-2.0 + 0.1 * (double)(seed % 5)};
        train_and_reverse(r, m, meta, seed, 25, threads);
    }
    revl_model_free(m);
}

/* Job "mlp": a 12-24-16-4 tanh MLP with per-layer L2 (minibatches of 40 from 200 examples), its
 * hypergradients, and its loss, gradient and accuracy on a validation set. "big": 64-128-96-4,
 * minibatches of 250 and 1500 validation examples, products large enough for OpenBLAS to use
 * its own threads (when it has more than one). */
static void job_mlp(result *r, uint64_t seed, int threads, int big, const revl_dataset *shared_train,
                    const revl_dataset *shared_valid)
{
    size_t dim = big ? 64 : 12;
    revl_dataset *own_train = shared_train ? NULL : synthetic(big ? 300 : 200, dim, 4, seed);
    revl_dataset *own_valid = shared_valid ? NULL : synthetic(big ? 1500 : 100, dim, 4, seed + 77);
    const revl_dataset *train = shared_train ? shared_train : own_train;
    const revl_dataset *valid = shared_valid ? shared_valid : own_valid;
    revl_model *m = NULL;
    if (!train || !valid) {
        job_fail(r, REVL_ERR_NOMEM, "data", "synthetic");
        goto out;
    }
    size_t widths[4] = {dim, big ? 128 : 24, big ? 96 : 16, 4};
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.activation = REVL_ACT_TANH;
    o.penalty = REVL_PENALTY_PER_LAYER;
    o.batch_size = big ? 250 : 40;
    o.seed = seed;
    int rc = revl_mlp_create(&m, 4, widths, train, &o);
    if (rc) {
        job_fail(r, rc, "mlp", "create");
        goto out;
    }
    double meta[3] = {-4.0, -3.5, -3.0};
    if (train_and_reverse(r, m, meta, seed, big ? 8 : 30, threads))
        goto out;
    size_t p = revl_model_n_params(m);
    double *w = malloc(p * sizeof *w), *g = malloc(p * sizeof *g), loss = 0, acc = 0;
    double ls[6] = {-1, -2, -1, -2, -1, -2};
    if (!w || !g) {
        job_fail(r, REVL_ERR_NOMEM, "evaluate", "malloc");
    } else if ((rc = revl_model_init_weights(m, ls, seed + 1, w)) ||
               (rc = revl_model_evaluate(m, valid, w, &loss, g, &acc))) {
        job_fail(r, rc, "evaluate", revl_model_last_error(m));
    } else {
        put(r, &loss, 1);
        put(r, &acc, 1);
        put(r, g, p);
    }
    free(w);
    free(g);
out:
    revl_model_free(m);
    revl_dataset_free(own_train);
    revl_dataset_free(own_valid);
}

/* f = |w - 0.25|^2 / 2 + 0.1 meta0 for the callback hyper-optimiser. */
static int quad_objective(const double *w, const double *meta, double *f, double *dfdw,
                          double *dfdmeta, void *user)
{
    size_t p = *(const size_t *)user;
    double s = 0;
    for (size_t i = 0; i < p; i++) {
        double d = w[i] - 0.25;
        s += 0.5 * d * d;
        dfdw[i] = d;
    }
    *f = s + (meta ? 0.1 * meta[0] : 0.0);
    if (dfdmeta)
        dfdmeta[0] = 0.1;
    return 0;
}

static void record_hyperopt(result *r, revl_hyperopt *h, size_t n_meta)
{
    size_t T = revl_hyperopt_n_steps(h), G = revl_hyperopt_n_groups(h);
    double *a = malloc(T * G * sizeof *a), *g = malloc(T * G * sizeof *g);
    double *s = malloc(G * sizeof *s), *m = malloc((n_meta ? n_meta : 1) * sizeof *m);
    if (!a || !g || !s || !m) {
        job_fail(r, REVL_ERR_NOMEM, "record", "malloc");
    } else {
        for (int best = 0; best < 2; best++) {
            revl_hyperopt_get(h, best, a, g, s, m);
            put(r, a, T * G);
            put(r, g, T * G);
            put(r, s, G);
            put(r, m, n_meta);
        }
    }
    free(a);
    free(g);
    free(s);
    free(m);
}

/* Job "hyperopt": 3 meta-iterations, learning everything, on the MLP with a validation set
 * (mlp = 1) or on the callback model with a user objective (mlp = 0); every report's numbers
 * (not its wall time) and the current and best hyperparameters are recorded. */
static void job_hyperopt(result *r, uint64_t seed, int mlp)
{
    revl_dataset *train = NULL, *valid = NULL;
    revl_model *m = NULL;
    revl_hyperopt *h = NULL;
    size_t p = 600;
    int rc;
    if (mlp) {
        train = synthetic(120, 8, 3, seed);
        valid = synthetic(60, 8, 3, seed + 99);
        size_t widths[3] = {8, 10, 3};
        revl_mlp_options o;
        revl_mlp_options_init(&o);
        o.penalty = REVL_PENALTY_PER_LAYER;
        o.batch_size = 30;
        o.seed = seed;
        if (!train || !valid || (rc = revl_mlp_create(&m, 3, widths, train, &o))) {
            job_fail(r, REVL_ERR_NOMEM, "mlp", "create");
            goto out;
        }
    } else {
        m = wavy_model(p, seed, 1);
        if (!m) {
            job_fail(r, REVL_ERR_NOMEM, "model", "create");
            goto out;
        }
    }
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE | REVL_LEARN_META;
    o.iterations = 3;
    o.seed = seed;
    o.fresh_seed = 1;
    if (!mlp) {
        o.objective = quad_objective;
        o.objective_user = &p;
    }
    if ((rc = revl_hyperopt_create(&h, m, mlp ? valid : NULL, 12, &o))) {
        job_fail(r, rc, "hyperopt", "create");
        goto out;
    }
    for (size_t it = 0; it < o.iterations; it++) {
        revl_hyperopt_report rep;
        memset(&rep, 0, sizeof rep);
        rep.struct_size = sizeof rep;
        if ((rc = revl_hyperopt_step(h, &rep))) {
            job_fail(r, rc, "hyperopt step", revl_hyperopt_last_error(h));
            goto out;
        }
        double nums[6] = {(double)rep.iteration, rep.train_loss, rep.valid_loss,
                          rep.valid_accuracy, rep.hypergrad_norm, rep.step_size};
        put(r, nums, 6);
    }
    record_hyperopt(r, h, revl_model_n_meta(m));
out:
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_dataset_free(train);
    revl_dataset_free(valid);
}

/* ------------------------------------------------------------------ running them */

enum { JOB_CALLBACK_HVP, JOB_CALLBACK_FD, JOB_MLP, JOB_MLP_BIG, JOB_HYPEROPT_MLP, JOB_HYPEROPT_CALLBACK };

typedef struct work {
    int kinds[3]; /* jobs run one after another by this thread; -1 ends the list */
    uint64_t seed;
    int threads;  /* the trainer's `threads` option */
    const revl_dataset *train, *valid; /* data sets shared by the MLP jobs of all threads, or NULL */
    result res[3];
    pthread_barrier_t *start;
} work;

static void run_work(work *w)
{
    for (int k = 0; k < 3 && w->kinds[k] >= 0; k++) {
        result *r = &w->res[k];
        uint64_t seed = w->seed + 10 * (uint64_t)k;
        switch (w->kinds[k]) {
        case JOB_CALLBACK_HVP: job_callback(r, seed, 1, w->threads); break;
        case JOB_CALLBACK_FD: job_callback(r, seed, 0, w->threads); break;
        case JOB_MLP: job_mlp(r, seed, w->threads, 0, w->train, w->valid); break;
        case JOB_MLP_BIG: job_mlp(r, seed, w->threads, 1, w->train, w->valid); break;
        case JOB_HYPEROPT_MLP: job_hyperopt(r, seed, 1); break;
        default: job_hyperopt(r, seed, 0); break;
        }
    }
}

static void *thread_main(void *arg)
{
    work *w = arg;
    pthread_barrier_wait(w->start);
    run_work(w);
    return NULL;
}

/* Run the works one after another, then each on its own thread, all started at once; compare
 * every result bit for bit. rounds: how many times the threaded run is repeated. */
static void compare_sequential_threaded(const work *proto, size_t n, int rounds)
{
    work *seq = calloc(n, sizeof *seq), *par = calloc(n, sizeof *par);
    pthread_t *tid = calloc(n, sizeof *tid);
    ck_assert(seq && par && tid);
    for (size_t i = 0; i < n; i++) {
        seq[i] = proto[i];
        run_work(&seq[i]);
    }
    for (int round = 0; round < rounds; round++) {
        pthread_barrier_t start;
        ck_assert_int_eq(pthread_barrier_init(&start, NULL, (unsigned)n), 0);
        for (size_t i = 0; i < n; i++) {
            par[i] = proto[i];
            par[i].start = &start;
            ck_assert_int_eq(pthread_create(&tid[i], NULL, thread_main, &par[i]), 0);
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
        pthread_barrier_destroy(&start);
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 3 && proto[i].kinds[k] >= 0; k++) {
                char what[64];
                snprintf(what, sizeof what, "round %d, thread %zu, job kind %d", round, i,
                         proto[i].kinds[k]);
                expect_same(&seq[i].res[k], &par[i].res[k], what, k);
                result_free(&par[i].res[k]);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            result_free(&seq[i].res[k]);
    free(seq);
    free(par);
    free(tid);
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_trainers_distinct_jobs)
{
    /* four threads, each with its own callback models (exact HVP or finite differences) and
     * its own MLP (small or big) on its own data sets, different seeds and trainer thread
     * options */
    work w[N_THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N_THREADS; i++) {
        w[i].kinds[0] = i % 2 ? JOB_CALLBACK_FD : JOB_CALLBACK_HVP;
        w[i].kinds[1] = i < 2 ? JOB_MLP : JOB_MLP_BIG;
        w[i].kinds[2] = i % 2 ? JOB_CALLBACK_HVP : JOB_CALLBACK_FD;
        w[i].seed = 1000 + 17 * (uint64_t)i;
        w[i].threads = i < 2 ? 1 : 2; /* OpenMP teams inside some of the threads */
    }
    compare_sequential_threaded(w, N_THREADS, 2);
}
END_TEST

START_TEST(test_trainers_identical_jobs)
{
    /* the same job with the same seed on every thread: any shared scratch state would show */
    work w[N_THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N_THREADS; i++) {
        w[i].kinds[0] = JOB_MLP;
        w[i].kinds[1] = JOB_CALLBACK_HVP;
        w[i].kinds[2] = -1;
        w[i].seed = 4242;
        w[i].threads = 1;
    }
    compare_sequential_threaded(w, N_THREADS, 2);
    /* and the threaded results agree with each other, which compare_... implies; also across
     * the trainer's thread option, which revl.h promises to be bit-identical */
    work a = w[0], b = w[0];
    b.threads = 2;
    run_work(&a);
    run_work(&b);
    for (int k = 0; k < 2; k++) {
        expect_same(&a.res[k], &b.res[k], "threads option 1 vs 2", k);
        result_free(&a.res[k]);
        result_free(&b.res[k]);
    }
}
END_TEST

START_TEST(test_shared_data_sets)
{
    /* models on different threads reading the same training and validation sets (nothing
     * writes a data set once it is set): each thread has its own MLP, schedule and trainer */
    revl_dataset *train = synthetic(300, 64, 4, 5), *valid = synthetic(1500, 64, 4, 6);
    ck_assert(train && valid);
    work w[N_THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N_THREADS; i++) {
        w[i].kinds[0] = JOB_MLP_BIG;
        w[i].kinds[1] = -1;
        w[i].seed = 300 + (uint64_t)i % 2; /* two pairs of identical jobs */
        w[i].threads = 1;
        w[i].train = train;
        w[i].valid = valid;
    }
    compare_sequential_threaded(w, N_THREADS, 2);
    revl_dataset_free(train);
    revl_dataset_free(valid);
}
END_TEST

START_TEST(test_hyperopt_per_thread)
{
    /* a hyper-optimiser per thread: two on the MLP with a validation set, two on callback
     * models with a user objective */
    work w[N_THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N_THREADS; i++) {
        w[i].kinds[0] = i % 2 ? JOB_HYPEROPT_CALLBACK : JOB_HYPEROPT_MLP;
        w[i].kinds[1] = -1;
        w[i].seed = 77 + (uint64_t)i;
    }
    compare_sequential_threaded(w, N_THREADS, 2);
}
END_TEST

/* ------------------------------------------------------------------ one trainer, two threads */

/* A handle is for one thread at a time (revl.h), but a second thread using a trainer while it
 * trains or reverses is refused, never obeyed: every call but last_error and free takes the
 * in-use guard, but for the reading calls made from the running call's own progress callback
 * (on its thread, where the trainer stands between steps). The running call's progress
 * callback parks it at a step (phase `phase`) until the main thread has made every call; no
 * timing is involved. */
typedef struct parked {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int phase, parked, go;
    int read_rc[2];      /* weights and get_stats from the parked callback itself */
    size_t read_steps;   /* ... and the steps_done it read */
    revl_trainer *t;
    const double *w0, *meta, *dfdw;
    double d_w0[6], d_alpha[8], d_gamma[8], d_meta[1];
    int rc;
} parked;

static int park_at_step_3(size_t step, int phase, double seconds, double loss, void *user)
{
    (void)seconds;
    (void)loss;
    parked *k = user;
    if (phase != k->phase || step != 3)
        return 0;
    /* the running call's own progress callback may read: the trainer stands at step 3 */
    double w[6];
    revl_trainer_stats st;
    revl_trainer_stats_init(&st);
    k->read_rc[0] = revl_trainer_weights(k->t, w);
    k->read_rc[1] = revl_trainer_get_stats(k->t, &st);
    k->read_steps = st.steps_done;
    pthread_mutex_lock(&k->mu);
    k->parked = 1;
    pthread_cond_broadcast(&k->cv);
    while (!k->go)
        pthread_cond_wait(&k->cv, &k->mu);
    pthread_mutex_unlock(&k->mu);
    return 0;
}

static void *parked_run(void *arg)
{
    parked *k = arg;
    k->rc = k->phase == 0 ? revl_trainer_train(k->t, k->w0, k->meta)
                          : revl_trainer_hypergrad(k->t, k->dfdw, NULL, k->d_w0, k->d_alpha,
                                                   k->d_gamma, k->d_meta);
    return NULL;
}

/* Every revl_trainer_* call on t from this thread: each REVL_ERR_STATE naming itself and
 * `running`, its outputs untouched, no file written. */
static void expect_all_refused(revl_trainer *t, const char *running, const double *w0,
                               const double *meta, const char *path)
{
    double out[6], d_a[8], d_g[8], d_m[1], *kinds[REVL_HYPER_COUNT] = {d_a, d_g};
    for (int i = 0; i < 6; i++)
        out[i] = 7.0;
    revl_trainer_stats st;
    revl_trainer_stats_init(&st);
    st.steps_done = 12345;
    int rcs[13];
    const char *names[13] = {
        "revl_trainer_train", "revl_trainer_train_forward", "revl_trainer_train_resume",
        "revl_trainer_hypergrad", "revl_trainer_hypergrad_kinds", "revl_trainer_hypergrad_kinds_n",
        "revl_trainer_hypergrad_resume", "revl_trainer_save", "revl_trainer_load",
        "revl_trainer_set_checkpoint", "revl_trainer_set_progress", "revl_trainer_weights",
        "revl_trainer_get_stats"};
    char msg[13][400];
    int n = 0;
#define CALL(expr) (rcs[n] = (expr), snprintf(msg[n], sizeof msg[n], "%s", \
                    revl_trainer_last_error(t)), n++)
    CALL(revl_trainer_train(t, w0, meta));
    CALL(revl_trainer_train_forward(t, w0, meta));
    CALL(revl_trainer_train_resume(t));
    CALL(revl_trainer_hypergrad(t, w0, NULL, out, d_a, d_g, d_m));
    CALL(revl_trainer_hypergrad_kinds(t, w0, NULL, out, kinds, d_m));
    CALL(revl_trainer_hypergrad_kinds_n(t, w0, NULL, out, REVL_HYPER_COUNT, kinds, d_m));
    CALL(revl_trainer_hypergrad_resume(t, out, REVL_HYPER_COUNT, kinds, d_m));
    CALL(revl_trainer_save(t, path));
    CALL(revl_trainer_load(t, path));
    CALL(revl_trainer_set_checkpoint(t, path, 1));
    CALL(revl_trainer_set_progress(t, NULL, 0, NULL));
    CALL(revl_trainer_weights(t, out));
    CALL(revl_trainer_get_stats(t, &st));
#undef CALL
    for (int i = 0; i < n; i++) {
        ck_assert_msg(rcs[i] == REVL_ERR_STATE, "%s during %s: %d (%s)", names[i], running,
                      rcs[i], msg[i]);
        ck_assert_msg(strncmp(msg[i], names[i], strlen(names[i])) == 0 &&
                          msg[i][strlen(names[i])] == ' ' && strstr(msg[i], running) &&
                          strstr(msg[i], "another thread"),
                      "%s: %s", names[i], msg[i]);
    }
    for (int i = 0; i < 6; i++)
        ck_assert(out[i] == 7.0);
    ck_assert_uint_eq(st.steps_done, 12345);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(!f, "a refused save wrote %s", path);
}

START_TEST(test_second_thread_refused)
{
    double w0[6] = {0.5, -1, 0.25, 2, -0.75, 1}, meta[1] = {-1.0}, dfdw[6];
    size_t off[2] = {0, 6};
    double alpha[8], gamma[8];
    for (int i = 0; i < 8; i++) {
        alpha[i] = 0.05 + 0.01 * i;
        gamma[i] = 0.9;
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/revl_threads_%ld.ckpt", (long)getpid());
    remove(path);
    for (int phase = 0; phase < 2; phase++) {
        revl_model *m = wavy_model(6, 3, 1);
        revl_schedule *s = NULL;
        revl_trainer *t = NULL, *ref = NULL;
        ck_assert(m);
        ck_assert_int_eq(revl_schedule_create(&s, 8, 1, off), REVL_OK);
        ck_assert_int_eq(revl_schedule_set_all(s, alpha, gamma), REVL_OK);
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        ck_assert_int_eq(revl_trainer_create(&ref, m, s, NULL), REVL_OK);
        /* the uninterrupted answers, from a trainer nobody disturbs */
        double ref_wT[6], ref_dw0[6], ref_da[8], ref_dg[8], ref_dm[1], wT[6];
        ck_assert_int_eq(revl_trainer_train(ref, w0, meta), REVL_OK);
        ck_assert_int_eq(revl_trainer_weights(ref, ref_wT), REVL_OK);
        for (int i = 0; i < 6; i++)
            dfdw[i] = ref_wT[i] - 0.5;
        ck_assert_int_eq(revl_trainer_hypergrad(ref, dfdw, NULL, ref_dw0, ref_da, ref_dg, ref_dm),
                         REVL_OK);

        parked k = {.phase = phase, .t = t, .w0 = w0, .meta = meta, .dfdw = dfdw};
        pthread_mutex_init(&k.mu, NULL);
        pthread_cond_init(&k.cv, NULL);
        ck_assert_int_eq(revl_trainer_set_progress(t, park_at_step_3, 1, &k), REVL_OK);
        if (phase == 1)
            ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, parked_run, &k), 0);
        pthread_mutex_lock(&k.mu);
        while (!k.parked)
            pthread_cond_wait(&k.cv, &k.mu);
        pthread_mutex_unlock(&k.mu);
        expect_all_refused(t, phase ? "revl_trainer_hypergrad" : "revl_trainer_train", w0, meta,
                           path);
        pthread_mutex_lock(&k.mu);
        k.go = 1;
        pthread_cond_broadcast(&k.cv);
        pthread_mutex_unlock(&k.mu);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        /* the running call went on unharmed: the same bits as the undisturbed trainer */
        ck_assert_msg(k.rc == REVL_OK, "%s", revl_trainer_last_error(t));
        ck_assert_int_eq(k.read_rc[0], REVL_OK);
        ck_assert_int_eq(k.read_rc[1], REVL_OK);
        ck_assert_uint_eq(k.read_steps, 3);
        if (phase == 0) {
            ck_assert_int_eq(revl_trainer_weights(t, wT), REVL_OK);
            ck_assert_mem_eq(wT, ref_wT, sizeof wT);
        } else {
            ck_assert_mem_eq(k.d_w0, ref_dw0, sizeof ref_dw0);
            ck_assert_mem_eq(k.d_alpha, ref_da, sizeof ref_da);
            ck_assert_mem_eq(k.d_gamma, ref_dg, sizeof ref_dg);
            ck_assert_mem_eq(k.d_meta, ref_dm, sizeof ref_dm);
        }
        /* and the guard was given back: the trainer is usable again from this thread */
        revl_trainer_stats st;
        revl_trainer_stats_init(&st);
        ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_OK);
        ck_assert_int_eq(revl_trainer_set_progress(t, NULL, 0, NULL), REVL_OK);
        pthread_cond_destroy(&k.cv);
        pthread_mutex_destroy(&k.mu);
        revl_trainer_free(t);
        revl_trainer_free(ref);
        revl_schedule_free(s);
        revl_model_free(m);
    }
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_trainers_distinct_jobs);
    tcase_add_test(tc, test_trainers_identical_jobs);
    tcase_add_test(tc, test_shared_data_sets);
    tcase_add_test(tc, test_hyperopt_per_thread);
    tcase_add_test(tc, test_second_thread_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(threads_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
