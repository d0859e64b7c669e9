/* check_errors.c: the bad-input table of docs/errors.md, row by row. Each test feeds one kind of
 * bad input to the public API and asserts the status, that the handle's message names what is
 * wrong and where (step, parameter, index, group, file), and that the handle is still usable
 * afterwards (a correct call succeeds) or was never made (*out = NULL). The models are small
 * callbacks written here with knobs that make them misbehave at a chosen step, parameter and
 * pass. Rows already asserted (status and message) by another suite are cited in the table, not
 * repeated here. Run under valgrind with CK_FORK=no: nothing may leak on any error path. */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revl.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

/* ------------------------------------------------------------------ the toy model */

/* L = sum_i 1/2 (w_i - c_i)^2 + exp(meta0)/2 w_i^2, c_i = 0.25 (i mod 5) - 0.5; exact HVP.
 * Knobs make it misbehave at a chosen step, in the forward pass, the reverse pass or both
 * (the test sets `reversing` between train and hypergrad). */
enum { WHEN_BOTH = 0, WHEN_FORWARD = 1, WHEN_REVERSE = 2 };

typedef struct toy {
    size_t p, n_meta;
    int reversing;
    int const_grad;     /* gradient 0 everywhere (before overrides) */
    long fail_grad_at;  /* step whose gradient callback fails (-1 never) */
    int fail_grad_rc, fail_grad_when;
    long fail_hvp_at;   /* step whose Hessian-vector callback fails (-1 never) */
    long bad_step;      /* step whose gradient is overridden (-1 never, -2 every step) */
    size_t bad_param;
    double bad_value;
    int bad_add;        /* add bad_value instead of writing it */
    int bad_when;
    long hv_bad_step;   /* step whose hv_w[1] is hv_bad_value (-1 never) */
    double hv_bad_value;
    int fused_differs;  /* the fused gradient differs from the plain one by 1e-9 at parameter 0 */
} toy;

static int toy_active(const toy *q, int when)
{
    return when == WHEN_BOTH || (when == WHEN_FORWARD && !q->reversing) ||
           (when == WHEN_REVERSE && q->reversing);
}

static void toy_gradient(const toy *q, size_t step, const double *w, const double *meta,
                         double *g, double *loss)
{
    double lam = meta ? exp(meta[0]) : 0.0, l = 0;
    for (size_t i = 0; i < q->p; i++) {
        double c = 0.25 * (double)(i % 5) - 0.5, d = w[i] - c;
        g[i] = q->const_grad ? 0.0 : d + lam * w[i];
        l += 0.5 * d * d + 0.5 * lam * w[i] * w[i];
    }
    if ((q->bad_step == -2 || q->bad_step == (long)step) && toy_active(q, q->bad_when)) {
        if (q->bad_add)
            g[q->bad_param] += q->bad_value;
        else
            g[q->bad_param] = q->bad_value;
    }
    if (loss)
        *loss = l;
}

static int toy_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                    void *user)
{
    toy *q = user;
    if (q->fail_grad_at == (long)step && toy_active(q, q->fail_grad_when))
        return q->fail_grad_rc;
    toy_gradient(q, step, w, meta, g, loss);
    return 0;
}

static int toy_hvp(size_t step, const double *w, const double *meta, const double *v,
                   double *g, double *hv, double *hm, void *user)
{
    toy *q = user;
    if (q->fail_hvp_at == (long)step)
        return 9;
    double lam = meta ? exp(meta[0]) : 0.0, wv = 0;
    for (size_t i = 0; i < q->p; i++) {
        hv[i] = (q->const_grad ? 0.0 : 1.0 + lam) * v[i];
        wv += w[i] * v[i];
    }
    if (q->hv_bad_step == (long)step)
        hv[1] = q->hv_bad_value;
    if (hm)
        hm[0] = lam * wv;
    if (g) {
        toy_gradient(q, step, w, meta, g, NULL);
        if (q->fused_differs)
            g[0] += 1e-9;
    }
    return 0;
}

static void toy_free(void *user)
{
    free(user);
}

enum { HVP_NONE = 0, HVP_PLAIN = 1, HVP_FUSED = 2 };

static revl_model *toy_model(size_t p, size_t n_meta, int hvp_mode, toy **out_q)
{
    toy *q = calloc(1, sizeof *q);
    ck_assert_ptr_nonnull(q);
    q->p = p;
    q->n_meta = n_meta;
    q->fail_grad_at = q->fail_hvp_at = q->bad_step = q->hv_bad_step = -1;
    q->fail_grad_rc = 7;
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = p;
    d.n_meta = n_meta;
    d.grad = toy_grad;
    d.hvp = hvp_mode == HVP_NONE ? NULL : toy_hvp;
    d.hvp_gives_grad = hvp_mode == HVP_FUSED;
    d.user = q;
    d.user_free = toy_free;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    *out_q = q;
    return m;
}

static void toy_reset(toy *q)
{
    size_t p = q->p, nm = q->n_meta;
    memset(q, 0, sizeof *q);
    q->p = p;
    q->n_meta = nm;
    q->fail_grad_at = q->fail_hvp_at = q->bad_step = q->hv_bad_step = -1;
    q->fail_grad_rc = 7;
}

/* A toy model with one group, its schedule (alpha 0.1, gamma 0.9) and a trainer. */
typedef struct env {
    toy *q;
    revl_model *m;
    revl_schedule *s;
    revl_trainer *t;
    size_t p, n_meta, T;
} env;

static env env_make(size_t p, size_t n_meta, size_t T, int hvp_mode, unsigned frac_bits)
{
    env e = {0};
    e.p = p;
    e.n_meta = n_meta;
    e.T = T;
    e.m = toy_model(p, n_meta, hvp_mode, &e.q);
    size_t off[2] = {0, p};
    ck_assert_int_eq(revl_schedule_create(&e.s, T, 1, off), REVL_OK);
    revl_trainer_options o;
    revl_trainer_options_init(&o);
    if (frac_bits)
        o.frac_bits = frac_bits;
    ck_assert_int_eq(revl_trainer_create(&e.t, e.m, e.s, &o), REVL_OK);
    return e;
}

static void env_free(env *e)
{
    revl_trainer_free(e->t);
    revl_schedule_free(e->s);
    revl_model_free(e->m);
}

/* The trainer still works: with the faults removed and the default schedule, a train and a
 * hypergradient succeed and give finite results. */
static void env_usable(env *e)
{
    toy_reset(e->q);
    ck_assert_int_eq(revl_schedule_fill(e->s, 0.1, 0.9), REVL_OK);
    double w0[16], dfdw[16], d_w0[16], meta[1] = {0}, d_meta[1] = {0};
    double *d_alpha = malloc(e->T * sizeof *d_alpha);
    ck_assert(e->p <= 16);
    for (size_t i = 0; i < e->p; i++) {
        w0[i] = 0.1 * (double)i;
        dfdw[i] = 1.0;
    }
    int rc = revl_trainer_train(e->t, w0, e->n_meta ? meta : NULL);
    ck_assert_msg(rc == REVL_OK, "train after the error: %d %s", rc, revl_trainer_last_error(e->t));
    e->q->reversing = 1;
    rc = revl_trainer_hypergrad(e->t, dfdw, NULL, d_w0, d_alpha, NULL, e->n_meta ? d_meta : NULL);
    ck_assert_msg(rc == REVL_OK, "hypergrad after the error: %d %s", rc,
                  revl_trainer_last_error(e->t));
    for (size_t i = 0; i < e->p; i++)
        ck_assert(isfinite(d_w0[i]));
    e->q->reversing = 0;
    free(d_alpha);
}

/* Train from w0 = 0.1 i (meta 0); returns the status. */
static int env_train(env *e)
{
    double w0[16], meta[1] = {0};
    for (size_t i = 0; i < e->p; i++)
        w0[i] = 0.1 * (double)i;
    e->q->reversing = 0;
    return revl_trainer_train(e->t, w0, e->n_meta ? meta : NULL);
}

/* Hypergradient with dfdw = 1 (the toy's reverse flag set); returns the status. d_w0 may be
 * NULL. */
static int env_hypergrad(env *e, double *d_w0)
{
    double dfdw[16];
    for (size_t i = 0; i < e->p; i++)
        dfdw[i] = 1.0;
    e->q->reversing = 1;
    int rc = revl_trainer_hypergrad(e->t, dfdw, NULL, d_w0, NULL, NULL, NULL);
    e->q->reversing = 0;
    return rc;
}

/* A labelled data set of n examples, dim features, labels i mod classes. */
/* f = |w|^2 / 2 as a user objective for the hyper-optimiser. */
static int half_norm(const double *w, const double *meta, double *f, double *dfdw,
                     double *dfdmeta, void *user)
{
    size_t p = *(const size_t *)user;
    double s = 0;
    for (size_t i = 0; i < p; i++) {
        s += 0.5 * w[i] * w[i];
        dfdw[i] = w[i];
    }
    *f = s;
    return 0;
}

/* ------------------------------------------------------------------ NULL pointers */

START_TEST(test_null_create)
{
    /* every constructor: NULL out, or a NULL argument it cannot do without; *out = NULL */
    size_t off[2] = {0, 4}, widths[2] = {3, 2};
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = 4;
    d.grad = toy_grad;
    revl_model *m = (revl_model *)&d;
    ck_assert_int_eq(revl_model_create(NULL, &d), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_create(&m, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(m);
    d.grad = NULL;
    m = (revl_model *)&d;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID);
    ck_assert_ptr_null(m);

    revl_schedule *s = (revl_schedule *)&d;
    ck_assert_int_eq(revl_schedule_create(NULL, 3, 1, off), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(revl_schedule_create_with(&s, 3, 1, NULL, NULL), REVL_ERR_INVALID);

    toy *q;
    revl_model *good_m = toy_model(4, 0, HVP_PLAIN, &q);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off), REVL_OK);
    revl_trainer *t = (revl_trainer *)&d;
    ck_assert_int_eq(revl_trainer_create(NULL, good_m, s, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_create(&t, NULL, s, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(t);
    t = (revl_trainer *)&d;
    ck_assert_int_eq(revl_trainer_create(&t, good_m, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(t);

    ck_assert_int_eq(revl_dataset_create(NULL, NULL), REVL_ERR_INVALID);

    revl_dataset *data = test_dataset(6, 3, 2, 1);
    revl_model *mlp = (revl_model *)&d;
    ck_assert_int_eq(revl_mlp_create(NULL, 2, widths, data, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&mlp, 2, NULL, data, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(mlp);
    mlp = (revl_model *)&d;
    ck_assert_int_eq(revl_mlp_create(&mlp, 2, widths, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(mlp);

    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 4;
    ho.objective = half_norm;
    ho.objective_user = &p;
    revl_hyperopt *h = (revl_hyperopt *)&d;
    ck_assert_int_eq(revl_hyperopt_create(NULL, good_m, NULL, 3, &ho), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_create(&h, NULL, NULL, 3, &ho), REVL_ERR_INVALID);
    ck_assert_ptr_null(h);
    /* no objective and no validation set: nothing to take f from */
    h = (revl_hyperopt *)&d;
    ck_assert_int_eq(revl_hyperopt_create(&h, good_m, NULL, 3, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(h);

    /* the arguments that were fine still make handles */
    ck_assert_int_eq(revl_trainer_create(&t, good_m, s, NULL), REVL_OK);
    ck_assert_int_eq(revl_mlp_create(&mlp, 2, widths, data, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_create(&h, good_m, NULL, 3, &ho), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(mlp);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(good_m);
    revl_dataset_free(data);
}
END_TEST

START_TEST(test_null_handles)
{
    /* every call on a NULL handle: REVL_ERR_INVALID (or 0 / NULL for queries), never a crash;
     * last_error(NULL) names the missing handle */
    double x[4] = {0}, y[4] = {0};
    size_t off[2] = {0, 1};
    int32_t lab[1] = {0};
    revl_trainer_stats st = {.struct_size = sizeof st};
    ck_assert_int_eq(revl_model_grad(NULL, 0, x, NULL, y, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_hvp(NULL, 0, x, NULL, x, y, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_group_offsets(NULL, off), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_set_groups(NULL, 1, off), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_init_weights(NULL, x, 0, y), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_init_scales_grad(NULL, x, x, y), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_evaluate(NULL, NULL, x, y, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_fill(NULL, 0.1, 0.9), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_set(NULL, 0, 0, 0.1, 0.9), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_set_all(NULL, x, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_get_all(NULL, x, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_offsets(NULL, off), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_train(NULL, x, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_hypergrad(NULL, x, NULL, NULL, NULL, NULL, NULL),
                     REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_weights(NULL, x), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_get_stats(NULL, &st), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_set(NULL, 1, 1, 1, x, lab), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_load_idx(NULL, "a", "b", 0), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_subset(NULL, NULL, 0, 1), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_standardize(NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_set(NULL, x, NULL, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_get(NULL, 0, x, NULL, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_step(NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_run(NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_save(NULL, 0, "x"), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_hyperopt_load(NULL, "x"), REVL_ERR_INVALID);
    ck_assert_uint_eq(revl_model_n_params(NULL), 0);
    ck_assert_uint_eq(revl_model_n_meta(NULL), 0);
    ck_assert_uint_eq(revl_model_n_groups(NULL), 0);
    ck_assert_uint_eq(revl_schedule_n_steps(NULL), 0);
    ck_assert_uint_eq(revl_schedule_n_groups(NULL), 0);
    ck_assert_uint_eq(revl_dataset_n(NULL), 0);
    ck_assert_uint_eq(revl_hyperopt_n_steps(NULL), 0);
    ck_assert_str_eq(revl_model_last_error(NULL), "model is NULL");
    ck_assert_str_eq(revl_schedule_last_error(NULL), "schedule is NULL");
    ck_assert_str_eq(revl_trainer_last_error(NULL), "trainer is NULL");
    ck_assert_str_eq(revl_dataset_last_error(NULL), "dataset is NULL");
    ck_assert_str_eq(revl_hyperopt_last_error(NULL), "hyper-optimiser is NULL");
    revl_model_free(NULL);
    revl_schedule_free(NULL);
    revl_trainer_free(NULL);
    revl_dataset_free(NULL);
    revl_hyperopt_free(NULL);
    revl_allocator_init(NULL);
    revl_model_def_init(NULL);
    revl_trainer_options_init(NULL);
    revl_mlp_options_init(NULL);
    revl_hyperopt_options_init(NULL);
}
END_TEST

START_TEST(test_null_train_args)
{
    env e = env_make(6, 1, 5, HVP_PLAIN, 0);
    double w0[6] = {0}, meta[1] = {0}, dfdw[6] = {1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(revl_trainer_train(e.t, NULL, meta), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_trainer_last_error(e.t), "revl_trainer_train: w0 is NULL");
    ck_assert_int_eq(revl_trainer_train(e.t, w0, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_trainer_last_error(e.t),
                     "revl_trainer_train: meta is NULL but the model has 1 meta-parameters");
    ck_assert_int_eq(revl_trainer_train(e.t, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(e.t, NULL, NULL, NULL, NULL, NULL, NULL),
                     REVL_ERR_INVALID);
    ck_assert_str_eq(revl_trainer_last_error(e.t), "revl_trainer_hypergrad: dfdw is NULL");
    /* each entry's messages name that entry, once (not "revl_trainer_hypergrad_kinds:
     * revl_trainer_hypergrad: ..." as the bindings printed it, issue 24) */
    double *kinds[REVL_HYPER_COUNT] = {0};
    ck_assert_int_eq(revl_trainer_hypergrad_kinds(e.t, NULL, NULL, NULL, kinds, NULL),
                     REVL_ERR_INVALID);
    ck_assert_str_eq(revl_trainer_last_error(e.t), "revl_trainer_hypergrad_kinds: dfdw is NULL");
    ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(e.t, NULL, NULL, NULL, REVL_HYPER_COUNT,
                                                    kinds, NULL),
                     REVL_ERR_INVALID);
    ck_assert_str_eq(revl_trainer_last_error(e.t), "revl_trainer_hypergrad_kinds_n: dfdw is NULL");
    /* an argument error before the walk back keeps the training: the hypergradient still works */
    ck_assert_int_eq(revl_trainer_hypergrad(e.t, dfdw, NULL, NULL, NULL, NULL, NULL), REVL_OK);
    env_usable(&e);
    env_free(&e);
}
END_TEST

START_TEST(test_null_model_calls)
{
    toy *q;
    revl_model *m = toy_model(4, 1, HVP_PLAIN, &q);
    double w[4] = {0}, g[4], v[4] = {1, 1, 1, 1}, meta[1] = {0}, s[1] = {0};
    ck_assert_int_eq(revl_model_grad(m, 0, NULL, meta, g, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_grad: w, grad or meta is NULL");
    ck_assert_int_eq(revl_model_grad(m, 0, w, NULL, g, NULL), REVL_ERR_INVALID); /* meta */
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_grad: w, grad or meta is NULL");
    ck_assert_int_eq(revl_model_hvp(m, 0, w, meta, NULL, g, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_hvp: w, v, hv_w or meta is NULL");
    ck_assert_int_eq(revl_model_init_weights(m, NULL, 0, w), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_init_weights: NULL argument");
    ck_assert_int_eq(revl_model_init_scales_grad(m, w, NULL, s), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_init_scales_grad: NULL argument");
    ck_assert_int_eq(revl_model_set_groups(m, 1, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m), "offsets is NULL");
    /* still usable */
    ck_assert_int_eq(revl_model_grad(m, 0, w, meta, g, NULL), REVL_OK);
    ck_assert_int_eq(revl_model_hvp(m, 0, w, meta, v, g, NULL), REVL_OK);
    revl_model_free(m);
}
END_TEST

START_TEST(test_null_dataset_and_hyperopt_calls)
{
    revl_dataset *d = test_dataset(4, 2, 2, 3), *dst = NULL;
    double x[4] = {1, 2, 3, 4};
    int32_t y[2] = {0, 1};
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, NULL, y), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "x is NULL");
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "labels is NULL");
    ck_assert_int_eq(revl_dataset_load_idx(d, NULL, "l", 0), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "images_path is NULL");
    ck_assert_int_eq(revl_dataset_load_idx(d, "i", NULL, 0), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "labels_path is NULL");
    ck_assert_int_eq(revl_dataset_create(&dst, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(dst, NULL, 0, 1), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(dst), "source data set is NULL");
    ck_assert_uint_eq(revl_dataset_n(d), 4); /* unchanged */
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 2, x, y), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(dst, d, 0, 1), REVL_OK);

    toy *q;
    revl_model *m = toy_model(4, 0, HVP_PLAIN, &q);
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 4;
    ho.objective = half_norm;
    ho.objective_user = &p;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, &ho), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_hyperopt_last_error(h), "revl_hyperopt_save: path is NULL");
    ck_assert_int_eq(revl_hyperopt_load(h, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_hyperopt_last_error(h), "revl_hyperopt_load: path is NULL");
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_dataset_free(d);
    revl_dataset_free(dst);
}
END_TEST

START_TEST(test_null_output_arrays)
{
    /* outputs the caller must give: REVL_ERR_INVALID; these calls take a const handle and leave
     * its message as it was */
    env e = env_make(4, 0, 3, HVP_PLAIN, 0);
    ck_assert_int_eq(revl_trainer_weights(e.t, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_trainer_get_stats(e.t, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_schedule_offsets(e.s, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_group_offsets(e.m, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_trainer_last_error(e.t), "");
    /* the NULL outputs that are documented as "not wanted" are fine */
    double a[3];
    ck_assert_int_eq(revl_schedule_get_all(e.s, NULL, NULL), REVL_OK);
    ck_assert_int_eq(revl_schedule_get_all(e.s, a, NULL), REVL_OK);
    ck_assert_int_eq(env_train(&e), REVL_OK);
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_OK);
    env_usable(&e);
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------------ sizes */

START_TEST(test_zero_sizes_create)
{
    size_t off[2] = {0, 4}, nine[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    revl_model_def d;
    revl_model_def_init(&d);
    d.grad = toy_grad; /* n_params 0 */
    revl_model *m = (revl_model *)&d;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID);
    ck_assert_ptr_null(m);
    revl_schedule *s = (revl_schedule *)&d;
    ck_assert_int_eq(revl_schedule_create(&s, 0, 1, off), REVL_ERR_INVALID);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(revl_schedule_create(&s, 3, 0, off), REVL_ERR_INVALID);
    /* n_steps * n_groups overflows size_t */
    ck_assert_int_eq(revl_schedule_create(&s, SIZE_MAX / 4, 8, nine), REVL_ERR_INVALID);
    ck_assert_ptr_null(s);

    revl_dataset *data = test_dataset(6, 3, 2, 2);
    size_t w_ok[2] = {3, 2}, w_zero[3] = {3, 0, 2};
    revl_model *mlp = (revl_model *)&d;
    ck_assert_int_eq(revl_mlp_create(&mlp, 0, w_ok, data, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&mlp, 1, w_ok, data, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&mlp, 3, w_zero, data, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(mlp);
    revl_dataset *empty = NULL;
    ck_assert_int_eq(revl_dataset_create(&empty, NULL), REVL_OK);
    mlp = (revl_model *)&d;
    ck_assert_int_eq(revl_mlp_create(&mlp, 2, w_ok, empty, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(mlp);

    toy *q;
    revl_model *good = toy_model(4, 0, HVP_PLAIN, &q);
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 4;
    ho.objective = half_norm;
    ho.objective_user = &p;
    revl_hyperopt *h = (revl_hyperopt *)&d;
    ck_assert_int_eq(revl_hyperopt_create(&h, good, NULL, 0, &ho), REVL_ERR_INVALID);
    ck_assert_ptr_null(h);
    /* n_steps * n_groups overflows */
    ck_assert_int_eq(revl_model_set_groups(good, 4, (size_t[]){0, 1, 2, 3, 4}), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_create(&h, good, NULL, SIZE_MAX / 2, &ho), REVL_ERR_INVALID);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(revl_hyperopt_create(&h, good, NULL, 2, &ho), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(good);
    revl_dataset_free(data);
    revl_dataset_free(empty);
}
END_TEST

START_TEST(test_zero_sizes_dataset)
{
    revl_dataset *d = test_dataset(4, 2, 2, 4);
    double x[4] = {1, 2, 3, 4};
    int32_t y[2] = {0, 1};
    ck_assert_int_eq(revl_dataset_set(d, 0, 2, 2, x, y), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "n = 0, dim = 2, n_classes = 2: none may be 0");
    ck_assert_int_eq(revl_dataset_set(d, 2, 0, 2, x, y), REVL_ERR_INVALID);
    expect_msg(revl_dataset_last_error(d), "dim = 0");
    ck_assert_int_eq(revl_dataset_set(d, 2, 2, 0, x, y), REVL_ERR_INVALID);
    expect_msg(revl_dataset_last_error(d), "n_classes = 0");
    ck_assert_int_eq(revl_dataset_set(d, SIZE_MAX / 2, 4, 2, x, y), REVL_ERR_INVALID);
    expect_msg(revl_dataset_last_error(d), "is too large");
    ck_assert_uint_eq(revl_dataset_n(d), 4); /* unchanged */

    revl_dataset *dst = NULL, *empty = NULL, *three = test_dataset(4, 3, 2, 5);
    ck_assert_int_eq(revl_dataset_create(&dst, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_create(&empty, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(dst, d, 0, 0), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(dst),
                     "examples [0, 0 + 0) outside the source's 4 (count must be > 0)");
    ck_assert_int_eq(revl_dataset_subset(dst, d, 3, 2), REVL_ERR_INVALID);
    expect_msg(revl_dataset_last_error(dst), "[3, 3 + 2) outside the source's 4");
    ck_assert_int_eq(revl_dataset_standardize(empty, NULL), REVL_ERR_STATE);
    ck_assert_str_eq(revl_dataset_last_error(empty), "data set is empty");
    ck_assert_int_eq(revl_dataset_standardize(d, empty), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "reference data set is empty");
    ck_assert_int_eq(revl_dataset_standardize(d, three), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "reference has 3 features, data set has 2");
    /* usable */
    ck_assert_int_eq(revl_dataset_subset(dst, d, 1, 3), REVL_OK);
    ck_assert_int_eq(revl_dataset_standardize(d, dst), REVL_OK);
    revl_dataset_free(d);
    revl_dataset_free(dst);
    revl_dataset_free(empty);
    revl_dataset_free(three);
}
END_TEST

START_TEST(test_schedule_index_out_of_range)
{
    size_t off[3] = {0, 2, 5};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 3, 2, off), REVL_OK);
    ck_assert_int_eq(revl_schedule_set(s, 3, 0, 0.1, 0.5), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_schedule_last_error(s),
                     "step 3, group 0 outside the schedule (3 steps, 2 groups)");
    ck_assert_int_eq(revl_schedule_set(s, 0, 2, 0.1, 0.5), REVL_ERR_INVALID);
    expect_msg(revl_schedule_last_error(s), "step 0, group 2 outside the schedule");
    ck_assert_int_eq(revl_schedule_set(s, 2, 1, 0.1, 0.5), REVL_OK);
    revl_schedule_free(s);
}
END_TEST

START_TEST(test_schedule_not_matching_model)
{
    /* the schedule's groups must cover exactly the model's parameters */
    toy *q;
    revl_model *m = toy_model(8, 0, HVP_PLAIN, &q);
    size_t short_off[2] = {0, 5}, long_off[3] = {0, 4, 9}, two[3] = {0, 3, 8};
    revl_schedule *s_short = NULL, *s_long = NULL, *s_two = NULL;
    ck_assert_int_eq(revl_schedule_create(&s_short, 4, 1, short_off), REVL_OK);
    ck_assert_int_eq(revl_schedule_create(&s_long, 4, 2, long_off), REVL_OK);
    ck_assert_int_eq(revl_schedule_create(&s_two, 4, 2, two), REVL_OK);
    revl_trainer *t = (revl_trainer *)&q;
    ck_assert_int_eq(revl_trainer_create(&t, m, s_short, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(revl_trainer_create(&t, m, s_long, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_null(t);
    /* groups of the schedule need not be the model's own, only cover it */
    ck_assert_int_eq(revl_trainer_create(&t, m, s_two, NULL), REVL_OK);
    revl_trainer_free(t);

    /* the model's groups changed under a hyper-optimiser made for the old ones */
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 8;
    ho.objective = half_norm;
    ho.objective_user = &p;
    ck_assert_int_eq(revl_model_set_groups(m, 2, two), REVL_OK);
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, &ho), REVL_OK);
    ck_assert_int_eq(revl_model_set_groups(m, 1, (size_t[]){0, 8}), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_ERR_STATE);
    ck_assert_str_eq(revl_hyperopt_last_error(h),
                     "the model's groups changed since the hyper-optimiser was made (2, now 1)");
    ck_assert_int_eq(revl_model_set_groups(m, 2, two), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    revl_hyperopt_free(h);
    revl_schedule_free(s_short);
    revl_schedule_free(s_long);
    revl_schedule_free(s_two);
    revl_model_free(m);
}
END_TEST

START_TEST(test_mlp_shape_mismatch)
{
    revl_dataset *data = test_dataset(6, 3, 3, 6);
    size_t dim_w[2] = {4, 3}, out_w[2] = {3, 2}, ok_w[2] = {3, 3};
    revl_model *m = (revl_model *)&data;
    ck_assert_int_eq(revl_mlp_create(&m, 2, dim_w, data, NULL), REVL_ERR_INVALID); /* 4 != 3 */
    ck_assert_ptr_null(m);
    m = (revl_model *)&data;
    ck_assert_int_eq(revl_mlp_create(&m, 2, out_w, data, NULL), REVL_ERR_INVALID); /* label 2 */
    ck_assert_ptr_null(m);
    ck_assert_int_eq(revl_mlp_create(&m, 2, ok_w, data, NULL), REVL_OK);
    revl_model_free(m);
    revl_dataset_free(data);
}
END_TEST

/* ------------------------------------------------------------------ offsets */

START_TEST(test_offsets)
{
    toy *q;
    revl_model *m = toy_model(8, 0, HVP_PLAIN, &q);
    struct {
        size_t n_groups;
        size_t off[4];
        const char *says;
    } bad[] = {
        {2, {1, 4, 8}, "offsets[0] is 1, must be 0"},
        {2, {0, 0, 8}, "offsets not strictly increasing: offsets[1] = 0 <= offsets[0] = 0"},
        {3, {0, 5, 5, 8}, "offsets not strictly increasing: offsets[2] = 5 <= offsets[1] = 5"},
        {3, {0, 6, 4, 8}, "offsets not strictly increasing: offsets[2] = 4 <= offsets[1] = 6"},
        {2, {0, 4, 7}, "offsets[2] = 7, must equal n_params = 8"},
        {2, {0, 4, 9}, "offsets[2] = 9, must equal n_params = 8"},
        {0, {0}, "n_groups is 0"},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        ck_assert_int_eq(revl_model_set_groups(m, bad[c].n_groups, bad[c].off), REVL_ERR_INVALID);
        ck_assert_str_eq(revl_model_last_error(m), bad[c].says);
        ck_assert_uint_eq(revl_model_n_groups(m), 1); /* unchanged */
        /* a schedule refuses the same offsets (except the end, checked against the model when
         * a trainer is made): no handle, so no message */
        revl_schedule *s = (revl_schedule *)&q;
        int want = c == 4 || c == 5 ? REVL_OK : REVL_ERR_INVALID;
        ck_assert_int_eq(revl_schedule_create(&s, 3, bad[c].n_groups, bad[c].off), want);
        if (want == REVL_OK) {
            revl_trainer *t = (revl_trainer *)&q;
            ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_ERR_INVALID);
            ck_assert_ptr_null(t);
        } else {
            ck_assert_ptr_null(s);
        }
        revl_schedule_free(s);
    }
    ck_assert_int_eq(revl_model_set_groups(m, 3, (size_t[]){0, 2, 5, 8}), REVL_OK);
    ck_assert_uint_eq(revl_model_n_groups(m), 3);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ alpha and gamma */

START_TEST(test_gamma_outside)
{
    const double bad[] = {0.0, -0.5, 1.5, 1.0 + 0x1p-52, 0x1p-17, NAN, INFINITY, -INFINITY};
    /* the value shown is visibly outside the interval shown (never "gamma = 1 outside
     * [2^-16, 1]"): the shortest digits that give it back */
    const char *shown[] = {"gamma = 0 ", "gamma = -0.5 ", "gamma = 1.5 ",
                           "gamma = 1.0000000000000002 ", "gamma = 7.62939453125e-06 ",
                           "gamma = nan ", "gamma = inf ", "gamma = -inf "};
    size_t off[3] = {0, 3, 6};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 4, 2, off), REVL_OK);
    toy *q;
    revl_model *m = toy_model(6, 0, HVP_PLAIN, &q);
    ck_assert_int_eq(revl_model_set_groups(m, 2, off), REVL_OK);
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 6;
    ho.objective = half_norm;
    ho.objective_user = &p;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 4, &ho), REVL_OK);
    double ga[8], got[8], hgot[8];
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        char want[96];
        ck_assert_int_eq(revl_schedule_set(s, 2, 1, 0.1, bad[c]), REVL_ERR_INVALID);
        snprintf(want, sizeof want, "%soutside [2^-16, 1] at step 2, group 1", shown[c]);
        ck_assert_str_eq(revl_schedule_last_error(s), want);
        ck_assert_int_eq(revl_schedule_fill(s, 0.1, bad[c]), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), shown[c]);
        for (int k = 0; k < 8; k++)
            ga[k] = 0.5;
        ga[5] = bad[c];
        ck_assert_int_eq(revl_schedule_set_all(s, NULL, ga), REVL_ERR_INVALID);
        ck_assert_str_eq(revl_schedule_last_error(s), want);
        ck_assert_int_eq(revl_hyperopt_set(h, NULL, ga, NULL, NULL), REVL_ERR_INVALID);
        ck_assert_str_eq(revl_hyperopt_last_error(h), want);
        ck_assert(isnan(revl_gamma_applied(bad[c])));
        /* nothing changed */
        ck_assert_int_eq(revl_schedule_get_all(s, NULL, got), REVL_OK);
        ck_assert_int_eq(revl_hyperopt_get(h, 0, NULL, hgot, NULL, NULL), REVL_OK);
        for (int k = 0; k < 8; k++) {
            ck_assert_double_eq(got[k], 0.9);
            ck_assert_double_eq(hgot[k], 0.5);
        }
    }
    /* the ends of the range are fine */
    ck_assert_int_eq(revl_schedule_set(s, 0, 0, 0.1, 0x1p-16), REVL_OK);
    ck_assert_int_eq(revl_schedule_set(s, 0, 1, 0.1, 1.0), REVL_OK);
    ck_assert_double_eq(revl_gamma_applied(1.0), 1.0);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_schedule_free(s);
}
END_TEST

START_TEST(test_alpha_not_finite)
{
    const double bad[] = {NAN, INFINITY, -INFINITY};
    size_t off[3] = {0, 3, 6};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 4, 2, off), REVL_OK);
    toy *q;
    revl_model *m = toy_model(6, 0, HVP_PLAIN, &q);
    ck_assert_int_eq(revl_model_set_groups(m, 2, off), REVL_OK);
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 6;
    ho.objective = half_norm;
    ho.objective_user = &p;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 4, &ho), REVL_OK);
    double al[8], got[8];
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        ck_assert_int_eq(revl_schedule_set(s, 3, 0, bad[c], 0.5), REVL_ERR_INVALID);
        ck_assert_str_eq(revl_schedule_last_error(s), "alpha is not finite at step 3, group 0");
        ck_assert_int_eq(revl_schedule_fill(s, bad[c], 0.5), REVL_ERR_INVALID);
        expect_msg(revl_schedule_last_error(s), "alpha is not finite");
        for (int k = 0; k < 8; k++)
            al[k] = 0.1;
        al[3] = bad[c];
        ck_assert_int_eq(revl_schedule_set_all(s, al, NULL), REVL_ERR_INVALID);
        ck_assert_str_eq(revl_schedule_last_error(s), "alpha is not finite at step 1, group 1");
        ck_assert_int_eq(revl_hyperopt_set(h, al, NULL, NULL, NULL), REVL_ERR_INVALID);
        ck_assert_str_eq(revl_hyperopt_last_error(h), "alpha is not finite at step 1, group 1");
        ck_assert_int_eq(revl_schedule_get_all(s, got, NULL), REVL_OK);
        for (int k = 0; k < 8; k++)
            ck_assert_double_eq(got[k], 0.1);
    }
    ck_assert_int_eq(revl_schedule_set(s, 3, 0, -0.5, 0.5), REVL_OK); /* any finite alpha */
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_schedule_free(s);
}
END_TEST

/* ------------------------------------------------------------------ w0, meta, dfdw */

START_TEST(test_w0_range)
{
    struct {
        unsigned frac_bits;
        size_t i;
        double value;
        const char *says;
    } bad[] = {
        {0, 3, NAN, "w0[3] is NaN"}, /* NaN once: not "= nan is not finite" (issue 24) */
        {0, 0, INFINITY, "w0[0] = inf is not finite, so outside"},
        {0, 5, -INFINITY, "w0[5] = -inf is not finite, so outside"},
        {0, 4, 2048.0, "w0[4] = 2048 is outside the fixed-point range (|w| < 2^11)"},
        {0, 4, -2048.0, "w0[4] = -2048 is outside the fixed-point range (|w| < 2^11)"},
        {0, 1, 1e300, "w0[1] = 1e+300 is outside"},
        {62, 2, 2.0, "w0[2] = 2 is outside the fixed-point range (|w| < 2^1)"},
        {1, 2, 0x1p62, "w0[2] = 4.61169e+18 is outside the fixed-point range (|w| < 2^62)"},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        env e = env_make(6, 0, 4, HVP_PLAIN, bad[c].frac_bits);
        double w0[6] = {0, 0.5, 1, -1, 0.25, 0};
        w0[bad[c].i] = bad[c].value;
        ck_assert_int_eq(revl_trainer_train(e.t, w0, NULL), REVL_ERR_RANGE);
        ck_assert_msg(strstr(revl_trainer_last_error(e.t), bad[c].says) == revl_trainer_last_error(e.t),
                      "case %zu: '%s'", c, revl_trainer_last_error(e.t));
        if (isnan(bad[c].value))
            ck_assert_str_eq(revl_trainer_last_error(e.t), bad[c].says);
        ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
        /* just inside the range is fine */
        w0[bad[c].i] = bad[c].frac_bits == 62 ? 1.75 : bad[c].frac_bits == 1 ? 0x1p61 : 2047.5;
        ck_assert_int_eq(revl_trainer_train(e.t, w0, NULL), REVL_OK);
        env_usable(&e);
        env_free(&e);
    }
}
END_TEST

START_TEST(test_meta_and_dfdw_not_finite)
{
    env e = env_make(6, 1, 4, HVP_PLAIN, 0);
    double w0[6] = {0}, meta[1], dfdw[6] = {1, 1, 1, 1, 1, 1}, dfdmeta[1] = {NAN};
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t c = 0; c < 3; c++) {
        meta[0] = bad[c];
        ck_assert_int_eq(revl_trainer_train(e.t, w0, meta), REVL_ERR_RANGE);
        ck_assert_str_eq(revl_trainer_last_error(e.t), "meta[0] is not finite");
    }
    meta[0] = 0.5;
    ck_assert_int_eq(revl_trainer_train(e.t, w0, meta), REVL_OK);
    for (size_t c = 0; c < 3; c++) {
        dfdw[4] = bad[c];
        ck_assert_int_eq(revl_trainer_hypergrad(e.t, dfdw, NULL, NULL, NULL, NULL, NULL),
                         REVL_ERR_RANGE);
        ck_assert_str_eq(revl_trainer_last_error(e.t), "dfdw[4] is not finite");
    }
    dfdw[4] = 1;
    for (size_t c = 0; c < 3; c++) {
        dfdmeta[0] = bad[c];
        ck_assert_int_eq(revl_trainer_hypergrad(e.t, dfdw, dfdmeta, NULL, NULL, NULL, NULL),
                         REVL_ERR_RANGE);
        ck_assert_str_eq(revl_trainer_last_error(e.t), "dfdmeta[0] is not finite");
    }
    /* checked before the walk back: the training is still there */
    dfdmeta[0] = 0;
    ck_assert_int_eq(revl_trainer_hypergrad(e.t, dfdw, dfdmeta, NULL, NULL, NULL, NULL), REVL_OK);

    /* log init scales: revl_model_init_weights */
    double ls[1] = {NAN}, w[6];
    ck_assert_int_eq(revl_model_init_weights(e.m, ls, 0, w), REVL_ERR_RANGE);
    ck_assert_str_eq(revl_model_last_error(e.m), "log init scale of group 0 is not finite");
    ls[0] = -1;
    ck_assert_int_eq(revl_model_init_weights(e.m, ls, 0, w), REVL_OK);
    env_usable(&e);
    env_free(&e);

    /* the hyper-optimiser's meta and log init scales */
    toy *q;
    revl_model *m = toy_model(6, 1, HVP_PLAIN, &q);
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 6;
    ho.objective = half_norm;
    ho.objective_user = &p;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, &ho), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, NULL, (double[]){NAN}), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_hyperopt_last_error(h), "meta[0] is not finite");
    ck_assert_int_eq(revl_hyperopt_set(h, NULL, NULL, (double[]){INFINITY}, NULL),
                     REVL_ERR_INVALID);
    ck_assert_str_eq(revl_hyperopt_last_error(h), "log init scale of group 0 is not finite");
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ data */

START_TEST(test_data_not_finite_and_labels)
{
    revl_dataset *d = test_dataset(3, 2, 3, 7);
    double x[6] = {1, 2, 3, 4, 5, 6};
    int32_t y[3] = {0, 1, 2};
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t c = 0; c < 3; c++) {
        x[3] = bad[c];
        ck_assert_int_eq(revl_dataset_set(d, 3, 2, 3, x, y), REVL_ERR_RANGE);
        ck_assert_str_eq(revl_dataset_last_error(d), "x[3] (example 1, feature 1) is not finite");
    }
    x[3] = 4;
    y[2] = -1;
    ck_assert_int_eq(revl_dataset_set(d, 3, 2, 3, x, y), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "labels[2] = -1 outside [0, 3)");
    y[2] = 3;
    ck_assert_int_eq(revl_dataset_set(d, 3, 2, 3, x, y), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_dataset_last_error(d), "labels[2] = 3 outside [0, 3)");
    y[2] = INT32_MIN;
    ck_assert_int_eq(revl_dataset_set(d, 3, 2, 3, x, y), REVL_ERR_INVALID);
    expect_msg(revl_dataset_last_error(d), "labels[2] = -2147483648 outside [0, 3)");
    /* the old contents are intact and the handle works */
    ck_assert_uint_eq(revl_dataset_n(d), 3);
    ck_assert(isfinite(revl_dataset_x(d)[3]));
    y[2] = 2;
    ck_assert_int_eq(revl_dataset_set(d, 3, 2, 3, x, y), REVL_OK);
    ck_assert_double_eq(revl_dataset_x(d)[3], 4);
    revl_dataset_free(d);
}
END_TEST

START_TEST(test_mlp_training_data_changed)
{
    /* the MLP's training set must not change under it (revl.h); a change of size is caught */
    revl_dataset *data = test_dataset(8, 3, 2, 8);
    revl_model *m = NULL;
    size_t widths[2] = {3, 2};
    ck_assert_int_eq(revl_mlp_create(&m, 2, widths, data, NULL), REVL_OK);
    size_t p = revl_model_n_params(m), off[2] = {0, 0};
    off[1] = p;
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[8] = {0};
    revl_dataset *other = test_dataset(5, 3, 2, 9);
    ck_assert_int_eq(revl_dataset_subset(data, other, 0, 5), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_ERR_CALLBACK);
    /* the library's own check, not a callback of the caller's: no "callback returned 1" */
    ck_assert_str_eq(revl_trainer_last_error(t),
                     "the MLP's training set changed under it at step 0: 5 examples of 3 "
                     "features, 8 of 3 at revl_mlp_create (forward)");
    revl_dataset_free(other);
    other = test_dataset(8, 3, 2, 10);
    ck_assert_int_eq(revl_dataset_subset(data, other, 0, 8), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(data);
    revl_dataset_free(other);
}
END_TEST

/* ------------------------------------------------------------------ gradients in training */

START_TEST(test_gradient_not_finite_every_step)
{
    const size_t T = 7, p = 6;
    const double bad[] = {NAN, INFINITY, -INFINITY};
    const char *name[] = {"NaN", "infinite", "infinite"};
    env e = env_make(p, 0, T, HVP_PLAIN, 0);
    for (size_t c = 0; c < 3; c++)
        for (size_t step = 0; step < T; step++) {
            toy_reset(e.q);
            e.q->bad_step = (long)step;
            e.q->bad_param = (step * 5 + c) % p;
            e.q->bad_value = bad[c];
            ck_assert_int_eq(env_train(&e), REVL_ERR_RANGE);
            char want[128];
            snprintf(want, sizeof want, "gradient is %s at step %zu, parameter %zu (forward)",
                     name[c], step, e.q->bad_param);
            ck_assert_str_eq(revl_trainer_last_error(e.t), want);
            ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
            revl_trainer_stats st = {.struct_size = sizeof st};
            ck_assert_int_eq(revl_trainer_get_stats(e.t, &st), REVL_OK);
            ck_assert_uint_eq(st.steps_done, step); /* stopped at the bad step */
        }
    env_usable(&e);
    env_free(&e);
}
END_TEST

START_TEST(test_gradient_out_of_range_every_step)
{
    /* (1-gamma) g must fit the fixed-point range; with gamma 0.5, |g| < 4096 */
    const size_t T = 6, p = 5;
    env e = env_make(p, 0, T, HVP_PLAIN, 0);
    ck_assert_int_eq(revl_schedule_fill(e.s, 0.1, 0.5), REVL_OK);
    const double bad[] = {1e300, -5000.0, 4096.0};
    const char *shown[] = {"5e+299", "-2500", "2048"};
    for (size_t c = 0; c < 3; c++)
        for (size_t step = 0; step < T; step++) {
            toy_reset(e.q);
            e.q->bad_step = (long)step;
            e.q->bad_param = (step + c) % p;
            e.q->bad_value = bad[c];
            ck_assert_int_eq(env_train(&e), REVL_ERR_RANGE);
            char want[160];
            snprintf(want, sizeof want,
                     "(1-gamma)*gradient = %s outside the fixed-point range (|x| < 2^11) at "
                     "step %zu, parameter %zu (forward)",
                     shown[c], step, e.q->bad_param);
            ck_assert_str_eq(revl_trainer_last_error(e.t), want);
        }
    /* the velocity leaves the range: |g| = 3000 every step, (1-gamma) g fits, v does not */
    toy_reset(e.q);
    e.q->bad_step = -2;
    e.q->bad_param = 2;
    e.q->bad_value = 3000.0;
    ck_assert_int_eq(env_train(&e), REVL_ERR_RANGE);
    ck_assert_str_eq(revl_trainer_last_error(e.t),
                     "velocity left the fixed-point range (|v| < 2^11) at step 1, parameter 2 "
                     "(forward)");
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    env_usable(&e);
    env_free(&e);
}
END_TEST

START_TEST(test_weights_leave_range)
{
    /* gradient -1 on parameter 3 only, alpha 1000, gamma 0.5: v = 0.5, 0.75, 0.875 and
     * w = 500, 1250, 2125 -> out of |w| < 2048 at step 2 */
    env e = env_make(6, 0, 5, HVP_PLAIN, 0);
    ck_assert_int_eq(revl_schedule_fill(e.s, 1000.0, 0.5), REVL_OK);
    e.q->const_grad = 1;
    e.q->bad_step = -2;
    e.q->bad_param = 3;
    e.q->bad_value = -1.0;
    double w0[6] = {0};
    ck_assert_int_eq(revl_trainer_train(e.t, w0, NULL), REVL_ERR_RANGE);
    ck_assert_str_eq(revl_trainer_last_error(e.t),
                     "weight left the fixed-point range (|w| < 2^11) at step 2, parameter 3 "
                     "(forward)");
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    env_usable(&e);
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------------ callbacks failing */

START_TEST(test_callback_fails_forward)
{
    const size_t T = 6;
    const int codes[] = {7, -1, INT_MIN};
    for (int mode = HVP_NONE; mode <= HVP_FUSED; mode++) {
        env e = env_make(5, 1, T, mode, 0);
        for (size_t c = 0; c < 3; c++)
            for (size_t step = 0; step < T; step += 2) {
                toy_reset(e.q);
                e.q->fail_grad_at = (long)step + (step == 4); /* 0, 2, 5 */
                e.q->fail_grad_rc = codes[c];
                e.q->fail_grad_when = WHEN_FORWARD;
                ck_assert_int_eq(env_train(&e), REVL_ERR_CALLBACK);
                char want[96];
                snprintf(want, sizeof want, "gradient callback returned %d at step %ld (forward)",
                         codes[c], e.q->fail_grad_at);
                ck_assert_str_eq(revl_trainer_last_error(e.t), want);
                ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
            }
        env_usable(&e);
        env_free(&e);
    }
}
END_TEST

START_TEST(test_callback_fails_reverse)
{
    const size_t T = 6;
    /* a Hessian-vector callback failing at each step of the walk back */
    env e = env_make(5, 1, T, HVP_PLAIN, 0);
    for (size_t step = 0; step < T; step++) {
        toy_reset(e.q);
        ck_assert_int_eq(env_train(&e), REVL_OK);
        e.q->fail_hvp_at = (long)step;
        double d_w0[5] = {-7, -7, -7, -7, -7};
        ck_assert_int_eq(env_hypergrad(&e, d_w0), REVL_ERR_CALLBACK);
        char want[96];
        snprintf(want, sizeof want, "Hessian-vector callback returned 9 at step %zu (reverse)", step);
        ck_assert_str_eq(revl_trainer_last_error(e.t), want);
        ck_assert_double_eq(d_w0[0], -7); /* outputs untouched */
        ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
        ck_assert_str_eq(revl_trainer_last_error(e.t),
                         "revl_trainer_hypergrad: no completed training; call revl_trainer_train "
                         "first");
    }
    env_usable(&e);
    env_free(&e);

    /* a gradient callback failing in the walk back: without an hvp (finite differences) and
     * with an hvp that does not give the gradient (one more gradient call per step) */
    for (int mode = HVP_NONE; mode <= HVP_PLAIN; mode++) {
        env f = env_make(5, 1, T, mode, 0);
        toy_reset(f.q);
        ck_assert_int_eq(env_train(&f), REVL_OK);
        f.q->fail_grad_at = 2;
        f.q->fail_grad_when = WHEN_REVERSE;
        ck_assert_int_eq(env_hypergrad(&f, NULL), REVL_ERR_CALLBACK);
        ck_assert_str_eq(revl_trainer_last_error(f.t),
                         "gradient callback returned 7 at step 2 (reverse)");
        env_usable(&f);
        env_free(&f);
    }
}
END_TEST

/* ------------------------------------------------------------------ call order */

START_TEST(test_call_order)
{
    env e = env_make(5, 0, 4, HVP_PLAIN, 0);
    const char *none = "revl_trainer_hypergrad: no completed training; call revl_trainer_train first";
    /* before any training */
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    ck_assert_str_eq(revl_trainer_last_error(e.t), none);
    /* twice */
    ck_assert_int_eq(env_train(&e), REVL_OK);
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_OK);
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    ck_assert_str_eq(revl_trainer_last_error(e.t),
                     "revl_trainer_hypergrad: already reversed; call revl_trainer_train first");
    double dfdw[5] = {0}, *kinds[REVL_HYPER_COUNT] = {0};
    ck_assert_int_eq(revl_trainer_hypergrad_kinds(e.t, dfdw, NULL, NULL, kinds, NULL),
                     REVL_ERR_STATE);
    ck_assert_str_eq(revl_trainer_last_error(e.t),
                     "revl_trainer_hypergrad_kinds: already reversed; call revl_trainer_train "
                     "first");
    /* after a failed train (bad argument, bad gradient, failing callback) */
    ck_assert_int_eq(env_train(&e), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(e.t, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    ck_assert_str_eq(revl_trainer_last_error(e.t), none);
    e.q->bad_step = 2;
    e.q->bad_value = NAN;
    ck_assert_int_eq(env_train(&e), REVL_ERR_RANGE);
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    ck_assert_str_eq(revl_trainer_last_error(e.t), none);
    /* after a failed hypergradient */
    toy_reset(e.q);
    ck_assert_int_eq(env_train(&e), REVL_OK);
    e.q->fail_hvp_at = 1;
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_CALLBACK);
    e.q->fail_hvp_at = -1;
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    ck_assert_str_eq(revl_trainer_last_error(e.t), none);
    env_usable(&e);
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------------ non-deterministic gradient */

START_TEST(test_nondeterministic_each_step)
{
    /* the gradient of the walk back differs from the forward one by 1e-9 at one step:
     * REVL_ERR_INEXACT naming the parameter where w or v came back different */
    const size_t T = 8, p = 6;
    for (int mode = HVP_NONE; mode <= HVP_FUSED; mode++) {
        env e = env_make(p, 0, T, mode, 0);
        for (size_t step = 0; step < T; step++) {
            toy_reset(e.q);
            ck_assert_int_eq(env_train(&e), REVL_OK);
            e.q->bad_step = (long)step;
            e.q->bad_param = step % p;
            e.q->bad_value = 1e-9;
            e.q->bad_add = 1;
            e.q->bad_when = WHEN_REVERSE;
            double d_w0[6] = {-7, -7, -7, -7, -7, -7};
            ck_assert_int_eq(env_hypergrad(&e, d_w0), REVL_ERR_INEXACT);
            const char *msg = revl_trainer_last_error(e.t);
            /* caught by the gradient fingerprint at the step where it happens */
            char where[128];
            snprintf(where, sizeof where, "the gradient at step %zu differs from the forward "
                     "pass's (fingerprint ", step);
            expect_msg(msg, where);
            expect_msg(msg, "the model is not deterministic");
            ck_assert_double_eq(d_w0[0], -7); /* no silent answer */
            ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
        }
        env_usable(&e);
        env_free(&e);
    }
}
END_TEST

START_TEST(test_nondeterministic_not_finite_in_reverse)
{
    /* NaN or Inf only in the walk back: the forward pass took the same step, so it is the
     * gradient that changed */
    const double bad[] = {NAN, INFINITY};
    const char *name[] = {"NaN", "infinite"};
    for (size_t c = 0; c < 2; c++) {
        env e = env_make(6, 0, 6, HVP_PLAIN, 0);
        ck_assert_int_eq(env_train(&e), REVL_OK);
        e.q->bad_step = 3;
        e.q->bad_param = 2;
        e.q->bad_value = bad[c];
        e.q->bad_when = WHEN_REVERSE;
        ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_INEXACT);
        (void)name;
        expect_msg(revl_trainer_last_error(e.t), "the gradient at step 3 differs from the "
                                                 "forward pass's");
        env_usable(&e);
        env_free(&e);
    }
}
END_TEST

START_TEST(test_nondeterministic_fused_gradient)
{
    /* hvp_gives_grad, but the gradient it gives is not bit-identical to grad's */
    env e = env_make(6, 0, 5, HVP_FUSED, 0);
    ck_assert_int_eq(env_train(&e), REVL_OK);
    e.q->fused_differs = 1;
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_INEXACT);
    expect_msg(revl_trainer_last_error(e.t), "the gradient at step 4 differs from the forward "
                                             "pass's");
    expect_msg(revl_trainer_last_error(e.t), "deterministic");
    env_usable(&e);
    env_free(&e);
}
END_TEST

START_TEST(test_nondeterministic_large_difference)
{
    /* A gradient that differs by a lot in the walk back drives the reconstructed v, then w,
     * out of the fixed-point range before the walk ends. Never a silent answer, and always
     * REVL_ERR_INEXACT, wherever the garbage first shows:
     *  - alpha 1: it reaches step 0 and the final check;
     *  - alpha 5: undoing w <- w + alpha v overflows at an earlier step; the forward pass took
     *    that step without trouble, so the message names the overflow and the cause. */
    const double alphas[] = {1.0, 5.0};
    const int status[] = {REVL_ERR_INEXACT, REVL_ERR_INEXACT};
    /* both caught by the gradient fingerprint at the step where the gradient changed, before
     * the garbage reaches any state (check_optim's corruption tests reach the later checks) */
    const char *says[] = {"the gradient at step 3 differs from the forward pass's",
                          "the gradient at step 3 differs from the forward pass's"};
    for (size_t c = 0; c < 2; c++) {
        env e = env_make(6, 0, 8, HVP_PLAIN, 0);
        ck_assert_int_eq(revl_schedule_fill(e.s, alphas[c], 0.5), REVL_OK);
        double w0[6] = {0};
        ck_assert_int_eq(revl_trainer_train(e.t, w0, NULL), REVL_OK);
        e.q->bad_step = 3;
        e.q->bad_param = 2;
        e.q->bad_value = 1000.0;
        e.q->bad_add = 1;
        e.q->bad_when = WHEN_REVERSE;
        double d_w0[6] = {-7, -7, -7, -7, -7, -7};
        ck_assert_int_eq(env_hypergrad(&e, d_w0), status[c]);
        expect_msg(revl_trainer_last_error(e.t), says[c]);
        ck_assert_double_eq(d_w0[2], -7);
        ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
        env_usable(&e);
        env_free(&e);
    }
}
END_TEST

START_TEST(test_hvp_not_finite)
{
    /* A Hessian-vector product with NaN in it would poison every hypergradient: the walk back
     * stops with REVL_ERR_RANGE naming the step and parameter, and writes no output. */
    env e = env_make(6, 0, 6, HVP_PLAIN, 0);
    ck_assert_int_eq(env_train(&e), REVL_OK);
    e.q->hv_bad_step = 3;
    e.q->hv_bad_value = NAN;
    double d_w0[6] = {-7, -7, -7, -7, -7, -7};
    ck_assert_int_eq(env_hypergrad(&e, d_w0), REVL_ERR_RANGE);
    expect_msg(revl_trainer_last_error(e.t), "Hessian-vector product is NaN at step 3, parameter 1 (reverse)");
    ck_assert_double_eq(d_w0[1], -7);
    ck_assert_int_eq(env_hypergrad(&e, NULL), REVL_ERR_STATE);
    e.q->hv_bad_step = -1;
    env_usable(&e);
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------------ options */

START_TEST(test_frac_bits)
{
    toy *q;
    revl_model *m = toy_model(4, 0, HVP_PLAIN, &q);
    size_t off[2] = {0, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off), REVL_OK);
    revl_trainer_options o;
    const unsigned bad[] = {0, 63, 64, 1000, UINT_MAX};
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 4;
    ho.objective = half_norm;
    ho.objective_user = &p;
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        revl_trainer_options_init(&o);
        o.frac_bits = bad[c];
        revl_trainer *t = (revl_trainer *)&o;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_ERR_INVALID);
        ck_assert_ptr_null(t);
        ho.frac_bits = bad[c];
        revl_hyperopt *h = (revl_hyperopt *)&o;
        ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, &ho), REVL_ERR_INVALID);
        ck_assert_ptr_null(h);
    }
    const unsigned good[] = {1, 62};
    for (size_t c = 0; c < 2; c++) {
        revl_trainer_options_init(&o);
        o.frac_bits = good[c];
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
        double w0[4] = {0, 0.5, 1, 1.5}, dfdw[4] = {1, 1, 1, 1};
        ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
        ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, NULL, NULL, NULL, NULL), REVL_OK);
        revl_trainer_free(t);
    }
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

static long fallback_calls;
static void *counting_alloc(size_t size, void *user)
{
    (void)user;
    fallback_calls++;
    return malloc(size);
}
static void counting_free(void *p, void *user)
{
    (void)user;
    free(p);
}

START_TEST(test_struct_size)
{
    /* a struct_size smaller than the library's struct: refused (REVL_ERR_INVALID, no handle) */
    toy *q;
    revl_model *good = toy_model(4, 0, HVP_PLAIN, &q);
    size_t off[2] = {0, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off), REVL_OK);
    revl_dataset *data = test_dataset(6, 3, 2, 11);
    size_t widths[2] = {3, 2}, p = 4;
    const size_t sizes[] = {0, 1, 8};
    for (size_t c = 0; c < 3; c++) {
        revl_model_def d;
        revl_model_def_init(&d);
        d.n_params = 4;
        d.grad = toy_grad;
        d.struct_size = sizes[c];
        revl_model *m = (revl_model *)&d;
        ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID);
        ck_assert_ptr_null(m);
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.struct_size = sizes[c];
        revl_trainer *t = (revl_trainer *)&d;
        ck_assert_int_eq(revl_trainer_create(&t, good, s, &o), REVL_ERR_INVALID);
        ck_assert_ptr_null(t);
        revl_mlp_options mo;
        revl_mlp_options_init(&mo);
        mo.struct_size = sizes[c];
        m = (revl_model *)&d;
        ck_assert_int_eq(revl_mlp_create(&m, 2, widths, data, &mo), REVL_ERR_INVALID);
        ck_assert_ptr_null(m);
        revl_hyperopt_options ho;
        revl_hyperopt_options_init(&ho);
        ho.objective = half_norm;
        ho.objective_user = &p;
        ho.struct_size = sizes[c];
        revl_hyperopt *h = (revl_hyperopt *)&d;
        ck_assert_int_eq(revl_hyperopt_create(&h, good, NULL, 3, &ho), REVL_ERR_INVALID);
        ck_assert_ptr_null(h);
    }
    /* the same one byte short */
    {
        revl_model_def d;
        revl_model_def_init(&d);
        d.n_params = 4;
        d.grad = toy_grad;
        d.struct_size = sizeof d - 1;
        revl_model *m = NULL;
        ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID);
        revl_trainer_options o;
        revl_trainer_options_init(&o);
        o.struct_size = sizeof o - 1;
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, good, s, &o), REVL_ERR_INVALID);
    }
    /* out-structs: the call is refused, the handle says why where it can */
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, good, s, NULL), REVL_OK);
    revl_trainer_stats st = {.struct_size = sizeof st - 1};
    ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_ERR_INVALID);
    /* larger than shipped is unknown too (docs/api-stability.md), and garbage */
    const size_t unknown[] = {sizeof st + 8, 4096, 0xdeadbeef, SIZE_MAX};
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
        st.struct_size = unknown[k];
        st.steps_done = 77;
        ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_ERR_INVALID);
        ck_assert_uint_eq(st.steps_done, 77); /* not written */
    }
    st.struct_size = sizeof st;
    ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_OK);
    /* the _init functions size the out-structs: garbage in, a struct the calls accept out */
    memset(&st, 0xa5, sizeof st);
    revl_trainer_stats_init(&st);
    ck_assert_uint_eq(st.struct_size, sizeof st);
    ck_assert(st.steps_done == 0 && st.buffer_bytes == 0 && st.peak_bytes == 0);
    ck_assert(st.buffer_bits == 0 && st.last_loss == 0);
    ck_assert_int_eq(revl_trainer_get_stats(t, &st), REVL_OK);
    revl_trainer_stats_init(NULL);
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    ho.objective = half_norm;
    ho.objective_user = &p;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, good, NULL, 3, &ho), REVL_OK);
    revl_hyperopt_report rep = {.struct_size = 8};
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_ERR_INVALID);
    char want[192];
    snprintf(want, sizeof want,
             "revl_hyperopt_report.struct_size is 8, not a size this library knows (%zu): set it "
             "to sizeof(revl_hyperopt_report) or call the struct's _init", sizeof rep);
    ck_assert_str_eq(revl_hyperopt_last_error(h), want);
    rep.struct_size = sizeof rep;
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    memset(&rep, 0xa5, sizeof rep);
    revl_hyperopt_report_init(&rep);
    ck_assert_uint_eq(rep.struct_size, sizeof rep);
    ck_assert(rep.iteration == 0 && rep.chaos == 0 && rep.train_loss == 0 && rep.seconds == 0);
    ck_assert_int_eq(revl_hyperopt_step(h, &rep), REVL_OK);
    ck_assert_uint_eq(rep.iteration, 1);
    revl_hyperopt_report_init(NULL);
    revl_hyperopt_free(h);

    /* an allocator with a short struct_size (or a missing hook) is not used: malloc/free are */
    revl_allocator a;
    revl_allocator_init(&a);
    a.alloc = counting_alloc;
    a.free = counting_free;
    a.struct_size = 1;
    fallback_calls = 0;
    revl_dataset *dd = NULL;
    ck_assert_int_eq(revl_dataset_create(&dd, &a), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(dd, 3, 2, 2, (double[]){1, 2, 3, 4, 5, 6},
                                      (int32_t[]){0, 1, 0}),
                     REVL_OK);
    revl_dataset_free(dd);
    a.struct_size = sizeof a;
    a.free = NULL;
    ck_assert_int_eq(revl_dataset_create(&dd, &a), REVL_OK);
    revl_dataset_free(dd);
    ck_assert_int_eq(fallback_calls, 0);
    a.free = counting_free;
    ck_assert_int_eq(revl_dataset_create(&dd, &a), REVL_OK);
    revl_dataset_free(dd);
    ck_assert_int_eq(fallback_calls, 1);

    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(good);
    revl_dataset_free(data);
}
END_TEST

/* ------------------------------------------------------------------ evaluate */

START_TEST(test_evaluate_bad)
{
    toy *q;
    revl_model *cb = toy_model(6, 0, HVP_PLAIN, &q);
    revl_dataset *data = test_dataset(6, 3, 2, 12), *wrong = test_dataset(6, 4, 2, 13), *empty = NULL;
    ck_assert_int_eq(revl_dataset_create(&empty, NULL), REVL_OK);
    double w[8] = {0}, loss = -1, acc = -1;
    ck_assert_int_eq(revl_model_evaluate(cb, data, w, &loss, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(cb),
                     "revl_model_evaluate: only built-in models can evaluate a data set");
    ck_assert_double_eq(loss, -1);
    revl_model *m = NULL;
    size_t widths[2] = {3, 2};
    ck_assert_int_eq(revl_mlp_create(&m, 2, widths, data, NULL), REVL_OK);
    ck_assert_int_eq(revl_model_evaluate(m, wrong, w, &loss, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m),
                     "revl_model_evaluate: the data set has 4 features, the model takes 3");
    ck_assert_int_eq(revl_model_evaluate(m, empty, w, &loss, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_evaluate: the data set is empty");
    ck_assert_int_eq(revl_model_evaluate(m, data, NULL, &loss, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_evaluate: NULL argument");
    ck_assert_int_eq(revl_model_evaluate(m, data, w, NULL, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_evaluate(m, data, w, &loss, NULL, &acc), REVL_OK);
    ck_assert_double_eq_tol(loss, log(2.0), 1e-15);
    revl_model_free(m);
    revl_model_free(cb);
    revl_dataset_free(data);
    revl_dataset_free(wrong);
    revl_dataset_free(empty);
}
END_TEST

/* ------------------------------------------------------------------ allocation failure */

START_TEST(test_nomem_trainer_messages)
{
    /* fail the k-th allocation of the trainer's allocator along train + hypergradient, and of
     * the model's (no hvp: the finite-difference workspace is allocated in the walk back) */
    const size_t p = 9000, T = 4; /* three blocks of 4096 */
    for (int whose = 0; whose < 2; whose++) {
        long k;
        int saw_error = 0;
        for (k = 0;; k++) {
            failing f = {.fail_at = -1};
            revl_allocator a = failing_allocator(&f);
            toy *q = calloc(1, sizeof *q);
            q->p = p;
            toy_reset(q);
            revl_model_def d;
            revl_model_def_init(&d);
            d.n_params = p;
            d.grad = toy_grad;
            d.user = q;
            d.user_free = toy_free;
            d.allocator = whose ? &a : NULL;
            revl_model *m = NULL;
            ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
            size_t off[3] = {0, p / 2, p};
            revl_schedule *s = NULL;
            ck_assert_int_eq(revl_schedule_create(&s, T, 2, off), REVL_OK);
            revl_trainer_options o;
            revl_trainer_options_init(&o);
            o.allocator = whose ? NULL : &a;
            revl_trainer *t = NULL;
            ck_assert_int_eq(revl_trainer_create(&t, m, s, &o), REVL_OK);
            double *w0 = calloc(p, sizeof *w0), *dfdw = malloc(p * sizeof *dfdw);
            for (size_t i = 0; i < p; i++)
                dfdw[i] = 1;
            f.calls = 0;
            f.fail_at = k;
            int rc = revl_trainer_train(t, w0, NULL);
            if (rc == REVL_OK)
                rc = revl_trainer_hypergrad(t, dfdw, NULL, NULL, NULL, NULL, NULL);
            int done = f.calls <= k;
            if (done) {
                ck_assert_int_eq(rc, REVL_OK);
            } else {
                const char *msg = revl_trainer_last_error(t);
                ck_assert_msg(rc == REVL_ERR_NOMEM, "k = %ld: %d %s", k, rc, msg);
                ck_assert_msg(strstr(msg, "no memory") != NULL, "k = %ld: '%s'", k, msg);
                ck_assert_msg(strstr(msg, "information buffer") != NULL ||
                                  strstr(msg, "finite-difference HVP (reverse)") != NULL,
                              "k = %ld: '%s'", k, msg);
                saw_error = 1;
                /* usable again with memory back */
                f.fail_at = -1;
                ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
                ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, NULL, NULL, NULL, NULL),
                                 REVL_OK);
            }
            revl_trainer_free(t);
            revl_schedule_free(s);
            revl_model_free(m);
            ck_assert_msg(f.live == 0, "k = %ld: %ld blocks leaked", k, f.live);
            free(w0);
            free(dfdw);
            if (done)
                break;
        }
        ck_assert(saw_error);
    }
}
END_TEST

START_TEST(test_nomem_hyperopt_messages)
{
    /* fail the k-th allocation of a meta-iteration (after creation): REVL_ERR_NOMEM with a
     * message naming the meta-iteration, values unchanged, the next step succeeds */
    long k;
    int saw_error = 0;
    for (k = 0;; k++) {
        failing f = {.fail_at = -1};
        revl_allocator a = failing_allocator(&f);
        toy *q;
        revl_model *m = toy_model(5000, 0, HVP_NONE, &q);
        revl_hyperopt_options ho;
        revl_hyperopt_options_init(&ho);
        size_t p = 5000;
        ho.objective = half_norm;
        ho.objective_user = &p;
        ho.allocator = &a;
        revl_hyperopt *h = NULL;
        ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, &ho), REVL_OK);
        f.calls = 0;
        f.fail_at = k;
        int rc = revl_hyperopt_step(h, NULL);
        int done = f.calls <= k;
        if (done) {
            ck_assert_int_eq(rc, REVL_OK);
        } else {
            const char *msg = revl_hyperopt_last_error(h);
            ck_assert_msg(rc == REVL_ERR_NOMEM, "k = %ld: %d %s", k, rc, msg);
            ck_assert_msg(strstr(msg, "at meta-iteration 0: no memory") != NULL, "k = %ld: '%s'",
                          k, msg);
            saw_error = 1;
            f.fail_at = -1;
            ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
        }
        revl_hyperopt_free(h);
        revl_model_free(m);
        ck_assert_msg(f.live == 0, "k = %ld: %ld blocks leaked", k, f.live);
        if (done)
            break;
    }
    ck_assert(saw_error);

    /* loading a hyperparameter file parses into a scratch copy first */
    failing f = {.fail_at = -1};
    revl_allocator a = failing_allocator(&f);
    toy *q;
    revl_model *m = toy_model(6, 0, HVP_PLAIN, &q);
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    size_t p = 6;
    ho.objective = half_norm;
    ho.objective_user = &p;
    ho.allocator = &a;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, 3, &ho), REVL_OK);
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/revl_check_errors_XXXXXX", dir);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(revl_hyperopt_save(h, 0, path), REVL_OK);
    f.calls = 0;
    f.fail_at = 0;
    ck_assert_int_eq(revl_hyperopt_load(h, path), REVL_ERR_NOMEM);
    char want[600];
    snprintf(want, sizeof want, "no memory to load %s", path);
    ck_assert_str_eq(revl_hyperopt_last_error(h), want);
    f.fail_at = -1;
    ck_assert_int_eq(revl_hyperopt_load(h, path), REVL_OK);
    unlink(path);
    revl_hyperopt_free(h);
    revl_model_free(m);
    ck_assert_int_eq(f.live, 0);
}
END_TEST

START_TEST(test_nomem_create)
{
    /* constructors: REVL_ERR_NOMEM for every failing allocation, *out = NULL, nothing live */
    revl_dataset *data = test_dataset(6, 3, 2, 14);
    size_t off[2] = {0, 4}, widths[2] = {3, 2};
    for (int which = 0; which < 5; which++) {
        long k;
        for (k = 0;; k++) {
            failing f = {.fail_at = k};
            revl_allocator a = failing_allocator(&f);
            toy *q = calloc(1, sizeof *q);
            q->p = 4;
            toy_reset(q);
            revl_model_def d;
            revl_model_def_init(&d);
            d.n_params = 4;
            d.grad = toy_grad;
            d.user = q;
            d.user_free = toy_free;
            d.allocator = which == 0 ? &a : NULL;
            revl_model *m = (revl_model *)&f, *mlp = (revl_model *)&f;
            revl_schedule *s = (revl_schedule *)&f, *s_ok = NULL;
            revl_trainer *t = (revl_trainer *)&f;
            revl_dataset *ds = (revl_dataset *)&f;
            int rc = revl_model_create(&m, &d);
            if (which == 0 && rc != REVL_OK) {
                free(q); /* not adopted by a model that was not made */
            } else if (which == 1) {
                rc = revl_schedule_create_with(&s, 3, 1, off, &a);
            } else if (which == 2) {
                ck_assert_int_eq(revl_schedule_create(&s_ok, 3, 1, off), REVL_OK);
                revl_trainer_options o;
                revl_trainer_options_init(&o);
                o.allocator = &a;
                rc = revl_trainer_create(&t, m, s_ok, &o);
            } else if (which == 3) {
                revl_mlp_options mo;
                revl_mlp_options_init(&mo);
                mo.allocator = &a;
                rc = revl_mlp_create(&mlp, 2, widths, data, &mo);
            } else if (which == 4) {
                rc = revl_dataset_create(&ds, &a);
            }
            if (rc != REVL_OK) {
                ck_assert_msg(rc == REVL_ERR_NOMEM, "which %d, k = %ld: %d", which, k, rc);
                ck_assert_ptr_null(which == 0 ? (void *)m : which == 1 ? (void *)s
                                   : which == 2 ? (void *)t : which == 3 ? (void *)mlp
                                                                         : (void *)ds);
            }
            if (which == 1 && rc == REVL_OK)
                revl_schedule_free(s);
            if (which == 2 && rc == REVL_OK)
                revl_trainer_free(t);
            if (which == 3 && rc == REVL_OK)
                revl_model_free(mlp);
            if (which == 4 && rc == REVL_OK)
                revl_dataset_free(ds);
            revl_schedule_free(s_ok);
            if (which != 0 || rc == REVL_OK)
                revl_model_free(m);
            ck_assert_msg(f.live == 0, "which %d, k = %ld: %ld live", which, k, f.live);
            if (f.calls <= k)
                break;
        }
        ck_assert(k > 0);
    }
    revl_dataset_free(data);

    /* a model's new group layout: the old one stays */
    failing f = {.fail_at = -1};
    revl_allocator a = failing_allocator(&f);
    toy *q = calloc(1, sizeof *q);
    q->p = 8;
    toy_reset(q);
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = 8;
    d.grad = toy_grad;
    d.user = q;
    d.user_free = toy_free;
    d.allocator = &a;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    f.calls = 0;
    f.fail_at = 0;
    size_t three[4] = {0, 2, 5, 8};
    ck_assert_int_eq(revl_model_set_groups(m, 3, three), REVL_ERR_NOMEM);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_set_groups: no memory for 3 groups");
    ck_assert_uint_eq(revl_model_n_groups(m), 1);
    f.fail_at = -1;
    ck_assert_int_eq(revl_model_set_groups(m, 3, three), REVL_OK);
    ck_assert_uint_eq(revl_model_n_groups(m), 3);
    revl_model_free(m);
    ck_assert_int_eq(f.live, 0);
}
END_TEST

static Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("null");
    tcase_add_test(tc, test_null_create);
    tcase_add_test(tc, test_null_handles);
    tcase_add_test(tc, test_null_train_args);
    tcase_add_test(tc, test_null_model_calls);
    tcase_add_test(tc, test_null_dataset_and_hyperopt_calls);
    tcase_add_test(tc, test_null_output_arrays);
    suite_add_tcase(s, tc);
    tc = tcase_create("sizes");
    tcase_add_test(tc, test_zero_sizes_create);
    tcase_add_test(tc, test_zero_sizes_dataset);
    tcase_add_test(tc, test_schedule_index_out_of_range);
    tcase_add_test(tc, test_schedule_not_matching_model);
    tcase_add_test(tc, test_mlp_shape_mismatch);
    tcase_add_test(tc, test_offsets);
    suite_add_tcase(s, tc);
    tc = tcase_create("values");
    tcase_add_test(tc, test_gamma_outside);
    tcase_add_test(tc, test_alpha_not_finite);
    tcase_add_test(tc, test_w0_range);
    tcase_add_test(tc, test_meta_and_dfdw_not_finite);
    tcase_add_test(tc, test_data_not_finite_and_labels);
    tcase_add_test(tc, test_mlp_training_data_changed);
    suite_add_tcase(s, tc);
    tc = tcase_create("training");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gradient_not_finite_every_step);
    tcase_add_test(tc, test_gradient_out_of_range_every_step);
    tcase_add_test(tc, test_weights_leave_range);
    tcase_add_test(tc, test_callback_fails_forward);
    tcase_add_test(tc, test_callback_fails_reverse);
    tcase_add_test(tc, test_call_order);
    tcase_add_test(tc, test_nondeterministic_each_step);
    tcase_add_test(tc, test_nondeterministic_not_finite_in_reverse);
    tcase_add_test(tc, test_nondeterministic_fused_gradient);
    tcase_add_test(tc, test_nondeterministic_large_difference);
    tcase_add_test(tc, test_hvp_not_finite);
    suite_add_tcase(s, tc);
    tc = tcase_create("options");
    tcase_add_test(tc, test_frac_bits);
    tcase_add_test(tc, test_struct_size);
    tcase_add_test(tc, test_evaluate_bad);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_nomem_trainer_messages);
    tcase_add_test(tc, test_nomem_hyperopt_messages);
    tcase_add_test(tc, test_nomem_create);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(errors_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
