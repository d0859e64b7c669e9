/* testutil_dp.c: the data-parallel test problems (testutil_dp.h). */
#include "testutil_dp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LR_N 96 /* examples */
#define LR_D 5  /* features = parameters */
#define LR_B 24 /* minibatch */
#define LR_T DP_LR_STEPS
#define MLP_T DP_MLP_STEPS

static double uniform(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0 * 2 - 1;
}

typedef struct lr_user {
    const dp_case *c;
    int rank;
    size_t n_micro; /* this rank's model's */
    int reversing;
    double x[LR_N][LR_D], y[LR_N];
} lr_user;

static void lr_data(lr_user *u)
{
    uint64_t s = 1;
    for (int i = 0; i < LR_N; i++) {
        double z = 0;
        for (int j = 0; j < LR_D; j++) {
            u->x[i][j] = uniform(&s);
            z += u->x[i][j] * (j + 1) * 0.5;
        }
        u->y[i] = z + 0.3 * uniform(&s) > 0 ? 1 : -1;
    }
}

/* Rows [lo, hi) of step's minibatch, scaled by 1/B, plus the L2 penalty exp(meta) w^2/2 when
 * with_penalty: the gradient, loss and, when v, H v and d/dmeta (g . v). */
static void lr_rows(const lr_user *u, size_t step, size_t lo, size_t hi, int with_penalty,
                    const double *w, const double *meta, const double *v, double *g,
                    double *loss, double *hv, double *hm)
{
    memset(g, 0, LR_D * sizeof *g);
    if (hv)
        memset(hv, 0, LR_D * sizeof *hv);
    double l = 0;
    for (size_t j = lo; j < hi; j++) {
        size_t i = (step * LR_B + j) % LR_N;
        double z = 0, xv = 0;
        for (int k = 0; k < LR_D; k++) {
            z += u->x[i][k] * w[k];
            xv += v ? u->x[i][k] * v[k] : 0;
        }
        double yz = u->y[i] * z, sg = 1 / (1 + exp(yz)); /* sigma(-y z) */
        l += log1p(exp(-yz)) / LR_B;
        for (int k = 0; k < LR_D; k++) {
            g[k] += -u->y[i] * sg * u->x[i][k] / LR_B;
            if (hv)
                hv[k] += sg * (1 - sg) * xv * u->x[i][k] / LR_B;
        }
    }
    double lam = exp(meta[0]), wv = 0;
    if (with_penalty)
        for (int k = 0; k < LR_D; k++) {
            g[k] += lam * w[k];
            l += lam * w[k] * w[k] / 2;
            if (hv) {
                hv[k] += lam * v[k];
                wv += w[k] * v[k];
            }
        }
    if (hm)
        hm[0] = with_penalty ? lam * wv : 0;
    if (loss)
        *loss = l;
}

/* The faults a test asks for, on its rank and step. */
static int lr_fault(const lr_user *u, size_t step, double *g)
{
    const dp_case *c = u->c;
    if ((c->fault_rank >= 0 && u->rank != c->fault_rank) || step != c->fault_step)
        return 0;
    if (c->fault == DP_FAULT_CALLBACK && !u->reversing)
        return 7;
    if (c->fault == DP_FAULT_NAN && u->reversing)
        g[1] = NAN;
    if (c->fault == DP_FAULT_DRIFT && u->reversing)
        g[0] += ldexp(1.0, -30);
    return 0;
}

static int lr_micro_grad(size_t step, size_t micro, const double *w, const double *meta,
                         double *grad, double *loss, void *user)
{
    lr_user *u = user;
    size_t M = u->n_micro;
    double g[LR_D];
    lr_rows(u, step, micro * LR_B / M, (micro + 1) * LR_B / M, micro == 0, w, meta, NULL, g,
            loss, NULL, NULL);
    for (int k = 0; k < LR_D; k++)
        grad[k] = u->c->style == 2 ? grad[k] + g[k] : g[k];
    return lr_fault(u, step, grad);
}

static int lr_micro_hvp(size_t step, size_t micro, const double *w, const double *meta,
                        const double *v, double *grad, double *hv_w, double *hv_meta, void *user)
{
    lr_user *u = user;
    size_t M = u->n_micro;
    double g[LR_D], hv[LR_D], hm = 0;
    lr_rows(u, step, micro * LR_B / M, (micro + 1) * LR_B / M, micro == 0, w, meta, v, g, NULL,
            hv, &hm);
    for (int k = 0; k < LR_D; k++)
        hv_w[k] = u->c->style == 2 ? hv_w[k] + hv[k] : hv[k];
    if (hv_meta && (u->c->style != 1 || micro == 0))
        hv_meta[0] = u->c->style == 2 ? hv_meta[0] + hm : hm;
    return 0;
}

static int lr_plain_grad(size_t step, const double *w, const double *meta, double *grad,
                         double *loss, void *user)
{
    lr_rows(user, step, 0, LR_B, 1, w, meta, NULL, grad, loss, NULL, NULL);
    return 0;
}

static int lr_plain_hvp(size_t step, const double *w, const double *meta, const double *v,
                        double *grad, double *hv_w, double *hv_meta, void *user)
{
    double g[LR_D];
    lr_rows(user, step, 0, LR_B, 1, w, meta, v, g, NULL, hv_w, hv_meta);
    return 0;
}

static int lr_model(const dp_case *c, lr_user *u, revl_model **m)
{
    if (c->plain) {
        revl_model_def d;
        revl_model_def_init(&d);
        d.n_params = LR_D;
        d.n_meta = 1;
        d.grad = lr_plain_grad;
        d.hvp = lr_plain_hvp;
        d.user = u;
        return revl_model_create(m, &d);
    }
    revl_dp_def d;
    revl_dp_def_init(&d);
    d.n_params = LR_D;
    d.n_meta = 1;
    d.n_micro = c->n_micro;
    if (c->fault == DP_FAULT_N_MICRO && u->rank == c->fault_rank)
        d.n_micro++;
    if (c->fault == DP_FAULT_FRAC_BITS && u->rank == c->fault_rank)
        d.grad_frac_bits = 39;
    d.grad = lr_micro_grad;
    d.hvp = lr_micro_hvp;
    d.comm = c->comm;
    d.user = u;
    return revl_dp_model_create(m, &d);
}

static revl_dataset *mlp_data(void)
{
    enum { N = 60, D = 4 };
    double x[N * D];
    int32_t y[N];
    uint64_t s = 2;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++)
            x[i * D + j] = uniform(&s);
        y[i] = (int32_t)((x[i * D] + x[i * D + 1] > 0) + (x[i * D + 2] > 0.3));
    }
    revl_dataset *d = NULL;
    if (revl_dataset_create(&d, NULL) || revl_dataset_set(d, N, D, 3, x, y)) {
        revl_dataset_free(d);
        return NULL;
    }
    return d;
}

static int mlp_model(const dp_case *c, const revl_dataset *data, revl_model **m)
{
    size_t widths[] = {4, 6, 3};
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.penalty = REVL_PENALTY_PER_LAYER;
    o.batch_size = 20;
    o.seed = 3;
    if (c->plain)
        return revl_mlp_create(m, 3, widths, data, &o);
    return revl_mlp_dp_create(m, 3, widths, data, &o, c->n_micro, 0, c->comm);
}

static int schedule(const dp_case *c, revl_model *m, size_t T, int rank, revl_schedule **s)
{
    size_t G = revl_model_n_groups(m), off[8];
    revl_model_group_offsets(m, off);
    int rc = revl_schedule_create_for(s, c->optimizer, T, G, off, NULL);
    if (rc)
        return rc;
    double alpha = c->optimizer == REVL_OPTIM_MOMENTUM ? 0.2 : 0.02;
    if (c->fault == DP_FAULT_ALPHA && rank == c->fault_rank)
        alpha *= 1.01;
    rc = revl_schedule_fill_kind(*s, REVL_HYPER_ALPHA, alpha);
    if (!rc && c->fault == DP_FAULT_LAST_ALPHA && rank == c->fault_rank) {
        double a[DP_LR_STEPS * 8];
        rc = revl_schedule_get_kind(*s, REVL_HYPER_ALPHA, a);
        a[(T - 1) * G] *= 1.01; /* the last step's first group */
        if (!rc)
            rc = revl_schedule_set_kind(*s, REVL_HYPER_ALPHA, a);
    }
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = rc ? 0 : revl_schedule_kinds(*s, kinds);
    for (size_t k = 0; k < nk && c->weight_decay > 0; k++)
        if (kinds[k] == REVL_HYPER_WEIGHT_DECAY) /* Adam has none */
            rc = revl_schedule_fill_kind(*s, REVL_HYPER_WEIGHT_DECAY, c->weight_decay);
    if (!rc && c->clip > 0)
        rc = revl_schedule_fill_kind(*s, REVL_HYPER_CLIP, c->clip);
    for (size_t g = 0; !rc && c->alpha_delta != 0 && g < G; g++)
        rc = revl_schedule_set(*s, c->delta_step, g, alpha + c->alpha_delta, 0.9);
    return rc;
}

static int train_and_reverse(const dp_case *c, revl_model *m, lr_user *u, size_t T, int rank,
                             double **out, size_t *n_out, char *msg)
{
    size_t P = revl_model_n_params(m), NM = revl_model_n_meta(m), G = revl_model_n_groups(m);
    revl_schedule *s = NULL;
    revl_trainer *t = NULL;
    revl_trainer_options to;
    revl_trainer_options_init(&to);
    int differs = rank == c->fault_rank;
    if (c->fault == DP_FAULT_TRUNCATE && differs)
        to.truncate = 2;
    int rc = schedule(c, m, c->fault == DP_FAULT_STEPS && differs ? T - 1 : T, rank, &s);
    if (!rc)
        rc = revl_trainer_create(&t, m, s, &to);
    if (rc) {
        snprintf(msg, 256, "setup failed: %d", rc);
        revl_schedule_free(s);
        return rc;
    }
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    if (c->clip > 0) /* the driver's kind, not listed by the schedule */
        kinds[nk++] = REVL_HYPER_CLIP;
    size_t n = P + nk * T * G + P + NM + 2;
    double *o = calloc(n, sizeof *o), *w0 = calloc(P, sizeof *w0), *meta = calloc(NM, sizeof *meta);
    double *dfdw = calloc(P, sizeof *dfdw);
    double log_scale[8];
    for (size_t g = 0; g < G; g++)
        log_scale[g] = -1;
    for (size_t j = 0; j < NM; j++)
        meta[j] = c->fault == DP_FAULT_META && differs ? -2.5 : -3;
    revl_model_init_weights(m, log_scale, 5, w0);
    rc = revl_trainer_train(t, w0, meta);
    if (!rc) {
        revl_trainer_weights(t, o);
        for (size_t i = 0; i < P; i++)
            dfdw[i] = o[i] - (c->fault == DP_FAULT_DFDW && differs ? 0.25 : 0.5);
        revl_trainer_stats st = {.struct_size = sizeof st};
        revl_trainer_get_stats(t, &st);
        o[n - 2] = st.last_loss;
        o[n - 1] = (double)st.buffer_bytes;
        double *dk[REVL_HYPER_COUNT] = {0};
        for (size_t k = 0; k < nk; k++)
            dk[kinds[k]] = o + P + k * T * G;
        if (u)
            u->reversing = 1;
        rc = revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, o + P + nk * T * G, REVL_HYPER_COUNT, dk,
                                          o + P + nk * T * G + P);
    }
    snprintf(msg, 256, "%s", rc ? revl_trainer_last_error(t) : "");
    free(w0);
    free(meta);
    free(dfdw);
    revl_trainer_free(t);
    revl_schedule_free(s);
    if (rc) {
        free(o);
        return rc;
    }
    *out = o;
    *n_out = n;
    return REVL_OK;
}

int dp_run(const dp_case *c, double **out, size_t *n_out, char *msg)
{
    int rank = c->comm ? c->comm->rank : 0;
    revl_model *m = NULL;
    int rc;
    if (c->mlp) {
        revl_dataset *data = mlp_data();
        rc = data ? mlp_model(c, data, &m) : REVL_ERR_NOMEM;
        if (!rc)
            rc = train_and_reverse(c, m, NULL, MLP_T, rank, out, n_out, msg);
        else
            snprintf(msg, 256, "model failed: %d", rc);
        revl_model_free(m);
        revl_dataset_free(data);
        return rc;
    }
    lr_user *u = calloc(1, sizeof *u);
    u->c = c;
    u->rank = rank;
    u->n_micro = c->n_micro + (c->fault == DP_FAULT_N_MICRO && rank == c->fault_rank);
    lr_data(u);
    rc = lr_model(c, u, &m);
    if (!rc)
        rc = train_and_reverse(c, m, u, LR_T, rank, out, n_out, msg);
    else
        snprintf(msg, 256, "model failed: %d", rc);
    revl_model_free(m);
    free(u);
    return rc;
}
