/* schedule_experiment.h: the paper's schedule experiment (Maclaurin, Duvenaud & Adams 2015,
 * section 3.1) on Fashion-MNIST for any inner optimiser, shared by lr_schedule.c (momentum SGD,
 * what `make demo` runs) and adam_schedule.c (Adam). A tanh MLP 784-50-50-50-10 trains for
 * T = 100 steps (batch 200) on 10,000 images; revl reverses each run exactly to get the gradient
 * of the validation loss (10,000 other images) with respect to every rate of the optimiser per
 * step and per layer-and-kind (8 groups) and 8 initial weight scales, and Adam follows it for 50
 * meta-iterations. Writes the learned hyperparameters, one data file and one PNG plot (gnuplot)
 * per learned kind and the meta-learning curve to out/<name>/, and checks that the learned
 * hyperparameters, retrained from the saved file, give a lower validation loss than the start.
 *
 *   <name> [--quick] [--out DIR] [--data DIR] [--iterations N] [--threads N] [--resume]
 *          [--optimizer adam|adamw]   (adam_schedule only)
 *
 * --optimizer adamw (adam_schedule): AdamW inside, which also learns its decoupled weight decay
 * lambda per step and per group (log lambda, from torch's 0.01); output in out/<name>_adamw/.
 * --quick: 1,000 + 1,000 examples, T = 20, 5 meta-iterations (seconds; for CI).
 * After every meta-iteration the hyper-optimiser's checkpoint (out/<name>/checkpoint.bin) and
 * the curve so far (curve-checkpoint.txt) are written; --resume continues a killed run from
 * them with the bits the uninterrupted run would have had (same options otherwise). */
#ifndef REVL_SCHEDULE_EXPERIMENT_H
#define REVL_SCHEDULE_EXPERIMENT_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"

#define MAX_KINDS REVL_HYPER_COUNT

/* How the MLP is made (revl_mlp_create's arguments); an includer may name another maker
 * (mpi_lr_schedule.c: the data-parallel MLP over MPI ranks). */
#ifndef SCHEDULE_EXPERIMENT_MLP
#define SCHEDULE_EXPERIMENT_MLP revl_mlp_create
#endif

#define N_LAYERS 4
#define N_GROUPS (2 * N_LAYERS) /* group 2l = weights of layer l, 2l+1 = its biases */

typedef struct config {
    const char *name;         /* the example's name: messages and the default output directory */
    revl_optimizer optimizer; /* the inner optimiser */
    int quick;
    const char *out;
    const char *data;
    size_t n_train, n_valid, n_test, n_steps, iterations;
    int threads;
    int resume;
} config;

/* What the progress callback keeps: the meta-learning curve. */
typedef struct progress {
    size_t iterations, done;
    double *train_loss, *valid_loss, *norm, *seconds, *step_size;
    int *chaos;
    double total_seconds;
    double best_valid; /* the lowest validation loss reported: that of the best values */
    revl_hyperopt *h;  /* checkpointed after each meta-iteration */
    char ckpt[4096], curve[4096];
    int failed;        /* a checkpoint could not be written */
} progress;

static int parse_args(int argc, char **argv, config *c, const char *name, revl_optimizer opt)
{
    static char out[256];
    *c = (config){.name = name, .optimizer = opt, .data = EXAMPLE_FASHION_DIR,
                  .n_train = 10000, .n_valid = 10000, .n_test = 10000, .n_steps = 100,
                  .iterations = 50};
    long iterations = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            c->quick = 1;
        else if (!strcmp(a, "--out") && i + 1 < argc)
            c->out = argv[++i];
        else if (!strcmp(a, "--data") && i + 1 < argc)
            c->data = argv[++i];
        else if (!strcmp(a, "--iterations") && i + 1 < argc)
            iterations = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--threads") && i + 1 < argc)
            c->threads = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--resume"))
            c->resume = 1;
        else if (!strcmp(a, "--optimizer") && i + 1 < argc && opt == REVL_OPTIM_ADAM &&
                 (!strcmp(argv[i + 1], "adam") || !strcmp(argv[i + 1], "adamw")))
            c->optimizer = strcmp(argv[++i], "adam") ? REVL_OPTIM_ADAMW : REVL_OPTIM_ADAM;
        else {
            fprintf(stderr, "usage: %s [--quick] [--out DIR] [--data DIR] [--iterations N] "
                            "[--threads N] [--resume]%s\n",
                    argv[0], opt == REVL_OPTIM_ADAM ? " [--optimizer adam|adamw]" : "");
            return 1;
        }
    }
    /* adamw writes next to adam's results, not over them */
    snprintf(out, sizeof out, "out/%s%s", name, c->optimizer == REVL_OPTIM_ADAMW ? "_adamw" : "");
    if (c->out == NULL)
        c->out = out;
    if (c->quick) {
        c->n_train = c->n_valid = c->n_test = 1000;
        c->n_steps = 20;
        c->iterations = 5;
    }
    if (iterations > 0)
        c->iterations = (size_t)iterations;
    return 0;
}

static void path_join(char *dst, size_t size, const char *dir, const char *name)
{
    snprintf(dst, size, "%s/%s", dir, name);
}

/* Training images [first, first + count) of the Fashion-MNIST training file (or the test file). */
static int load(revl_dataset *all, const config *c, int test, size_t count)
{
    return load_fashion(all, c->name, c->data, test ? "t10k" : "train", count);
}

static int report(const revl_hyperopt_report *r, void *user)
{
    progress *p = user;
    size_t i = r->iteration;
    if (i < p->iterations) {
        p->train_loss[i] = r->train_loss;
        p->valid_loss[i] = r->valid_loss;
        p->norm[i] = r->hypergrad_norm;
        p->seconds[i] = r->seconds;
        p->step_size[i] = r->step_size;
        p->chaos[i] = r->chaos;
    }
    p->done = i + 1;
    if (i == 0 || r->valid_loss < p->best_valid)
        p->best_valid = r->valid_loss;
    p->total_seconds += r->seconds;
    double left = p->total_seconds / (double)(i + 1) * (double)(p->iterations - i - 1);
    printf("meta %3zu/%zu  train %.4f  valid %.4f (acc %.3f)  |hypergrad| %.3e  %5.2f s  "
           "~%.0f s left",
           i + 1, p->iterations, r->train_loss, r->valid_loss, r->valid_accuracy,
           r->hypergrad_norm, r->seconds, left);
    if (r->chaos) /* the norm jumped: the update was discarded and the meta step halved */
        printf("  (chaos guard: meta step now %g)", r->step_size);
    printf("\n");
    fflush(stdout);
    /* the curve line first, then the checkpoint: a resumed run reads as many lines as the
     * checkpoint has iterations */
    FILE *f = fopen(p->curve, "a");
    if (f) {
        fprintf(f, "%zu %.17g %.17g %.17g %.17g %.17g %d\n", i, r->train_loss, r->valid_loss,
                r->hypergrad_norm, r->seconds, r->step_size, r->chaos);
        if (fclose(f) != 0)
            f = NULL;
    }
    if (!f || revl_hyperopt_checkpoint_save(p->h, p->ckpt) != REVL_OK) {
        fprintf(stderr, "checkpoint: %s\n", f ? revl_hyperopt_last_error(p->h) : p->curve);
        p->failed = 1;
        return 1;
    }
    return i + 1 >= p->iterations; /* a resumed run stops at the total */
}

/* --resume: the hyper-optimiser from its checkpoint, the curve so far from its file. */
static int resume_from(progress *p, const char *name)
{
    FILE *probe = fopen(p->ckpt, "rb");
    if (!probe) {
        printf("%s: --resume: no checkpoint in %s yet, starting from the beginning\n", name,
               p->ckpt);
        remove(p->curve);
        return 0;
    }
    fclose(probe);
    if (revl_hyperopt_checkpoint_load(p->h, p->ckpt) != REVL_OK) {
        fprintf(stderr, "%s: --resume: %s\n", name, revl_hyperopt_last_error(p->h));
        return 1;
    }
    size_t done = revl_hyperopt_iterations_done(p->h), n = 0;
    FILE *f = fopen(p->curve, "r");
    for (; f && n < done && n < p->iterations; n++) {
        size_t i;
        if (fscanf(f, "%zu %lf %lf %lf %lf %lf %d", &i, &p->train_loss[n], &p->valid_loss[n],
                   &p->norm[n], &p->seconds[n], &p->step_size[n], &p->chaos[n]) != 7 || i != n)
            break;
        p->total_seconds += p->seconds[n];
        if (n == 0 || p->valid_loss[n] < p->best_valid)
            p->best_valid = p->valid_loss[n];
    }
    if (f)
        fclose(f);
    if (n < done && n < p->iterations) {
        fprintf(stderr, "%s: --resume: %s holds %zu of the %zu meta-iterations done\n", name,
                p->curve, n, done);
        return 1;
    }
    /* the file again holds exactly the iterations the checkpoint has */
    f = fopen(p->curve, "w");
    for (size_t k = 0; f && k < n; k++)
        fprintf(f, "%zu %.17g %.17g %.17g %.17g %.17g %d\n", k, p->train_loss[k],
                p->valid_loss[k], p->norm[k], p->seconds[k], p->step_size[k], p->chaos[k]);
    if (f)
        fclose(f);
    p->done = done;
    printf("resumed from %s after %zu of %zu meta-iterations\n", p->ckpt, done, p->iterations);
    return 0;
}

/* Train once with the given hyperparameters, from the same initial noise and minibatches as the
 * hyper-optimiser, and evaluate on the validation and test sets: an independent check that the
 * saved hyperparameters do what the meta-learning curve says. */
static int evaluate(revl_model *m, const config *c, size_t n_kinds, const revl_hyper *kinds,
                    double *const *values, const double *log_scales, const revl_dataset *valid,
                    const revl_dataset *test, double *valid_loss, double *test_loss,
                    double *test_acc)
{
    size_t P = revl_model_n_params(m), off[N_GROUPS + 1];
    revl_model_group_offsets(m, off);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    double *w = malloc(P * sizeof *w);
    revl_trainer_options to;
    revl_trainer_options_init(&to);
    to.threads = c->threads;
    int rc = w ? REVL_OK : REVL_ERR_NOMEM;
    if (rc == REVL_OK)
        rc = revl_schedule_create_for(&s, c->optimizer, c->n_steps, N_GROUPS, off, NULL);
    for (size_t k = 0; k < n_kinds && rc == REVL_OK; k++)
        rc = revl_schedule_set_kind(s, kinds[k], values[k]);
    if (rc == REVL_OK)
        rc = revl_trainer_create(&t, m, s, &to);
    if (rc == REVL_OK)
        rc = revl_model_init_weights(m, log_scales, 0, w);
    if (rc == REVL_OK)
        rc = revl_trainer_train(t, w, NULL);
    if (rc == REVL_OK)
        rc = revl_trainer_weights(t, w);
    if (rc == REVL_OK)
        rc = revl_model_evaluate(m, valid, w, valid_loss, NULL, NULL);
    if (rc == REVL_OK)
        rc = revl_model_evaluate(m, test, w, test_loss, NULL, test_acc);
    if (rc != REVL_OK)
        fprintf(stderr, "%s: evaluation failed: %s (%s)\n", c->name, revl_strerror(rc),
                t ? revl_trainer_last_error(t) : "");
    revl_trainer_free(t);
    revl_schedule_free(s);
    free(w);
    return rc;
}

static const char *group_name[N_GROUPS] = {"W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"};

/* step-major T x G array as a table: step, then one column per group */
static int write_table(const char *path, const char *what, const double *x, size_t T)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# learned %s per step; columns: step", what);
    for (int g = 0; g < N_GROUPS; g++)
        fprintf(f, " %s", group_name[g]);
    fprintf(f, "\n");
    for (size_t t = 0; t < T; t++) {
        fprintf(f, "%zu", t);
        for (int g = 0; g < N_GROUPS; g++)
            fprintf(f, " %.8g", x[t * N_GROUPS + g]);
        fprintf(f, "\n");
    }
    return fclose(f);
}

static int write_curve(const char *path, const progress *p, size_t done)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# meta-iteration train_loss valid_loss hypergrad_norm seconds meta_step "
               "chaos_guard_fired\n");
    for (size_t i = 0; i < done; i++)
        fprintf(f, "%zu %.8g %.8g %.8g %.4f %g %d\n", i + 1, p->train_loss[i], p->valid_loss[i],
                p->norm[i], p->seconds[i], p->step_size[i], p->chaos[i]);
    return fclose(f);
}

/* The gnuplot script, written next to the data so the plots can be redrawn or restyled: one
 * figure per learned kind (weights and biases side by side) and the meta-learning curve. */
static int write_plot_script(FILE *f, size_t n_kinds, const revl_hyper *kinds,
                             const char *optimizer)
{
    fprintf(f, "term = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo' : 'png'\n"
               "set grid\n"
               "set key outside bottom center horizontal\n"
               "L1 = 'layer 1 (784-50)'; L2 = 'layer 2 (50-50)'; L3 = 'layer 3 (50-50)'; "
               "L4 = 'layer 4 (50-10)'\n");
    for (size_t k = 0; k < n_kinds; k++) {
        const char *kn = revl_hyper_name(kinds[k]);
        /* the label: '_' escaped, as gnuplot's enhanced text would make it a subscript */
        char label[64];
        size_t n = 0;
        for (const char *q = kn; *q && n + 3 < sizeof label; q++) {
            if (*q == '_')
                label[n++] = '\\';
            label[n++] = *q;
        }
        label[n] = 0;
        fprintf(f, "set terminal @term size 1000,460\n"
                   "set xlabel 'training step'\n"
                   "set output '%s.png'\n"
                   "set multiplot layout 1,2 title 'Learned %s per step (%s; Fashion-MNIST, "
                   "784-50-50-50-10 tanh)'\n"
                   "set ylabel '%s'\n",
                kn, label, optimizer, label);
        if (kinds[k] != REVL_HYPER_ALPHA && kinds[k] != REVL_HYPER_EPS)
            fprintf(f, "set autoscale y\n");
        for (int part = 0; part < 2; part++)
            fprintf(f, "set title '%s'\n"
                       "plot '%s.dat' u 1:%d w l lw 2 t L1, '' u 1:%d w l lw 2 t L2, "
                       "'' u 1:%d w l lw 2 t L3, '' u 1:%d w l lw 2 t L4\n",
                    part ? "biases" : "weights", kn, 2 + part, 4 + part, 6 + part, 8 + part);
        fprintf(f, "unset multiplot\n");
    }
    fprintf(f, "set autoscale y\n"
               "set terminal @term size 640,420\n"
               "set key inside top right\n"
               "set output 'learning_curve.png'\n"
               "set title 'Meta-learning curve'\n"
               "set xlabel 'meta-iteration'\n"
               "set ylabel 'cross-entropy after T steps'\n"
               "plot 'learning_curve.dat' u 1:2 w lp pt 7 ps 0.6 lw 2 t 'training (last "
               "minibatch)', '' u 1:3 w lp pt 7 ps 0.6 lw 2 t 'validation'\n");
    return ferror(f) ? -1 : 0;
}

/* Runs gnuplot in dir on the script; 1 when gnuplot is not installed, -1 when it failed. */
static int plot(const char *dir, const char *script_name, size_t n_kinds, const revl_hyper *kinds,
                const char *optimizer)
{
    char path[4096];
    path_join(path, sizeof path, dir, script_name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int bad = write_plot_script(f, n_kinds, kinds, optimizer);
    if (fclose(f) != 0 || bad)
        return -1;
    return run_gnuplot(dir, script_name);
}

/* The whole experiment for one inner optimiser: momentum learns alpha and gamma (lr_schedule),
 * Adam alpha, beta1 and beta2 (adam_schedule), AdamW also its weight decay (adam_schedule
 * --optimizer adamw); all learn the 8 init scales. */
static int schedule_experiment(int argc, char **argv, const char *name, revl_optimizer optimizer)
{
    config c;
    if (parse_args(argc, argv, &c, name, optimizer))
        return 2;
    optimizer = c.optimizer;
    double t_start = now();
    const size_t T = c.n_steps, G = N_GROUPS, TG = c.n_steps * N_GROUPS;
    const char *on = revl_optimizer_name(optimizer);
    int ok = 0;

    revl_dataset *all = NULL, *train = NULL, *valid = NULL, *test = NULL;
    revl_model *model = NULL;
    revl_hyperopt *h = NULL, *h2 = NULL;
    /* per kind: start, learned, read back (3 TG each); the curve; three sets of scales */
    double *buf = calloc(3 * MAX_KINDS * TG + 5 * c.iterations + 3 * G, sizeof(double));
    progress p = {.iterations = c.iterations, .chaos = calloc(c.iterations, sizeof(int))};
    if (!buf || !p.chaos) {
        free(buf);
        free(p.chaos);
        fprintf(stderr, "%s: out of memory\n", name);
        return 1;
    }
    double *start[MAX_KINDS], *learned[MAX_KINDS], *back[MAX_KINDS];
    for (size_t k = 0; k < MAX_KINDS; k++) {
        start[k] = buf + (3 * k) * TG;
        learned[k] = start[k] + TG;
        back[k] = learned[k] + TG;
    }
    p.train_loss = buf + 3 * MAX_KINDS * TG;
    p.valid_loss = p.train_loss + c.iterations;
    p.norm = p.valid_loss + c.iterations;
    p.seconds = p.norm + c.iterations;
    p.step_size = p.seconds + c.iterations;
    double *scales0 = p.step_size + c.iterations, *scales = scales0 + G;
    double *scales_back = scales + G;

    revl_dataset_create(&all, NULL);
    revl_dataset_create(&train, NULL);
    revl_dataset_create(&valid, NULL);
    revl_dataset_create(&test, NULL);
    if (!all || !train || !valid || !test)
        goto done;
    /* training = the first n_train images of the training file, validation = the next n_valid;
     * the test set (t10k) is never seen by the meta-optimiser. */
    if (load(all, &c, 0, c.n_train + c.n_valid) != REVL_OK ||
        revl_dataset_subset(train, all, 0, c.n_train) != REVL_OK ||
        revl_dataset_subset(valid, all, c.n_train, c.n_valid) != REVL_OK ||
        load(test, &c, 1, c.n_test) != REVL_OK)
        goto done;
    revl_dataset_free(all);
    all = NULL;

    size_t widths[N_LAYERS + 1] = {784, 50, 50, 50, 10};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo); /* tanh, batch 200, minibatch seed 0 */
    mo.threads = c.threads;
    int rc = SCHEDULE_EXPERIMENT_MLP(&model, N_LAYERS + 1, widths, train, &mo);
    if (rc != REVL_OK) {
        fprintf(stderr, "%s: MLP: %s\n", name, revl_strerror(rc));
        goto done;
    }

    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    /* every kind but Adam's eps (kept at 1e-8), and the init scales */
    ho.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_BETA1 | REVL_LEARN_BETA2 |
               REVL_LEARN_INIT_SCALE;
    if (optimizer == REVL_OPTIM_ADAMW)
        ho.learn |= REVL_LEARN_WEIGHT_DECAY;
    ho.method = REVL_META_ADAM;
    ho.step_size = 0.04;
    ho.iterations = c.iterations;
    ho.report = report;
    ho.report_user = &p;
    ho.threads = c.threads;
    rc = revl_hyperopt_create_for(&h, model, valid, T, optimizer, &ho);
    if (rc != REVL_OK) {
        fprintf(stderr, "%s: hyperopt: %s\n", name, revl_strerror(rc));
        goto done;
    }
    revl_hyper kinds[MAX_KINDS];
    size_t nk = 0;
    {
        revl_schedule *probe = NULL; /* the optimiser's kinds, in its order */
        size_t off[2] = {0, 1};
        if (revl_schedule_create_for(&probe, optimizer, 1, 1, off, NULL) != REVL_OK)
            goto done;
        nk = revl_schedule_kinds(probe, kinds);
        revl_schedule_free(probe);
    }
    /* the learned kinds, which get a data file and a plot (Adam's eps stays at its default) */
    revl_hyper shown[MAX_KINDS];
    size_t ns = 0, shown_at[MAX_KINDS];
    for (size_t k = 0; k < nk; k++)
        if (kinds[k] != REVL_HYPER_EPS && (kinds[k] != REVL_HYPER_WEIGHT_DECAY ||
                                           (ho.learn & REVL_LEARN_WEIGHT_DECAY))) {
            /* eps is fixed; momentum's coupled decay stays at its default 0 here */
            shown_at[ns] = k;
            shown[ns++] = kinds[k];
        }
    /* momentum starts at the paper's alpha e^-1, gamma 0.5; Adam at alpha e^-5 with its
     * default betas (torch's 1e-3 barely moves in T = 100 steps); init scale e^-3 */
    if (optimizer != REVL_OPTIM_MOMENTUM) {
        for (size_t k = 0; k < TG; k++)
            start[0][k] = exp(-5.0);
        revl_hyperopt_set_kind(h, REVL_HYPER_ALPHA, start[0]);
    }
    for (size_t k = 0; k < nk; k++)
        revl_hyperopt_get_kind(h, 0, kinds[k], start[k]);
    revl_hyperopt_get(h, 0, NULL, NULL, scales0, NULL);

    printf("revl %s: learning", revl_version_string());
    for (size_t k = 0; k < nk; k++)
        if (kinds[k] != REVL_HYPER_EPS)
            printf(" %zu %s,", TG, revl_hyper_name(kinds[k]));
    printf(" and %zu init scales of a 784-50-50-50-10 tanh MLP trained by %s\n", G, on);
    printf("Fashion-MNIST: %zu training, %zu validation, %zu test images; batch 200, T = %zu, "
           "%zu meta-iterations of Adam (step 0.04)\n",
           c.n_train, c.n_valid, c.n_test, T, c.iterations);
    printf("start (all groups):");
    for (size_t k = 0; k < nk; k++)
        printf(" %s = %.4g,", revl_hyper_name(kinds[k]), start[k][0]);
    printf(" init scale e^-3 = %.4f\n", exp(scales0[0]));

    if (make_dirs(c.out) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", name, c.out, strerror(errno));
        goto done;
    }
    p.h = h;
    path_join(p.ckpt, sizeof p.ckpt, c.out, "checkpoint.bin");
    path_join(p.curve, sizeof p.curve, c.out, "curve-checkpoint.txt");
    if (c.resume) {
        if (resume_from(&p, name))
            goto done;
    } else {
        remove(p.curve);
    }
    rc = p.done < c.iterations ? revl_hyperopt_run(h) : REVL_OK;
    if (rc == REVL_OK && p.failed)
        goto done;
    if (rc != REVL_OK) {
        fprintf(stderr, "%s: meta-optimisation failed: %s (%s)\n", name, revl_strerror(rc),
                revl_hyperopt_last_error(h));
        goto done;
    }
    size_t done_iters = p.done < c.iterations ? p.done : c.iterations;

    /* the learned hyperparameters: the best-so-far by validation loss */
    for (size_t k = 0; k < nk; k++)
        revl_hyperopt_get_kind(h, 1, kinds[k], learned[k]);
    revl_hyperopt_get(h, 1, NULL, NULL, scales, NULL);
    char path[4096];
    path_join(path, sizeof path, c.out, "hyperparams.txt");
    if ((rc = revl_hyperopt_save(h, 1, path)) != REVL_OK) {
        fprintf(stderr, "%s: %s\n", name, revl_hyperopt_last_error(h));
        goto done;
    }
    /* the file must load back to the same numbers */
    rc = revl_hyperopt_create_for(&h2, model, valid, T, optimizer, &ho);
    if (rc == REVL_OK)
        rc = revl_hyperopt_load(h2, path);
    for (size_t k = 0; k < nk && rc == REVL_OK; k++)
        rc = revl_hyperopt_get_kind(h2, 0, kinds[k], back[k]);
    if (rc == REVL_OK)
        rc = revl_hyperopt_get(h2, 0, NULL, NULL, scales_back, NULL);
    if (rc != REVL_OK) {
        fprintf(stderr, "%s: reading back %s failed: %s\n", name, path,
                h2 ? revl_hyperopt_last_error(h2) : revl_strerror(rc));
        goto done;
    }
    double back_err = 0;
    for (size_t k = 0; k < nk; k++)
        for (size_t i = 0; i < TG; i++)
            back_err = fmax(back_err, fabs(back[k][i] - learned[k][i]) / fabs(learned[k][i]));
    for (size_t g = 0; g < G; g++)
        back_err = fmax(back_err, fabs(scales_back[g] - scales[g]));

    char fname[4096], what[128];
    int werr = 0;
    for (size_t j = 0; j < ns; j++) {
        size_t k = shown_at[j];
        const char *kn = revl_hyper_name(kinds[k]);
        char file[64];
        snprintf(file, sizeof file, "%s.dat", kn);
        snprintf(what, sizeof what, "%s%s", kn,
                 kinds[k] == REVL_HYPER_GAMMA   ? " (as applied: n/2^16)"
                 : kinds[k] == REVL_HYPER_BETA1 || kinds[k] == REVL_HYPER_BETA2
                     ? " (as applied: n/2^24)"
                     : "");
        for (size_t i = 0; i < TG; i++) /* the values the trainer applied */
            back[k][i] = revl_hyper_applied(kinds[k], learned[k][i]);
        path_join(fname, sizeof fname, c.out, file);
        werr |= write_table(fname, what, back[k], T);
    }
    path_join(fname, sizeof fname, c.out, "learning_curve.dat");
    werr |= write_curve(fname, &p, done_iters);
    path_join(fname, sizeof fname, c.out, "init_scales.dat");
    FILE *f = fopen(fname, "w");
    if (f) {
        fprintf(f, "# layer kind(0 weights, 1 biases) fan_in learned_log_scale learned_scale "
                   "1/sqrt(fan_in)\n");
        for (size_t g = 0; g < G; g++)
            fprintf(f, "%zu %zu %zu %.6f %.6f %.6f\n", g / 2 + 1, g % 2, widths[g / 2], scales[g],
                    exp(scales[g]), 1 / sqrt((double)widths[g / 2]));
        werr |= fclose(f);
    } else
        werr = -1;
    if (werr) {
        fprintf(stderr, "%s: writing data files to %s failed\n", name, c.out);
        goto done;
    }
    int plotted = plot(c.out, "plots.gp", ns, shown, on);
    if (plotted == 1)
        printf("gnuplot not found: skipping the plots (install gnuplot-nox, or run "
               "'gnuplot plots.gp' in %s later)\n", c.out);
    else if (plotted < 0)
        printf("warning: gnuplot failed; the data files are in %s\n", c.out);

    /* independent check: train once more with the start and the learned hyperparameters */
    double v0, te0, acc0, v1, te1, acc1;
    if (evaluate(model, &c, nk, kinds, start, scales0, valid, test, &v0, &te0, &acc0) != REVL_OK ||
        evaluate(model, &c, nk, kinds, learned, scales, valid, test, &v1, &te1, &acc1) != REVL_OK)
        goto done;

    /* the retrained loss must be the hyper-optimiser's best: same noise, minibatches and bits */
    double repro = fabs(v1 - p.best_valid);
    printf("\nlearned init scales (e^log scale) against 1/sqrt(fan-in):\n");
    for (size_t l = 0; l < N_LAYERS; l++)
        printf("  layer %zu (%3zu in): weights %.4f  biases %.4f  1/sqrt(fan-in) %.4f\n", l + 1,
               widths[l], exp(scales[2 * l]), exp(scales[2 * l + 1]),
               1 / sqrt((double)widths[l]));
    printf("\nlearned schedule, mean over steps (weights of layers 1-4):\n");
    for (size_t j = 0; j < ns; j++) {
        size_t k = shown_at[j];
        printf("  %-6s", revl_hyper_name(kinds[k]));
        for (size_t l = 0; l < N_LAYERS; l++) {
            double sum = 0;
            for (size_t t = 0; t < T; t++)
                sum += learned[k][t * G + 2 * l];
            printf("  %.4g", sum / (double)T);
        }
        printf("\n");
    }
    /* AdamW: lambda is learned when it moved from its start (log scale, any step or group) */
    double wd_moved = 0;
    int wd_ok = 1;
    for (size_t k = 0; k < nk; k++) {
        if (kinds[k] != REVL_HYPER_WEIGHT_DECAY || !(ho.learn & REVL_LEARN_WEIGHT_DECAY))
            continue;
        printf("  %-6s", "(biases)");
        for (size_t l = 0; l < N_LAYERS; l++) {
            double sum = 0;
            for (size_t t = 0; t < T; t++)
                sum += learned[k][t * G + 2 * l + 1];
            printf("  %.4g", sum / (double)T);
        }
        for (size_t i = 0; i < TG; i++)
            wd_moved = fmax(wd_moved, fabs(log(learned[k][i] / start[k][i])));
        printf("\n  weight_decay moved from its start %.4g by up to %.3f in log\n", start[k][0],
               wd_moved);
        wd_ok = wd_moved > 1e-3;
    }
    printf("\n                           validation loss   test loss   test accuracy\n");
    printf("start hyperparameters           %.4f          %.4f        %.3f\n", v0, te0, acc0);
    printf("learned hyperparameters         %.4f          %.4f        %.3f\n", v1, te1, acc1);
    printf("(retrained from the saved values: %s the best validation loss of the run, "
           "difference %.1e)\n", repro <= 1e-12 * p.best_valid ? "exactly" : "NOT", repro);
    printf("\nfiles written in %s/:\n  hyperparams.txt (revl_hyperopt_save; loads back, max "
           "difference %.1e)\n ", c.out, back_err);
    for (size_t j = 0; j < ns; j++)
        printf(" %s.dat", revl_hyper_name(shown[j]));
    printf(" init_scales.dat learning_curve.dat plots.gp\n");
    if (plotted == 0) {
        printf(" ");
        for (size_t j = 0; j < ns; j++)
            printf(" %s.png", revl_hyper_name(shown[j]));
        printf(" learning_curve.png\n");
    }
    printf("total time %.1f s\n", now() - t_start);

    ok = v1 < v0 && back_err < 1e-12 && done_iters == c.iterations &&
         repro <= 1e-12 * p.best_valid && wd_ok;
    if (ok && wd_moved > 0)
        printf("RESULT: ok %s (%s) validation loss %.4f -> %.4f, weight_decay learned (moved "
               "%.3f in log)\n", name, on, v0, v1, wd_moved);
    else if (ok)
        printf("RESULT: ok %s validation loss %.4f -> %.4f\n", name, v0, v1);
    else
        printf("RESULT: FAIL %s validation loss %.4f -> %.4f, %zu/%zu meta-iterations, "
               "file read-back difference %.1e, retrained loss off by %.1e%s\n",
               name, v0, v1, done_iters, c.iterations, back_err, repro,
               wd_ok ? "" : ", weight_decay not learned");
done:
    revl_hyperopt_free(h2);
    revl_hyperopt_free(h);
    revl_model_free(model);
    revl_dataset_free(test);
    revl_dataset_free(valid);
    revl_dataset_free(train);
    revl_dataset_free(all);
    free(buf);
    free(p.chaos);
    return ok ? 0 : 1;
}

#endif
