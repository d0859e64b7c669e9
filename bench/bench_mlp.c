/* bench_mlp.c: end to end on the paper's network, MLP 784-50-50-50-10 with a log L2 penalty per
 * layer on 10,000 Fashion-MNIST examples, batch 200, for momentum SGD, Adam, AdamW and RMSprop
 * (plain_loops.h's constants), measured side by side in one run, as ratios: plain training in
 * doubles calling the same model, revl's exact forward, and exact forward + every hypergradient
 * (each kind per step and group, 8 init scales and the 4 L2 meta in one reverse pass, reversal
 * verified); and against the floor of that work (mlp_floor.h): T gradients' dense products for
 * the forward, T fused gradient + HVP products for the reverse pass, and the validation
 * gradient's (10 blocks of 1,000 examples), timed in the same run, the same floor for every
 * optimiser. Adam's forward + hypergradient is also compared with momentum's, AdamW's exact
 * forward with Adam's, RMSprop's forward + hypergradient with Adam's, and each adaptive
 * optimiser's buffer bits per parameter-step with the information its decays drop. Last, the
 * forward-only path (revl_trainer_train_forward) of each optimiser against its plain training
 * and the exact forward, with the check that it ends on the exact forward's w_T bit for bit.
 * Usage: bench_mlp [T ...]   (default: 100 1000, at most 16). Threads: OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS as set in the environment (make bench runs 1 and 2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlp_floor.h"
#include "plain_loops.h"

#define MAX_T 16

/* What every row uses: the model and its data, w0 and meta, the output buffers, the floors. */
typedef struct bench {
    revl_model *m;
    revl_dataset *train;
    size_t p, ng, *off;
    double *w0, *w, *dfdw, *d_w0, *d_scales, meta[4], d_meta[4];
    mlp_floor fb, fe; /* one batch of 200, one validation block of 1,000 */
} bench;

/* One T of an optimiser: seconds, floors, the buffer after the forward pass */
typedef struct row {
    double plain, exact, both, fl_fwd, fl_both, bits; /* bits: per parameter-step */
    size_t bytes;
} row;

static double run_floor(void (*fn)(mlp_floor *), mlp_floor *f, size_t reps)
{
    double t0 = bench_now();
    for (size_t r = 0; r < reps; r++)
        fn(f);
    return bench_now() - t0;
}

static revl_trainer *make_trainer(bench *b, revl_schedule *s)
{
    revl_trainer *t = NULL;
    bench_check(revl_trainer_create(&t, b->m, s, NULL), "revl_trainer_create",
                revl_last_create_error());
    return t;
}

/* One row: plain training, the exact forward, forward + the hypergradient of every kind the
 * schedule has (weight_decay only where the bench sets it: AdamW), the floor right after. */
static row measure(bench *b, revl_optimizer opt, size_t steps)
{
    revl_schedule *s = bench_schedule(opt, steps, b->ng, b->off);
    revl_trainer *t = make_trainer(b, s);
    row r;
    /* warm up caches and the batch permutation once, then time each side */
    plain_run(opt, b->m, 2, b->w0, b->meta, b->w);
    r.plain = plain_run(opt, b->m, steps, b->w0, b->meta, b->w);
    double t0 = bench_now();
    bench_check(revl_trainer_train(t, b->w0, b->meta), "train", revl_trainer_last_error(t));
    r.exact = bench_now() - t0;
    /* the validation gradient is part of the work (the floor counts its products) */
    double t1 = bench_now(), loss;
    revl_trainer_weights(t, b->w);
    revl_model_evaluate(b->m, b->train, b->w, &loss, b->dfdw, NULL);
    revl_trainer_stats st = {.struct_size = sizeof st};
    revl_trainer_get_stats(t, &st);
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds), n = steps * b->ng;
    double *d = malloc(nk * n * sizeof *d), *dk[REVL_HYPER_COUNT] = {0};
    for (size_t k = 0; k < nk; k++)
        if (kinds[k] != REVL_HYPER_WEIGHT_DECAY || opt == REVL_OPTIM_ADAMW)
            dk[kinds[k]] = d + k * n;
    /* the _n call: the shipped one reads the 5 kinds of 0.1 and never weight_decay's; REVL_OK
     * means the reversal was verified */
    bench_check(revl_trainer_hypergrad_kinds_n(t, b->dfdw, NULL, b->d_w0, REVL_HYPER_COUNT, dk,
                                               b->d_meta),
                "hypergrad", revl_trainer_last_error(t));
    revl_model_init_scales_grad(b->m, b->w0, b->d_w0, b->d_scales);
    r.both = r.exact + (bench_now() - t1);
    free(d);
    r.bits = st.buffer_bits / ((double)b->p * (double)steps);
    r.bytes = st.buffer_bytes;
    /* the floor: forward T gradients, reverse T fused products, the validation gradient. Adam's
     * reverse step is one gradient + H (a + b g) call (revl_model_set_hvp_affine), whose
     * products are the fused call's: the same floor as momentum's; so is RMSprop's, whatever
     * its reverse step calls, so that the ratio shows what its steps cost beyond it */
    r.fl_fwd = run_floor(mlp_floor_grad, &b->fb, steps);
    r.fl_both = r.fl_fwd + run_floor(mlp_floor_fused, &b->fb, steps) +
                run_floor(mlp_floor_grad, &b->fe, 10);
    revl_trainer_free(t);
    revl_schedule_free(s);
    return r;
}

/* The information per parameter-step the optimiser's decays drop, which its buffer must hold:
 * log2(1/(b1 b2)) for Adam, and for AdamW 2 alpha lambda bits more (its decay keeps one bit where
 * its run has two members, for alpha lambda <= 1/2: src/exact/ratio.h), log2(1/(gamma beta2))
 * for RMSprop; at the applied values */
static double info_bits(revl_optimizer opt)
{
    if (opt == REVL_OPTIM_RMSPROP)
        return -log2(revl_hyper_applied(REVL_HYPER_GAMMA, RMS_GAMMA)) -
               log2(revl_hyper_applied(REVL_HYPER_BETA2, RMS_BETA2));
    return -log2(revl_hyper_applied(REVL_HYPER_BETA1, ADAM_BETA1)) -
           log2(revl_hyper_applied(REVL_HYPER_BETA2, ADAM_BETA2)) +
           (opt == REVL_OPTIM_ADAMW ? 2 * ADAM_ALPHA * ADAMW_LAMBDA : 0);
}

/* The heading of an optimiser's table; the name of its comparison column (next to exact/pl),
 * of its information column, and of its targets */
static void table_heading(revl_optimizer opt, size_t ng, const char **mid, const char **info,
                          const char **name)
{
    static const char *const names[REVL_OPTIM_COUNT] = {
        [REVL_OPTIM_MOMENTUM] = "momentum", [REVL_OPTIM_ADAM] = "Adam",
        [REVL_OPTIM_ADAMW] = "AdamW", [REVL_OPTIM_RMSPROP] = "RMSprop"};
    *name = names[opt];
    switch (opt) {
    case REVL_OPTIM_MOMENTUM:
        printf("momentum SGD (alpha %g, gamma %g); each reverse pass: d alpha and d gamma (T x "
               "%zu groups), %zu init scales, 4 L2 meta, exact reversal verified\n",
               MOM_ALPHA, MOM_GAMMA, ng, ng);
        *mid = "fwd+hyp/pl";
        break;
    case REVL_OPTIM_ADAM:
        printf("\nAdam (alpha %g, beta1 %g, beta2 %g, eps %g); each reverse pass: d alpha, "
               "d beta1, d beta2, d eps (T x %zu), init scales, 4 L2 meta, reversal verified\n",
               ADAM_ALPHA, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ng);
        *mid = "fwd+hyp/mom's";
        *info = "log2(1/b1b2)";
        break;
    case REVL_OPTIM_ADAMW:
        printf("\nAdamW (as Adam, weight_decay %g: alpha lambda = %g); each reverse pass also d "
               "weight_decay (T x %zu), reversal verified\n",
               ADAMW_LAMBDA, ADAM_ALPHA * ADAMW_LAMBDA, ng);
        *mid = "exact/Adam's";
        *info = "b1b2+2al bits";
        break;
    default:
        printf("\nRMSprop (torch's lr %g, alpha %g, momentum %g, eps %g: revl's alpha, beta2, "
               "gamma, eps); each reverse pass: d alpha, d gamma, d beta2, d eps (T x %zu), init "
               "scales, 4 L2 meta, reversal verified;\nthe floor is the others' (one fused "
               "product per reverse step): the MLP hands its gradient to the trainer for the "
               "direction (not affine in g) and then runs the R-pass, one pass per step\n",
               RMS_ALPHA, RMS_BETA2, RMS_GAMMA, RMS_EPS, ng);
        *mid = "fwd+hyp/Adam's";
        *info = "log2(1/g b2)";
    }
}

/* An optimiser's table, a row per T (kept in rows[opt] for the later tables' comparisons), and
 * its targets */
static void table(bench *b, revl_optimizer opt, const size_t *steps_of, int nt,
                  row rows[REVL_OPTIM_COUNT][MAX_T])
{
    const char *mid, *info = "", *name;
    table_heading(opt, b->ng, &mid, &info, &name);
    if (opt == REVL_OPTIM_MOMENTUM)
        printf("%6s | %10s %10s %12s | %9s %12s | %9s %12s | %12s\n", "T", "plain s", "exact s",
               "fwd+hyper s", "exact/pl", mid, "exact/fl", "fwd+hyp/fl", "buffer bytes");
    else
        printf("%6s | %10s %10s %12s | %9s %14s | %9s %12s | %13s %13s\n", "T", "plain s",
               "exact s", "fwd+hyper s", "exact/pl", mid, "exact/fl", "fwd+hyp/fl",
               "bits/par-step", info);
    double worst_ex = 0, worst_fl = 0, worst_mid = 0;
    for (int k = 0; k < nt; k++) {
        row r = rows[opt][k] = measure(b, opt, steps_of[k]);
        if (opt == REVL_OPTIM_MOMENTUM) {
            printf("%6zu | %10.3f %10.3f %12.3f | %9.2f %12.2f | %9.2f %12.2f | %12zu\n",
                   steps_of[k], r.plain, r.exact, r.both, r.exact / r.plain, r.both / r.plain,
                   r.exact / r.fl_fwd, r.both / r.fl_both, r.bytes);
        } else {
            double vs = opt == REVL_OPTIM_ADAM    ? r.both / rows[REVL_OPTIM_MOMENTUM][k].both
                        : opt == REVL_OPTIM_ADAMW ? r.exact / rows[REVL_OPTIM_ADAM][k].exact
                                                  : r.both / rows[REVL_OPTIM_ADAM][k].both;
            printf("%6zu | %10.3f %10.3f %12.3f | %9.2f %14.2f | %9.2f %12.2f | %13.5f %13.5f\n",
                   steps_of[k], r.plain, r.exact, r.both, r.exact / r.plain, vs,
                   r.exact / r.fl_fwd, r.both / r.fl_both, r.bits, info_bits(opt));
            worst_mid = fmax(worst_mid, vs);
        }
        worst_ex = fmax(worst_ex, r.exact / r.plain);
        worst_fl = fmax(worst_fl, r.both / r.fl_both);
    }
    char what[128];
    if (opt == REVL_OPTIM_MOMENTUM)
        snprintf(what, sizeof what, "momentum: exact forward / plain training");
    else
        snprintf(what, sizeof what, "%s: exact forward / plain %s", name, name);
    bench_target(what, worst_ex, "<=", 1.05);
    if (opt == REVL_OPTIM_ADAMW)
        bench_target("AdamW: exact forward / Adam's exact forward", worst_mid, "<=", 1.1);
    snprintf(what, sizeof what, "%s: train + hypergradient / floor", name);
    bench_target(what, worst_fl, "<=", 1.25);
}

/* The forward-only path of each optimiser at each T: its plain training, train_forward and
 * train, timed one after another on the same schedule; "same w_T": train_forward ended on train's
 * bits. */
static void forward_only_rows(bench *b, const revl_optimizer *opts, int n_opts,
                              const size_t *steps_of, int nt)
{
    double *w_exact = malloc(b->p * sizeof *w_exact), worst = 0;
    printf("\nforward-only (revl_trainer_train_forward) against plain training and the exact "
           "forward\n%9s %6s | %10s %10s %10s | %9s %9s | %s\n", "optimiser", "T", "plain s",
           "fwd-only s", "exact s", "fo/plain", "fo/exact", "same w_T");
    for (int i = 0; i < n_opts; i++)
        for (int k = 0; k < nt; k++) {
            revl_optimizer opt = opts[i];
            size_t steps = steps_of[k];
            revl_schedule *s = bench_schedule(opt, steps, b->ng, b->off);
            revl_trainer *t = make_trainer(b, s);
            plain_run(opt, b->m, 2, b->w0, b->meta, b->w);
            double plain = plain_run(opt, b->m, steps, b->w0, b->meta, b->w), t0 = bench_now();
            bench_check(revl_trainer_train_forward(t, b->w0, b->meta), "train_forward",
                        revl_trainer_last_error(t));
            double fo = bench_now() - t0;
            revl_trainer_weights(t, b->w);
            t0 = bench_now();
            bench_check(revl_trainer_train(t, b->w0, b->meta), "train",
                        revl_trainer_last_error(t));
            double exact = bench_now() - t0;
            revl_trainer_weights(t, w_exact);
            int same = memcmp(b->w, w_exact, b->p * sizeof *w_exact) == 0;
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
    bench b = {.meta = {-6, -6, -6, -6}};
    revl_dataset *all = bench_fashion_mnist("bench_mlp", 10000);
    bench_check(revl_dataset_create(&b.train, NULL), "revl_dataset_create", "");
    bench_check(revl_dataset_subset(b.train, all, 0, 10000), "revl_dataset_subset",
                revl_dataset_last_error(b.train));
    const size_t *widths = bench_paper_widths;
    revl_mlp_options mo = bench_paper_options();
    bench_check(revl_mlp_create(&b.m, 5, widths, b.train, &mo), "revl_mlp_create",
                revl_last_create_error());
    b.p = revl_model_n_params(b.m);
    b.ng = revl_model_n_groups(b.m);
    b.off = malloc((b.ng + 1) * sizeof *b.off);
    revl_model_group_offsets(b.m, b.off);
    double *log_scales = malloc(b.ng * sizeof *log_scales);
    b.w0 = malloc(b.p * sizeof *b.w0);
    b.w = malloc(b.p * sizeof *b.w);
    b.dfdw = malloc(b.p * sizeof *b.dfdw);
    b.d_w0 = malloc(b.p * sizeof *b.d_w0);
    b.d_scales = malloc(b.ng * sizeof *b.d_scales);
    for (size_t g = 0; g < b.ng; g++)
        log_scales[g] = -3;
    revl_model_init_weights(b.m, log_scales, 1, b.w0);
    free(log_scales);
    const char *omp = getenv("OMP_NUM_THREADS"), *ob = getenv("OPENBLAS_NUM_THREADS");
    printf("MLP 784-50-50-50-10 + L2 per layer, %zu parameters, 10,000 examples, batch 200; "
           "OMP_NUM_THREADS=%s OPENBLAS_NUM_THREADS=%s\n",
           b.p, omp ? omp : "(unset)", ob ? ob : "(unset)");
    mlp_floor_init(&b.fb, 5, widths, 200);
    mlp_floor_init(&b.fe, 5, widths, 1000);
    int nt = argc > 1 ? argc - 1 : 2;
    nt = nt < MAX_T ? nt : MAX_T;
    size_t steps_of[MAX_T];
    for (int k = 0; k < nt; k++)
        steps_of[k] = argc > 1 ? (size_t)atol(argv[k + 1]) : (k ? 1000 : 100);
    /* momentum first, Adam before AdamW and RMSprop: the later tables compare with them */
    static const revl_optimizer opts[4] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM, REVL_OPTIM_ADAMW,
                                           REVL_OPTIM_RMSPROP};
    static row rows[REVL_OPTIM_COUNT][MAX_T];
    for (int i = 0; i < 4; i++)
        table(&b, opts[i], steps_of, nt, rows);
    forward_only_rows(&b, opts, 4, steps_of, nt);
    mlp_floor_free(&b.fb);
    mlp_floor_free(&b.fe);
    free(b.off);
    free(b.w0);
    free(b.w);
    free(b.dfdw);
    free(b.d_w0);
    free(b.d_scales);
    revl_model_free(b.m);
    revl_dataset_free(b.train);
    revl_dataset_free(all);
    return 0;
}
