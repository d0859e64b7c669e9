/* check_mpi.c: exact data-parallel training over real MPI ranks (librevl_mpi). `make check-mpi`
 * runs it under mpirun on 1, 2, 3 and 4 ranks, each under a timeout: every rank's w_T, buffer
 * size and every hypergradient must be the bits of the single-process run (revl_comm_init_local,
 * all micro-batches on one process), hence the same for any number of ranks; a fault on one
 * rank must fail every rank with the same status and message. Check runs in one process per
 * rank (CK_FORK=no: MPI and fork do not mix). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revl_mpi.h"
#include "testutil_dp.h"

static revl_comm comm;

/* The same bytes on every rank: their hashes' min and max agree. */
static int same_on_all_ranks(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211u;
    int64_t v = (int64_t)(h >> 1), lo, hi;
    MPI_Allreduce(&v, &lo, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&v, &hi, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

static const struct {
    int mlp;
    revl_optimizer opt;
    size_t n_micro;
    double weight_decay;
} problems[] = {{0, REVL_OPTIM_MOMENTUM, 6, 0}, {0, REVL_OPTIM_ADAM, 6, 0},
                {1, REVL_OPTIM_MOMENTUM, 5, 0}, {1, REVL_OPTIM_ADAM, 5, 0},
                {0, REVL_OPTIM_MOMENTUM, 6, 0.01}, {0, REVL_OPTIM_RMSPROP, 6, 0.01},
                {1, REVL_OPTIM_ADAMW, 5, 0.01}};

START_TEST(bit_identical_to_single_process)
{
    dp_case c = {.mlp = problems[_i].mlp, .optimizer = problems[_i].opt,
                 .n_micro = problems[_i].n_micro, .weight_decay = problems[_i].weight_decay};
    double *ref, *got;
    size_t n_ref, n;
    char msg[256];
    ck_assert_msg(dp_run(&c, &ref, &n_ref, msg) == REVL_OK, "local: %s", msg);
    c.comm = &comm;
    int rc = dp_run(&c, &got, &n, msg);
    ck_assert_msg(rc == REVL_OK, "rank %d of %d: %s", comm.rank, comm.size, msg);
    ck_assert_uint_eq(n, n_ref);
    ck_assert_msg(memcmp(got, ref, n * sizeof *got) == 0,
                  "rank %d of %d differs from the single-process run", comm.rank, comm.size);
    ck_assert(same_on_all_ranks(got, n * sizeof *got));
    free(ref);
    free(got);
}
END_TEST

static void expect_fault(enum dp_fault fault, int want, const char *text)
{
    dp_case c = {.optimizer = REVL_OPTIM_ADAM, .n_micro = 6, .comm = &comm, .fault = fault,
                 .fault_rank = comm.size - 1, .fault_step = 3};
    double *out;
    size_t n;
    char msg[256] = {0}, rank_text[32];
    int rc = dp_run(&c, &out, &n, msg);
    ck_assert_msg(rc == want, "rank %d: status %d: %s", comm.rank, rc, msg);
    ck_assert_msg(strstr(msg, text), "rank %d: %s", comm.rank, msg);
    snprintf(rank_text, sizeof rank_text, "rank %d", comm.size - 1);
    if (want == REVL_ERR_CALLBACK)
        ck_assert_msg(strstr(msg, rank_text), "rank %d: %s", comm.rank, msg);
    ck_assert_msg(same_on_all_ranks(msg, sizeof msg), "rank %d: %s", comm.rank, msg);
}

START_TEST(callback_failure_on_last_rank)
{
    expect_fault(DP_FAULT_CALLBACK, REVL_ERR_CALLBACK, "'s gradient callback returned 7");
}
END_TEST

START_TEST(nan_on_last_rank)
{
    expect_fault(DP_FAULT_NAN, REVL_ERR_CALLBACK, "is NaN");
}
END_TEST

START_TEST(drift_on_last_rank)
{
    expect_fault(DP_FAULT_DRIFT, REVL_ERR_INEXACT, "step 3");
}
END_TEST

/* The last rank differs in what decides the bits, at points every rank shares: every rank's
 * train fails at that step with the same message (one rank: nothing to differ from). */
static const enum dp_fault differ_faults[] = {DP_FAULT_N_MICRO, DP_FAULT_FRAC_BITS,
                                              DP_FAULT_LAST_ALPHA, DP_FAULT_TRUNCATE,
                                              DP_FAULT_STEPS};

START_TEST(last_rank_differs_fails_every_rank)
{
    dp_case c = {.optimizer = REVL_OPTIM_MOMENTUM, .n_micro = 6, .comm = &comm,
                 .fault = differ_faults[_i], .fault_rank = comm.size - 1};
    double *out = NULL;
    size_t n;
    char msg[256] = {0};
    int rc = dp_run(&c, &out, &n, msg);
    free(out);
    if (comm.size == 1) {
        ck_assert_msg(rc == REVL_OK, "%s", msg);
        return;
    }
    ck_assert_msg(rc == REVL_ERR_CALLBACK, "rank %d: status %d: %s", comm.rank, rc, msg);
    ck_assert_msg(strstr(msg, "not running the same training") && strstr(msg, "(forward)"),
                  "rank %d: %s", comm.rank, msg);
    ck_assert_msg(same_on_all_ranks(msg, sizeof msg), "rank %d: %s", comm.rank, msg);
}
END_TEST

/* ---------------------------------------------------------------- sharded state
 * Problems of 12 blocks of 4,096 parameters (the last one partial), so that 1, 2, 3 and 4 ranks
 * each own 12/R whole blocks: a separable callback model (groups that cross block and rank
 * boundaries, one meta-parameter) and an MLP 20-400-100-3. */
#define SH_P (12 * 4096 - 300)
#define SH_T 8
#define SH_MICRO 6

enum { SH_RANGE = 1, SH_DRIFT, SH_HVP_FAILS };
typedef struct sh_user {
    /* SH_RANGE: the last parameter's curvature is 3·10^5, so its step leaves w's range;
     * SH_DRIFT: the last rank's gradients of step 3 differ by 2^-30 in parameter 0 (owned by
     * rank 0) when recomputed in the reverse pass; SH_HVP_FAILS: its HVP of step 3 returns 9 */
    int fault;
    int rank, last, reversing;
} sh_user;
#define SH_FAULT_STEP 3

/* Micro-batch k's loss: (1/n) sum_i c_ki log cosh(w_i - a_ki), plus exp(meta)/2 |w|^2 in
 * micro-batch 0. */
static void sh_coef(const sh_user *u, size_t k, size_t i, double *a, double *c)
{
    *a = sin(0.37 * (double)i + (double)k);
    *c = (1 + 0.5 * cos(0.11 * (double)i + 0.7 * (double)k)) / SH_MICRO;
    if (u->fault == SH_RANGE && i == SH_P - 1)
        *c = 3e5 / SH_MICRO;
}

static int sh_grad(size_t step, size_t k, const double *w, const double *meta, double *g,
                   double *loss, void *user)
{
    (void)step;
    double pen = k == 0 ? exp(meta[0]) : 0, l = 0;
    for (size_t i = 0; i < SH_P; i++) {
        double a, c;
        sh_coef(user, k, i, &a, &c);
        l += c * log(cosh(w[i] - a)) + 0.5 * pen * w[i] * w[i];
        g[i] = c * tanh(w[i] - a) + pen * w[i];
    }
    *loss = l;
    const sh_user *u = user;
    if (u->fault == SH_DRIFT && u->reversing && u->rank == u->last && step == SH_FAULT_STEP)
        g[0] += ldexp(1.0, -30);
    return 0;
}

static int sh_hvp(size_t step, size_t k, const double *w, const double *meta, const double *v,
                  double *g, double *hv, double *hm, void *user)
{
    (void)g;
    const sh_user *hu = user;
    if (hu->fault == SH_HVP_FAILS && hu->rank == hu->last && step == SH_FAULT_STEP)
        return 9;
    double pen = k == 0 ? exp(meta[0]) : 0, wv = 0;
    for (size_t i = 0; i < SH_P; i++) {
        double a, c;
        sh_coef(user, k, i, &a, &c);
        double th = tanh(w[i] - a);
        hv[i] = (c * (1 - th * th) + pen) * v[i];
        wv += w[i] * v[i];
    }
    hm[0] = pen * wv;
    return 0;
}

static revl_dataset *sh_data(void)
{
    enum { N = 60, D = 20 };
    static double x[N * D];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++)
            x[i * D + j] = sin(1.3 * i + 0.7 * j + 0.1 * i * j);
        y[i] = (int32_t)((x[i * D] + x[i * D + 1] > 0) + (x[i * D + 2] > 0.3));
    }
    revl_dataset *d = NULL;
    if (revl_dataset_create(&d, NULL) || revl_dataset_set(d, N, D, 3, x, y)) {
        revl_dataset_free(d);
        return NULL;
    }
    return d;
}

enum { SH_TRUNCATE = 1, SH_STEPS, SH_LAST_ALPHA }; /* sh_case.differ, on the last rank */
typedef struct sh_case {
    int mlp, fault, differ;
    revl_optimizer opt;
    const revl_comm *model_comm; /* the data-parallel model's ranks (NULL: all on this one) */
    const revl_comm *shard;      /* NULL: revl_trainer_create, else create_sharded over it */
    const char *ckpt;            /* train stopped after step 2, resumed from its checkpoints */
} sh_case;

typedef struct sh_result {
    double *out; /* w_T, every kind's hypergradient, d_w0, d_meta, last loss */
    size_t n;
    size_t peak, buffer; /* revl_trainer_stats */
    int rc;
    char msg[256];
} sh_result;

static int sh_model(const sh_case *c, sh_user *u, revl_dataset **data, revl_model **m)
{
    if (c->mlp) {
        size_t widths[] = {20, 400, 100, 3};
        revl_mlp_options o;
        revl_mlp_options_init(&o);
        o.penalty = REVL_PENALTY_PER_LAYER;
        o.batch_size = 30;
        o.seed = 3;
        *data = sh_data();
        return revl_mlp_dp_create(m, 4, widths, *data, &o, 5, 0, c->model_comm);
    }
    revl_dp_def d;
    revl_dp_def_init(&d);
    d.n_params = SH_P;
    d.n_meta = 1;
    d.n_micro = SH_MICRO;
    d.grad = sh_grad;
    d.hvp = sh_hvp;
    d.comm = c->model_comm;
    d.user = u;
    int rc = revl_dp_model_create(m, &d);
    size_t off[] = {0, 5000, 5001, 20000, 33333, SH_P};
    return rc ? rc : revl_model_set_groups(*m, 5, off);
}

static int sh_stop_at_2(size_t step, int phase, double seconds, double loss, void *user)
{
    return phase == 0 && step == 2;
}

static void sh_run(const sh_case *c, sh_result *r)
{
    memset(r, 0, sizeof *r);
    sh_user u = {.fault = c->fault, .rank = comm.rank, .last = comm.size - 1};
    revl_dataset *data = NULL;
    revl_model *m = NULL;
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    r->rc = sh_model(c, &u, &data, &m);
    size_t P = m ? revl_model_n_params(m) : 0, NM = m ? revl_model_n_meta(m) : 0;
    size_t G = m ? revl_model_n_groups(m) : 0, off[8];
    int differs = comm.rank == comm.size - 1 ? c->differ : 0;
    if (!r->rc) {
        revl_model_group_offsets(m, off);
        r->rc = revl_schedule_create_for(&s, c->opt, differs == SH_STEPS ? SH_T - 1 : SH_T, G,
                                         off, NULL);
    }
    if (!r->rc)
        r->rc = revl_schedule_fill_kind(s, REVL_HYPER_ALPHA, c->opt == REVL_OPTIM_MOMENTUM ? 0.2 : 0.02);
    if (!r->rc && differs == SH_LAST_ALPHA)
        r->rc = revl_schedule_set(s, SH_T - 1, G - 1, 0.21, 0.9);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.truncate = differs == SH_TRUNCATE ? 2 : 0;
    if (!r->rc)
        r->rc = c->shard ? revl_trainer_create_sharded(&t, m, s, &o, c->shard)
                         : revl_trainer_create(&t, m, s, &o);
    if (r->rc) {
        snprintf(r->msg, sizeof r->msg, "setup: %s", revl_last_create_error());
        goto done;
    }
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    r->n = P + nk * SH_T * G + P + NM + 1;
    r->out = calloc(r->n, sizeof *r->out);
    double *w0 = calloc(P, sizeof *w0), *dfdw = calloc(P, sizeof *dfdw), meta[8] = {-3, -3, -3, -3, -3, -3, -3, -3};
    double log_scale[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    revl_model_init_weights(m, log_scale, 5, w0);
    if (c->ckpt) { /* killed after step 2; every rank's share loaded into a fresh trainer */
        revl_trainer_set_checkpoint(t, c->ckpt, 2);
        revl_trainer_set_progress(t, sh_stop_at_2, 1, NULL);
        r->rc = revl_trainer_train(t, w0, NM ? meta : NULL);
        r->rc = r->rc == REVL_ERR_CALLBACK ? REVL_OK : -100 + r->rc;
        revl_trainer_free(t);
        t = NULL;
        if (!r->rc)
            r->rc = revl_trainer_create_sharded(&t, m, s, &o, c->shard);
        if (!r->rc)
            r->rc = revl_trainer_load(t, c->ckpt);
        if (!r->rc)
            r->rc = revl_trainer_train_resume(t);
    } else {
        r->rc = revl_trainer_train(t, w0, NM ? meta : NULL);
    }
    u.reversing = 1;
    if (!r->rc) {
        revl_trainer_weights(t, r->out);
        for (size_t i = 0; i < P; i++)
            dfdw[i] = r->out[i] - 0.5;
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        r->peak = st.peak_bytes;
        r->buffer = st.buffer_bytes;
        r->out[r->n - 1] = st.last_loss;
        double *dk[REVL_HYPER_COUNT] = {0};
        for (size_t k = 0; k < nk; k++)
            dk[kinds[k]] = r->out + P + k * SH_T * G;
        double *dw0 = r->out + P + nk * SH_T * G;
        r->rc = revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, dw0, REVL_HYPER_COUNT, dk,
                                               NM ? dw0 + P : NULL);
    }
    snprintf(r->msg, sizeof r->msg, "%s", r->rc ? revl_trainer_last_error(t) : "");
    free(w0);
    free(dfdw);
done:
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(data);
}

static const struct {
    int mlp;
    revl_optimizer opt;
} sh_problems[] = {{0, REVL_OPTIM_MOMENTUM}, {0, REVL_OPTIM_ADAM},
                   {1, REVL_OPTIM_MOMENTUM}, {1, REVL_OPTIM_ADAM},
                   {0, REVL_OPTIM_RMSPROP}}; /* RMSprop: the direction after the gradient */

/* An int64 summed over the ranks. */
static int64_t sum_ranks(int64_t x)
{
    int64_t s;
    MPI_Allreduce(&x, &s, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

START_TEST(sharded_bit_identical_and_memory_falls)
{
    sh_case c = {.mlp = sh_problems[_i].mlp, .opt = sh_problems[_i].opt};
    sh_result ref, got;
    sh_run(&c, &ref); /* everything on this process, state replicated: the reference */
    ck_assert_msg(ref.rc == REVL_OK, "reference: %s", ref.msg);
    c.model_comm = &comm;
    c.shard = &comm;
    sh_run(&c, &got);
    ck_assert_msg(got.rc == REVL_OK, "rank %d of %d: %s", comm.rank, comm.size, got.msg);
    ck_assert_uint_eq(got.n, ref.n);
    ck_assert_msg(memcmp(got.out, ref.out, ref.n * sizeof *ref.out) == 0,
                  "rank %d of %d: the sharded run differs from the unsharded one", comm.rank,
                  comm.size);
    ck_assert(same_on_all_ranks(got.out, got.n * sizeof *got.out));
    /* Memory: rank r holds X_r = C + S/R (C replicated, S the sharded state and buffer), the
     * unsharded trainer X_1 = C + S; from the sum over ranks, C and S. A replicated state
     * (X_r = X_1) gives S = 0. Every rank owns 12/R whole blocks. */
    int R = comm.size;
    double buf_ratio = (double)got.buffer * R / (double)ref.buffer;
    ck_assert_msg(buf_ratio > 0.8 && buf_ratio < 1.2, "rank %d: buffer %zu bytes of %zu: x%d = %.3f",
                  comm.rank, got.buffer, ref.buffer, R, buf_ratio);
    if (R > 1) {
        double x1 = (double)ref.peak, sum = (double)sum_ranks((int64_t)got.peak);
        double C = (sum - x1) / (R - 1), S = x1 - C, mine = (double)got.peak - C;
        ck_assert_msg(S > 0.3 * x1, "sharded part %.0f of %.0f bytes", S, x1);
        ck_assert_msg(mine > 0.8 * S / R && mine < 1.2 * S / R,
                      "rank %d holds %.0f of the %.0f sharded bytes (R = %d)", comm.rank, mine, S, R);
        if (comm.rank == 0)
            printf("check_mpi: %s %s R=%d: peak bytes per rank %zu (unsharded %zu): replicated "
                   "%.0f + sharded %.0f/R; buffer %zu of %zu\n",
                   c.mlp ? "mlp" : "callbacks",
                   c.opt == REVL_OPTIM_ADAM ? "adam" : c.opt == REVL_OPTIM_RMSPROP ? "rmsprop" : "momentum", R,
                   got.peak, ref.peak, C, S, got.buffer, ref.buffer);
    }
    free(ref.out);
    free(got.out);
}
END_TEST

START_TEST(sharded_error_on_last_rank_fails_every_rank)
{
    sh_case c = {.opt = REVL_OPTIM_MOMENTUM, .fault = SH_RANGE, .model_comm = &comm, .shard = &comm};
    sh_result r;
    sh_run(&c, &r);
    char want[64];
    snprintf(want, sizeof want, "rank %d: ", comm.size - 1);
    ck_assert_msg(r.rc == REVL_ERR_RANGE, "rank %d: status %d: %s", comm.rank, r.rc, r.msg);
    ck_assert_msg(strncmp(r.msg, want, strlen(want)) == 0, "rank %d: %s", comm.rank, r.msg);
    snprintf(want, sizeof want, "parameter %d", SH_P - 1);
    ck_assert_msg(strstr(r.msg, want) && strstr(r.msg, "forward"), "rank %d: %s", comm.rank,
                  r.msg);
    ck_assert(same_on_all_ranks(r.msg, sizeof r.msg));
    free(r.out);
}
END_TEST

/* Faults of the reverse pass raised on the last rank: a recomputed gradient that drifts there
 * (every rank's summed gradient changes, so every rank's fingerprint check stops at the step),
 * an HVP that fails there (the model's vote names the rank). Every rank returns the same status
 * and message. */
static const struct {
    int fault, want;
    revl_optimizer opt;
} sh_reverse_faults[] = {{SH_DRIFT, REVL_ERR_INEXACT, REVL_OPTIM_MOMENTUM},
                         {SH_DRIFT, REVL_ERR_INEXACT, REVL_OPTIM_ADAM},
                         {SH_HVP_FAILS, REVL_ERR_CALLBACK, REVL_OPTIM_MOMENTUM}};

START_TEST(sharded_reverse_fault_fails_every_rank)
{
    sh_case c = {.opt = sh_reverse_faults[_i].opt, .fault = sh_reverse_faults[_i].fault,
                 .model_comm = &comm, .shard = &comm};
    sh_result r;
    sh_run(&c, &r);
    int want = sh_reverse_faults[_i].want;
    ck_assert_msg(r.rc == want, "rank %d: status %d: %s", comm.rank, r.rc, r.msg);
    char want_text[64];
    if (want == REVL_ERR_INEXACT)
        snprintf(want_text, sizeof want_text, "step %d differs", SH_FAULT_STEP);
    else
        snprintf(want_text, sizeof want_text, "rank %d: micro-batch", comm.size - 1);
    ck_assert_msg(strstr(r.msg, want_text), "rank %d: %s", comm.rank, r.msg);
    ck_assert_msg(strstr(r.msg, want == REVL_ERR_INEXACT ? "not deterministic" : "returned 9"),
                  "rank %d: %s", comm.rank, r.msg);
    ck_assert(same_on_all_ranks(r.msg, sizeof r.msg));
    if (comm.rank == 0)
        printf("check_mpi: R=%d reverse fault %d, refused on every rank as it must be: (expected) "
               "%s\n", comm.size, _i, r.msg);
    free(r.out);
}
END_TEST

/* The last rank's sharded trainer truncates, or takes fewer steps, or has another alpha at
 * the last step: with a local model (only the trainer communicates) and with the
 * data-parallel one, every rank's train fails with the same message, none waits forever. */
START_TEST(sharded_last_rank_differs_fails_every_rank)
{
    for (int differ = SH_TRUNCATE; differ <= SH_LAST_ALPHA; differ++)
        for (int dp = 0; dp < 2; dp++) {
            sh_case c = {.opt = REVL_OPTIM_MOMENTUM, .differ = differ,
                         .model_comm = dp ? &comm : NULL, .shard = &comm};
            sh_result r;
            sh_run(&c, &r);
            free(r.out);
            if (comm.size == 1) {
                ck_assert_msg(r.rc == REVL_OK, "%s", r.msg);
                continue;
            }
            char want[64];
            snprintf(want, sizeof want, "rank %d's training differs from rank 0's", comm.size - 1);
            ck_assert_msg(r.rc == REVL_ERR_INVALID && strstr(r.msg, want),
                          "rank %d: case %d/%d: %d %s", comm.rank, differ, dp, r.rc, r.msg);
            ck_assert(same_on_all_ranks(r.msg, sizeof r.msg));
        }
}
END_TEST

/* A sharded run (the data-parallel model too) stopped after step 2 and resumed from every
 * rank's share, in fresh trainers: w_T and every hypergradient bit for bit the unsharded run's. */
START_TEST(sharded_checkpoint_resumes_bit_for_bit)
{
    sh_case c = {.opt = REVL_OPTIM_ADAM};
    sh_result ref, got;
    sh_run(&c, &ref);
    ck_assert_msg(ref.rc == REVL_OK, "reference: %s", ref.msg);
    int id = (int)getpid();
    MPI_Bcast(&id, 1, MPI_INT, 0, MPI_COMM_WORLD);
    char path[64], mine[96];
    snprintf(path, sizeof path, "/tmp/revl-mpi-ckpt-%d", id);
    snprintf(mine, sizeof mine, "%s.rank%d-of-%d", path, comm.rank, comm.size);
    c.model_comm = &comm;
    c.shard = &comm;
    c.ckpt = path;
    sh_run(&c, &got);
    ck_assert_msg(got.rc == REVL_OK, "rank %d of %d: %d %s", comm.rank, comm.size, got.rc, got.msg);
    ck_assert_msg(memcmp(got.out, ref.out, ref.n * sizeof *ref.out) == 0,
                  "rank %d of %d: the resumed sharded run differs from the unsharded one",
                  comm.rank, comm.size);
    ck_assert_int_eq(remove(mine), 0);
    free(ref.out);
    free(got.out);
}
END_TEST

START_TEST(sharded_refuses_an_untrained_save_and_too_few_blocks)
{
    sh_user u = {0};
    sh_case c = {.opt = REVL_OPTIM_MOMENTUM, .model_comm = &comm};
    revl_dataset *data = NULL;
    revl_model *m = NULL;
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    ck_assert_int_eq(sh_model(&c, &u, &data, &m), REVL_OK);
    size_t one[] = {0, SH_P}, one_small[] = {0, 12};
    ck_assert_int_eq(revl_model_set_groups(m, 1, one), REVL_OK);
    ck_assert_int_eq(revl_schedule_create(&s, SH_T, 1, one), REVL_OK);
    ck_assert_int_eq(revl_trainer_create_sharded(&t, m, s, NULL, &comm), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(t, "unused.ckpt"), REVL_ERR_STATE); /* not trained */
    ck_assert_msg(strstr(revl_trainer_last_error(t), "rank 0: revl_trainer_save: the trainer "
                         "holds no trajectory"), "%s", revl_trainer_last_error(t));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    /* one block (12 parameters), more than one rank: refused on every rank */
    revl_model *small;
    revl_dp_def d;
    revl_dp_def_init(&d);
    d.n_params = 12;
    d.n_meta = 1;
    d.grad = sh_grad;
    d.hvp = sh_hvp;
    d.user = &u;
    ck_assert_int_eq(revl_dp_model_create(&small, &d), REVL_OK);
    ck_assert_int_eq(revl_schedule_create(&s, SH_T, 1, one_small), REVL_OK);
    t = NULL;
    int rc = revl_trainer_create_sharded(&t, small, s, NULL, &comm);
    if (comm.size == 1)
        ck_assert_int_eq(rc, REVL_OK);
    else {
        ck_assert_int_eq(rc, REVL_ERR_INVALID);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(revl_last_create_error(), "fewer than the"), "%s",
                      revl_last_create_error());
    }
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(small);
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    if (revl_mpi_comm_init(&comm, MPI_COMM_WORLD) != REVL_OK) {
        fprintf(stderr, "check_mpi: revl_mpi_comm_init failed\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_add_loop_test(tc, bit_identical_to_single_process, 0,
                        (int)(sizeof problems / sizeof problems[0]));
    tcase_add_test(tc, callback_failure_on_last_rank);
    tcase_add_test(tc, nan_on_last_rank);
    tcase_add_test(tc, drift_on_last_rank);
    tcase_add_loop_test(tc, sharded_bit_identical_and_memory_falls, 0, 5);
    tcase_add_test(tc, sharded_error_on_last_rank_fails_every_rank);
    tcase_add_loop_test(tc, sharded_reverse_fault_fails_every_rank, 0, 3);
    tcase_add_test(tc, sharded_refuses_an_untrained_save_and_too_few_blocks);
    tcase_add_test(tc, sharded_checkpoint_resumes_bit_for_bit);
    tcase_add_loop_test(tc, last_rank_differs_fails_every_rank, 0, 5);
    tcase_add_test(tc, sharded_last_rank_differs_fails_every_rank);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_set_fork_status(r, CK_NOFORK);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r), any;
    srunner_free(r);
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any && comm.rank == 0)
        fprintf(stderr, "check_mpi: a test failed on some rank of %d\n", comm.size);
    revl_mpi_comm_destroy(&comm);
    MPI_Finalize();
    return any ? EXIT_FAILURE : EXIT_SUCCESS;
}
