/* bench_mlp.c: end to end on the paper's network, MLP 784-50-50-50-10 with a log L2 penalty per
 * layer on 10,000 Fashion-MNIST examples, batch 200: plain floating-point momentum SGD calling
 * the same model, revl's exact forward, and exact forward + hypergradient (all 800 alpha, 800
 * gamma at T = 100, 8 init scales and the 4 L2 meta in one reverse pass, reversal verified),
 * measured side by side in one run, as ratios; and against the floor of that work (mlp_floor.h):
 * T gradients' dense products for the forward, T fused gradient + HVP products for the reverse
 * pass, and the validation gradient's (10 blocks of 1,000 examples), timed in the same run.
 * Then the same for Adam: its exact forward against plain double-precision Adam, forward +
 * hypergradient against momentum's, and the buffer's bits per parameter-step; then AdamW
 * (torch's weight_decay 0.01): its exact forward against plain double-precision AdamW and
 * against Adam's exact forward, forward + every hypergradient (weight_decay's too) against the
 * floor, and the buffer's bits against log2(1/(b1 b2)) + 2 alpha lambda. Last, the
 * forward-only path (revl_trainer_train_forward) of both optimisers against plain training and
 * the exact forward, with the check that it ends on the exact forward's w_T bit for bit.
 * Usage: bench_mlp [T ...]   (default: 100 1000). Threads: OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS as set in the environment (make bench runs 1 and 2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlp_floor.h"
#include "plain_loops.h"

static void die(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "bench_mlp: %s: %s (%s)\n", what, revl_strerror(rc), msg);
    exit(1);
}

static double run_floor(void (*fn)(mlp_floor *), mlp_floor *f, size_t reps)
{
    double t0 = bench_now();
    for (size_t r = 0; r < reps; r++)
        fn(f);
    return bench_now() - t0;
}

/* The forward-only path of momentum and Adam at each T: plain training, train_forward and train,
 * timed one after another on the same schedule; "same w_T": train_forward ended on train's bits. */
static void forward_only_rows(revl_model *m, const size_t *off, size_t ng, const double *w0,
                              const double *meta, double *w, size_t *steps_of, int nt)
{
    size_t p = revl_model_n_params(m);
    double *w_exact = malloc(p * sizeof *w_exact), worst = 0;
    printf("\nforward-only (revl_trainer_train_forward) against plain training and the exact "
           "forward\n%9s %6s | %10s %10s %10s | %9s %9s | %s\n", "optimiser", "T", "plain s",
           "fwd-only s", "exact s", "fo/plain", "fo/exact", "same w_T");
    for (int adam = 0; adam < 2; adam++)
        for (int k = 0; k < nt; k++) {
            size_t steps = steps_of[k];
            revl_optimizer opt = adam ? REVL_OPTIM_ADAM : REVL_OPTIM_MOMENTUM;
            revl_schedule *s = NULL;
            revl_trainer *t = NULL;
            int rc = revl_schedule_create_for(&s, opt, steps, ng, off, NULL);
            if (rc)
                die("schedule", rc, "");
            revl_schedule_fill_kind(s, REVL_HYPER_ALPHA, adam ? ADAM_ALPHA : 0.3);
            if (adam) {
                revl_schedule_fill_kind(s, REVL_HYPER_BETA1, ADAM_BETA1);
                revl_schedule_fill_kind(s, REVL_HYPER_BETA2, ADAM_BETA2);
                revl_schedule_fill_kind(s, REVL_HYPER_EPS, ADAM_EPS);
            } else {
                revl_schedule_fill_kind(s, REVL_HYPER_GAMMA, 0.9);
            }
            if ((rc = revl_trainer_create(&t, m, s, NULL)))
                die("trainer", rc, "");
            double (*plain_fn)(revl_model *, size_t, const double *, const double *, double *) =
                adam ? plain_adam : plain_training;
            plain_fn(m, 2, w0, meta, w);
            double plain = plain_fn(m, steps, w0, meta, w), t0 = bench_now();
            if ((rc = revl_trainer_train_forward(t, w0, meta)))
                die("train_forward", rc, revl_trainer_last_error(t));
            double fo = bench_now() - t0;
            revl_trainer_weights(t, w);
            t0 = bench_now();
            if ((rc = revl_trainer_train(t, w0, meta)))
                die("train", rc, revl_trainer_last_error(t));
            double exact = bench_now() - t0;
            revl_trainer_weights(t, w_exact);
            int same = memcmp(w, w_exact, p * sizeof *w) == 0;
            printf("%9s %6zu | %10.3f %10.3f %10.3f | %9.2f %9.2f | %s\n",
                   revl_optimizer_name(opt), steps, plain, fo, exact, fo / plain, fo / exact,
                   same ? "yes" : "NO");
            worst = fmax(worst, same ? fo / plain : INFINITY);
            revl_trainer_free(t);
            revl_schedule_free(s);
        }
    bench_target("forward-only / plain training (and the same w_T as train)", worst, "<=", 1.02);
    free(w_exact);
}

int main(int argc, char **argv)
{
    revl_dataset *all = bench_fashion_mnist("bench_mlp", 10000), *train = NULL;
    int rc = 0;
    revl_dataset_create(&train, NULL);
    revl_dataset_subset(train, all, 0, 10000);
    size_t widths[5] = {784, 50, 50, 50, 10};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 200;
    mo.penalty = REVL_PENALTY_PER_LAYER;
    revl_model *m = NULL;
    if ((rc = revl_mlp_create(&m, 5, widths, train, &mo)))
        die("revl_mlp_create", rc, "");
    size_t p = revl_model_n_params(m), ng = revl_model_n_groups(m);
    size_t *off = malloc((ng + 1) * sizeof *off);
    revl_model_group_offsets(m, off);
    double *log_scales = malloc(ng * sizeof *log_scales), *w0 = malloc(p * 8), *w = malloc(p * 8);
    double *dfdw = malloc(p * 8), *d_w0 = malloc(p * 8), meta[4] = {-6, -6, -6, -6}, d_meta[4];
    double *d_scales = malloc(ng * sizeof *d_scales);
    for (size_t g = 0; g < ng; g++)
        log_scales[g] = -3;
    revl_model_init_weights(m, log_scales, 1, w0);
    const char *omp = getenv("OMP_NUM_THREADS"), *ob = getenv("OPENBLAS_NUM_THREADS");
    printf("MLP 784-50-50-50-10 + L2 per layer, %zu parameters, 10,000 examples, batch 200; "
           "OMP_NUM_THREADS=%s OPENBLAS_NUM_THREADS=%s\n",
           p, omp ? omp : "(unset)", ob ? ob : "(unset)");
    printf("each reverse pass: d alpha and d gamma (T x %zu groups), %zu init scales, 4 L2 meta, "
           "exact reversal verified\n", ng, ng);
    mlp_floor fb, fe;
    mlp_floor_init(&fb, 5, widths, 200);
    mlp_floor_init(&fe, 5, widths, 1000);
    printf("%6s | %10s %10s %12s | %9s %12s | %9s %12s | %12s\n", "T", "plain s", "exact s",
           "fwd+hyper s", "exact/pl", "fwd+hyp/pl", "exact/fl", "fwd+hyp/fl", "buffer bytes");
    int nt = argc > 1 ? argc - 1 : 2;
    double mom_both[16] = {0}, worst_ex = 0, worst_fl = 0;
    for (int k = 0; k < nt && k < 16; k++) {
        size_t steps = argc > 1 ? (size_t)atol(argv[k + 1]) : (k ? 1000 : 100);
        revl_schedule *s = NULL;
        if ((rc = revl_schedule_create(&s, steps, ng, off)))
            die("schedule", rc, "");
        revl_schedule_fill(s, 0.3, 0.9);
        revl_trainer *t = NULL;
        if ((rc = revl_trainer_create(&t, m, s, NULL)))
            die("trainer", rc, "");
        /* warm up caches and the batch permutation once, then time each side */
        plain_training(m, 2, w0, meta, w);
        double plain = plain_training(m, steps, w0, meta, w);
        double t0 = bench_now();
        if ((rc = revl_trainer_train(t, w0, meta)))
            die("train", rc, revl_trainer_last_error(t));
        double exact = bench_now() - t0;
        /* the validation gradient is part of the work (the floor counts its products) */
        double t1 = bench_now();
        revl_trainer_weights(t, w);
        double loss;
        revl_model_evaluate(m, train, w, &loss, dfdw, NULL);
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        double *d_alpha = malloc(steps * ng * 8), *d_gamma = malloc(steps * ng * 8);
        if ((rc = revl_trainer_hypergrad(t, dfdw, NULL, d_w0, d_alpha, d_gamma, d_meta)))
            die("hypergrad", rc, revl_trainer_last_error(t)); /* REVL_OK: reversal verified */
        revl_model_init_scales_grad(m, w0, d_w0, d_scales);
        double both = exact + (bench_now() - t1);
        free(d_alpha);
        free(d_gamma);
        /* the floor: forward T gradients, reverse T fused products, the validation gradient */
        double fl_fwd = run_floor(mlp_floor_grad, &fb, steps);
        double fl_both = fl_fwd + run_floor(mlp_floor_fused, &fb, steps) +
                         run_floor(mlp_floor_grad, &fe, 10);
        printf("%6zu | %10.3f %10.3f %12.3f | %9.2f %12.2f | %9.2f %12.2f | %12zu\n", steps, plain,
               exact, both, exact / plain, both / plain, exact / fl_fwd, both / fl_both,
               st.buffer_bytes);
        mom_both[k] = both;
        worst_ex = fmax(worst_ex, exact / plain);
        worst_fl = fmax(worst_fl, both / fl_both);
        revl_trainer_free(t);
        revl_schedule_free(s);
    }

    bench_target("momentum: exact forward / plain training", worst_ex, "<=", 1.05);
    bench_target("momentum: train + hypergradient / floor", worst_fl, "<=", 1.25);
    worst_ex = worst_fl = 0;

    /* Adam: the exact forward against plain Adam, forward + every hypergradient (alpha, beta1,
     * beta2, eps, init scales, meta) against momentum's on the same model, buffer bits; then
     * AdamW the same way (and weight_decay's hypergradient), its exact forward against plain
     * AdamW and against Adam's exact forward at the same T (issue 23's target) */
    double adam_exact[16] = {0};
    for (int wd = 0; wd < 2; wd++) {
        const revl_optimizer opt = wd ? REVL_OPTIM_ADAMW : REVL_OPTIM_ADAM;
        if (wd)
            printf("\nAdamW (as Adam, weight_decay %g: alpha lambda = %g); each reverse pass also "
                   "d weight_decay (T x %zu), reversal verified\n",
                   ADAMW_LAMBDA, ADAM_ALPHA * ADAMW_LAMBDA, ng);
        else
            printf("\nAdam (alpha %g, beta1 %g, beta2 %g, eps %g); each reverse pass: d alpha, "
                   "d beta1, d beta2, d eps (T x %zu), init scales, 4 L2 meta, reversal verified\n",
                   ADAM_ALPHA, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ng);
        printf("%6s | %10s %10s %12s | %9s %14s | %9s %12s | %13s %13s\n", "T", "plain s",
               "exact s", "fwd+hyper s", "exact/pl", wd ? "exact/Adam's" : "fwd+hyp/mom's",
               "exact/fl", "fwd+hyp/fl", "bits/par-step", wd ? "b1b2+2al bits" : "log2(1/b1b2)");
        double worst_vs_adam = 0;
        for (int k = 0; k < nt && k < 16; k++) {
            size_t steps = argc > 1 ? (size_t)atol(argv[k + 1]) : (k ? 1000 : 100);
            revl_schedule *s = NULL;
            if ((rc = revl_schedule_create_for(&s, opt, steps, ng, off, NULL)))
                die("schedule", rc, "");
            revl_schedule_fill_kind(s, REVL_HYPER_ALPHA, ADAM_ALPHA);
            revl_schedule_fill_kind(s, REVL_HYPER_BETA1, ADAM_BETA1);
            revl_schedule_fill_kind(s, REVL_HYPER_BETA2, ADAM_BETA2);
            revl_schedule_fill_kind(s, REVL_HYPER_EPS, ADAM_EPS);
            if (wd)
                revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, ADAMW_LAMBDA);
            revl_trainer *t = NULL;
            if ((rc = revl_trainer_create(&t, m, s, NULL)))
                die("trainer", rc, "");
            double (*plain_fn)(revl_model *, size_t, const double *, const double *, double *) =
                wd ? plain_adamw : plain_adam;
            plain_fn(m, 2, w0, meta, w);
            double plain = plain_fn(m, steps, w0, meta, w);
            double t0 = bench_now();
            if ((rc = revl_trainer_train(t, w0, meta)))
                die("train", rc, revl_trainer_last_error(t));
            double exact = bench_now() - t0;
            /* the validation gradient is part of the work (the floor counts its products) */
            double t1 = bench_now();
            revl_trainer_weights(t, w);
            double loss;
            revl_model_evaluate(m, train, w, &loss, dfdw, NULL);
            revl_trainer_stats st = {.struct_size = sizeof st};
            revl_trainer_get_stats(t, &st);
            double *d = malloc(5 * steps * ng * 8), *dk[REVL_HYPER_COUNT] = {0};
            dk[REVL_HYPER_ALPHA] = d;
            dk[REVL_HYPER_BETA1] = d + steps * ng;
            dk[REVL_HYPER_BETA2] = d + 2 * steps * ng;
            dk[REVL_HYPER_EPS] = d + 3 * steps * ng;
            if (wd)
                dk[REVL_HYPER_WEIGHT_DECAY] = d + 4 * steps * ng;
            /* the _n call: the shipped one reads the 5 kinds of 0.1 and never weight_decay's */
            if ((rc = revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, d_w0, REVL_HYPER_COUNT, dk,
                                                     d_meta)))
                die("hypergrad", rc, revl_trainer_last_error(t));
            revl_model_init_scales_grad(m, w0, d_w0, d_scales);
            double both = exact + (bench_now() - t1);
            free(d);
            /* AdamW's decay keeps one bit where its run has two members: 2 alpha lambda bits
             * per parameter-step for alpha lambda <= 1/2 (src/exact/ratio.h) */
            double info = -log2(revl_hyper_applied(REVL_HYPER_BETA1, ADAM_BETA1)) -
                          log2(revl_hyper_applied(REVL_HYPER_BETA2, ADAM_BETA2)) +
                          (wd ? 2 * ADAM_ALPHA * ADAMW_LAMBDA : 0);
            /* Adam's reverse step is one gradient + H (a + b g) call (revl_model_set_hvp_affine),
             * whose products are the fused call's: the same floor as momentum's */
            double fl_fwd = run_floor(mlp_floor_grad, &fb, steps);
            double fl_both = fl_fwd + run_floor(mlp_floor_fused, &fb, steps) +
                             run_floor(mlp_floor_grad, &fe, 10);
            printf("%6zu | %10.3f %10.3f %12.3f | %9.2f %14.2f | %9.2f %12.2f | %13.5f %13.5f\n",
                   steps, plain, exact, both, exact / plain,
                   wd ? exact / adam_exact[k] : both / mom_both[k], exact / fl_fwd, both / fl_both,
                   st.buffer_bits / ((double)p * (double)steps), info);
            worst_ex = fmax(worst_ex, exact / plain);
            worst_fl = fmax(worst_fl, both / fl_both);
            if (wd)
                worst_vs_adam = fmax(worst_vs_adam, exact / adam_exact[k]);
            else
                adam_exact[k] = exact;
            revl_trainer_free(t);
            revl_schedule_free(s);
        }
        if (wd) {
            bench_target("AdamW: exact forward / plain AdamW", worst_ex, "<=", 1.05);
            bench_target("AdamW: exact forward / Adam's exact forward", worst_vs_adam, "<=", 1.1);
            bench_target("AdamW: train + hypergradient / floor", worst_fl, "<=", 1.25);
        } else {
            bench_target("Adam: exact forward / plain Adam", worst_ex, "<=", 1.05);
            bench_target("Adam: train + hypergradient / floor", worst_fl, "<=", 1.25);
        }
        worst_ex = worst_fl = 0;
    }
    size_t steps_of[16];
    for (int k = 0; k < nt && k < 16; k++)
        steps_of[k] = argc > 1 ? (size_t)atol(argv[k + 1]) : (k ? 1000 : 100);
    forward_only_rows(m, off, ng, w0, meta, w, steps_of, nt < 16 ? nt : 16);
    mlp_floor_free(&fb);
    mlp_floor_free(&fe);
    free(off);
    free(log_scales);
    free(w0);
    free(w);
    free(dfdw);
    free(d_w0);
    free(d_scales);
    revl_model_free(m);
    revl_dataset_free(train);
    revl_dataset_free(all);
    return 0;
}
