/* mlp.c: the built-in multilayer perceptron (and, with two widths, multinomial logistic
 * regression) as a model handle: argument checks, the preallocated per-step workspace, and the
 * gradient, fused gradient + Hessian-vector, fused gradient + H (a + b g) and fused gradient,
 * direction, Hessian-vector callbacks the trainer calls every step. */
#include "models/mlp.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* BLAS takes int dimensions: widths and the batch must fit. */
enum { MLP_MAX_BLAS_DIM = INT_MAX };

void revl_mlp_options_init(revl_mlp_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->activation = REVL_ACT_TANH;
    o->penalty = REVL_PENALTY_NONE;
    o->batch_size = 200;
    o->seed = 0;
    o->threads = 0;
    o->allocator = NULL;
}

static void mlp_free(void *user)
{
    rv_mlp *m = user;
    if (!m)
        return;
    revl_allocator a = m->alloc;
    rv_mlp_work_destroy(&m->work, &a);
    rv_free(&a, m->widths);
    rv_free(&a, m->offsets);
    rv_free(&a, m->perm);
    rv_free(&a, m->xb);
    rv_free(&a, m->yb);
    rv_free(&a, m->meta_seen);
    rv_free(&a, m->lambda);
    rv_free(&a, m->scratch);
    rv_free(&a, m);
}

/* The data set must not change under the model (revl.h); a change of size would make the
 * gathered batch read out of bounds, and a label at or past the output width would index past
 * the softmax rows, so both are caught here at the cost of three getters (the data set keeps
 * every label below its n_classes). */
int rv_mlp_train_changed(const rv_mlp *m)
{
    return revl_dataset_n(m->train) != m->n_train || revl_dataset_dim(m->train) != m->widths[0] ||
           revl_dataset_n_classes(m->train) > m->widths[m->n_layers];
}

int rv_mlp_check_train(rv_mlp *m, size_t step)
{
    m->note[0] = '\0';
    if (!rv_mlp_train_changed(m))
        return 0;
    size_t n = revl_dataset_n(m->train), dim = revl_dataset_dim(m->train);
    if (n != m->n_train || dim != m->widths[0])
        rv_fail(m->note, REVL_ERR_STATE,
                "the MLP's training set changed under it at step %zu: %zu examples of %zu "
                "features, %zu of %zu at revl_mlp_create",
                step, n, dim, m->n_train, m->widths[0]);
    else
        rv_fail(m->note, REVL_ERR_STATE,
                "the MLP's training set changed under it at step %zu: %zu classes, more than "
                "its %zu outputs",
                step, revl_dataset_n_classes(m->train), m->widths[m->n_layers]);
    return 1;
}

/* The one path to the training gradient, shared by both callbacks so that the fused call's
 * gradient is bit-identical to the plain one. Returns the examples it used in *xb. */
static void gradient(rv_mlp *m, size_t step, const double *w, const double *meta, double *grad,
                     double *loss, const double **xb)
{
    const double *x;
    const int32_t *y;
    rv_mlp_batch(m, step, &x, &y);
    double scale = 1.0 / (double)m->batch;
    double ce = rv_mlp_forward(m, w, x, y, m->batch, &m->work);
    m->n_passes++;
    rv_mlp_backward(m, w, x, y, m->batch, scale, 0, &m->work, grad);
    rv_mlp_penalty_prepare(m, meta);
    double pen = rv_mlp_penalty_grad(m, w, grad, loss != NULL);
    if (loss)
        *loss = ce * scale + pen;
    *xb = x;
}

static int mlp_grad(size_t step, const double *w, const double *meta, double *grad, double *loss,
                    void *user)
{
    rv_mlp *m = user;
    if (rv_mlp_check_train(m, step))
        return 1;
    const double *x;
    gradient(m, step, w, meta, grad, loss, &x);
    return 0;
}

/* H v and the mixed product along v, from the activations and backward dz that gradient() just
 * left in m->work for minibatch x: the tail of every fused call below. */
static int hv_after_gradient(rv_mlp *m, const double *w, const double *v, const double *x,
                             double *hv_w, double *hv_meta)
{
    rv_mlp_r_pass(m, w, v, x, m->batch, 1.0 / (double)m->batch, &m->work, hv_w);
    rv_mlp_penalty_hvp(m, w, v, hv_w, hv_meta);
    return 0;
}

static int mlp_hvp(size_t step, const double *w, const double *meta, const double *v,
                   double *grad, double *hv_w, double *hv_meta, void *user)
{
    rv_mlp *m = user;
    if (rv_mlp_check_train(m, step))
        return 1;
    const double *x;
    /* the R-pass needs the forward activations and the backward dz of this very point */
    gradient(m, step, w, meta, grad ? grad : m->scratch, NULL, &x);
    return hv_after_gradient(m, w, v, x, hv_w, hv_meta);
}

/* The gradient, then H v along v = a + b g from the same forward activations and backward dz:
 * one forward pass where grad followed by hvp would make two. v uses the library's formula
 * (rv_affine_dir), so the bits equal the library's gradient-then-hvp fallback. */
static int mlp_hvp_affine(size_t step, const double *w, const double *meta, const double *a,
                          const double *b, double *grad, double *hv_w, double *hv_meta,
                          void *user)
{
    rv_mlp *m = user;
    if (rv_mlp_check_train(m, step))
        return 1;
    const double *x;
    gradient(m, step, w, meta, grad, NULL, &x);
    double *v = m->scratch;
    rv_affine_dir(v, a, b, grad, m->n_params);
    return hv_after_gradient(m, w, v, x, hv_w, hv_meta);
}

/* The gradient, the trainer's direction v from it (dir, which writes v), then H v from the same
 * forward activations and backward dz (rv_model_builtin.hvp_dir): the bits of a gradient call
 * then an hvp call, in one forward pass. The R-pass reads v only after dir returned. */
static int mlp_hvp_dir(void *user, size_t step, const double *w, const double *meta,
                       rv_dir_fn dir, void *ctx, const double *v, double *grad, double *hv_w,
                       double *hv_meta)
{
    rv_mlp *m = user;
    if (rv_mlp_check_train(m, step))
        return 1;
    const double *x;
    gradient(m, step, w, meta, grad, NULL, &x);
    int rc = dir(ctx, grad);
    if (rc)
        return rc;
    return hv_after_gradient(m, w, v, x, hv_w, hv_meta);
}

/* Every check that needs no memory, so that a bad call allocates nothing. */
static int check_args(size_t n_widths, const size_t *widths, const revl_dataset *train,
                      const revl_mlp_options *o, size_t *n_params)
{
    if (n_widths < 2 || !widths || !train)
        return REVL_ERR_INVALID;
    if (o->activation != REVL_ACT_TANH && o->activation != REVL_ACT_RELU &&
        o->activation != REVL_ACT_LOGISTIC)
        return REVL_ERR_INVALID;
    if (o->penalty != REVL_PENALTY_NONE && o->penalty != REVL_PENALTY_PER_LAYER &&
        o->penalty != REVL_PENALTY_PER_WEIGHT)
        return REVL_ERR_INVALID;
    if (o->threads < 0)
        return REVL_ERR_INVALID;
    int ok = 1;
    size_t p = 0;
    for (size_t k = 0; k < n_widths; k++)
        if (widths[k] == 0 || widths[k] > MLP_MAX_BLAS_DIM)
            return REVL_ERR_INVALID;
    for (size_t l = 0; l + 1 < n_widths; l++) {
        size_t layer = rv_mul_size(widths[l] + 1, widths[l + 1], &ok);
        if (!ok || __builtin_add_overflow(p, layer, &p))
            return REVL_ERR_INVALID;
    }
    size_t n = revl_dataset_n(train), out_width = widths[n_widths - 1];
    const int32_t *labels = revl_dataset_labels(train);
    if (n == 0 || !labels || !revl_dataset_x(train) || revl_dataset_dim(train) != widths[0] ||
        revl_dataset_n_classes(train) > out_width)
        return REVL_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= out_width)
            return REVL_ERR_INVALID;
    size_t batch = o->batch_size == 0 || o->batch_size >= n ? n : o->batch_size;
    if (batch > MLP_MAX_BLAS_DIM)
        return REVL_ERR_INVALID;
    *n_params = p;
    return REVL_OK;
}

static int mlp_create(revl_model **out, size_t n_widths, const size_t *widths,
                    const revl_dataset *train, const revl_mlp_options *opts);

int revl_mlp_create(revl_model **out, size_t n_widths, const size_t *widths,
                    const revl_dataset *train, const revl_mlp_options *opts)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(mlp_create(out, n_widths, widths, train, opts), "revl_mlp_create");
}

static int mlp_create(revl_model **out, size_t n_widths, const size_t *widths,
                    const revl_dataset *train, const revl_mlp_options *opts)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    if (opts) {
        if (rv_struct_size_check(rv_create_err(), RV_STRUCT_MLP_OPTIONS, opts->struct_size))
            return REVL_ERR_INVALID;
        o = *opts;
    }
    size_t n_params = 0;
    int rc = check_args(n_widths, widths, train, &o, &n_params);
    if (rc)
        return rc;

    revl_allocator a;
    rv_allocator_copy(&a, o.allocator);
    rv_mlp *m = rv_calloc(&a, 1, sizeof *m);
    if (!m)
        return REVL_ERR_NOMEM;
    m->alloc = a;
    m->train = train;
    m->n_layers = n_widths - 1;
    m->n_params = n_params;
    m->n_meta = o.penalty == REVL_PENALTY_PER_LAYER    ? m->n_layers
                : o.penalty == REVL_PENALTY_PER_WEIGHT ? n_params
                                                       : 0;
    m->act = o.activation;
    m->penalty = o.penalty;
    m->seed = o.seed;
    m->n_train = revl_dataset_n(train);
    m->batch = o.batch_size == 0 || o.batch_size >= m->n_train ? m->n_train : o.batch_size;
    m->n_batches = m->n_train / m->batch;
    size_t L = m->n_layers;
    int full = m->batch == m->n_train;
    m->widths = rv_calloc(&a, n_widths, sizeof *m->widths);
    m->offsets = rv_calloc(&a, 2 * L + 1, sizeof *m->offsets);
    /* full batch reads the data set in place: no permutation, no gathered copy */
    m->perm = full ? NULL : rv_calloc(&a, m->n_train, sizeof *m->perm);
    m->xb = full ? NULL : rv_calloc(&a, m->batch, widths[0] * sizeof *m->xb);
    m->yb = full ? NULL : rv_calloc(&a, m->batch, sizeof *m->yb);
    m->meta_seen = m->n_meta ? rv_calloc(&a, m->n_meta, sizeof *m->meta_seen) : NULL;
    m->lambda = m->n_meta ? rv_calloc(&a, m->n_meta, sizeof *m->lambda) : NULL;
    m->scratch = rv_calloc(&a, n_params, sizeof *m->scratch);
    if (!m->widths || !m->offsets || (!full && (!m->perm || !m->xb || !m->yb)) ||
        (m->n_meta && (!m->meta_seen || !m->lambda)) || !m->scratch) {
        mlp_free(m);
        return REVL_ERR_NOMEM;
    }
    memcpy(m->widths, widths, n_widths * sizeof *widths);
    for (size_t l = 0; l < L; l++) {
        m->offsets[2 * l + 1] = m->offsets[2 * l] + widths[l] * widths[l + 1];
        m->offsets[2 * l + 2] = m->offsets[2 * l + 1] + widths[l + 1];
    }
    rc = rv_mlp_work_init(&m->work, &a, L, m->widths, m->batch, 1);
    if (rc) {
        mlp_free(m);
        return rc;
    }

    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = n_params;
    def.n_meta = m->n_meta;
    def.grad = mlp_grad;
    def.hvp = mlp_hvp;
    def.hvp_gives_grad = 1;
    def.user = m;
    def.user_free = mlp_free;
    def.allocator = &a;
    size_t k = revl_dataset_n_classes(train);
    rv_model_builtin builtin = {.evaluate = rv_mlp_evaluate,
                                .meta_start = REVL_MLP_LOG_L2_START,
                                .chance_loss = k > 1 ? log((double)k) : 0,
                                .n_layers = L,
                                .hvp_dir = mlp_hvp_dir};
    rc = rv_model_create(out, &def, 2 * L, m->offsets, &builtin);
    if (rc) {
        mlp_free(m); /* the handle was not made, so it will not call user_free */
        return rc;
    }
    (*out)->fail_note = m->note;
    return revl_model_set_hvp_affine(*out, mlp_hvp_affine);
}
