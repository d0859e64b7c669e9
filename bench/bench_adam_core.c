/* bench_adam_core.c: the exact Adam core (one thread, trivial model g = 0.01 w) against a plain
 * double Adam loop over the same model, measured side by side in one run, in CPU time (the
 * machine is shared), best of `reps` runs each, with the betas' exact multiply in lanes and
 * with the plain loop; then the betas' multiply alone, plain loop against each lane version
 * (wide_vec.h), and how often the lanes hand a group back to the plain loop; and the exact
 * AdamW core (weight_decay 0.01, torch's default) against a plain double AdamW loop and against
 * the exact Adam core at the same P and T (issue 23's target: at most 1.1x Adam's forward).
 * Usage: bench_adam_core [max_P] [reps]   (defaults 10^7 and 3; prints four tables) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plain_loops.h"
#include "exact/coder_vec.h" /* internal, the static library exports them */
#include "exact/wide_vec.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CORE_LAMBDA 0.01 /* AdamW's weight decay: torch's default, as revl's */

/* torch.optim.Adam's step (lambda = 0) or AdamW's in doubles, the model call included (as the
 * exact core's is). */
static double plain_adam_core(size_t p, size_t steps, double *w, double *m, double *s, double *g,
                              double lambda)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, alpha = 1e-3;
    double p1 = 1, p2 = 1;
    double t0 = cpu_now();
    memset(m, 0, p * sizeof *m);
    memset(s, 0, p * sizeof *s);
    for (size_t t = 0; t < steps; t++) {
        trivial_grad(t, w, NULL, g, NULL, &p);
        p1 *= b1;
        p2 *= b2;
        double c1 = 1 - p1, c2 = 1 - p2;
        if (lambda == 0)
            plain_adam_update(p, w, m, s, g, alpha, b1, b2, eps, c1, c2);
        else
            plain_adamw_update(p, w, m, s, g, alpha, lambda, b1, b2, eps, c1, c2);
    }
    return cpu_now() - t0;
}

/* The exact core of Adam or AdamW (opt) at its defaults, AdamW's weight decay CORE_LAMBDA. */
static int exact_adam(revl_optimizer opt, size_t p, size_t steps, double *fwd, double *rev)
{
    revl_model *m = trivial_model(&p);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    size_t off[2] = {0, p};
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    o.threads = 1;
    int rc = revl_schedule_create_for(&s, opt, steps, 1, off, NULL);
    if (!rc && opt == REVL_OPTIM_ADAMW)
        rc = revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, CORE_LAMBDA);
    if (!rc)
        rc = revl_trainer_create(&t, m, s, &o);
    double *w0 = malloc(p * 8), *dl = malloc(p * 8);
    for (size_t i = 0; i < p; i++) {
        w0[i] = 1 + 0.5 * sin((double)i); /* away from 0: g = 0 with eps makes du/dm 1/eps and the
                                               adjoints overflow within T steps */
        dl[i] = 1e-3;
    }
    double t0 = cpu_now();
    if (!rc)
        rc = revl_trainer_train(t, w0, NULL);
    *fwd = cpu_now() - t0;
    t0 = cpu_now();
    if (!rc)
        rc = revl_trainer_hypergrad(t, dl, NULL, NULL, NULL, NULL, NULL);
    *rev = cpu_now() - t0;
    if (rc)
        fprintf(stderr, "bench_adam_core: %s: %s\n", revl_strerror(rc),
                t ? revl_trainer_last_error(t) : "");
    free(w0);
    free(dl);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    return rc;
}

/* Adam's moment terms for the multiply alone: (1-beta1) g and (1-beta2) g^2 at 2^-100, for a
 * gradient of ~1e-2 that changes sign from parameter to parameter and from step to step. */
static void moment_terms(size_t p, size_t t, rv_wide *gm, rv_wide *gs)
{
    for (size_t i = 0; i < p; i++) {
        double g = 1e-2 * sin((double)i + 0.37 * (double)t);
        gm[i] = (rv_wide)(0.1 * g * 0x1p60) << 40;
        gs[i] = (rv_wide)(1e-3 * g * g * 0x1p70) << 30;
    }
}

/* The multiply alone: T steps of m <- beta1 m + gm, s <- beta2 s + gs (beta1 = 0.9, beta2 =
 * 0.999) block by block, then T steps back, with one version; only the multiplies are timed,
 * best of 3, in ns per parameter-step. Returns a checksum of the states and moments after the
 * forward runs, which every version must share (0 when the reverse did not return to the
 * start). */
static uint64_t moments_run(const rv_moments_run *r, size_t p, size_t steps, double *fwd,
                            double *rev)
{
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    *fwd = *rev = 1e30;
    if (rv_infobuf_init(&b, &a, p))
        return 0;
    rv_wide *m = calloc(p, sizeof *m), *s = calloc(p, sizeof *s);
    rv_wide *gm = malloc(p * sizeof *gm), *gs = malloc(p * sizeof *gs);
    rv_gamma_code c1, c2;
    rv_gamma_code_make(&c1, 15099494); /* 0.9 2^24 */
    rv_gamma_code_make(&c2, 16760438); /* 0.999 2^24 */
    uint64_t sum = 0;
    for (int rep = 0; rep < 3; rep++) {
        double tf = 0, tr = 0;
        for (size_t t = 0; t < steps; t++) {
            double t0 = cpu_now();
            for (size_t k = 0, i = 0; i < p; k++, i += RV_BLOCK)
                r->mul(&a, &b.stacks[k], b.state + i, &c1, &c2, m + i, s + i,
                       p - i < RV_BLOCK ? p - i : RV_BLOCK);
            tf += cpu_now() - t0;
            moment_terms(p, t, gm, gs);
            for (size_t i = 0; i < p; i++) {
                m[i] += gm[i];
                s[i] += gs[i];
            }
        }
        sum = 0;
        for (size_t i = 0; i < p; i++)
            sum = sum * 31 + b.state[i] + (uint64_t)m[i] + (uint64_t)(s[i] >> 64);
        for (size_t t = steps; t-- > 0;) {
            moment_terms(p, t, gm, gs);
            for (size_t i = 0; i < p; i++) {
                m[i] -= gm[i];
                s[i] -= gs[i];
            }
            double t0 = cpu_now();
            for (size_t k = 0, i = 0; i < p; k++, i += RV_BLOCK)
                r->div(&a, &b.stacks[k], b.state + i, &c1, &c2, m + i, s + i,
                       p - i < RV_BLOCK ? p - i : RV_BLOCK);
            tr += cpu_now() - t0;
        }
        double ps = (double)p * (double)steps;
        *fwd = fmin(*fwd, 1e9 * tf / ps);
        *rev = fmin(*rev, 1e9 * tr / ps);
    }
    if (!rv_infobuf_is_empty(&b))
        sum = 0;
    rv_infobuf_destroy(&b);
    free(m);
    free(s);
    free(gm);
    free(gs);
    return sum;
}

/* How often the lanes' reverse hands a group to the plain loop: a group is redone when one of
 * its parameters pops a word an earlier one left, that is when its forward multiply left a word
 * on the stack. The forward of moments_run, one parameter at a time with the plain loop, the
 * stack's growth being that parameter's words; groups of 4 and 8 from each block's start.
 * Fills the shares of parameter-steps, 4-lane and 8-lane groups (the first ~100 steps at
 * beta1 = 0.9 keep their bits in the 64-bit states: a long run shows the steady rate). */
static void moments_redo_rate(size_t p, size_t steps, double share[3])
{
    revl_allocator a;
    revl_allocator_init(&a);
    rv_infobuf b;
    share[0] = share[1] = share[2] = -1;
    if (rv_infobuf_init(&b, &a, p))
        return;
    rv_wide *m = calloc(p, sizeof *m), *s = calloc(p, sizeof *s);
    rv_wide *gm = malloc(p * sizeof *gm), *gs = malloc(p * sizeof *gs);
    rv_gamma_code c1, c2;
    rv_gamma_code_make(&c1, 15099494);
    rv_gamma_code_make(&c2, 16760438);
    double n1 = 0, n4 = 0, n8 = 0;
    for (size_t t = 0; t < steps; t++) {
        for (size_t i = 0; i < p; i += 8) {
            int any[2] = {0, 0};
            for (size_t j = i; j < i + 8 && j < p; j++) {
                rv_stack *st = &b.stacks[j / RV_BLOCK];
                size_t len = st->len;
                rv_moments_mul_plain(&a, st, b.state + j, &c1, &c2, m + j, s + j, 1);
                n1 += st->len != len;
                any[(j - i) / 4] |= st->len != len;
            }
            n4 += any[0] + any[1];
            n8 += any[0] | any[1];
        }
        moment_terms(p, t, gm, gs);
        for (size_t i = 0; i < p; i++) {
            m[i] += gm[i];
            s[i] += gs[i];
        }
    }
    double ps = (double)p * (double)steps;
    share[0] = n1 / ps;
    share[1] = n4 / (ps / 4);
    share[2] = n8 / (ps / 8);
    rv_infobuf_destroy(&b);
    free(m);
    free(s);
    free(gm);
    free(gs);
}

static rv_moments_run moments_runs[3];

static uint64_t moments_version(int k, size_t p, size_t steps, double *fwd, double *rev)
{
    return moments_run(&moments_runs[k], p, steps, fwd, rev);
}

static void moments_table(size_t max_p)
{
    const char *skipped, *names[3];
    int n = rv_moments_runs(moments_runs, &skipped);
    for (int k = 0; k < n; k++)
        names[k] = moments_runs[k].name;
    printf("\nthe betas' exact multiply alone (beta1 = 0.9, beta2 = 0.999, Adam's moment terms "
           "added between steps, not timed): ns per parameter-step, best of 3\n");
    bench_versions_table(n, names, skipped, max_p < 1000000 ? max_p : 1000000, 200,
                         moments_version);
}

/* AdamW's rows (weight_decay CORE_LAMBDA: the decay's exact multiply of w on a 128-bit w), next
 * to plain AdamW and to the exact Adam forward of the same repetitions. */
static void adamw_table(double (*rows)[7], int n)
{
    printf("\nexact AdamW core (weight_decay %g, alpha lambda = %g), same model and repetitions\n",
           CORE_LAMBDA, 1e-3 * CORE_LAMBDA);
    printf("%10s %5s | %9s %9s %9s | %9s %9s | %12s %12s\n", "P", "T", "plain ns", "fwd ns",
           "rev ns", "fwd/plain", "rev/plain", "fwd/Adam fwd", "rev/Adam rev");
    double worst = 0, worst_fwd = 0;
    for (int k = 0; k < n; k++) {
        const double *r = rows[k];
        double ns = 1e9 / (r[0] * r[1]);
        printf("%10.0f %5.0f | %9.2f %9.2f %9.2f | %9.1f %9.1f | %12.2f %12.2f\n", r[0], r[1],
               r[2] * ns, r[3] * ns, r[4] * ns, r[3] / r[2], r[4] / r[2], r[3] / r[5], r[4] / r[6]);
        worst = fmax(worst, r[3] / r[5]);
        worst_fwd = fmax(worst_fwd, r[3] / r[2]);
    }
    bench_target("exact AdamW forward / plain AdamW loop", worst_fwd, "<=", 2);
    bench_target("exact AdamW forward / exact Adam forward", worst, "<=", 1.1);
}

int main(int argc, char **argv)
{
    size_t max_p = argc > 1 ? (size_t)atof(argv[1]) : 10000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    printf("revl %s, exact Adam core, 1 thread, trivial gradient g = 0.01 w, CPU time, best of "
           "%d; the betas' multiply in %s, and in the plain loop (pm: before the lanes)\n",
           revl_version_string(), reps, rv_moments_run_select().name);
    printf("%10s %5s | %9s %9s %9s | %9s %9s | %9s %9s | %9s %9s\n", "P", "T", "plain ns",
           "fwd ns", "rev ns", "fwd/plain", "rev/plain", "pm fwd ns", "pm rev ns", "pm/fwd",
           "pm/rev");
    double worst_fwd = 0, worst_rev = 0;
    double aw[8][7]; /* AdamW's rows, measured in the same repetitions: P, T, plain, fwd, rev,
                        Adam's fwd and rev */
    int n_aw = 0;
    for (size_t p = 10000; p <= max_p; p *= 10) {
        size_t steps = (size_t)(1e7 / (double)p);
        steps = steps > 200 ? 200 : steps < 5 ? 5 : steps;
        double *w = malloc(p * 8), *m = malloc(p * 8), *s = malloc(p * 8), *g = malloc(p * 8);
        double plain = 1e30, fwd[2] = {1e30, 1e30}, rev[2] = {1e30, 1e30};
        double w_plain = 1e30, w_fwd = 1e30, w_rev = 1e30; /* AdamW */
        for (int k = 0; k < reps; k++) {
            for (size_t i = 0; i < p; i++)
                w[i] = 1 + 0.5 * sin((double)i);
            double tp = plain_adam_core(p, steps, w, m, s, g, 0), tf, tr;
            plain = tp < plain ? tp : plain;
            for (int pl = 0; pl < 2; pl++) { /* lanes, then the plain multiply */
                rv_coder_plain_only(pl);
                if (exact_adam(REVL_OPTIM_ADAM, p, steps, &tf, &tr))
                    return 1;
                fwd[pl] = tf < fwd[pl] ? tf : fwd[pl];
                rev[pl] = tr < rev[pl] ? tr : rev[pl];
            }
            rv_coder_plain_only(0);
            for (size_t i = 0; i < p; i++)
                w[i] = 1 + 0.5 * sin((double)i);
            w_plain = fmin(w_plain, plain_adam_core(p, steps, w, m, s, g, CORE_LAMBDA));
            if (exact_adam(REVL_OPTIM_ADAMW, p, steps, &tf, &tr))
                return 1;
            w_fwd = fmin(w_fwd, tf);
            w_rev = fmin(w_rev, tr);
        }
        if (n_aw < 8) {
            double *r = aw[n_aw++];
            r[0] = (double)p;
            r[1] = (double)steps;
            r[2] = w_plain;
            r[3] = w_fwd;
            r[4] = w_rev;
            r[5] = fwd[0];
            r[6] = rev[0];
        }
        free(w);
        free(m);
        free(s);
        free(g);
        double ns = 1e9 / ((double)p * (double)steps);
        printf("%10zu %5zu | %9.2f %9.2f %9.2f | %9.1f %9.1f | %9.2f %9.2f | %9.2f %9.2f\n", p,
               steps, plain * ns, fwd[0] * ns, rev[0] * ns, fwd[0] / plain, rev[0] / plain,
               fwd[1] * ns, rev[1] * ns, fwd[1] / fwd[0], rev[1] / rev[0]);
        worst_fwd = fmax(worst_fwd, fwd[0] / plain);
        worst_rev = fmax(worst_rev, rev[0] / plain);
    }
    bench_target("exact Adam forward / plain Adam loop", worst_fwd, "<=", 2);
    bench_target("exact Adam reverse / plain Adam loop", worst_rev, "<=", 4);
    adamw_table(aw, n_aw);
    moments_table(max_p);
    double share[3];
    moments_redo_rate(10000, 1000, share);
    printf("\nP = 10000, T = 1000: words left by %.2f%% of parameter-steps; the lanes' reverse "
           "redoes %.2f%% of 4-lane and %.2f%% of 8-lane groups\n",
           100 * share[0], 100 * share[1], 100 * share[2]);
    return 0;
}
