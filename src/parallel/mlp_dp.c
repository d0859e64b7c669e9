/* mlp_dp.c: the built-in MLP as a data-parallel model: one micro-batch's share of the
 * gradient and Hessian-vector product, behind the data-parallel wrapper (parallel/dp.c). It
 * sits above both models/ (the MLP's passes) and core/ (the trainer the wrapper feeds). */
#include "parallel/dp.h"
#include "models/mlp.h"

#include <string.h>

/* Micro-batch `micro` of n_micro of step's minibatch: its share of the gradient (cross-entropy
 * rows [micro B / n_micro, (micro+1) B / n_micro) scaled by 1/B, the penalty in micro-batch 0),
 * of the loss, and when v != NULL of H v and hv_meta (hv_meta may be NULL). */
static void rv_mlp_micro(rv_mlp *m, size_t step, size_t micro, size_t n_micro, const double *w,
                  const double *meta, const double *v, double *grad, double *loss, double *hv_w,
                  double *hv_meta)
{
    const double *x;
    const int32_t *y;
    rv_mlp_batch(m, step, &x, &y);
    size_t lo = micro * m->batch / n_micro, hi = (micro + 1) * m->batch / n_micro;
    size_t dim = m->widths[0], rows = hi - lo;
    double scale = 1.0 / (double)m->batch; /* of the whole minibatch: the shares add up */
    x += lo * dim;
    y += lo;
    double ce = rv_mlp_forward(m, w, x, y, rows, &m->work);
    rv_mlp_backward(m, w, x, y, rows, scale, 0, &m->work, grad);
    if (v)
        rv_mlp_r_pass(m, w, v, x, rows, scale, &m->work, hv_w);
    double pen = 0;
    if (micro == 0) {
        rv_mlp_penalty_prepare(m, meta);
        pen = rv_mlp_penalty_grad(m, w, grad, loss != NULL);
        if (v)
            rv_mlp_penalty_hvp(m, w, v, hv_w, hv_meta);
    } else if (v && hv_meta) {
        memset(hv_meta, 0, m->n_meta * sizeof *hv_meta);
    }
    if (loss)
        *loss = ce * scale + pen;
}

typedef struct micro_user {
    rv_mlp *mlp;
    size_t n_micro;
    revl_allocator alloc; /* its own copy: it may outlive the MLP on a failed create */
} micro_user;

static int micro_grad(size_t step, size_t micro, const double *w, const double *meta,
                      double *grad, double *loss, void *user)
{
    micro_user *u = user;
    if (rv_mlp_check_train(u->mlp, step))
        return 1;
    rv_mlp_micro(u->mlp, step, micro, u->n_micro, w, meta, NULL, grad, loss, NULL, NULL);
    return 0;
}

static int micro_hvp(size_t step, size_t micro, const double *w, const double *meta,
                     const double *v, double *grad, double *hv_w, double *hv_meta, void *user)
{
    micro_user *u = user;
    if (rv_mlp_check_train(u->mlp, step))
        return 1;
    rv_mlp_micro(u->mlp, step, micro, u->n_micro, w, meta, v, grad ? grad : u->mlp->scratch, NULL,
                 hv_w, hv_meta);
    return 0;
}

static void micro_free(void *user)
{
    micro_user *u = user;
    revl_allocator a = u->alloc;
    rv_free(&a, u);
}

static int mlp_dp_create(revl_model **out, size_t n_widths, const size_t *widths,
                       const revl_dataset *train, const revl_mlp_options *opts, size_t n_micro,
                       unsigned grad_frac_bits, const revl_comm *comm);

int revl_mlp_dp_create(revl_model **out, size_t n_widths, const size_t *widths,
                       const revl_dataset *train, const revl_mlp_options *opts, size_t n_micro,
                       unsigned grad_frac_bits, const revl_comm *comm)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(mlp_dp_create(out, n_widths, widths, train, opts, n_micro, grad_frac_bits, comm), "revl_mlp_dp_create");
}

static int mlp_dp_create(revl_model **out, size_t n_widths, const size_t *widths,
                       const revl_dataset *train, const revl_mlp_options *opts, size_t n_micro,
                       unsigned grad_frac_bits, const revl_comm *comm)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    revl_model *inner;
    int rc = revl_mlp_create(&inner, n_widths, widths, train, opts);
    if (rc)
        return rc;
    rv_mlp *mlp = inner->def.user;
    if (n_micro == 0 || n_micro > mlp->batch) {
        revl_model_free(inner);
        return REVL_ERR_INVALID;
    }
    micro_user *u = rv_calloc(&mlp->alloc, 1, sizeof *u);
    if (!u) {
        revl_model_free(inner);
        return REVL_ERR_NOMEM;
    }
    u->mlp = mlp;
    u->n_micro = n_micro;
    u->alloc = mlp->alloc;
    revl_dp_def def;
    revl_dp_def_init(&def);
    def.n_params = inner->def.n_params;
    def.n_meta = inner->def.n_meta;
    def.n_micro = n_micro;
    def.grad = micro_grad;
    def.hvp = micro_hvp;
    def.hvp_gives_grad = 1;
    if (grad_frac_bits)
        def.grad_frac_bits = grad_frac_bits;
    def.comm = comm;
    def.user = u;
    def.user_free = micro_free;
    def.allocator = &mlp->alloc;
    rc = rv_dp_model_create(out, &def, inner);
    if (rc)
        micro_free(u); /* inner went with the failed call; u is the caller's (ours) */
    return rc;
}
