/* model.c: the model handle: the caller's loss as callbacks (or a built-in model behind the
 * same callbacks), its parameter groups, and the finite-difference Hessian-vector fallback for
 * models that give only a gradient. */
#include "core/model.h"

#include <math.h>
#include <string.h>

void revl_model_def_init(revl_model_def *def)
{
    if (!def)
        return;
    memset(def, 0, sizeof *def);
    def->struct_size = sizeof *def;
}

int rv_check_offsets(char *err, size_t n_groups, const size_t *offsets, size_t n_params)
{
    if (n_groups == 0)
        return rv_fail(err, REVL_ERR_INVALID, "n_groups is 0");
    if (!offsets)
        return rv_fail(err, REVL_ERR_INVALID, "offsets is NULL");
    if (offsets[0] != 0)
        return rv_fail(err, REVL_ERR_INVALID, "offsets[0] is %zu, must be 0", offsets[0]);
    for (size_t g = 0; g < n_groups; g++)
        if (offsets[g + 1] <= offsets[g])
            return rv_fail(err, REVL_ERR_INVALID,
                           "offsets not strictly increasing: offsets[%zu] = %zu <= offsets[%zu] = %zu",
                           g + 1, offsets[g + 1], g, offsets[g]);
    if (n_params && offsets[n_groups] != n_params)
        return rv_fail(err, REVL_ERR_INVALID, "offsets[%zu] = %zu, must equal n_params = %zu",
                       n_groups, offsets[n_groups], n_params);
    return REVL_OK;
}

int rv_model_callback_failed(revl_model *m, const char *what, int rc, size_t step)
{
    /* a built-in model's own fault (the data-parallel wrapper's vote, the MLP's data check) is
     * told as it is: no callback of the caller's returned anything */
    if (m->fail_note && m->fail_note[0])
        return rv_fail(m->err, REVL_ERR_CALLBACK, "%s", m->fail_note);
    return rv_fail(m->err, REVL_ERR_CALLBACK, "%s returned %d at step %zu", what, rc, step);
}

int rv_model_create(revl_model **out, const revl_model_def *def, size_t n_groups,
                    const size_t *offsets, const rv_model_builtin *builtin)
{
    if (!out)
        return REVL_ERR_INVALID;
    *out = NULL;
    if (!def || rv_struct_size_check(rv_create_err(), RV_STRUCT_MODEL_DEF, def->struct_size) ||
        !def->grad || def->n_params == 0)
        return REVL_ERR_INVALID;
    revl_allocator alloc;
    rv_allocator_copy(&alloc, def->allocator);
    size_t one_group[2] = {0, def->n_params};
    if (!offsets) {
        n_groups = 1;
        offsets = one_group;
    }
    if (rv_check_offsets(NULL, n_groups, offsets, def->n_params) != REVL_OK)
        return REVL_ERR_INVALID;
    /* the largest array sized by the model is the finite-difference workspace of
     * 3*n_params + n_meta doubles: refuse sizes for which it cannot even be counted */
    size_t fd_len;
    if (__builtin_mul_overflow(def->n_params, 3, &fd_len) ||
        __builtin_add_overflow(fd_len, def->n_meta, &fd_len) ||
        __builtin_mul_overflow(fd_len, sizeof(double), &fd_len))
        return REVL_ERR_INVALID;
    revl_model *m = rv_calloc(&alloc, 1, sizeof *m);
    if (!m)
        return REVL_ERR_NOMEM;
    m->offsets = rv_calloc(&alloc, n_groups + 1, sizeof *m->offsets);
    if (!m->offsets) {
        rv_free(&alloc, m);
        return REVL_ERR_NOMEM;
    }
    memcpy(m->offsets, offsets, (n_groups + 1) * sizeof *offsets);
    m->n_groups = n_groups;
    m->def = *def;
    m->def.allocator = NULL;
    m->alloc = alloc;
    if (builtin)
        m->builtin = *builtin;
    *out = m;
    return REVL_OK;
}

int revl_model_create(revl_model **out, const revl_model_def *def)
{
    rv_create_err()[0] = '\0';
    int rc = rv_model_create(out, def, 0, NULL, NULL);
    if (rc == REVL_OK)
        (*out)->from_callbacks = 1;
    return rv_create_end(rc, "revl_model_create");
}

void revl_model_free(revl_model *m)
{
    if (!m)
        return;
    if (m->def.user_free)
        m->def.user_free(m->def.user);
    revl_allocator a = m->alloc;
    rv_free(&a, m->fd_work);
    rv_free(&a, m->affine_work);
    rv_free(&a, m->hv_meta_scratch);
    rv_free(&a, m->offsets);
    rv_free(&a, m);
}

size_t revl_model_n_params(const revl_model *m) { return m ? m->def.n_params : 0; }
size_t revl_model_n_meta(const revl_model *m) { return m ? m->def.n_meta : 0; }
size_t revl_model_n_groups(const revl_model *m) { return m ? m->n_groups : 0; }
const char *revl_model_last_error(const revl_model *m) { return m ? m->err : "model is NULL"; }

int revl_model_group_offsets(const revl_model *m, size_t *offsets)
{
    if (!m || !offsets)
        return REVL_ERR_INVALID;
    memcpy(offsets, m->offsets, (m->n_groups + 1) * sizeof *offsets);
    return REVL_OK;
}

int revl_model_set_groups(revl_model *m, size_t n_groups, const size_t *offsets)
{
    if (!m)
        return REVL_ERR_INVALID;
    int rc = rv_check_offsets(m->err, n_groups, offsets, m->def.n_params);
    if (rc)
        return rc;
    size_t *copy = rv_calloc(&m->alloc, n_groups + 1, sizeof *copy);
    if (!copy)
        return rv_fail(m->err, REVL_ERR_NOMEM, "revl_model_set_groups: no memory for %zu groups",
                       n_groups);
    memcpy(copy, offsets, (n_groups + 1) * sizeof *copy);
    rv_free(&m->alloc, m->offsets);
    m->offsets = copy;
    m->n_groups = n_groups;
    rv_clear(m->err);
    return REVL_OK;
}

int revl_model_grad(revl_model *m, size_t step, const double *w, const double *meta,
                    double *grad, double *loss)
{
    if (!m)
        return REVL_ERR_INVALID;
    if (!w || !grad || (m->def.n_meta && !meta))
        return rv_fail(m->err, REVL_ERR_INVALID, "revl_model_grad: w, grad or meta is NULL");
    int rc = m->def.grad(step, w, meta, grad, loss, m->def.user);
    if (rc)
        return rv_model_callback_failed(m, "gradient callback", rc, step);
    rv_clear(m->err); /* an earlier failure's message no longer applies */
    return REVL_OK;
}

/* Central differences along v for H v, and along each meta coordinate for the mixed term.
 * The step is scaled to the size of w and v so that the truncation and rounding errors are
 * balanced for losses whose third derivatives are of order one. */
static int fd_hvp(revl_model *m, size_t step, const double *w, const double *meta,
                  const double *v, double *hv_w, double *hv_meta)
{
    size_t p = m->def.n_params, nm = m->def.n_meta;
    if (!m->fd_work) {
        m->fd_work = rv_calloc(&m->alloc, 3 * p + nm, sizeof(double));
        if (!m->fd_work)
            return rv_fail(m->err, REVL_ERR_NOMEM, "no memory for the finite-difference HVP");
    }
    double *wp = m->fd_work, *gp = wp + p, *gm = gp + p, *mp = gm + p;
    double wmax = 0, vmax = 0;
    for (size_t i = 0; i < p; i++) {
        wmax = fmax(wmax, fabs(w[i]));
        vmax = fmax(vmax, fabs(v[i]));
    }
    if (vmax == 0) {
        memset(hv_w, 0, p * sizeof *hv_w);
        if (hv_meta)
            memset(hv_meta, 0, nm * sizeof *hv_meta);
        return REVL_OK;
    }
    double h = 1e-5 * fmax(1.0, wmax) / vmax;
    int rc;
    for (size_t i = 0; i < p; i++)
        wp[i] = w[i] + h * v[i];
    if ((rc = revl_model_grad(m, step, wp, meta, gp, NULL)))
        return rc;
    for (size_t i = 0; i < p; i++)
        wp[i] = w[i] - h * v[i];
    if ((rc = revl_model_grad(m, step, wp, meta, gm, NULL)))
        return rc;
    for (size_t i = 0; i < p; i++)
        hv_w[i] = (gp[i] - gm[i]) / (2 * h);
    if (!hv_meta || nm == 0)
        return REVL_OK;
    memcpy(mp, meta, nm * sizeof *mp);
    for (size_t j = 0; j < nm; j++) {
        double hj = 1e-5 * fmax(1.0, fabs(meta[j]));
        double dot_p = 0, dot_m = 0;
        mp[j] = meta[j] + hj;
        if ((rc = revl_model_grad(m, step, w, mp, gp, NULL)))
            return rc;
        mp[j] = meta[j] - hj;
        if ((rc = revl_model_grad(m, step, w, mp, gm, NULL)))
            return rc;
        mp[j] = meta[j];
        for (size_t i = 0; i < p; i++) {
            dot_p += gp[i] * v[i];
            dot_m += gm[i] * v[i];
        }
        hv_meta[j] = (dot_p - dot_m) / (2 * hj);
    }
    return REVL_OK;
}

int rv_model_hvp_grad(revl_model *m, size_t step, const double *w, const double *meta,
                      const double *v, double *grad, double *hv_w, double *hv_meta)
{
    if (m->def.hvp) {
        int fused = grad && m->def.hvp_gives_grad;
        if (grad && !fused) {
            int rc = revl_model_grad(m, step, w, meta, grad, NULL);
            if (rc)
                return rc;
        }
        int rc = m->def.hvp(step, w, meta, v, fused ? grad : NULL, hv_w,
                            m->def.n_meta ? hv_meta : NULL, m->def.user);
        if (rc)
            return rv_model_callback_failed(m, "Hessian-vector callback", rc, step);
        return REVL_OK;
    }
    if (grad) {
        int rc = revl_model_grad(m, step, w, meta, grad, NULL);
        if (rc)
            return rc;
    }
    return fd_hvp(m, step, w, meta, v, hv_w, hv_meta);
}

int rv_model_hvp_affine(revl_model *m, size_t step, const double *w, const double *meta,
                        const double *a, const double *b, double *grad, double *hv_w,
                        double *hv_meta)
{
    if (m->hvp_affine) {
        int rc = m->hvp_affine(step, w, meta, a, b, grad, hv_w, m->def.n_meta ? hv_meta : NULL,
                               m->def.user);
        if (rc)
            return rv_model_callback_failed(m, "fused gradient and Hessian-vector callback", rc,
                                            step);
        return REVL_OK;
    }
    size_t p = m->def.n_params;
    if (!m->affine_work && !(m->affine_work = rv_calloc(&m->alloc, p, sizeof(double))))
        return rv_fail(m->err, REVL_ERR_NOMEM, "no memory for the Hessian direction at step %zu",
                       step);
    int rc = revl_model_grad(m, step, w, meta, grad, NULL);
    if (rc)
        return rc;
    rv_affine_dir(m->affine_work, a, b, grad, p);
    return rv_model_hvp_grad(m, step, w, meta, m->affine_work, NULL, hv_w, hv_meta);
}

/* The direction as a registered revl_hvp_dir_fn calls it, from the gradient array the library
 * reads (a callback may hand over its own copy); the calls are counted, and any number but one
 * fails the step after the callback returns. */
typedef struct user_dir {
    rv_dir_fn dir;
    void *ctx;
    double *grad;
    size_t n;
    int calls, null_grad;
} user_dir;

static int user_dir_call(void *ctx, const double *grad)
{
    user_dir *u = ctx;
    u->calls++;
    if (!grad) { /* nothing to read: refused, and reported after the callback returns */
        u->null_grad = 1;
        return REVL_ERR_CALLBACK;
    }
    if (grad != u->grad)
        memmove(u->grad, grad, u->n * sizeof *grad);
    return u->dir(u->ctx, u->grad);
}

static int user_hvp_dir(revl_model *m, size_t step, const double *w, const double *meta,
                        rv_dir_fn dir, void *ctx, const double *v, double *grad, double *hv_w,
                        double *hv_meta)
{
    user_dir u = {dir, ctx, grad, m->def.n_params, 0, 0};
    int rc = m->hvp_dir(step, w, meta, user_dir_call, &u, v, grad, hv_w,
                        m->def.n_meta ? hv_meta : NULL, m->def.user);
    if (u.null_grad)
        return rv_fail(m->err, REVL_ERR_CALLBACK, "the fused gradient and Hessian-direction "
                       "callback gave the direction a NULL gradient at step %zu", step);
    if (rc)
        return rv_model_callback_failed(m, "fused gradient and Hessian-direction callback", rc,
                                        step);
    if (u.calls != 1)
        return rv_fail(m->err, REVL_ERR_CALLBACK, "the fused gradient and Hessian-direction "
                       "callback called the direction %d times at step %zu (once per call)",
                       u.calls, step);
    rv_clear(m->err);
    return REVL_OK;
}

int rv_model_hvp_dir(revl_model *m, size_t step, const double *w, const double *meta,
                     rv_dir_fn dir, void *ctx, const double *v, double *grad, double *hv_w,
                     double *hv_meta)
{
    if (m->hvp_dir)
        return user_hvp_dir(m, step, w, meta, dir, ctx, v, grad, hv_w, hv_meta);
    if (m->builtin.hvp_dir) {
        int rc = m->builtin.hvp_dir(m->def.user, step, w, meta, dir, ctx, v, grad, hv_w,
                                    m->def.n_meta ? hv_meta : NULL);
        if (rc > 0) /* the gradient's checks failed (the MLP's data check), as revl_model_grad's */
            return rv_model_callback_failed(m, "gradient callback", rc, step);
        if (rc == REVL_OK)
            rv_clear(m->err);
        return rc;
    }
    int rc = revl_model_grad(m, step, w, meta, grad, NULL);
    if (!rc)
        rc = dir(ctx, grad);
    if (!rc)
        rc = rv_model_hvp_grad(m, step, w, meta, v, NULL, hv_w, hv_meta);
    return rc;
}

int revl_model_set_hvp_affine(revl_model *m, revl_hvp_affine_fn fn)
{
    if (!m)
        return REVL_ERR_INVALID;
    m->hvp_affine = fn;
    return REVL_OK;
}

int revl_model_set_hvp_dir(revl_model *m, revl_hvp_dir_fn fn)
{
    if (!m)
        return REVL_ERR_INVALID;
    if (!m->from_callbacks) /* its user pointer is the library's, not one fn could use */
        return rv_fail(m->err, REVL_ERR_INVALID, "revl_model_set_hvp_dir: not a model of "
                       "revl_model_create (a built-in or data-parallel model has its own path)");
    m->hvp_dir = fn;
    return REVL_OK;
}

int revl_model_hvp(revl_model *m, size_t step, const double *w, const double *meta,
                   const double *v, double *hv_w, double *hv_meta)
{
    if (!m)
        return REVL_ERR_INVALID;
    if (!w || !v || !hv_w || (m->def.n_meta && !meta))
        return rv_fail(m->err, REVL_ERR_INVALID, "revl_model_hvp: w, v, hv_w or meta is NULL");
    if (!hv_meta && m->def.n_meta) {
        if (!m->hv_meta_scratch)
            m->hv_meta_scratch = rv_calloc(&m->alloc, m->def.n_meta, sizeof(double));
        if (!m->hv_meta_scratch)
            return rv_fail(m->err, REVL_ERR_NOMEM,
                           "revl_model_hvp: no memory for the %zu meta-values of hv_meta",
                           m->def.n_meta);
        hv_meta = m->hv_meta_scratch;
    }
    int rc = rv_model_hvp_grad(m, step, w, meta, v, NULL, hv_w, hv_meta);
    if (rc == REVL_OK)
        rv_clear(m->err);
    return rc;
}

int revl_model_init_weights(revl_model *m, const double *log_scales, uint64_t seed, double *w0)
{
    if (!m)
        return REVL_ERR_INVALID;
    if (!log_scales || !w0)
        return rv_fail(m->err, REVL_ERR_INVALID, "revl_model_init_weights: NULL argument");
    for (size_t g = 0; g < m->n_groups; g++)
        if (!isfinite(log_scales[g]))
            return rv_fail(m->err, REVL_ERR_RANGE, "log init scale of group %zu is not finite", g);
    uint64_t state = seed;
    for (size_t g = 0; g < m->n_groups; g++) {
        double scale = exp(log_scales[g]);
        for (size_t i = m->offsets[g]; i < m->offsets[g + 1]; i++)
            w0[i] = scale * rv_rand_normal(&state);
    }
    rv_clear(m->err);
    return REVL_OK;
}

int revl_model_init_scales_grad(revl_model *m, const double *w0, const double *d_w0,
                                double *d_log_scales)
{
    if (!m)
        return REVL_ERR_INVALID;
    if (!w0 || !d_w0 || !d_log_scales)
        return rv_fail(m->err, REVL_ERR_INVALID, "revl_model_init_scales_grad: NULL argument");
    for (size_t g = 0; g < m->n_groups; g++) {
        double s = 0;
        for (size_t i = m->offsets[g]; i < m->offsets[g + 1]; i++)
            s += d_w0[i] * w0[i];
        d_log_scales[g] = s;
    }
    rv_clear(m->err);
    return REVL_OK;
}

int revl_model_evaluate(revl_model *m, const revl_dataset *data, const double *w, double *loss,
                        double *grad_w, double *accuracy)
{
    if (!m)
        return REVL_ERR_INVALID;
    if (!m->builtin.evaluate)
        return rv_fail(m->err, REVL_ERR_INVALID,
                       "revl_model_evaluate: only built-in models can evaluate a data set");
    if (!data || !w || !loss)
        return rv_fail(m->err, REVL_ERR_INVALID, "revl_model_evaluate: NULL argument");
    int rc = m->builtin.evaluate(m->def.user, data, w, loss, grad_w, accuracy, m->err);
    if (rc == REVL_OK)
        rv_clear(m->err);
    return rc;
}
