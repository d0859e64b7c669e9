/* check_checkpoint.c: trainer checkpoints. For momentum and Adam (and a truncated run): a run
 * stopped after any step, saved, loaded into a fresh trainer and resumed gives the bits of an
 * uninterrupted run (w_T, every hypergradient); a child process killed with SIGKILL at random
 * points, again and again, each time resumed from its last checkpoint, ends on the same bits;
 * every flipped byte, zeroed range and truncation of a checkpoint is REVL_ERR_IO and leaves the
 * trainer as it was; files of another optimiser, model, schedule or option are refused with a
 * message that names the difference. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "revl.h"
#include "base/ckptfile.h"
#include "core/trainer.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/file.h>

#define expect_msg(msg, want)                                                                  \
    do {                                                                                       \
        const char *m_ = (msg);                                                                \
        ck_assert_msg(m_ != NULL && strstr(m_, (want)) != NULL, "message '%s' lacks '%s'",     \
                      m_ ? m_ : "(null)", (want));                                             \
    } while (0)

/* ------------------------------------------------------------------ a run */

/* L_t = sum_i a_i/2 (w_i - c_i - 0.05 (t mod 3))^2 + 0.3 sin(w_i) + exp(meta0)/2 w_i^2 */
typedef struct model {
    size_t p;
    long fail_at;        /* step whose gradient call fails (-1 never) */
    unsigned sleep_us;   /* per gradient call: gives the killer time to land mid-run */
} model;

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static double coef_a(size_t i) { return 0.5 + 1.5 * (double)((i * 7 + 3) % 11) / 10.0; }
static double coef_c(size_t i) { return (double)((i * 3 + 1) % 5) - 2.0; }

static int m_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                  void *user)
{
    model *q = user;
    if ((long)step == q->fail_at)
        return 5;
    if (q->sleep_us)
        sleep_us(q->sleep_us);
    double lam = exp(meta[0]), l = 0;
    for (size_t i = 0; i < q->p; i++) {
        double d = w[i] - coef_c(i) - 0.05 * (double)(step % 3);
        g[i] = coef_a(i) * d + 0.3 * cos(w[i]) + lam * w[i];
        l += 0.5 * coef_a(i) * d * d + 0.3 * sin(w[i]) + 0.5 * lam * w[i] * w[i];
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
    if (g)
        m_grad(step, w, meta, g, NULL, user);
    for (size_t i = 0; i < q->p; i++) {
        hv[i] = (coef_a(i) - 0.3 * sin(w[i]) + lam) * v[i];
        wv += w[i] * v[i];
    }
    hm[0] = lam * wv;
    return 0;
}

/* The model over q (p parameters, one meta-parameter). */
static revl_model *model_make(model *q, size_t p, unsigned sleep)
{
    *q = (model){.p = p, .fail_at = -1, .sleep_us = sleep};
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = p;
    d.n_meta = 1;
    d.grad = m_grad;
    d.hvp = m_hvp;
    d.user = q;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    return m;
}

/* Everything one run needs: made afresh for each "process". */
typedef struct run {
    model q;
    revl_model *m;
    revl_schedule *s;
    revl_trainer *t;
    size_t p, steps;
} run;

#define P_BIG 5000 /* two blocks of the buffer */
#define STEPS 40
#define NG 3

static void run_make(run *r, revl_optimizer opt, size_t p, size_t steps, size_t truncate,
                     unsigned frac_bits, double alpha_scale)
{
    memset(r, 0, sizeof *r);
    r->p = p;
    r->steps = steps;
    r->m = model_make(&r->q, p, 0);
    size_t off[NG + 1];
    for (size_t g = 0; g <= NG; g++)
        off[g] = g * p / NG;
    ck_assert_int_eq(revl_schedule_create_for(&r->s, opt, steps, NG, off, NULL), REVL_OK);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(r->s, kinds);
    double *v = malloc(steps * NG * sizeof *v);
    for (size_t k = 0; k < nk; k++) {
        for (size_t j = 0; j < steps * NG; j++) {
            double u = (double)((j * 37 + k * 11) % 17) / 17.0;
            switch (kinds[k]) {
            case REVL_HYPER_ALPHA: v[j] = alpha_scale * (0.002 + 0.004 * u); break;
            case REVL_HYPER_GAMMA: v[j] = 0.5 + 0.45 * u; break;
            case REVL_HYPER_BETA1: v[j] = 0.7 + 0.25 * u; break;
            case REVL_HYPER_BETA2: v[j] = 0.9 + 0.099 * u; break;
            case REVL_HYPER_EPS: v[j] = 1e-3 + 1e-2 * u; break;
            case REVL_HYPER_WEIGHT_DECAY: v[j] = 0.5 + u; break;
            default: ck_abort_msg("no value for kind %d", (int)kinds[k]);
            }
        }
        ck_assert_int_eq(revl_schedule_set_kind(r->s, kinds[k], v), REVL_OK);
    }
    free(v);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.truncate = truncate;
    o.frac_bits = frac_bits;
    ck_assert_int_eq(revl_trainer_create(&r->t, r->m, r->s, &o), REVL_OK);
}

static void run_free(run *r)
{
    revl_trainer_free(r->t);
    revl_schedule_free(r->s);
    revl_model_free(r->m);
}

static const double META[1] = {-1.5};

static void start_w(size_t p, double *w0)
{
    for (size_t i = 0; i < p; i++)
        w0[i] = 0.25 * (double)((i * 13) % 9) - 1.0;
}

/* The bits a run ends on: w_T, then d_w0, every kind's hypergradient, d_meta. */
typedef struct result {
    double *wT, *dw0, *dk[REVL_HYPER_COUNT], dmeta[1];
} result;

static void result_free(result *res)
{
    free(res->wT);
    free(res->dw0);
    for (int k = 0; k < REVL_HYPER_COUNT; k++)
        free(res->dk[k]);
}

/* w_T and the reverse pass of a trainer that stands at the end of training. */
static void finish(run *r, result *res)
{
    memset(res, 0, sizeof *res);
    res->wT = malloc(r->p * sizeof *res->wT);
    res->dw0 = malloc(r->p * sizeof *res->dw0);
    ck_assert_int_eq(revl_trainer_weights(r->t, res->wT), REVL_OK);
    double *dfdw = malloc(r->p * sizeof *dfdw);
    for (size_t i = 0; i < r->p; i++)
        dfdw[i] = res->wT[i] + 0.1 * (double)(i % 7) - 0.3;
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(r->s, kinds);
    for (size_t k = 0; k < nk; k++)
        res->dk[kinds[k]] = malloc(r->steps * NG * sizeof(double));
    double dfdmeta[1] = {0.25};
    int rc = revl_trainer_hypergrad_kinds_n(r->t, dfdw, dfdmeta, res->dw0, REVL_HYPER_COUNT,
                                            res->dk, res->dmeta);
    ck_assert_msg(rc == REVL_OK, "hypergrad: %s", revl_trainer_last_error(r->t));
    free(dfdw);
}

static void expect_same(const result *a, const result *b, size_t p, size_t steps)
{
    ck_assert_msg(memcmp(a->wT, b->wT, p * sizeof(double)) == 0, "w_T differs");
    ck_assert_msg(memcmp(a->dw0, b->dw0, p * sizeof(double)) == 0, "d_w0 differs");
    ck_assert_msg(memcmp(a->dmeta, b->dmeta, sizeof a->dmeta) == 0, "d_meta differs");
    for (int k = 0; k < REVL_HYPER_COUNT; k++) {
        ck_assert((a->dk[k] == NULL) == (b->dk[k] == NULL));
        if (a->dk[k])
            ck_assert_msg(memcmp(a->dk[k], b->dk[k], steps * NG * sizeof(double)) == 0,
                          "d_%s differs", revl_hyper_name((revl_hyper)k));
    }
}

/* The uninterrupted run. */
static void reference(revl_optimizer opt, size_t p, size_t steps, size_t truncate, result *res)
{
    run r;
    run_make(&r, opt, p, steps, truncate, 52, 1.0);
    double *w0 = malloc(p * sizeof *w0);
    start_w(p, w0);
    ck_assert_int_eq(revl_trainer_train(r.t, w0, META), REVL_OK);
    finish(&r, res);
    free(w0);
    run_free(&r);
}

static char *temp_path(const char *tag)
{
    const char *dir = getenv("TMPDIR");
    char *path = malloc(512);
    snprintf(path, 512, "%s/revl-ckpt-%s-%ld", dir ? dir : "/tmp", tag, (long)getpid());
    return path;
}

/* ------------------------------------------------------------------ resume */

typedef struct variant {
    revl_optimizer opt;
    size_t truncate;
} variant;
static const variant variants[] = {
    {REVL_OPTIM_MOMENTUM, 0}, {REVL_OPTIM_ADAM, 0}, {REVL_OPTIM_MOMENTUM, 15}, {REVL_OPTIM_ADAM, 15},
    {REVL_OPTIM_ADAMW, 0}, {REVL_OPTIM_ADAMW, 15}};
#define N_VARIANTS (sizeof variants / sizeof variants[0])

/* Stopped after k steps (the gradient call of step k fails), every step checkpointed: a fresh
 * trainer loads the file, resumes, and ends on the reference bits, for k across the run. */
START_TEST(test_resume_every_step)
{
    const variant *v = &variants[_i];
    result ref;
    reference(v->opt, P_BIG, STEPS, v->truncate, &ref);
    char *path = temp_path("resume");
    double *w0 = malloc(P_BIG * sizeof *w0);
    start_w(P_BIG, w0);
    size_t ks[] = {1, 2, 7, 14, 15, 16, 25, STEPS - 1, STEPS};
    for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
        size_t k = ks[j];
        run a;
        run_make(&a, v->opt, P_BIG, STEPS, v->truncate, 52, 1.0);
        ck_assert_int_eq(revl_trainer_set_checkpoint(a.t, path, 1), REVL_OK);
        a.q.fail_at = k < STEPS ? (long)k : -1;
        int rc = revl_trainer_train(a.t, w0, META);
        ck_assert_int_eq(rc, k < STEPS ? REVL_ERR_CALLBACK : REVL_OK);
        run_free(&a);

        run b; /* as a new process would: new model, schedule and trainer */
        run_make(&b, v->opt, P_BIG, STEPS, v->truncate, 52, 1.0);
        rc = revl_trainer_load(b.t, path);
        ck_assert_msg(rc == REVL_OK, "load after %zu steps: %s", k, revl_trainer_last_error(b.t));
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(b.t, &st);
        ck_assert_uint_eq(st.steps_done, k);
        double dfdw[P_BIG] = {0};
        if (k < STEPS) {
            /* mid-training: no reverse pass yet, the remaining steps first */
            ck_assert_int_eq(revl_trainer_hypergrad(b.t, dfdw, NULL, NULL, NULL, NULL, NULL),
                             REVL_ERR_STATE);
            rc = revl_trainer_train_resume(b.t);
            ck_assert_msg(rc == REVL_OK, "resume: %s", revl_trainer_last_error(b.t));
        }
        ck_assert_int_eq(revl_trainer_train_resume(b.t), REVL_ERR_STATE);
        result res;
        finish(&b, &res);
        expect_same(&ref, &res, P_BIG, STEPS);
        result_free(&res);
        run_free(&b);
    }
    unlink(path);
    free(path);
    free(w0);
    result_free(&ref);
}
END_TEST

/* ------------------------------------------------------------------ kill -9 */

/* One "process" of a long run: resume from the checkpoint if there is one, else start; save
 * every `every` steps. Exit 0 when the run is complete. */
static void child_run(const variant *v, const char *path, size_t every)
{
    run r;
    run_make(&r, v->opt, P_BIG, STEPS, v->truncate, 52, 1.0);
    r.q.sleep_us = 400;
    if (revl_trainer_set_checkpoint(r.t, path, every) != REVL_OK)
        _exit(2);
    int rc;
    if (access(path, F_OK) == 0) {
        if (revl_trainer_load(r.t, path) != REVL_OK) {
            fprintf(stderr, "child: %s\n", revl_trainer_last_error(r.t));
            _exit(3); /* the file at path must always be whole */
        }
        rc = revl_trainer_train_resume(r.t);
        if (rc == REVL_ERR_STATE)
            rc = REVL_OK; /* the previous process finished just before it was killed */
    } else {
        double w0[P_BIG];
        start_w(P_BIG, w0);
        rc = revl_trainer_train(r.t, w0, META);
    }
    _exit(rc == REVL_OK ? 0 : 4);
}

/* LLVM's OpenMP runtime (clang -fopenmp) registers each process in a /dev/shm file named by its
 * pid and uid, and removes it at exit. A child killed with SIGKILL cannot, and a later process
 * given the same pid then finds that stale file (or an empty one, from a kill during the runtime's
 * start): libomp 14 aborts ("already initialized") or dies of SIGBUS reading it. So the parent
 * removes its killed child's file. GNU libgomp keeps no such file: unlink fails, harmlessly. */
static void forget_openmp_registration(pid_t pid)
{
    char name[96];
    snprintf(name, sizeof name, "/dev/shm/__KMP_REGISTERED_LIB_%ld_%ld", (long)pid,
             (long)getuid());
    unlink(name);
}

/* Start child(arg) in a new process again and again, each killed with SIGKILL at a random
 * point, until one completes (exit 0); removes the temporary files of cut writes to path.
 * Returns the number of kills. */
static int kill_until_done(void (*child)(const void *arg), const void *arg, const char *path,
                           unsigned *seed)
{
    int kills = 0;
    for (int round = 0; round < 300; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
            child(arg);
        /* random points in the run; the range widens each round, so that a slow disk (fsync
         * per checkpoint) still lets every run finish */
        sleep_us(1000 + (unsigned)(rand_r(seed) % (12000u + 2000u * (unsigned)round)));
        kill(pid, SIGKILL);
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        forget_openmp_registration(pid);
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)pid);
        unlink(tmp); /* a write cut short by the kill */
        if (WIFSIGNALED(status)) {
            kills++;
            continue;
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "child failed with status %d", WEXITSTATUS(status));
        ck_assert_int_gt(kills, 0);
        return kills;
    }
    ck_abort_msg("the run never completed");
    return kills;
}

typedef struct kill_arg {
    const variant *v;
    const char *path;
    size_t every;
} kill_arg;

static void trainer_child(const void *arg)
{
    const kill_arg *a = arg;
    child_run(a->v, a->path, a->every);
}

START_TEST(test_kill_resume)
{
    const variant *v = &variants[_i];
    result ref;
    reference(v->opt, P_BIG, STEPS, v->truncate, &ref);
    char *path = temp_path("kill");
    unsigned seed = 1234u + (unsigned)_i;
    for (int trial = 0; trial < 3; trial++) {
        unlink(path);
        kill_arg a = {v, path, 1 + (size_t)trial};
        int kills = kill_until_done(trainer_child, &a, path, &seed);
        if (getenv("REVL_CKPT_VERBOSE"))
            fprintf(stderr, "variant %d trial %d: %d kills\n", _i, trial, kills);
        ck_assert_int_gt(kills, 0);
        run b;
        run_make(&b, v->opt, P_BIG, STEPS, v->truncate, 52, 1.0);
        ck_assert_msg(revl_trainer_load(b.t, path) == REVL_OK, "%s", revl_trainer_last_error(b.t));
        result res;
        finish(&b, &res);
        expect_same(&ref, &res, P_BIG, STEPS);
        result_free(&res);
        run_free(&b);
    }
    unlink(path);
    free(path);
    result_free(&ref);
}
END_TEST

/* ------------------------------------------------------------------ damaged files */

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spill(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Recompute the trailer's checksum, so that the checks behind it are reached. */
static void fix_crc(unsigned char *b, size_t n)
{
    uLong c = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

#define P_SMALL 10
#define STEPS_SMALL 6

/* A small trained trainer and its checkpoint; *mid: also one taken after 3 steps. */
static void small_pair(revl_optimizer opt, run *r, const char *path)
{
    run_make(r, opt, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    double w0[P_SMALL];
    start_w(P_SMALL, w0);
    ck_assert_int_eq(revl_trainer_train(r->t, w0, META), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(r->t, path), REVL_OK);
}

/* The end of a test that damaged copies of a checkpoint: both files and their buffers gone. */
static void drop_files(char *path, char *bad, unsigned char *good, unsigned char *b)
{
    unlink(path);
    unlink(bad);
    free(good);
    free(b);
    free(path);
    free(bad);
}

/* Every byte flipped, every 16-byte range zeroed, every truncation: REVL_ERR_IO with a message,
 * and the trainer (which holds another, trained state) stays as it was: its reverse pass gives
 * the same bits as one that never saw those files. With the checksum recomputed, every header
 * word changed is still refused, and a body change is refused or accepted, never a crash. */
START_TEST(test_corrupt_every_byte)
{
    revl_optimizer opt = _i ? REVL_OPTIM_ADAM : REVL_OPTIM_MOMENTUM;
    char *path = temp_path("corrupt"), *bad = temp_path("corrupt-bad");
    run src;
    small_pair(opt, &src, path);
    size_t n;
    unsigned char *good = slurp(path, &n), *b = malloc(n);
    run_free(&src);

    result ref;
    reference(opt, P_SMALL, STEPS_SMALL, 0, &ref);
    run r;
    run_make(&r, opt, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    double w0[P_SMALL], before[P_SMALL], after[P_SMALL];
    start_w(P_SMALL, w0);
    ck_assert_int_eq(revl_trainer_train(r.t, w0, META), REVL_OK);
    revl_trainer_weights(r.t, before);
    size_t refused = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(b, good, n);
        b[i] ^= 0xff;
        spill(bad, b, n);
        ck_assert_int_eq(revl_trainer_load(r.t, bad), REVL_ERR_IO);
        ck_assert_str_ne(revl_trainer_last_error(r.t), "");
        memcpy(b, good, n);
        memset(b + i, 0, i + 16 <= n ? 16 : n - i);
        spill(bad, b, n);
        ck_assert_int_eq(revl_trainer_load(r.t, bad), memcmp(b, good, n) ? REVL_ERR_IO : REVL_OK);
        spill(bad, good, i);
        ck_assert_int_eq(revl_trainer_load(r.t, bad), REVL_ERR_IO);
        /* past the checksum: a changed 64-bit word of the body */
        if (i % 8 == 4 && i + 8 <= n - 12) {
            memcpy(b, good, n);
            b[i] ^= 0x5a;
            b[i + 3] ^= 0x81;
            fix_crc(b, n);
            spill(bad, b, n);
            int rc = revl_trainer_load(r.t, bad);
            ck_assert(rc == REVL_OK || rc == REVL_ERR_IO);
            if (rc == REVL_ERR_IO)
                refused++;
            /* what it accepted is a trajectory: put the real one back */
            if (rc == REVL_OK)
                ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_OK);
        }
    }
    ck_assert_uint_gt(refused, 10);
    revl_trainer_weights(r.t, after);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    result res;
    finish(&r, &res);
    expect_same(&ref, &res, P_SMALL, STEPS_SMALL);
    result_free(&res);
    result_free(&ref);
    run_free(&r);
    drop_files(path, bad, good, b);
}
END_TEST

/* Each word of the header changed (checksum recomputed) is refused: sizes, names, hashes. */
START_TEST(test_header_words_refused)
{
    char *path = temp_path("header"), *bad = temp_path("header-bad");
    run src;
    small_pair(REVL_OPTIM_ADAM, &src, path);
    size_t n;
    unsigned char *good = slurp(path, &n), *b = malloc(n);
    /* magic 8, version 4, name 16, 8 sizes, 2 elems, 2 hashes, state, steps */
    size_t header_end = 8 + 4 + 16 + 8 * (8 + 2 + 2 + 2);
    for (size_t i = 0; i < header_end; i++) {
        memcpy(b, good, n);
        b[i] ^= 0x01;
        fix_crc(b, n);
        spill(bad, b, n);
        ck_assert_msg(revl_trainer_load(src.t, bad) == REVL_ERR_IO, "byte %zu accepted", i);
    }
    run_free(&src);
    drop_files(path, bad, good, b);
}
END_TEST

/* ------------------------------------------------------------------ consistent checksums */

static void put_le_at(unsigned char *b, size_t off, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        b[off + i] = (unsigned char)(x >> (8 * i));
}

static uint64_t get_le_at(const unsigned char *b, size_t off)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)b[off + i] << (8 * i);
    return x;
}

static uint64_t f64_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* good with the 8-byte word at off set to x (or, off = SIZE_MAX, 8 bytes of x inserted before
 * the trailer), length and checksum recomputed, into path: a file the container accepts. */
static size_t forge(const unsigned char *good, size_t n, size_t off, uint64_t x, const char *path)
{
    unsigned char *b = malloc(n + 8);
    size_t m = n;
    memcpy(b, good, n);
    if (off == SIZE_MAX) {
        memmove(b + n - 12 + 8, b + n - 12, 12);
        put_le_at(b, n - 12, x);
        m = n + 8;
        put_le_at(b, m - 12, m);
    } else {
        put_le_at(b, off, x);
    }
    fix_crc(b, m);
    spill(path, b, m);
    free(b);
    return m;
}

/* Where a trainer file with ns state vectors and one meta-parameter holds its trainer state
 * word, and its w (then w's start copy, then each state vector followed by its start copy):
 * the layout of docs/file-formats.md. */
static size_t off_trainer_state(size_t ns)
{
    return 12 + 16 + 8 * 8 + ns * 8 + 16;
}

static size_t off_weights(size_t ns)
{
    return off_trainer_state(ns) + 8 /* state */ + 16 /* steps, last loss */ + 8 /* meta */;
}

/* Adam over STEPS steps with beta1 = 0.01 (6.6 bits a step to keep): the stack holds words. */
static void forge_run(run *r)
{
    run_make(r, REVL_OPTIM_ADAM, P_SMALL, STEPS, 0, 52, 1.0);
    ck_assert_int_eq(revl_schedule_fill_kind(r->s, REVL_HYPER_BETA1, 0.01), REVL_OK);
    double w0[P_SMALL];
    start_w(P_SMALL, w0);
    ck_assert_int_eq(revl_trainer_train(r->t, w0, META), REVL_OK);
}

/* Each structural check of the trainer's loader, reached by a file written by the library with
 * one field changed and its checksum recomputed: refused with that check's message, the trainer
 * unchanged (its reverse pass gives the reference bits). */
START_TEST(test_consistent_checksum_trainer)
{
    char *path = temp_path("forge"), *bad = temp_path("forge-bad");
    run src, twin;
    forge_run(&src);
    ck_assert_int_eq(revl_trainer_save(src.t, path), REVL_OK);
    size_t n;
    unsigned char *good = slurp(path, &n);
    /* the layout of docs/file-formats.md: Adam (2 state vectors of 16 bytes), 1 meta, 1 block */
    const size_t p = P_SMALL, T = STEPS, ns = 2, elem = 16;
    const size_t off_state = off_trainer_state(ns), off_steps = off_state + 8;
    const size_t off_meta = off_steps + 16, off_w = off_weights(ns);
    const size_t off_coder = off_w + 2 * 8 * p + ns * 2 * p * elem + 8 * T;
    const size_t off_block = off_coder + 8 * p;
    uint64_t len = get_le_at(good, off_block);
    ck_assert_uint_eq(n, off_block + 24 + 2 * len + 12);
    ck_assert_msg(len > 0, "len %llu deficit %llu broken %llu", (unsigned long long)len, (unsigned long long)get_le_at(good, off_block + 8), (unsigned long long)get_le_at(good, off_block + 16));
    ck_assert_uint_eq(get_le_at(good, off_state), 1); /* trained */
    ck_assert_uint_eq(get_le_at(good, off_steps), T);
    ck_assert_uint_ge(get_le_at(good, off_coder + 8 * 3), 1ull << 47);
    struct {
        size_t off;
        uint64_t x;
        const char *want;
        size_t off2; /* a second word changed, when not 0 */
        uint64_t x2;
    } cases[] = {
        {off_state, 7, "invalid trainer state 7", 0, 0},
        {off_steps, T + 1, "invalid step count 41 of 40", 0, 0},
        {off_state, 3, "invalid step count 40 of 40", 0, 0}, /* partial, yet every step done */
        {off_state, 3, "invalid step count 41 of 40", off_steps, T + 1}, /* partial, too many */
        {off_meta, f64_bits(NAN), "meta[0] is not finite", 0, 0},
        {off_meta, f64_bits(INFINITY), "meta[0] is not finite", 0, 0},
        {off_coder + 8 * 3, (1ull << 47) - 1, "coder state 140737488355327 of parameter 3 out of range", 0, 0},
        {off_coder + 8 * 9, 1ull << 63, "coder state 9223372036854775808 of parameter 9 out of range", 0, 0},
        {off_coder, 0, "coder state 0 of parameter 0 out of range", 0, 0},
        {off_block, 1ull << 40, "cut short in stack 0", 0, 0},
        {off_block + 16, 2, "stack 0 is inconsistent (broken 2", 0, 0},
        {off_block + 8, 1, "stack 0 is inconsistent (broken 0, deficit 1 with", 0, 0},
        {off_block, len - 1, "2 bytes of unknown data after the body", 0, 0},
        {SIZE_MAX, 0, "8 bytes of unknown data after the body", 0, 0},
    };
    double before[P_SMALL], after[P_SMALL];
    revl_trainer_weights(src.t, before);
    unsigned char *b = malloc(n);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(b, good, n);
        if (cases[c].off2)
            put_le_at(b, cases[c].off2, cases[c].x2);
        forge(b, n, cases[c].off, cases[c].x, bad);
        ck_assert_msg(revl_trainer_load(src.t, bad) == REVL_ERR_IO, "case %zu accepted", c);
        expect_msg(revl_trainer_last_error(src.t), cases[c].want);
    }
    free(b);
    revl_trainer_weights(src.t, after);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    result ref, res;
    forge_run(&twin);
    finish(&twin, &ref);
    finish(&src, &res);
    expect_same(&ref, &res, P_SMALL, STEPS);
    result_free(&ref);
    result_free(&res);
    run_free(&twin);
    run_free(&src);
    unlink(path);
    unlink(bad);
    free(good);
    free(path);
    free(bad);
}
END_TEST

/* A wide state read from a file must be in the range every sum keeps it in, |x| < 2^126
 * (wide.h): beyond it the loader refuses it, naming the vector and parameter, with the trainer
 * unchanged. At the edge (2^126 - 1 with either sign) it loads, and the reverse pass's range check
 * on its difference (the state minus a nonzero term of unknown sign) refuses exactly one sign at
 * the last step, in the lanes (parameter 0) and in the scalar code after them (parameter 9: of
 * its group's ten, eight go in lanes); the other is carried out of range by the divide and
 * refused a step earlier. Adam's first moment m and RMSprop's momentum buffer b; steps so small
 * that w never moves (else the recomputed gradient would differ first). */
#define P_WIDE 30 /* three groups of ten */

START_TEST(test_wide_state_range)
{
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_ADAM;
    const size_t k = _i ? 1 : 0; /* b, m */
    const char *name = _i ? "b" : "m", *reverse_msg = _i ? "a state left" : "a moment left";
    char *path = temp_path("wide"), *bad = temp_path("wide-bad");
    run src;
    run_make(&src, opt, P_WIDE, STEPS_SMALL, 0, 52, 1e-25);
    double w0[P_WIDE], before[P_WIDE], after[P_WIDE];
    start_w(P_WIDE, w0);
    ck_assert_int_eq(revl_trainer_train(src.t, w0, META), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(src.t, path), REVL_OK);
    revl_trainer_weights(src.t, before);
    size_t n;
    unsigned char *good = slurp(path, &n), *b = malloc(n);
    /* 2 state vectors of 16-byte words after w and its start copy, each then its start copy */
    const size_t p = P_WIDE, off_k = off_weights(2) + 2 * 8 * p + k * 2 * p * 16;
    const uint64_t edge_hi = (1ull << 62) - 1, neg_hi = ~edge_hi; /* hi words of +-(2^126 - 1) */
    struct {
        size_t off;
        uint64_t lo, hi;
        const char *want;
    } refused[] = {
        {off_k, 0, 1ull << 62, "state %s of parameter 0 out of range"},         /* 2^126 */
        {off_k + 16 * 9, 0, 3ull << 62, "state %s of parameter 9 out of range"}, /* -2^126 */
        {off_k + 16 * 4, ~0ull, ~0ull >> 1, "state %s of parameter 4 out of range"},
        {off_k + 16 * p, 0, 1ull << 62, "start state %s of parameter 0 out of range"},
        {off_k + 16 * (p + 9), 0, 1ull << 63, "start state %s of parameter 9 out of range"},
    };
    char want[96];
    for (size_t c = 0; c < sizeof refused / sizeof refused[0]; c++) {
        memcpy(b, good, n);
        put_le_at(b, refused[c].off + 8, refused[c].hi);
        forge(b, n, refused[c].off, refused[c].lo, bad);
        ck_assert_msg(revl_trainer_load(src.t, bad) == REVL_ERR_IO, "case %zu accepted", c);
        snprintf(want, sizeof want, refused[c].want, name);
        expect_msg(revl_trainer_last_error(src.t), want);
    }
    revl_trainer_weights(src.t, after);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    for (size_t i = 0; i < 10; i += 9) {
        int at_last = 0;
        for (int sign = 0; sign < 2; sign++) {
            memcpy(b, good, n);
            put_le_at(b, off_k + 16 * i + 8, sign ? neg_hi : edge_hi);
            forge(b, n, off_k + 16 * i, sign ? 1 : ~0ull, bad);
            ck_assert_int_eq(revl_trainer_load(src.t, bad), REVL_OK);
            double dfdw[P_WIDE], dw0[P_WIDE], *none[REVL_HYPER_COUNT] = {0};
            for (size_t j = 0; j < p; j++)
                dfdw[j] = 1.0;
            ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(src.t, dfdw, NULL, dw0,
                                                            REVL_HYPER_COUNT, none, NULL),
                             REVL_ERR_INEXACT);
            const char *msg = revl_trainer_last_error(src.t);
            snprintf(want, sizeof want, "%s the fixed-point range", reverse_msg);
            expect_msg(msg, want);
            expect_msg(msg, "not deterministic (or a loaded checkpoint was forged)");
            snprintf(want, sizeof want, "at step %d, parameter %zu", STEPS_SMALL - 1, i);
            at_last += strstr(msg, want) != NULL;
        }
        ck_assert_msg(at_last == 1, "parameter %zu: %d edges refused at the last step", i, at_last);
    }
    run_free(&src);
    drop_files(path, bad, good, b);
}
END_TEST

/* Another optimiser, model, schedule, truncation or fixed point: refused by name. */
START_TEST(test_mismatch_messages)
{
    char *path = temp_path("mismatch");
    run src;
    small_pair(REVL_OPTIM_MOMENTUM, &src, path);
    run_free(&src);
    run r;
    run_make(&r, REVL_OPTIM_ADAM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "momentum trainer; this trainer uses adam");
    run_free(&r);
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL + 1, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "10 parameters; this trainer has 11");
    run_free(&r);
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL + 1, 0, 52, 1.0);
    ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "6 steps; this trainer has 7");
    run_free(&r);
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL, 0, 40, 1.0);
    ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "52 fractional bits; this trainer has 40");
    run_free(&r);
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL, 2, 52, 1.0);
    ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "first kept step");
    run_free(&r);
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL, 0, 52, 1.5);
    ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "other schedule values");
    run_free(&r);
    /* the same model sizes in other groups */
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    size_t off[NG + 1] = {0, 1, 2, P_SMALL};
    revl_schedule *s2 = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s2, REVL_OPTIM_MOMENTUM, STEPS_SMALL, NG, off,
                                              NULL), REVL_OK);
    revl_trainer *t2 = NULL;
    ck_assert_int_eq(revl_trainer_create(&t2, r.m, s2, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_load(t2, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(t2), "other groups");
    ck_assert_int_eq(revl_trainer_load(t2, "/nonexistent/dir/file"), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(t2), "cannot open");
    revl_trainer_free(t2);
    revl_schedule_free(s2);
    run_free(&r);
    unlink(path);
    free(path);
}
END_TEST

/* The file records the schedule values the trajectory was trained with, not those the schedule
 * holds when it is saved: a trainer whose schedule changed after training saves a file that a
 * trainer with the trained-with values loads (and reverses to the reference bits), and one with
 * the new values refuses. */
START_TEST(test_schedule_trained_with)
{
    char *path = temp_path("trained-with");
    result ref;
    reference(REVL_OPTIM_ADAM, P_SMALL, STEPS_SMALL, 0, &ref);
    run src;
    small_pair(REVL_OPTIM_ADAM, &src, path); /* saved once: the same values */
    double alpha[STEPS_SMALL * NG];
    ck_assert_int_eq(revl_schedule_get_kind(src.s, REVL_HYPER_ALPHA, alpha), REVL_OK);
    for (size_t k = 0; k < STEPS_SMALL * NG; k++)
        alpha[k] *= 1.5;
    ck_assert_int_eq(revl_schedule_set_kind(src.s, REVL_HYPER_ALPHA, alpha), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(src.t, path), REVL_OK); /* trained with the old ones */
    run right, wrong;
    run_make(&right, REVL_OPTIM_ADAM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_msg(revl_trainer_load(right.t, path) == REVL_OK, "%s",
                  revl_trainer_last_error(right.t));
    result res;
    finish(&right, &res);
    expect_same(&ref, &res, P_SMALL, STEPS_SMALL);
    result_free(&res);
    run_make(&wrong, REVL_OPTIM_ADAM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_int_eq(revl_schedule_set_kind(wrong.s, REVL_HYPER_ALPHA, alpha), REVL_OK);
    ck_assert_int_eq(revl_trainer_load(wrong.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(wrong.t), "other schedule values");
    run_free(&wrong);
    run_free(&right);
    run_free(&src);
    result_free(&ref);
    unlink(path);
    free(path);
}
END_TEST

/* Calls out of order, bad arguments, an unwritable path. */
START_TEST(test_state_errors)
{
    char *path = temp_path("state");
    run r;
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_int_eq(revl_trainer_save(r.t, path), REVL_ERR_STATE);
    expect_msg(revl_trainer_last_error(r.t), "no trajectory");
    ck_assert_int_eq(revl_trainer_train_resume(r.t), REVL_ERR_STATE);
    ck_assert_int_eq(revl_trainer_save(NULL, path), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_load(NULL, path), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_train_resume(NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_save(r.t, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_load(r.t, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_set_checkpoint(r.t, path, 0), REVL_ERR_INVALID);
    double w0[P_SMALL], d[P_SMALL] = {0};
    start_w(P_SMALL, w0);
    ck_assert_int_eq(revl_trainer_train(r.t, w0, META), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(r.t, "/nonexistent/dir/file"), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "cannot create");
    /* a checkpoint interval whose file cannot be written fails the training */
    ck_assert_int_eq(revl_trainer_set_checkpoint(r.t, "/nonexistent/dir/file", 2), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(r.t, w0, META), REVL_ERR_IO);
    ck_assert_int_eq(revl_trainer_set_checkpoint(r.t, NULL, 0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(r.t, w0, META), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(r.t, d, NULL, NULL, NULL, NULL, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(r.t, path), REVL_ERR_STATE);
    /* a sharded trainer (one rank here) writes its share to <path>.rank0-of-1, a file the
     * unsharded trainer refuses, as the sharded one refuses an unsharded trainer's */
    revl_comm comm;
    revl_comm_init_local(&comm);
    revl_trainer *sh = NULL;
    ck_assert_int_eq(revl_trainer_create_sharded(&sh, r.m, r.s, NULL, &comm), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(sh, w0, META), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(sh, path), REVL_OK);
    ck_assert_int_eq(access(path, F_OK), -1);
    char share[512];
    snprintf(share, sizeof share, "%s.rank0-of-1", path);
    ck_assert_int_eq(access(share, F_OK), 0);
    ck_assert_int_eq(revl_trainer_load(r.t, share), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "a sharded trainer's share (version 3)");
    ck_assert_int_eq(revl_trainer_train(r.t, w0, META), REVL_OK);
    ck_assert_int_eq(revl_trainer_save(r.t, path), REVL_OK);
    ck_assert_int_eq(rename(path, share), 0);
    ck_assert_int_eq(revl_trainer_load(sh, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(sh), "not a sharded trainer's checkpoint (version 1)");
    remove(share);
    revl_trainer_free(sh);
    run_free(&r);
    free(path);
}
END_TEST

/* ------------------------------------------------------------------ concurrent writers */

static const char MAGIC_T[8] = "revltest";

/* The number of <path>.tmp.* entries next to path. */
static int count_temporaries(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[512], prefix[512];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* The one word a test file holds (-1 when it is not a whole, checksummed file). */
static long read_word(const char *path)
{
    rv_ckpt_reader r;
    char err[512];
    revl_allocator a;
    rv_allocator_copy(&a, NULL);
    if (rv_ckpt_open(&r, &a, path, MAGIC_T, "test file", 1, err) != REVL_OK)
        return -1;
    long x = (long)rv_ckpt_get_u64(&r);
    rv_ckpt_close(&r);
    return x;
}

static void writer_start(rv_ckpt_writer *w, const char *path, uint64_t word)
{
    char err[512];
    ck_assert_msg(rv_ckpt_create(w, path, MAGIC_T, 1, err) == REVL_OK, "%s", err);
    for (int k = 0; k < 1000; k++) /* past the writer's buffer: bytes reach the file */
        rv_ckpt_put_u64(w, word);
}

/* Two writers of one path at once (two trainers saving to the same file): each has its own
 * temporary, both commits succeed and the path holds the whole file of the last one, in either
 * order; no temporary is left. A killed writer's temporary (one nobody holds locked) is removed
 * by the next save; a live writer's is not. */
START_TEST(test_concurrent_writers)
{
    char *path = temp_path("writers");
    char err[512];
    for (int order = 0; order < 2; order++) {
        rv_ckpt_writer *a = malloc(sizeof *a), *b = malloc(sizeof *b);
        writer_start(a, path, 1);
        writer_start(b, path, 2);
        ck_assert_msg(rv_ckpt_commit(order ? b : a, err) == REVL_OK, "%s", err);
        ck_assert_msg(rv_ckpt_commit(order ? a : b, err) == REVL_OK, "%s", err);
        ck_assert_int_eq(read_word(path), order ? 1 : 2);
        ck_assert_int_eq(count_temporaries(path), 0);
        free(a);
        free(b);
    }
    /* a killed save's temporary, and one a live writer holds */
    rv_ckpt_writer *live = malloc(sizeof *live), *w = malloc(sizeof *w);
    writer_start(live, path, 3);
    char stale[600];
    snprintf(stale, sizeof stale, "%s.tmp.dead01", path);
    spill(stale, (const unsigned char *)"half a file", 11);
    ck_assert_int_eq(count_temporaries(path), 2);
    writer_start(w, path, 4);
    ck_assert_int_eq(access(stale, F_OK), -1);
    ck_assert_int_eq(access(live->tmp, F_OK), 0);
    ck_assert_int_eq(rv_ckpt_commit(w, err), REVL_OK);
    ck_assert_int_eq(read_word(path), 4);
    ck_assert_int_eq(rv_ckpt_commit(live, err), REVL_OK);
    ck_assert_int_eq(read_word(path), 3);
    ck_assert_int_eq(count_temporaries(path), 0);
    /* an abandoned writer leaves nothing either */
    writer_start(w, path, 5);
    rv_ckpt_abandon(w);
    ck_assert_int_eq(count_temporaries(path), 0);
    ck_assert_int_eq(read_word(path), 3);
    free(live);
    free(w);
    unlink(path);
    free(path);
}
END_TEST


typedef struct saver {
    revl_trainer *t;
    const char *path;
    pthread_barrier_t *start;
    int failed; /* saves that did not return OK */
} saver;

static void *save_often(void *arg)
{
    saver *sv = arg;
    pthread_barrier_wait(sv->start);
    for (int k = 0; k < 40; k++)
        sv->failed += revl_trainer_save(sv->t, sv->path) != REVL_OK;
    return NULL;
}

/* Two trainers saving to one path from two threads at once, again and again: every save
 * returns OK, and the path then holds one whole checkpoint that loads (with one shared
 * temporary name, one save reported OK over a file torn by the other, or failed its rename). */
START_TEST(test_two_trainers_one_path)
{
    char *path = temp_path("two-savers");
    run a, b;
    small_pair(REVL_OPTIM_ADAM, &a, path);
    small_pair(REVL_OPTIM_ADAM, &b, path);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    saver sa = {a.t, path, &start, 0}, sb = {b.t, path, &start, 0};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, save_often, &sa), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, save_often, &sb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&start);
    ck_assert_int_eq(sa.failed + sb.failed, 0);
    ck_assert_int_eq(count_temporaries(path), 0);
    run c;
    run_make(&c, REVL_OPTIM_ADAM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_msg(revl_trainer_load(c.t, path) == REVL_OK, "%s", revl_trainer_last_error(c.t));
    run_free(&c);
    run_free(&a);
    run_free(&b);
    unlink(path);
    free(path);
}
END_TEST

/* ------------------------------------------------------------------ hyper-optimiser */

#define H_P 8
#define H_STEPS 8
#define H_ITERS 12

static int h_objective(const double *w, const double *meta, double *f, double *dfdw,
                       double *dfdmeta, void *user)
{
    (void)meta;
    (void)user;
    *f = 0;
    for (size_t i = 0; i < H_P; i++) {
        double k = 0.1 * (double)(i % 7) - 0.3;
        *f += 0.5 * w[i] * w[i] + w[i] * k;
        dfdw[i] = w[i] + k;
    }
    if (dfdmeta)
        dfdmeta[0] = 0;
    return 0;
}

typedef struct hrun {
    model q;
    revl_model *m;
    revl_hyperopt *h;
} hrun;

/* seed: NULL for the options' default */
static void hrun_make_seeded(hrun *r, revl_optimizer opt, unsigned sleep, double step_size,
                             const uint64_t *seed)
{
    memset(r, 0, sizeof *r);
    r->m = model_make(&r->q, H_P, sleep);
    size_t off[3] = {0, 3, H_P};
    ck_assert_int_eq(revl_model_set_groups(r->m, 2, off), REVL_OK);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.objective = h_objective;
    o.step_size = step_size;
    o.chaos_factor = 1.5; /* fires now and then: its state must survive too */
    o.fresh_seed = 1;
    o.iterations = H_ITERS;
    if (seed)
        o.seed = *seed;
    ck_assert_int_eq(revl_hyperopt_create_for(&r->h, r->m, NULL, H_STEPS, opt, &o), REVL_OK);
    if (opt == REVL_OPTIM_ADAM) {
        double a[H_STEPS * 2];
        for (size_t k = 0; k < H_STEPS * 2; k++)
            a[k] = 0.02;
        ck_assert_int_eq(revl_hyperopt_set_kind(r->h, REVL_HYPER_ALPHA, a), REVL_OK);
    }
}

static void hrun_make(hrun *r, revl_optimizer opt, unsigned sleep, double step_size)
{
    hrun_make_seeded(r, opt, sleep, step_size, NULL);
}

static void hrun_free(hrun *r)
{
    revl_hyperopt_free(r->h);
    revl_model_free(r->m);
}

/* Meta-iterations until H_ITERS are done, a checkpoint after each. */
static int h_continue(hrun *r, const char *path)
{
    while (revl_hyperopt_iterations_done(r->h) < H_ITERS) {
        int rc = revl_hyperopt_step(r->h, NULL);
        if (!rc)
            rc = revl_hyperopt_checkpoint_save(r->h, path);
        if (rc)
            return rc;
    }
    return REVL_OK;
}

static void h_child(revl_optimizer opt, const char *path)
{
    hrun r;
    hrun_make(&r, opt, 300, 0.04);
    if (access(path, F_OK) == 0 && revl_hyperopt_checkpoint_load(r.h, path) != REVL_OK) {
        fprintf(stderr, "child: %s\n", revl_hyperopt_last_error(r.h));
        _exit(3);
    }
    _exit(h_continue(&r, path) == REVL_OK ? 0 : 4);
}

static void hyperopt_child(const void *arg)
{
    const kill_arg *a = arg;
    h_child(a->v->opt, a->path);
}

/* Killed at random points, resumed each time from the last checkpoint: the final checkpoint is
 * byte for byte the uninterrupted run's (so are the values read back). */
START_TEST(test_hyperopt_kill_resume)
{
    revl_optimizer opt = _i ? REVL_OPTIM_ADAM : REVL_OPTIM_MOMENTUM;
    char *ref_path = temp_path("h-ref"), *path = temp_path("h-kill");
    hrun ref;
    hrun_make(&ref, opt, 0, 0.04);
    ck_assert_int_eq(h_continue(&ref, ref_path), REVL_OK);
    size_t n_ref;
    unsigned char *want = slurp(ref_path, &n_ref);
    unsigned seed = 99u + (unsigned)_i;
    for (int trial = 0; trial < 2; trial++) {
        unlink(path);
        kill_arg a = {opt == REVL_OPTIM_ADAM ? &variants[1] : &variants[0], path, 1};
        int kills = kill_until_done(hyperopt_child, &a, path, &seed);
        if (getenv("REVL_CKPT_VERBOSE"))
            fprintf(stderr, "hyperopt %d trial %d: %d kills\n", _i, trial, kills);
        size_t n;
        unsigned char *got = slurp(path, &n);
        ck_assert_uint_eq(n, n_ref);
        ck_assert_msg(memcmp(got, want, n) == 0, "the resumed run's checkpoint differs");
        free(got);
        /* and the values read back through the API */
        hrun b;
        hrun_make(&b, opt, 0, 0.04);
        ck_assert_int_eq(revl_hyperopt_checkpoint_load(b.h, path), REVL_OK);
        ck_assert_uint_eq(revl_hyperopt_iterations_done(b.h), H_ITERS);
        double x[H_STEPS * 2], y[H_STEPS * 2];
        ck_assert_int_eq(revl_hyperopt_get_kind(b.h, 1, REVL_HYPER_ALPHA, x), REVL_OK);
        ck_assert_int_eq(revl_hyperopt_get_kind(ref.h, 1, REVL_HYPER_ALPHA, y), REVL_OK);
        ck_assert(memcmp(x, y, sizeof x) == 0);
        hrun_free(&b);
    }
    free(want);
    hrun_free(&ref);
    unlink(ref_path);
    unlink(path);
    free(ref_path);
    free(path);
}
END_TEST

/* Damaged files and other hyper-optimisers: REVL_ERR_IO, and the next step is unchanged. */
START_TEST(test_hyperopt_damaged)
{
    char *path = temp_path("h-dmg"), *bad = temp_path("h-dmg-bad"), *ref_path = temp_path("h-r");
    hrun r;
    hrun_make(&r, REVL_OPTIM_MOMENTUM, 0, 0.04);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(revl_hyperopt_step(r.h, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(r.h, path), REVL_OK);
    size_t n;
    unsigned char *good = slurp(path, &n), *b = malloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(b, good, n);
        b[i] ^= 0x20;
        spill(bad, b, n);
        ck_assert_int_eq(revl_hyperopt_checkpoint_load(r.h, bad), REVL_ERR_IO);
        ck_assert_str_ne(revl_hyperopt_last_error(r.h), "");
        spill(bad, good, i);
        ck_assert_int_eq(revl_hyperopt_checkpoint_load(r.h, bad), REVL_ERR_IO);
        if (i < 8 + 4 + 16 + 6 * 8) { /* a header word with a valid checksum */
            memcpy(b, good, n);
            b[i] ^= 0x01;
            fix_crc(b, n);
            spill(bad, b, n);
            ck_assert_int_eq(revl_hyperopt_checkpoint_load(r.h, bad), REVL_ERR_IO);
        }
    }
    /* nothing changed: the next step and its checkpoint are those of an undisturbed run */
    ck_assert_int_eq(revl_hyperopt_step(r.h, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(r.h, bad), REVL_OK);
    hrun u;
    hrun_make(&u, REVL_OPTIM_MOMENTUM, 0, 0.04);
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(revl_hyperopt_step(u.h, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(u.h, ref_path), REVL_OK);
    size_t n1, n2;
    unsigned char *x = slurp(bad, &n1), *y = slurp(ref_path, &n2);
    ck_assert(n1 == n2 && memcmp(x, y, n1) == 0);
    free(x);
    free(y);
    hrun_free(&u);
    /* other optimiser, other options */
    hrun o;
    hrun_make(&o, REVL_OPTIM_ADAM, 0, 0.04);
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(o.h, path), REVL_ERR_IO);
    expect_msg(revl_hyperopt_last_error(o.h), "momentum hyper-optimiser; this one uses adam");
    hrun_free(&o);
    hrun_make(&o, REVL_OPTIM_MOMENTUM, 0, 0.05);
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(o.h, path), REVL_ERR_IO);
    expect_msg(revl_hyperopt_last_error(o.h), "other options");
    hrun_free(&o);
    /* another seed (a fresh_seed run's init noise differs): a resume would go elsewhere */
    revl_hyperopt_options dflt;
    revl_hyperopt_options_init(&dflt);
    uint64_t other_seed = dflt.seed + 1;
    hrun_make_seeded(&o, REVL_OPTIM_MOMENTUM, 0, 0.04, &other_seed);
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(o.h, path), REVL_ERR_IO);
    expect_msg(revl_hyperopt_last_error(o.h), "other options");
    /* a trainer checkpoint is not a hyper-optimiser's */
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(o.h, "/nonexistent/x"), REVL_ERR_IO);
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(o.h, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(o.h, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(NULL, path), REVL_ERR_INVALID);
    hrun_free(&o);
    hrun_free(&r);
    unlink(path);
    unlink(bad);
    unlink(ref_path);
    free(good);
    free(b);
    free(path);
    free(bad);
    free(ref_path);
}
END_TEST

/* Each check of the hyper-optimiser's loader behind its header, reached by a file the library
 * wrote with one field changed and the checksum recomputed: refused with its message, and the
 * next step is an undisturbed run's. */
START_TEST(test_consistent_checksum_hyperopt)
{
    char *path = temp_path("h-forge"), *bad = temp_path("h-forge-bad");
    char *ref_path = temp_path("h-forge-ref");
    hrun r, u;
    hrun_make(&r, REVL_OPTIM_MOMENTUM, 0, 0.04);
    hrun_make(&u, REVL_OPTIM_MOMENTUM, 0, 0.04);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(revl_hyperopt_step(r.h, NULL), REVL_OK);
        ck_assert_int_eq(revl_hyperopt_step(u.h, NULL), REVL_OK);
    }
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(r.h, path), REVL_OK);
    size_t n;
    unsigned char *good = slurp(path, &n);
    /* docs/file-formats.md: name, 5 sizes (n_theta first), options hash, 5 counts (iteration,
     * adam_t, prev_adam_t, have_best, have_prev), 3 scalars (best loss, meta step, running
     * minimum), then 8 vectors of n_theta (cur, best, m1, m2, prev, prev_m1, prev_m2, grad) */
    const size_t nt = (size_t)get_le_at(good, 12 + 16);
    const size_t off_counts = 12 + 16 + 5 * 8 + 8, off_scalars = off_counts + 5 * 8;
    const size_t off_vec = off_scalars + 3 * 8;
    ck_assert_uint_eq(n, off_vec + 8 * nt * 8 + 12);
    ck_assert_uint_eq(get_le_at(good, off_counts), 3);     /* iteration */
    ck_assert_uint_eq(get_le_at(good, off_counts + 24), 1); /* have_best */
    /* gamma's block follows alpha's (H_STEPS x 2 each) in the coordinates: the first gamma */
    const size_t gamma0 = off_vec + 8 * (H_STEPS * 2);
    struct {
        size_t off;
        uint64_t x;
        const char *want;
    } cases[] = {
        {off_counts + 24, 2, "inconsistent counters"},     /* have_best */
        {off_counts + 32, 2, "inconsistent counters"},     /* have_prev */
        {off_counts + 8, 5, "inconsistent counters"},      /* adam_t > iteration + 1 */
        {off_counts + 16, get_le_at(good, off_counts + 8) + 1, "inconsistent counters"},
        /* prev_adam_t > adam_t, above */
        {off_scalars, f64_bits(NAN), "invalid best loss, meta step or running minimum"},
        {off_scalars, f64_bits(-INFINITY), "invalid best loss, meta step or running minimum"},
        {off_scalars + 8, f64_bits(0.0), "invalid best loss, meta step or running minimum"},
        {off_scalars + 8, f64_bits(INFINITY), "invalid best loss, meta step or running minimum"},
        {off_scalars + 16, f64_bits(-1.0), "invalid best loss, meta step or running minimum"},
        {off_vec + 8 * (2 * nt + 1), f64_bits(NAN), "a hyperparameter or moment is not finite"},
        {gamma0, f64_bits(1.5), "holds values outside their range"},         /* cur */
        {gamma0 + 8 * nt, f64_bits(1.5), "holds values outside their range"}, /* best */
        {SIZE_MAX, 0, "its vectors are cut short or followed by unknown data"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        forge(good, n, cases[c].off, cases[c].x, bad);
        ck_assert_msg(revl_hyperopt_checkpoint_load(r.h, bad) == REVL_ERR_IO, "case %zu accepted",
                      c);
        expect_msg(revl_hyperopt_last_error(r.h), cases[c].want);
    }
    /* a saved prev (have_prev = 1) is checked too: a step back after a chaos event */
    unsigned char *b = malloc(n);
    memcpy(b, good, n);
    put_le_at(b, off_counts + 32, 1);
    forge(b, n, gamma0 + 8 * 4 * nt, f64_bits(1.5), bad);
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(r.h, bad), REVL_ERR_IO);
    expect_msg(revl_hyperopt_last_error(r.h), "holds values outside their range");
    free(b);
    /* nothing changed */
    ck_assert_int_eq(revl_hyperopt_step(r.h, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(u.h, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(r.h, bad), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(u.h, ref_path), REVL_OK);
    size_t n1, n2;
    unsigned char *x = slurp(bad, &n1), *y = slurp(ref_path, &n2);
    ck_assert(n1 == n2 && memcmp(x, y, n1) == 0);
    free(x);
    free(y);
    hrun_free(&r);
    hrun_free(&u);
    unlink(path);
    unlink(bad);
    unlink(ref_path);
    free(good);
    free(path);
    free(bad);
    free(ref_path);
}
END_TEST

/* ------------------------------------------------------------------ reverse pass */

/* The dfdw and dfdmeta of finish() (its w_T is the reference's). */
static double *dfdw_of(const double *wT, size_t p)
{
    double *dfdw = malloc(p * sizeof *dfdw);
    for (size_t i = 0; i < p; i++)
        dfdw[i] = wT[i] + 0.1 * (double)(i % 7) - 0.3;
    return dfdw;
}

/* Arrays for every kind of r's schedule in res (w_T copied from ref, which a trainer standing
 * mid-reverse no longer holds). */
static void result_alloc(run *r, const result *ref, result *res)
{
    memset(res, 0, sizeof *res);
    res->wT = malloc(r->p * sizeof *res->wT);
    memcpy(res->wT, ref->wT, r->p * sizeof *res->wT);
    res->dw0 = malloc(r->p * sizeof *res->dw0);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(r->s, kinds);
    for (size_t k = 0; k < nk; k++)
        res->dk[kinds[k]] = malloc(r->steps * NG * sizeof(double));
}

/* The last step a reverse pass stopped at `fail_at` saved at (every `every` steps walked, never
 * after the last), or 0 when it saved nothing. */
static size_t last_reverse_save(size_t steps, size_t first_kept, size_t fail_at, size_t every)
{
    for (size_t s = fail_at + 1; s < steps; s++)
        if (s > first_kept && (steps - s) % every == 0)
            return s;
    return 0;
}

#define N_REV_VARIANTS (2 * REVL_OPTIM_COUNT)

/* Every optimiser, whole and truncated: a reverse pass stopped at step k (its gradient call
 * fails), checkpointed every 1, 2 or 3 steps walked back; a fresh trainer loads the file, takes
 * no other call than hypergrad_resume, and ends on the bits of the uninterrupted pass. */
START_TEST(test_reverse_resume)
{
    revl_optimizer opt = (revl_optimizer)(_i % REVL_OPTIM_COUNT);
    size_t truncate = _i < REVL_OPTIM_COUNT ? 0 : 15, first_kept = truncate ? STEPS - truncate : 0;
    result ref;
    reference(opt, P_BIG, STEPS, truncate, &ref);
    char *path = temp_path("rev");
    double *w0 = malloc(P_BIG * sizeof *w0), *dfdw = dfdw_of(ref.wT, P_BIG);
    double dfdmeta[1] = {0.25};
    start_w(P_BIG, w0);
    size_t ks[] = {first_kept, first_kept + 1, first_kept + 4, STEPS - 4, STEPS - 3};
    int resumed = 0;
    for (size_t every = 1; every <= 3; every++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
            size_t k = ks[j], saved = last_reverse_save(STEPS, first_kept, k, every);
            unlink(path);
            run a;
            run_make(&a, opt, P_BIG, STEPS, truncate, 52, 1.0);
            ck_assert_int_eq(revl_trainer_train(a.t, w0, META), REVL_OK);
            ck_assert_int_eq(revl_trainer_set_checkpoint(a.t, path, every), REVL_OK);
            a.q.fail_at = (long)k;
            result tmp;
            result_alloc(&a, &ref, &tmp);
            int rc = revl_trainer_hypergrad_kinds_n(a.t, dfdw, dfdmeta, tmp.dw0, REVL_HYPER_COUNT,
                                                    tmp.dk, tmp.dmeta);
            ck_assert_int_eq(rc, REVL_ERR_CALLBACK);
            result_free(&tmp);
            run_free(&a);
            if (!saved) {
                ck_assert_msg(access(path, F_OK) != 0, "saved at k %zu every %zu", k, every);
                continue;
            }
            run b;
            run_make(&b, opt, P_BIG, STEPS, truncate, 52, 1.0);
            rc = revl_trainer_load(b.t, path);
            ck_assert_msg(rc == REVL_OK, "load (k %zu every %zu): %s", k, every,
                          revl_trainer_last_error(b.t));
            revl_trainer_stats st = {.struct_size = sizeof st};
            revl_trainer_get_stats(b.t, &st);
            ck_assert_uint_eq(st.steps_done, saved);
            /* nothing but the resume continues it */
            ck_assert_int_eq(revl_trainer_hypergrad(b.t, dfdw, NULL, NULL, NULL, NULL, NULL),
                             REVL_ERR_STATE);
            expect_msg(revl_trainer_last_error(b.t), "revl_trainer_hypergrad_resume");
            ck_assert_int_eq(revl_trainer_train_resume(b.t), REVL_ERR_STATE);
            ck_assert_int_eq(revl_trainer_save(b.t, path), REVL_ERR_STATE);
            expect_msg(revl_trainer_last_error(b.t), "mid-reverse");
            result res;
            result_alloc(&b, &ref, &res);
            rc = revl_trainer_hypergrad_resume(b.t, res.dw0, REVL_HYPER_COUNT, res.dk, res.dmeta);
            ck_assert_msg(rc == REVL_OK, "resume (k %zu every %zu): %s", k, every,
                          revl_trainer_last_error(b.t));
            expect_same(&ref, &res, P_BIG, STEPS);
            resumed++;
            ck_assert_int_eq(revl_trainer_hypergrad_resume(b.t, NULL, 0, NULL, NULL),
                             REVL_ERR_STATE);
            /* the trainer stands at the start again: a new train reverses as ever */
            ck_assert_int_eq(revl_trainer_train(b.t, w0, META), REVL_OK);
            result again;
            finish(&b, &again);
            expect_same(&ref, &again, P_BIG, STEPS);
            result_free(&again);
            result_free(&res);
            run_free(&b);
        }
    ck_assert_int_ge(resumed, 10);
    unlink(path);
    free(path);
    free(w0);
    free(dfdw);
    result_free(&ref);
}
END_TEST

/* A reverse child: load the trained (or mid-reverse) checkpoint at path, walk back (resuming
 * when the file is mid-reverse) with checkpoints every `every` steps, write the results to
 * <path>.out. Exit 0 when done. */
static void reverse_child(const void *arg)
{
    const kill_arg *a = arg;
    run r;
    run_make(&r, a->v->opt, P_BIG, STEPS, a->v->truncate, 52, 1.0);
    r.q.sleep_us = 400;
    if (revl_trainer_set_checkpoint(r.t, a->path, a->every) != REVL_OK)
        _exit(2);
    if (revl_trainer_load(r.t, a->path) != REVL_OK) {
        fprintf(stderr, "child: %s\n", revl_trainer_last_error(r.t));
        _exit(3);
    }
    static double wT[P_BIG], dw0[P_BIG], dk[REVL_HYPER_COUNT][STEPS * NG];
    double *dks[REVL_HYPER_COUNT] = {0}, dmeta[1];
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(r.s, kinds);
    for (size_t k = 0; k < nk; k++)
        dks[kinds[k]] = dk[kinds[k]];
    int rc = revl_trainer_hypergrad_resume(r.t, dw0, REVL_HYPER_COUNT, dks, dmeta);
    if (rc == REVL_ERR_STATE) { /* a trained trajectory: the pass starts */
        revl_trainer_weights(r.t, wT);
        double *dfdw = dfdw_of(wT, P_BIG), dfdmeta[1] = {0.25};
        rc = revl_trainer_hypergrad_kinds_n(r.t, dfdw, dfdmeta, dw0, REVL_HYPER_COUNT, dks,
                                            dmeta);
    }
    if (rc != REVL_OK)
        _exit(4);
    char out[600];
    snprintf(out, sizeof out, "%s.out", a->path);
    FILE *f = fopen(out, "wb");
    int ok = f && fwrite(dw0, sizeof dw0, 1, f) == 1 && fwrite(dk, sizeof dk, 1, f) == 1 &&
             fwrite(dmeta, sizeof dmeta, 1, f) == 1;
    if (!f || fclose(f) || !ok)
        _exit(5);
    _exit(0);
}

/* The reverse pass killed with SIGKILL at random points again and again, each new process
 * resuming from the last checkpoint: the same bits as the uninterrupted pass. */
START_TEST(test_reverse_kill_resume)
{
    const variant *v = &variants[_i];
    result ref;
    reference(v->opt, P_BIG, STEPS, v->truncate, &ref);
    char *path = temp_path("rev-kill"), out[600];
    snprintf(out, sizeof out, "%s.out", path);
    unsigned seed = 4321u + (unsigned)_i;
    double *w0 = malloc(P_BIG * sizeof *w0);
    start_w(P_BIG, w0);
    for (int trial = 0; trial < 2; trial++) {
        run a; /* the trained trajectory the children reverse */
        run_make(&a, v->opt, P_BIG, STEPS, v->truncate, 52, 1.0);
        ck_assert_int_eq(revl_trainer_train(a.t, w0, META), REVL_OK);
        ck_assert_int_eq(revl_trainer_save(a.t, path), REVL_OK);
        run_free(&a);
        unlink(out);
        kill_arg arg = {v, path, 1 + (size_t)(trial + _i) % 3};
        int kills = kill_until_done(reverse_child, &arg, path, &seed);
        if (getenv("REVL_CKPT_VERBOSE"))
            fprintf(stderr, "reverse variant %d trial %d: %d kills\n", _i, trial, kills);
        size_t n;
        unsigned char *b = slurp(out, &n);
        static double dk[REVL_HYPER_COUNT][STEPS * NG];
        ck_assert_uint_eq(n, sizeof(double) * (P_BIG + 1) + sizeof dk);
        ck_assert(memcmp(b, ref.dw0, P_BIG * sizeof(double)) == 0);
        memcpy(dk, b + P_BIG * sizeof(double), sizeof dk);
        for (int k = 0; k < REVL_HYPER_COUNT; k++)
            if (ref.dk[k])
                ck_assert_msg(memcmp(dk[k], ref.dk[k], sizeof dk[k]) == 0, "d_%s differs",
                              revl_hyper_name((revl_hyper)k));
        ck_assert(memcmp(b + n - sizeof(double), ref.dmeta, sizeof(double)) == 0);
        free(b);
    }
    unlink(path);
    unlink(out);
    free(path);
    free(w0);
    result_free(&ref);
}
END_TEST

/* A small momentum run's checkpoint taken mid-reverse (after 2 of its 6 steps back, only alpha
 * asked for) into path; the trainer is freed. */
static void small_reverse(const char *path, size_t truncate)
{
    run r;
    run_make(&r, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL, truncate, 52, 1.0);
    double w0[P_SMALL], dfdw[P_SMALL];
    start_w(P_SMALL, w0);
    ck_assert_int_eq(revl_trainer_train(r.t, w0, META), REVL_OK);
    ck_assert_int_eq(revl_trainer_set_checkpoint(r.t, path, 2), REVL_OK);
    for (size_t i = 0; i < P_SMALL; i++)
        dfdw[i] = 1.0 + 0.1 * (double)i;
    r.q.fail_at = STEPS_SMALL - 3;
    double da[STEPS_SMALL * NG];
    ck_assert_int_eq(revl_trainer_hypergrad(r.t, dfdw, NULL, NULL, da, NULL, NULL),
                     REVL_ERR_CALLBACK);
    run_free(&r);
}

/* Momentum's and RMSprop's weight_decay came after their checkpoints shipped: with it 0 (the
 * default) the schedule hash a checkpoint stores is the one of the kinds they shipped with, so
 * their old files still load; any decay changes it. */
START_TEST(test_schedule_hash_without_decay)
{
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_MOMENTUM;
    run r;
    run_make(&r, opt, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_int_eq(revl_schedule_fill_kind(r.s, REVL_HYPER_WEIGHT_DECAY, 0.0), REVL_OK);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(r.s, kinds), n = STEPS_SMALL * NG;
    ck_assert(kinds[nk - 1] == REVL_HYPER_WEIGHT_DECAY);
    uint64_t old = rv_hash_u64(rv_hash_u64(RV_HASH_INIT, STEPS_SMALL), NG);
    double *v = malloc(n * sizeof *v);
    for (size_t k = 0; k + 1 < nk; k++) { /* the hash as the library computed it before */
        revl_schedule_get_kind(r.s, kinds[k], v);
        old = rv_hash_f64s(rv_hash_u64(old, (uint64_t)kinds[k]), v, n);
    }
    ck_assert_uint_eq(rv_trainer_schedule_hash(r.t), old);
    v[0] = 0.5;
    for (size_t j = 1; j < n; j++)
        v[j] = 0;
    ck_assert_int_eq(revl_schedule_set_kind(r.s, REVL_HYPER_WEIGHT_DECAY, v), REVL_OK);
    ck_assert_uint_ne(rv_trainer_schedule_hash(r.t), old);
    free(v);
    run_free(&r);
}
END_TEST

/* Damaged, forged and foreign mid-reverse checkpoints: REVL_ERR_IO with a message, the trainer
 * (trained) as it was; a version 1 file (the forward format, unchanged) still loads; resume
 * asks only for kinds the interrupted pass accumulated. */
START_TEST(test_reverse_files)
{
    char *path = temp_path("rev-file"), *bad = temp_path("rev-file-bad");
    small_reverse(path, 0);
    size_t n;
    unsigned char *good = slurp(path, &n), *b = malloc(n + 8);
    /* the layout: momentum (1 state vector of 8 bytes), 1 meta, 1 block; then the reverse
     * section: kinds, inputs' hash, largest |dfdw|, dw, dmeta, 1 adjoint (dv), alpha */
    const size_t p = P_SMALL, T = STEPS_SMALL, sg = T * NG;
    const size_t off_state = 12 + 16 + 8 * 8 + 8 + 16, off_steps = off_state + 8;
    const size_t off_rev = n - 12 - (24 + 8 * p + 8 + 8 + 8 + 8 * p + 8 * sg);
    ck_assert_uint_eq(get_le_at(good, 8) & 0xffffffffu, 2); /* version */
    ck_assert_uint_eq(get_le_at(good, off_state), RV_REVERSING);
    ck_assert_uint_eq(get_le_at(good, off_steps), T - 2);
    ck_assert_uint_eq(get_le_at(good, off_rev), 1); /* alpha */
    const size_t off_count = off_rev + 24 + 8 * p + 8;
    ck_assert_uint_eq(get_le_at(good, off_count), 1);
    ck_assert_uint_eq(get_le_at(good, off_count + 8), p);
    struct {
        size_t off;
        uint64_t x;
        const char *want;
    } cases[] = {
        /* bits 0-2 are momentum's kinds (alpha, gamma, weight_decay), bit 3 clip's (the driver's
         * kind after the optimiser's) */
        {off_rev, 16, "hypergradients of kinds 0x10; a momentum schedule has 3 kinds and clip"},
        {off_rev, 0, "144 bytes of unknown data after the body"},
        {off_rev, 3, "cut short in the reverse pass's adjoints"},
        {off_rev + 16, f64_bits(NAN), "invalid largest |dfdw|"},
        {off_rev + 16, f64_bits(-1.0), "invalid largest |dfdw|"},
        {off_count, 2, "2 adjoint arrays; a momentum trainer's reverse pass has 1"},
        {off_count + 8, p + 1, "adjoint array 0 has 11 entries; this trainer's has 10"},
        {off_steps, 0, "invalid step count 0 of 6 in the reverse pass"},
        {off_steps, T, "invalid step count 6 of 6 in the reverse pass"},
        {off_state, RV_FORWARD_ONLY, "invalid trainer state 4"},
        {SIZE_MAX, 0, "8 bytes of unknown data after the body"},
        {8, 1, "invalid trainer state 5"}, /* version 1 knows no mid-reverse state */
        {8, 5, "revl trainer checkpoint version 5; this library reads versions 1 to 4"},
        {8, 4, "a sharded trainer's share (version 4); this trainer is not sharded"},
        {8, 3, "a sharded trainer's share (version 3); this trainer is not sharded"},
    };
    run r, twin;
    small_pair(REVL_OPTIM_MOMENTUM, &r, bad);
    double before[P_SMALL], after[P_SMALL];
    revl_trainer_weights(r.t, before);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(b, good, n);
        if (cases[c].off == 8) { /* the 32-bit version word */
            for (int i = 0; i < 4; i++)
                b[8 + i] = (unsigned char)(cases[c].x >> (8 * i));
            fix_crc(b, n);
            spill(bad, b, n);
        } else {
            forge(b, n, cases[c].off, cases[c].x, bad);
        }
        ck_assert_msg(revl_trainer_load(r.t, bad) == REVL_ERR_IO, "case %zu accepted", c);
        expect_msg(revl_trainer_last_error(r.t), cases[c].want);
    }
    /* every truncation, every byte flipped (a few per byte of the reverse section) */
    for (size_t m = 0; m < n; m += 7) {
        spill(bad, good, m);
        ck_assert_int_eq(revl_trainer_load(r.t, bad), REVL_ERR_IO);
    }
    for (size_t i = off_rev; i < n - 12; i += 3) {
        memcpy(b, good, n);
        b[i] ^= 0x10;
        spill(bad, b, n);
        ck_assert_int_eq(revl_trainer_load(r.t, bad), REVL_ERR_IO);
        expect_msg(revl_trainer_last_error(r.t), "checksum mismatch");
    }
    /* another run's: truncated, another schedule, another optimiser */
    char *other = temp_path("rev-file-other");
    small_reverse(other, 3);
    ck_assert_int_eq(revl_trainer_load(r.t, other), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t), "first kept step (truncate)");
    run o;
    run_make(&o, REVL_OPTIM_MOMENTUM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_int_eq(revl_schedule_fill_kind(o.s, REVL_HYPER_ALPHA, 0.003), REVL_OK);
    ck_assert_int_eq(revl_trainer_load(o.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(o.t), "other schedule values");
    run_free(&o);
    run_make(&o, REVL_OPTIM_ADAM, P_SMALL, STEPS_SMALL, 0, 52, 1.0);
    ck_assert_int_eq(revl_trainer_load(o.t, path), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(o.t), "a checkpoint of a momentum trainer");
    run_free(&o);
    unlink(other);
    free(other);
    /* the refused files left the trainer trained as it was */
    revl_trainer_weights(r.t, after);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    result ref, res;
    small_pair(REVL_OPTIM_MOMENTUM, &twin, bad);
    finish(&twin, &ref);
    finish(&r, &res);
    expect_same(&ref, &res, P_SMALL, STEPS_SMALL);
    result_free(&ref);
    result_free(&res);
    run_free(&twin);

    /* a forward checkpoint is written as version 1 (what earlier libraries read); the same
     * body labelled version 2 is refused (one way to write each file) */
    small_pair(REVL_OPTIM_MOMENTUM, &twin, bad);
    size_t n1;
    unsigned char *v1 = slurp(bad, &n1);
    ck_assert_uint_eq(v1[8], 1);
    v1[8] = 2;
    fix_crc(v1, n1);
    spill(bad, v1, n1);
    ck_assert_int_eq(revl_trainer_load(r.t, bad), REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(r.t),
               "a version 2 file holds a checkpoint taken mid-reverse, not state 1");
    v1[8] = 1;
    fix_crc(v1, n1);
    spill(bad, v1, n1);
    free(v1);
    ck_assert_msg(revl_trainer_load(r.t, bad) == REVL_OK, "%s", revl_trainer_last_error(r.t));
    finish(&twin, &ref);
    finish(&r, &res);
    expect_same(&ref, &res, P_SMALL, STEPS_SMALL);
    result_free(&ref);
    result_free(&res);
    run_free(&twin);

    /* resume asks only for what the interrupted pass accumulated (alpha), and gives the bits
     * of the uninterrupted pass that asked for the same */
    ck_assert_int_eq(revl_trainer_load(r.t, path), REVL_OK);
    double da[STEPS_SMALL * NG], dw0[P_SMALL], keep[P_SMALL];
    double *dk[REVL_HYPER_COUNT] = {0};
    dk[REVL_HYPER_BETA1] = da;
    ck_assert_int_eq(revl_trainer_hypergrad_resume(r.t, dw0, REVL_HYPER_COUNT, dk, NULL),
                     REVL_ERR_INVALID);
    expect_msg(revl_trainer_last_error(r.t), "has no beta1");
    dk[REVL_HYPER_BETA1] = NULL;
    dk[REVL_HYPER_GAMMA] = da;
    for (size_t i = 0; i < P_SMALL; i++)
        dw0[i] = keep[i] = -7.0;
    ck_assert_int_eq(revl_trainer_hypergrad_resume(r.t, dw0, REVL_HYPER_COUNT, dk, NULL),
                     REVL_ERR_INVALID);
    expect_msg(revl_trainer_last_error(r.t), "did not accumulate gamma");
    ck_assert(memcmp(dw0, keep, sizeof dw0) == 0);
    dk[REVL_HYPER_GAMMA] = NULL;
    dk[REVL_HYPER_ALPHA] = da;
    ck_assert_msg(revl_trainer_hypergrad_resume(r.t, dw0, REVL_HYPER_COUNT, dk, NULL) == REVL_OK,
                  "%s", revl_trainer_last_error(r.t));
    small_pair(REVL_OPTIM_MOMENTUM, &twin, bad);
    double dfdw[P_SMALL], ra[STEPS_SMALL * NG], rw0[P_SMALL];
    for (size_t i = 0; i < P_SMALL; i++)
        dfdw[i] = 1.0 + 0.1 * (double)i;
    ck_assert_int_eq(revl_trainer_hypergrad(twin.t, dfdw, NULL, rw0, ra, NULL, NULL), REVL_OK);
    ck_assert(memcmp(dw0, rw0, sizeof dw0) == 0);
    ck_assert(memcmp(da, ra, sizeof da) == 0);
    run_free(&twin);

    /* a save that fails stops the pass there: REVL_ERR_IO, no output written, train again */
    small_pair(REVL_OPTIM_MOMENTUM, &twin, bad);
    ck_assert_int_eq(revl_trainer_set_checkpoint(twin.t, "/nonexistent-revl-dir/x.ckpt", 1),
                     REVL_OK);
    for (size_t i = 0; i < P_SMALL; i++)
        dw0[i] = -7.0;
    ck_assert_int_eq(revl_trainer_hypergrad(twin.t, dfdw, NULL, dw0, ra, NULL, NULL),
                     REVL_ERR_IO);
    expect_msg(revl_trainer_last_error(twin.t), "cannot create its temporary file");
    ck_assert(memcmp(dw0, keep, sizeof dw0) == 0);
    ck_assert_int_eq(revl_trainer_hypergrad(twin.t, dfdw, NULL, dw0, ra, NULL, NULL),
                     REVL_ERR_STATE);
    run_free(&twin);
    free(good);
    free(b);
    run_free(&r);
    unlink(path);
    unlink(bad);
    free(path);
    free(bad);
}
END_TEST

static Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("resume");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_resume_every_step, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_kill_resume, 0, N_VARIANTS);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_corrupt_every_byte, 0, 2);
    tcase_add_test(tc, test_header_words_refused);
    tcase_add_test(tc, test_consistent_checksum_trainer);
    tcase_add_loop_test(tc, test_wide_state_range, 0, 2);
    tcase_add_test(tc, test_mismatch_messages);
    tcase_add_test(tc, test_schedule_trained_with);
    tcase_add_test(tc, test_state_errors);
    tcase_add_test(tc, test_concurrent_writers);
    tcase_add_test(tc, test_two_trainers_one_path);
    suite_add_tcase(s, tc);
    tc = tcase_create("reverse");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_reverse_resume, 0, N_REV_VARIANTS);
    tcase_add_loop_test(tc, test_reverse_kill_resume, 0, N_VARIANTS);
    tcase_add_test(tc, test_reverse_files);
    tcase_add_loop_test(tc, test_schedule_hash_without_decay, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("hyperopt");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_hyperopt_kill_resume, 0, 2);
    tcase_add_test(tc, test_hyperopt_damaged);
    tcase_add_test(tc, test_consistent_checksum_hyperopt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(checkpoint_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
