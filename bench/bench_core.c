/* bench_core.c: throughput of the exact core against the plain floating-point momentum step and
 * against the machine's memory bandwidth, all measured side by side in one run; the speed-up
 * on 2 threads; the exact multiply's coder alone, plain loop against vector lanes; and the
 * memory of the information buffer against the information it holds.
 * Usage: bench_core [max_P] [threads]   (defaults 10^7 and 1; prints tables) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "exact/coder_vec.h" /* the coder alone: internal, the static library exports it */

/* The plain double momentum-SGD loop over the same model: what revl is compared with. */
static double plain_sgd(size_t p, size_t steps, double *w, double *v, double *g)
{
    double t0 = bench_now();
    memset(v, 0, p * sizeof *v);
    for (size_t t = 0; t < steps; t++) {
        trivial_grad(t, w, NULL, g, NULL, &p);
        for (size_t i = 0; i < p; i++) {
            v[i] = 0.9 * v[i] - 0.1 * g[i];
            w[i] += 0.05 * v[i];
        }
    }
    return bench_now() - t0;
}

/* Best of a few memcpy runs over a buffer of `bytes`: bytes read + written per second. */
/* memcpy's read + write bandwidth on nt threads, each copying its own share (best of 5): the
 * bound of a memory-bound pass, and with nt = 2 of what a second thread can add to one. */
static double copy_bandwidth(size_t bytes, int nt)
{
    char *a = malloc(bytes), *b = malloc(bytes);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    size_t share = bytes / (size_t)nt;
    for (int k = 0; k < 5; k++) {
        double t0 = bench_now();
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int j = 0; j < nt; j++)
            memcpy(b + (size_t)j * share, a + (size_t)j * share, share);
        double dt = bench_now() - t0;
        if (dt < best)
            best = dt;
        a[k] = b[bytes - 1 - k];
    }
    free(a);
    free(b);
    return 2.0 * (double)bytes / best;
}

typedef struct run {
    double fwd, rev, bits, peak;
    size_t bytes;
} run;

static int exact_run(size_t p, size_t steps, double gamma, int threads, run *r)
{
    revl_model *m = trivial_model(&p);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    size_t off[2] = {0, p};
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = threads;
    bench_model_threads = threads;
    int rc = revl_schedule_create(&s, steps, 1, off);
    if (!rc)
        rc = revl_schedule_fill(s, 0.05, gamma);
    if (!rc)
        rc = revl_trainer_create(&t, m, s, &o);
    double *w0 = malloc(p * 8), *g = malloc(p * 8);
    for (size_t i = 0; i < p; i++) {
        w0[i] = sin((double)i);
        g[i] = 1e-3;
    }
    double t0 = bench_now();
    if (!rc)
        rc = revl_trainer_train(t, w0, NULL);
    r->fwd = bench_now() - t0;
    revl_trainer_stats st = {.struct_size = sizeof st};
    if (!rc)
        rc = revl_trainer_get_stats(t, &st);
    r->bits = st.buffer_bits;
    r->bytes = st.buffer_bytes;
    t0 = bench_now();
    if (!rc)
        rc = revl_trainer_hypergrad(t, g, NULL, NULL, NULL, NULL, NULL);
    r->rev = bench_now() - t0;
    if (!rc)
        rc = revl_trainer_get_stats(t, &st);
    r->peak = (double)st.peak_bytes;
    if (rc)
        fprintf(stderr, "bench_core: %s: %s\n", revl_strerror(rc), t ? revl_trainer_last_error(t) : "");
    free(w0);
    free(g);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return rc;
}


/* The coder alone: T exact multiplies by gamma = 0.9 of P velocities block by block, then T
 * divisions back, with one version (coder_vec.h); best of 3, in ns per parameter-step. Returns
 * a checksum of the states after the forward runs, which every version must share. */
static uint64_t coder_run(const rv_coder_run *cr, size_t p, size_t steps, double *fwd, double *rev)
{
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    bench_check(rv_infobuf_init(&b, &a, p), "rv_infobuf_init", NULL);
    int64_t *v = malloc(p * sizeof *v);
    for (size_t i = 0; i < p; i++)
        v[i] = (int64_t)(sin((double)i) * 0x1p40); /* a velocity of ~1e-3 at 2^-52 */
    rv_gamma_code c;
    rv_gamma_code_make(&c, rv_gamma_numerator(0.9));
    uint64_t sum = 0;
    *fwd = *rev = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bench_now();
        for (size_t t = 0; t < steps; t++)
            for (size_t k = 0, i = 0; i < p; k++, i += RV_BLOCK)
                cr->mul(&a, &b.stacks[k], b.state + i, &c, v + i, p - i < RV_BLOCK ? p - i : RV_BLOCK);
        double t1 = bench_now();
        sum = 0;
        for (size_t i = 0; i < p; i++)
            sum = sum * 31 + b.state[i] + (uint64_t)v[i];
        double t2 = bench_now();
        for (size_t t = 0; t < steps; t++)
            for (size_t k = 0, i = 0; i < p; k++, i += RV_BLOCK)
                cr->div(&a, &b.stacks[k], b.state + i, &c, v + i, p - i < RV_BLOCK ? p - i : RV_BLOCK);
        double t3 = bench_now(), ps = (double)p * (double)steps;
        *fwd = fmin(*fwd, 1e9 * (t1 - t0) / ps);
        *rev = fmin(*rev, 1e9 * (t3 - t2) / ps);
    }
    if (!rv_infobuf_is_empty(&b))
        sum = 0; /* not back at the start: reported as a mismatch */
    rv_infobuf_destroy(&b);
    free(v);
    return sum;
}

static rv_coder_run coder_runs[3];

static uint64_t coder_version(int k, size_t p, size_t steps, double *fwd, double *rev)
{
    return coder_run(&coder_runs[k], p, steps, fwd, rev);
}

static void coder_table(size_t max_p)
{
    const char *skipped, *names[3];
    int n = rv_coder_runs(coder_runs, &skipped);
    for (int k = 0; k < n; k++)
        names[k] = coder_runs[k].name;
    printf("\nthe coder alone (exact multiply by gamma = 0.9, no update): ns per parameter-step, "
           "best of 3\n");
    bench_versions_table(n, names, skipped, max_p, (size_t)-1, coder_version);
}

int main(int argc, char **argv)
{
    size_t max_p = argc > 1 ? (size_t)atof(argv[1]) : 10000000;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    printf("revl %s, exact core, %d thread(s), trivial gradient g = 0.01 w, gamma = 0.9\n",
           revl_version_string(), threads);
    double bw = copy_bandwidth((size_t)1 << 28, 1), bw2 = copy_bandwidth((size_t)1 << 28, 2);
    printf("memory copy bandwidth (read + write): %.2f GB/s on one thread, %.2f on two\n\n",
           bw / 1e9, bw2 / 1e9);
    /* Bytes each parameter-step moves through memory: forward reads w, v, g, state and writes
     * w, v, w-as-double, state (the model call reads w and writes g: 16 more); reverse moves
     * about twice that (two passes, plus dw, dv, u, hv). */
    const double fwd_bytes = 80, rev_bytes = 176;
    printf("%10s %6s | %12s %12s %12s | %8s %8s | %9s %9s\n", "P", "T", "plain Mps/s",
           "fwd Mps/s", "rev Mps/s", "fwd/plain", "rev/plain", "fwd %bw", "rev %bw");
    double worst_fwd = 0, worst_rev = 0; /* over P = 10^4 ... 10^7, the range */
    for (size_t p = 1000; p <= max_p; p *= 10) {
        size_t steps = (size_t)(2e8 / (double)p);
        if (steps > 2000)
            steps = 2000;
        if (steps < 20)
            steps = 20;
        double *w = malloc(p * 8), *v = malloc(p * 8), *g = malloc(p * 8);
        for (size_t i = 0; i < p; i++)
            w[i] = sin((double)i);
        double plain = plain_sgd(p, steps, w, v, g);
        free(w);
        free(v);
        free(g);
        run r;
        if (exact_run(p, steps, 0.9, threads, &r))
            return 1;
        double ps = (double)p * (double)steps;
        double fwd_rate = ps / r.fwd, rev_rate = ps / r.rev, plain_rate = ps / plain;
        printf("%10zu %6zu | %12.1f %12.1f %12.1f | %8.2f %8.2f | %8.0f%% %8.0f%%\n", p, steps,
               plain_rate / 1e6, fwd_rate / 1e6, rev_rate / 1e6, r.fwd / plain, r.rev / plain,
               100 * fwd_rate * fwd_bytes / bw, 100 * rev_rate * rev_bytes / bw);
        if (p >= 10000) {
            worst_fwd = fmax(worst_fwd, r.fwd / plain);
            worst_rev = fmax(worst_rev, r.rev / plain);
        }
    }
    bench_target("exact forward / plain loop, P = 10^4..10^7", worst_fwd, "<=", 2);
    bench_target("exact reverse / plain loop, P = 10^4..10^7", worst_rev, "<=", 4);
    printf("\nthreads: the same runs with 1 and 2 threads, best of 3 (bits identical by "
           "construction)\n");
    printf("%10s %6s | %12s %12s | %12s %12s | %9s %9s | %9s %9s\n", "P", "T", "fwd 1t s",
           "rev 1t s", "fwd 2t s", "rev 2t s", "fwd x", "rev x", "fwd bound", "rev bound");
    double worst_x = INFINITY;
    for (size_t p = 1000000; p <= max_p && p <= 10000000; p *= 10) {
        size_t steps = p >= 10000000 ? 20 : 100;
        /* best of 3, alternating: on this virtual machine a thread's time swings with what the
         * host does with the other core */
        run r1 = {.fwd = INFINITY, .rev = INFINITY}, r2 = r1, x;
        for (int k = 0; k < 3; k++)
            for (int nt = 1; nt <= 2; nt++) {
                if (exact_run(p, steps, 0.9, nt, &x))
                    return 1;
                run *r = nt == 1 ? &r1 : &r2;
                r->fwd = fmin(r->fwd, x.fwd);
                r->rev = fmin(r->rev, x.rev);
            }
        /* bound: the speed-up at which two threads would move the bytes at bw2 */
        double ps = (double)p * (double)steps;
        double bf = fmin(2, bw2 * r1.fwd / (ps * fwd_bytes));
        double br = fmin(2, bw2 * r1.rev / (ps * rev_bytes));
        printf("%10zu %6zu | %12.3f %12.3f | %12.3f %12.3f | %9.2f %9.2f | %9.2f %9.2f\n", p, steps,
               r1.fwd, r1.rev, r2.fwd, r2.rev, r1.fwd / r2.fwd, r1.rev / r2.rev, bf, br);
        worst_x = fmin(worst_x, fmin(r1.fwd / r2.fwd, r1.rev / r2.rev));
    }
    if (worst_x < INFINITY)
        bench_target("two threads' speed-up, P >= 10^6", worst_x, ">=", 1.8);
    printf("bound: what two threads could reach if the pass moved its bytes at the two-thread copy "
           "bandwidth (2 at most); below 1.8 memory bandwidth does not allow the target\n");
    coder_table(max_p);
    printf("\nthe whole exact core with the plain coder and with %s (same bits: check_optim)\n",
           rv_coder_run_select().name);
    printf("%10s %6s | %12s %12s | %12s %12s | %9s %9s\n", "P", "T", "fwd plain s", "rev plain s",
           "fwd lanes s", "rev lanes s", "fwd x", "rev x");
    for (size_t p = 10000; p <= max_p && p <= 1000000; p *= 10) {
        size_t steps = (size_t)(2e7 / (double)p);
        run r[2];
        for (int lanes = 0; lanes < 2; lanes++) {
            rv_coder_plain_only(!lanes);
            if (exact_run(p, steps, 0.9, threads, &r[lanes]))
                return 1;
        }
        rv_coder_plain_only(0);
        printf("%10zu %6zu | %12.3f %12.3f | %12.3f %12.3f | %9.2f %9.2f\n", p, steps, r[0].fwd,
               r[0].rev, r[1].fwd, r[1].rev, r[0].fwd / r[1].fwd, r[0].rev / r[1].rev);
    }
    printf("\nbuffer memory against the information it holds (P = 10^5, T = 1000)\n");
    printf("%8s | %14s %14s %14s | %9s %14s %9s\n", "gamma", "log2(d/n) b/ps", "held b/ps",
           "bytes/param", "held/info", "mem-8B/P /info", "vs P*T*8");
    double gammas[] = {0.5, 0.9, 0.98, 0.999};
    for (int k = 0; k < 4; k++) {
        size_t p = 100000, steps = 1000;
        run r;
        if (exact_run(p, steps, gammas[k], threads, &r))
            return 1;
        double n = nearbyint(gammas[k] * 65536);
        double info = (double)p * (double)steps * (16 - log2(n));
        printf("%8.3f | %14.4f %14.4f %14.2f | %9.4f %14.4f %8.4f%%\n", gammas[k], 16 - log2(n),
               r.bits / ((double)p * (double)steps), (double)r.bytes / (double)p, r.bits / info,
               ((double)r.bytes - 8.0 * (double)p) * 8 / info,
               100 * r.peak / (8.0 * (double)p * (double)steps));
    }
    return 0;
}
