/* check_mlp.c: the built-in MLP: its loss against a plain-loop reference, its gradient and every
 * Hessian-vector product against finite differences, the fused gradient bit for bit, the
 * minibatch rule, evaluate, argument checks and allocation failure at every allocation. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "core/model.h" /* rv_model_hvp_grad (the fused call the trainer makes), rv_rand_* */

/* ---------------------------------------------------------------- helpers */

static revl_dataset *make_data(size_t n, size_t dim, size_t classes, uint64_t seed)
{
    uint64_t s = seed;
    double *x = malloc(n * dim * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n * dim; i++)
        x[i] = rv_rand_normal(&s);
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)(rv_rand_u64(&s) % classes);
    y[0] = (int32_t)(classes - 1); /* so that n_classes is `classes` */
    revl_dataset *d = NULL;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(d, n, dim, classes, x, y), REVL_OK);
    free(x);
    free(y);
    return d;
}

static revl_model *make_mlp(size_t n_widths, const size_t *widths, const revl_dataset *d,
                            revl_activation act, revl_penalty pen, size_t batch, uint64_t seed)
{
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.activation = act;
    o.penalty = pen;
    o.batch_size = batch;
    o.seed = seed;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, n_widths, widths, d, &o), REVL_OK);
    ck_assert_ptr_nonnull(m);
    return m;
}

static double *random_vec(size_t n, double scale, double shift, uint64_t seed)
{
    uint64_t s = seed;
    double *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = shift + scale * rv_rand_normal(&s);
    return v;
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

static double loss_at(revl_model *m, size_t step, const double *w, const double *meta,
                      double *scratch)
{
    double loss = NAN;
    ck_assert_int_eq(revl_model_grad(m, step, w, meta, scratch, &loss), REVL_OK);
    return loss;
}

/* Plain-loop reference forward pass: summed cross-entropy over examples idx[0..count) of d,
 * and the number whose largest logit is the label. Independent of the library's BLAS code. */
static double reference_ce(size_t n_widths, const size_t *widths, revl_activation act,
                           const double *w, const revl_dataset *d, size_t count,
                           const size_t *idx, size_t *correct)
{
    size_t wmax = 0;
    for (size_t k = 0; k < n_widths; k++)
        wmax = widths[k] > wmax ? widths[k] : wmax;
    double *a = malloc(wmax * sizeof *a), *b = malloc(wmax * sizeof *b);
    const double *x = revl_dataset_x(d);
    const int32_t *y = revl_dataset_labels(d);
    double total = 0;
    *correct = 0;
    for (size_t c = 0; c < count; c++) {
        size_t i = idx ? idx[c] : c;
        memcpy(a, x + i * widths[0], widths[0] * sizeof *a);
        size_t off = 0;
        for (size_t l = 0; l + 1 < n_widths; l++) {
            size_t ni = widths[l], no = widths[l + 1];
            for (size_t j = 0; j < no; j++) {
                double z = w[off + ni * no + j];
                for (size_t k = 0; k < ni; k++)
                    z += a[k] * w[off + k * no + j];
                if (l + 2 < n_widths)
                    z = act == REVL_ACT_TANH   ? tanh(z)
                        : act == REVL_ACT_RELU ? fmax(z, 0)
                                               : 1 / (1 + exp(-z));
                b[j] = z;
            }
            off += ni * no + no;
            memcpy(a, b, no * sizeof *a);
        }
        size_t K = widths[n_widths - 1], best = 0;
        double zmax = a[0], s = 0;
        for (size_t j = 1; j < K; j++) {
            zmax = fmax(zmax, a[j]);
            if (a[j] > a[best])
                best = j;
        }
        for (size_t j = 0; j < K; j++)
            s += exp(a[j] - zmax);
        total += log(s) + zmax - a[y[i]];
        *correct += best == (size_t)y[i];
    }
    free(a);
    free(b);
    return total;
}

/* The architectures every derivative test runs on: logistic regression and a 3-layer MLP. */
static const size_t LR_W[] = {5, 3};
static const size_t MLP_W[] = {5, 7, 6, 3};

/* ---------------------------------------------------------------- layout */

START_TEST(test_options_defaults)
{
    revl_mlp_options o;
    memset(&o, 0xff, sizeof o);
    revl_mlp_options_init(&o);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert_int_eq(o.activation, REVL_ACT_TANH);
    ck_assert_int_eq(o.penalty, REVL_PENALTY_NONE);
    ck_assert_uint_eq(o.batch_size, 200);
    ck_assert_uint_eq(o.seed, 0);
    ck_assert_int_eq(o.threads, 0);
    ck_assert_ptr_null(o.allocator);
    revl_mlp_options_init(NULL); /* no crash */
}
END_TEST

START_TEST(test_layout_and_groups)
{
    revl_dataset *d = make_data(10, 3, 2, 1);
    size_t widths[] = {3, 4, 2};
    revl_model *m = make_mlp(3, widths, d, REVL_ACT_TANH, REVL_PENALTY_PER_LAYER, 0, 0);
    ck_assert_uint_eq(revl_model_n_params(m), 3 * 4 + 4 + 4 * 2 + 2);
    ck_assert_uint_eq(revl_model_n_meta(m), 2);
    ck_assert_uint_eq(revl_model_n_groups(m), 4);
    size_t off[5], want[5] = {0, 12, 16, 24, 26};
    ck_assert_int_eq(revl_model_group_offsets(m, off), REVL_OK);
    ck_assert_mem_eq(off, want, sizeof want);
    revl_model_free(m);
    m = make_mlp(3, widths, d, REVL_ACT_TANH, REVL_PENALTY_PER_WEIGHT, 0, 0);
    ck_assert_uint_eq(revl_model_n_meta(m), 26);
    revl_model_free(m);
    m = make_mlp(2, widths, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 0, 0);
    ck_assert_uint_eq(revl_model_n_params(m), 3 * 4 + 4);
    ck_assert_uint_eq(revl_model_n_meta(m), 0);
    ck_assert_uint_eq(revl_model_n_groups(m), 2);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* ---------------------------------------------------------------- the loss itself */

/* Full batch with a per-layer penalty: the loss is the reference mean cross-entropy plus the
 * penalty, to 1e-13 relative (the same sums, only grouped differently by BLAS). */
START_TEST(test_loss_matches_reference)
{
    revl_dataset *d = make_data(30, 5, 3, 2);
    for (int act = 0; act < 3; act++) {
        revl_model *m = make_mlp(4, MLP_W, d, act, REVL_PENALTY_PER_LAYER, 0, 0);
        size_t p = revl_model_n_params(m);
        double *w = random_vec(p, 0.5, 0, 3), *g = malloc(p * sizeof *g);
        double meta[3] = {-1, -2, 0.5};
        size_t correct;
        double want = reference_ce(4, MLP_W, act, w, d, 30, NULL, &correct) / 30;
        size_t off[7];
        revl_model_group_offsets(m, off);
        for (size_t l = 0; l < 3; l++) {
            double ss = 0;
            for (size_t i = off[2 * l]; i < off[2 * l + 2]; i++)
                ss += w[i] * w[i];
            want += exp(meta[l]) / 2 * ss;
        }
        double got = loss_at(m, 0, w, meta, g);
        ck_assert_double_eq_tol(got, want, 1e-13 * fabs(want));
        free(w);
        free(g);
        revl_model_free(m);
    }
    revl_dataset_free(d);
}
END_TEST

/* Logits of 1e4 must not overflow exp(): loss and gradient stay finite. */
START_TEST(test_softmax_stable)
{
    revl_dataset *d = make_data(8, 5, 3, 4);
    revl_model *m = make_mlp(2, LR_W, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 0, 0);
    size_t p = revl_model_n_params(m);
    double *w = random_vec(p, 3000, 0, 5), *g = malloc(p * sizeof *g);
    double loss = loss_at(m, 0, w, NULL, g);
    ck_assert(isfinite(loss) && loss > 0);
    for (size_t i = 0; i < p; i++)
        ck_assert(isfinite(g[i]));
    free(w);
    free(g);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* ---------------------------------------------------------------- derivatives */

/* Tolerances of the finite-difference checks. Central differences with step h have error
 * h^2 |f'''| / 6 (truncation) + eps |f| / h (rounding): with h = 1e-5, O(1) losses and
 * derivatives of order 1 to 10 (weights ~ N(0, 0.25), inputs ~ N(0, 1)), that is about
 * 1e-10 + 2e-11. The checks allow 1e-7 * max(1, |reference|_inf): 1000x that error, while a
 * wrong or missing term (a forgotten act'', a dropped bias row, a penalty off by a factor)
 * shows at 1e-3 or more. ReLU: its gradient is piecewise smooth, and a difference across a kink
 * would be wrong by O(1); with h |v| ~ 1e-5 and a few hundred pre-activations ~ N(0, 1), the
 * chance that one lies within the step is ~1e-3, and these fixed seeds avoid it. */
#define FD_H 1e-5
#define FD_TOL 1e-7

static const char *act_name[] = {"tanh", "relu", "logistic"};
static const char *pen_name[] = {"none", "per-layer", "per-weight"};

/* Loop index i: bit 0 = architecture (LR, MLP), then activation (3), then penalty (3). */
static void decode(int i, size_t *n_widths, const size_t **widths, revl_activation *act,
                   revl_penalty *pen)
{
    *n_widths = (i & 1) ? 4 : 2;
    *widths = (i & 1) ? MLP_W : LR_W;
    *act = (revl_activation)((i >> 1) % 3);
    *pen = (revl_penalty)((i >> 1) / 3);
}

START_TEST(test_grad_fd)
{
    size_t nw;
    const size_t *widths;
    revl_activation act;
    revl_penalty pen;
    decode(_i, &nw, &widths, &act, &pen);
    revl_dataset *d = make_data(40, 5, 3, 10 + (uint64_t)_i);
    revl_model *m = make_mlp(nw, widths, d, act, pen, 16, 7);
    size_t p = revl_model_n_params(m), nm = revl_model_n_meta(m);
    double *w = random_vec(p, 0.5, 0, 20), *meta = random_vec(nm, 0.5, -2, 21);
    double *g = malloc(p * sizeof *g), *scratch = malloc(p * sizeof *scratch);
    size_t step = 5; /* second epoch: a permutation other than the first */
    loss_at(m, step, w, meta, g);
    double tol = FD_TOL * fmax(1, max_abs(g, p));
    for (size_t i = 0; i < p; i++) {
        double wi = w[i];
        w[i] = wi + FD_H;
        double lp = loss_at(m, step, w, meta, scratch);
        w[i] = wi - FD_H;
        double lm = loss_at(m, step, w, meta, scratch);
        w[i] = wi;
        double fd = (lp - lm) / (2 * FD_H);
        ck_assert_msg(fabs(g[i] - fd) <= tol, "%s %s %zu layers: grad[%zu] = %.12g, fd %.12g",
                      act_name[act], pen_name[pen], nw - 1, i, g[i], fd);
    }
    free(w);
    free(meta);
    free(g);
    free(scratch);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* hv = H v and hm = d/dmeta (g . v) at (step, w, meta) against central differences of the
 * gradient: along v for H v, along each meta coordinate for hm. */
static void check_hvp_fd(revl_model *m, size_t step, const double *w, double *meta,
                         const double *v, const double *hv, const double *hm, const char *what)
{
    size_t p = revl_model_n_params(m), nm = revl_model_n_meta(m);
    double *gp = malloc(p * sizeof *gp), *gm = malloc(p * sizeof *gm);
    double *wp = malloc(p * sizeof *wp), *fd = malloc(p * sizeof *fd);
    for (size_t i = 0; i < p; i++)
        wp[i] = w[i] + FD_H * v[i];
    loss_at(m, step, wp, meta, gp);
    for (size_t i = 0; i < p; i++)
        wp[i] = w[i] - FD_H * v[i];
    loss_at(m, step, wp, meta, gm);
    for (size_t i = 0; i < p; i++)
        fd[i] = (gp[i] - gm[i]) / (2 * FD_H);
    double tol = FD_TOL * fmax(1, max_abs(fd, p));
    for (size_t i = 0; i < p; i++)
        ck_assert_msg(fabs(hv[i] - fd[i]) <= tol, "%s: hv[%zu] = %.12g, fd %.12g", what, i, hv[i],
                      fd[i]);
    ck_assert(max_abs(hv, p) > 1e-3); /* not trivially zero */
    for (size_t j = 0; j < nm; j++) {
        double mj = meta[j], dp = 0, dm = 0;
        meta[j] = mj + FD_H;
        loss_at(m, step, w, meta, gp);
        meta[j] = mj - FD_H;
        loss_at(m, step, w, meta, gm);
        meta[j] = mj;
        for (size_t i = 0; i < p; i++) {
            dp += gp[i] * v[i];
            dm += gm[i] * v[i];
        }
        double f = (dp - dm) / (2 * FD_H);
        ck_assert_msg(fabs(hm[j] - f) <= FD_TOL * fmax(1, fabs(f)),
                      "%s: hv_meta[%zu] = %.12g, fd %.12g", what, j, hm[j], f);
    }
    free(gp);
    free(gm);
    free(wp);
    free(fd);
}

START_TEST(test_hvp_fd)
{
    size_t nw;
    const size_t *widths;
    revl_activation act;
    revl_penalty pen;
    decode(_i, &nw, &widths, &act, &pen);
    revl_dataset *d = make_data(40, 5, 3, 30 + (uint64_t)_i);
    revl_model *m = make_mlp(nw, widths, d, act, pen, 16, 8);
    size_t p = revl_model_n_params(m), nm = revl_model_n_meta(m);
    double *w = random_vec(p, 0.5, 0, 40), *meta = random_vec(nm, 0.5, -2, 41);
    double *v = random_vec(p, 1, 0, 42);
    double *hv = malloc(p * sizeof *hv), *hm = calloc(nm ? nm : 1, sizeof *hm);
    double *h2 = malloc(p * sizeof *h2);
    size_t step = 3;
    ck_assert_int_eq(revl_model_hvp(m, step, w, meta, v, hv, nm ? hm : NULL), REVL_OK);
    char what[64];
    snprintf(what, sizeof what, "%s %s %zu layers", act_name[act], pen_name[pen], nw - 1);
    check_hvp_fd(m, step, w, meta, v, hv, hm, what);
    /* hv_meta may be NULL when not wanted, and H v is the same bits then */
    if (nm) {
        ck_assert_int_eq(revl_model_hvp(m, step, w, meta, v, h2, NULL), REVL_OK);
        ck_assert_mem_eq(h2, hv, p * sizeof *hv);
    }
    free(w);
    free(meta);
    free(v);
    free(hv);
    free(hm);
    free(h2);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* The MLP's fused gradient + H (a + b g): its gradient is the plain call's bit for bit, its
 * H v and meta part are those of revl_model_hvp along v = a + b g bit for bit, and equal the
 * library's fallback (the hook cleared) bit for bit; H v matches finite differences of the
 * gradient. Calls at other steps in between change nothing. */
START_TEST(test_hvp_affine)
{
    size_t nw;
    const size_t *widths;
    revl_activation act;
    revl_penalty pen;
    decode(_i, &nw, &widths, &act, &pen);
    revl_dataset *d = make_data(50, 5, 3, 80 + (uint64_t)_i);
    revl_model *m = make_mlp(nw, widths, d, act, pen, 20, 10);
    ck_assert_ptr_nonnull(m->hvp_affine); /* the MLP registers its own */
    size_t p = revl_model_n_params(m), nm = revl_model_n_meta(m), k = nm ? nm : 1;
    double *w = random_vec(p, 0.5, 0, 90), *meta = random_vec(nm, 0.5, -2, 91);
    double *a = random_vec(p, 1, 0, 92), *b = random_vec(p, 3, 0, 93);
    double *v = malloc(p * sizeof *v), *g[3], *h[3], *hm[3];
    for (int c = 0; c < 3; c++) {
        g[c] = malloc(p * sizeof *g[c]);
        h[c] = malloc(p * sizeof *h[c]);
        hm[c] = calloc(k, sizeof *hm[c]);
    }
    revl_hvp_affine_fn hook = m->hvp_affine;
    for (size_t step = 0; step < 4; step++) {
        ck_assert_int_eq(revl_model_grad(m, step + 5, w, meta, g[1], NULL), REVL_OK);
        m->hvp_affine = hook;
        ck_assert_int_eq(rv_model_hvp_affine(m, step, w, meta, a, b, g[0], h[0], hm[0]), REVL_OK);
        /* by hand: grad, then hvp along v */
        ck_assert_int_eq(revl_model_grad(m, step, w, meta, g[1], NULL), REVL_OK);
        for (size_t i = 0; i < p; i++)
            v[i] = a[i] + b[i] * g[1][i]; /* rv_affine_dir, scalar */
        ck_assert_int_eq(revl_model_hvp(m, step + 2, w, meta, a, h[1], nm ? hm[1] : NULL),
                         REVL_OK);
        ck_assert_int_eq(revl_model_hvp(m, step, w, meta, v, h[1], nm ? hm[1] : NULL), REVL_OK);
        /* the library's fallback */
        m->hvp_affine = NULL;
        ck_assert_int_eq(rv_model_hvp_affine(m, step, w, meta, a, b, g[2], h[2], hm[2]), REVL_OK);
        for (int c = 1; c < 3; c++) {
            ck_assert_mem_eq(g[0], g[c], p * sizeof *g[0]);
            ck_assert_mem_eq(h[0], h[c], p * sizeof *h[0]);
            if (nm)
                ck_assert_mem_eq(hm[0], hm[c], nm * sizeof *hm[0]);
        }
    }
    m->hvp_affine = hook;
    ck_assert_int_eq(rv_model_hvp_affine(m, 2, w, meta, a, b, g[0], h[0], hm[0]), REVL_OK);
    for (size_t i = 0; i < p; i++)
        v[i] = a[i] + b[i] * g[0][i]; /* rv_affine_dir, scalar */
    char what[64];
    snprintf(what, sizeof what, "affine %s %s %zu layers", act_name[act], pen_name[pen], nw - 1);
    check_hvp_fd(m, 2, w, meta, v, h[0], hm[0], what);
    free(w);
    free(meta);
    free(a);
    free(b);
    free(v);
    for (int c = 0; c < 3; c++) {
        free(g[c]);
        free(h[c]);
        free(hm[c]);
    }
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* The trainer's fused call gives the gradient bit for bit as the plain call, and H v bit for
 * bit as the unfused call; calls at other steps in between (a new epoch permutation) change
 * nothing. */
START_TEST(test_fused_bit_identical)
{
    size_t nw;
    const size_t *widths;
    revl_activation act;
    revl_penalty pen;
    decode(_i, &nw, &widths, &act, &pen);
    revl_dataset *d = make_data(50, 5, 3, 50 + (uint64_t)_i);
    revl_model *m = make_mlp(nw, widths, d, act, pen, 20, 9);
    size_t p = revl_model_n_params(m), nm = revl_model_n_meta(m);
    double *w = random_vec(p, 0.5, 0, 60), *meta = random_vec(nm, 0.5, -2, 61);
    double *v = random_vec(p, 1, 0, 62);
    double *g1 = malloc(p * sizeof *g1), *g2 = malloc(p * sizeof *g2);
    double *h1 = malloc(p * sizeof *h1), *h2 = malloc(p * sizeof *h2);
    double *m1 = malloc((nm ? nm : 1) * sizeof *m1), *m2 = malloc((nm ? nm : 1) * sizeof *m2);
    double l1, l2;
    for (size_t step = 0; step < 6; step++) {
        ck_assert_int_eq(revl_model_grad(m, step, w, meta, g1, &l1), REVL_OK);
        ck_assert_int_eq(revl_model_hvp(m, step + 7, w, meta, v, h2, nm ? m2 : NULL), REVL_OK);
        ck_assert_int_eq(revl_model_hvp(m, step, w, meta, v, h1, nm ? m1 : NULL), REVL_OK);
        ck_assert_int_eq(revl_model_grad(m, step + 3, w, meta, g2, NULL), REVL_OK);
        ck_assert_int_eq(rv_model_hvp_grad(m, step, w, meta, v, g2, h2, nm ? m2 : NULL), REVL_OK);
        ck_assert_mem_eq(g1, g2, p * sizeof *g1);
        ck_assert_mem_eq(h1, h2, p * sizeof *h1);
        if (nm)
            ck_assert_mem_eq(m1, m2, nm * sizeof *m1);
        ck_assert_int_eq(revl_model_grad(m, step, w, meta, g2, &l2), REVL_OK);
        ck_assert_mem_eq(g1, g2, p * sizeof *g1);
        ck_assert_mem_eq(&l1, &l2, sizeof l1);
    }
    /* its own fused path stays: a caller's revl_hvp_dir_fn would get the MLP's user pointer */
    ck_assert_int_eq(revl_model_set_hvp_dir(m, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_model_last_error(m), "not a model of revl_model_create"));
    free(w);
    free(meta);
    free(v);
    free(g1);
    free(g2);
    free(h1);
    free(h2);
    free(m1);
    free(m2);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* Two handles made alike give the same bits (no hidden state shared or left over). */
START_TEST(test_two_handles_same_bits)
{
    revl_dataset *d = make_data(50, 5, 3, 70);
    revl_model *a = make_mlp(4, MLP_W, d, REVL_ACT_TANH, REVL_PENALTY_PER_WEIGHT, 20, 3);
    revl_model *b = make_mlp(4, MLP_W, d, REVL_ACT_TANH, REVL_PENALTY_PER_WEIGHT, 20, 3);
    size_t p = revl_model_n_params(a);
    double *w = random_vec(p, 0.5, 0, 71), *meta = random_vec(p, 0.5, -2, 72);
    double *v = random_vec(p, 1, 0, 73);
    double *ga = malloc(p * sizeof *ga), *gb = malloc(p * sizeof *gb);
    double *ha = malloc(p * sizeof *ha), *hb = malloc(p * sizeof *hb);
    double *ma = malloc(p * sizeof *ma), *mb = malloc(p * sizeof *mb);
    ck_assert_int_eq(rv_model_hvp_grad(a, 4, w, meta, v, ga, ha, ma), REVL_OK);
    ck_assert_int_eq(revl_model_grad(b, 1, w, meta, gb, NULL), REVL_OK);
    ck_assert_int_eq(rv_model_hvp_grad(b, 4, w, meta, v, gb, hb, mb), REVL_OK);
    ck_assert_mem_eq(ga, gb, p * sizeof *ga);
    ck_assert_mem_eq(ha, hb, p * sizeof *ha);
    ck_assert_mem_eq(ma, mb, p * sizeof *ma);
    free(w);
    free(meta);
    free(v);
    free(ga);
    free(gb);
    free(ha);
    free(hb);
    free(ma);
    free(mb);
    revl_model_free(a);
    revl_model_free(b);
    revl_dataset_free(d);
}
END_TEST

/* A training set that changes size under the model makes every callback fail (the gathered
 * batch would read out of bounds) with the callback status, the fused affine one included. */
START_TEST(test_train_changed_fails)
{
    revl_dataset *d = make_data(40, 5, 3, 95);
    revl_model *m = make_mlp(4, MLP_W, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 10, 1);
    size_t p = revl_model_n_params(m);
    double *w = random_vec(p, 0.5, 0, 96), *v = random_vec(p, 1, 0, 97);
    double *g = malloc(p * sizeof *g), *h = malloc(p * sizeof *h);
    ck_assert_int_eq(rv_model_hvp_affine(m, 0, w, NULL, v, v, g, h, NULL), REVL_OK);
    double x[4 * 5] = {0};
    int32_t y[4] = {0, 1, 2, 0};
    ck_assert_int_eq(revl_dataset_set(d, 4, 5, 3, x, y), REVL_OK);
    ck_assert_int_eq(revl_model_grad(m, 0, w, NULL, g, NULL), REVL_ERR_CALLBACK);
    ck_assert_int_eq(revl_model_hvp(m, 0, w, NULL, v, h, NULL), REVL_ERR_CALLBACK);
    ck_assert_int_eq(rv_model_hvp_affine(m, 3, w, NULL, v, v, g, h, NULL), REVL_ERR_CALLBACK);
    /* the MLP's own check, not a callback of the caller's: no "callback returned 1" */
    ck_assert_str_eq(revl_model_last_error(m), "the MLP's training set changed under it at step "
                                               "3: 4 examples of 5 features, 40 of 5 at "
                                               "revl_mlp_create");
    free(w);
    free(v);
    free(g);
    free(h);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* ---------------------------------------------------------------- fused call, callback models */

/* L = sum_i (lam w_i^2 / 2 + w_i^4 / 12) with lam = exp(meta_0): g_i = lam w_i + w_i^3 / 3,
 * H = diag(lam + w_i^2), d/dmeta (g . v) = lam sum_i w_i v_i. */
enum { Q_P = 6 };
typedef struct quartic {
    int fail_grad, fail_affine;
    long affine_calls;
} quartic;

static int quartic_grad(size_t step, const double *w, const double *meta, double *grad,
                        double *loss, void *user)
{
    (void)step;
    if (((quartic *)user)->fail_grad)
        return 5;
    double lam = exp(meta[0]), l = 0;
    for (size_t i = 0; i < Q_P; i++) {
        grad[i] = lam * w[i] + w[i] * w[i] * w[i] / 3;
        l += lam * w[i] * w[i] / 2 + w[i] * w[i] * w[i] * w[i] / 12;
    }
    if (loss)
        *loss = l;
    return 0;
}

static void quartic_hv(const double *w, const double *meta, const double *v, double *hv,
                       double *hm)
{
    double lam = exp(meta[0]), wv = 0;
    for (size_t i = 0; i < Q_P; i++) {
        hv[i] = (lam + w[i] * w[i]) * v[i];
        wv += w[i] * v[i];
    }
    if (hm)
        hm[0] = lam * wv;
}

static int quartic_hvp(size_t step, const double *w, const double *meta, const double *v,
                       double *grad, double *hv, double *hm, void *user)
{
    (void)grad;
    (void)step;
    (void)user;
    quartic_hv(w, meta, v, hv, hm);
    return 0;
}

/* A model's own hook: counts its calls, and fails on request. */
static int quartic_affine(size_t step, const double *w, const double *meta, const double *a,
                          const double *b, double *grad, double *hv, double *hm, void *user)
{
    quartic *q = user;
    q->affine_calls++;
    if (q->fail_affine)
        return 6;
    quartic_grad(step, w, meta, grad, NULL, user);
    double v[Q_P];
    for (size_t i = 0; i < Q_P; i++)
        v[i] = a[i] + b[i] * grad[i]; /* rv_affine_dir, scalar */
    quartic_hv(w, meta, v, hv, hm);
    return 0;
}

static revl_model *make_quartic(quartic *q, int with_hvp)
{
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = Q_P;
    def.n_meta = 1;
    def.grad = quartic_grad;
    def.hvp = with_hvp ? quartic_hvp : NULL;
    def.user = q;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &def), REVL_OK);
    return m;
}

/* Without a hook the library gives grad_fn's gradient and H (a + b g) through the model's hvp
 * (bit for bit) or finite differences (to their accuracy); a registered hook is called with
 * the model's user pointer, its failure is reported, and removing it restores the fallback. */
START_TEST(test_hvp_affine_callback_model)
{
    quartic q = {0};
    double w[Q_P], a[Q_P], b[Q_P], v[Q_P], g[Q_P], g0[Q_P], hv[Q_P], want[Q_P], meta[1] = {-0.3};
    double hm[1], want_m[1];
    uint64_t s = 7;
    for (size_t i = 0; i < Q_P; i++) {
        w[i] = rv_rand_normal(&s);
        a[i] = rv_rand_normal(&s);
        b[i] = rv_rand_normal(&s);
    }
    for (int with_hvp = 1; with_hvp >= 0; with_hvp--) {
        revl_model *m = make_quartic(&q, with_hvp);
        ck_assert_int_eq(rv_model_hvp_affine(m, 3, w, meta, a, b, g, hv, hm), REVL_OK);
        ck_assert_int_eq(revl_model_grad(m, 3, w, meta, g0, NULL), REVL_OK);
        ck_assert_mem_eq(g, g0, sizeof g);
        for (size_t i = 0; i < Q_P; i++)
            v[i] = a[i] + b[i] * g0[i]; /* rv_affine_dir, scalar */
        quartic_hv(w, meta, v, want, want_m);
        if (with_hvp) {
            ck_assert_mem_eq(hv, want, sizeof hv);
            ck_assert_mem_eq(hm, want_m, sizeof hm);
        } else {
            for (size_t i = 0; i < Q_P; i++)
                ck_assert_double_eq_tol(hv[i], want[i], 1e-7 * fmax(1, fabs(want[i])));
            ck_assert_double_eq_tol(hm[0], want_m[0], 1e-7 * fmax(1, fabs(want_m[0])));
        }
        /* a failing gradient stops the fallback with the callback status */
        q.fail_grad = 1;
        ck_assert_int_eq(rv_model_hvp_affine(m, 3, w, meta, a, b, g, hv, hm), REVL_ERR_CALLBACK);
        q.fail_grad = 0;
        revl_model_free(m);
    }
    revl_model *m = make_quartic(&q, 0); /* no hvp: the hook's exact bits tell it ran */
    ck_assert_int_eq(revl_model_set_hvp_affine(m, quartic_affine), REVL_OK);
    ck_assert_int_eq(rv_model_hvp_affine(m, 3, w, meta, a, b, g, hv, hm), REVL_OK);
    ck_assert_int_eq(q.affine_calls, 1);
    ck_assert_mem_eq(hv, want, sizeof hv);
    ck_assert_mem_eq(hm, want_m, sizeof hm);
    q.fail_affine = 1;
    ck_assert_int_eq(rv_model_hvp_affine(m, 4, w, meta, a, b, g, hv, hm), REVL_ERR_CALLBACK);
    ck_assert_ptr_nonnull(strstr(revl_model_last_error(m), "returned 6 at step 4"));
    ck_assert_int_eq(revl_model_set_hvp_affine(m, NULL), REVL_OK);
    ck_assert_int_eq(rv_model_hvp_affine(m, 3, w, meta, a, b, g, hv, hm), REVL_OK);
    ck_assert_int_eq(q.affine_calls, 2); /* removed: not called again */
    ck_assert_int_eq(revl_model_set_hvp_affine(NULL, quartic_affine), REVL_ERR_INVALID);
    revl_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- minibatches */

/* One-hot inputs (example i is e_i) and w = 0 make the batch visible: row i of dW is nonzero
 * exactly when example i is in the batch (dz = (p - y) / B = +-1/(2B) for two classes). */
static revl_dataset *one_hot_data(size_t n)
{
    double *x = calloc(n * n, sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) {
        x[i * n + i] = 1;
        y[i] = (int32_t)(i % 2);
    }
    revl_dataset *d = NULL;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_set(d, n, n, 2, x, y), REVL_OK);
    free(x);
    free(y);
    return d;
}

static void batch_of(revl_model *m, size_t n, size_t step, int *in)
{
    size_t p = revl_model_n_params(m);
    double *w = calloc(p, sizeof *w), *g = malloc(p * sizeof *g);
    ck_assert_int_eq(revl_model_grad(m, step, w, NULL, g, NULL), REVL_OK);
    for (size_t i = 0; i < n; i++)
        in[i] = g[2 * i] != 0 || g[2 * i + 1] != 0;
    free(w);
    free(g);
}

/* The documented rule, written out again: Fisher-Yates from seed XOR splitmix64(epoch). */
static void expected_perm(uint64_t seed, size_t epoch, size_t n, size_t *perm)
{
    uint64_t e = epoch, state = seed ^ rv_rand_u64(&e);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rv_rand_u64(&state) % (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

START_TEST(test_minibatch_rule)
{
    /* n = 12, batch 4: three batches an epoch that cover every example once;
     * n = 14, batch 4: three batches an epoch, 12 distinct examples, 2 left out */
    size_t ns[2] = {12, 14};
    for (int c = 0; c < 2; c++) {
        size_t n = ns[c], widths[2] = {n, 2}, perm[14];
        revl_dataset *d = one_hot_data(n);
        revl_model *m = make_mlp(2, widths, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 4, 99);
        int in[14];
        for (size_t epoch = 0; epoch < 3; epoch++) {
            int seen[14] = {0};
            expected_perm(99, epoch, n, perm);
            for (size_t b = 0; b < 3; b++) {
                batch_of(m, n, epoch * 3 + b, in);
                int want[14] = {0};
                for (size_t r = 0; r < 4; r++)
                    want[perm[b * 4 + r]] = 1;
                ck_assert_mem_eq(in, want, n * sizeof *in);
                for (size_t i = 0; i < n; i++)
                    seen[i] += in[i];
            }
            size_t total = 0;
            for (size_t i = 0; i < n; i++) {
                ck_assert_int_le(seen[i], 1);
                total += (size_t)seen[i];
            }
            ck_assert_uint_eq(total, 12);
        }
        /* the same step again, after other epochs: the same batch */
        int again[14];
        batch_of(m, n, 1, again);
        expected_perm(99, 0, n, perm);
        int want[14] = {0};
        for (size_t r = 0; r < 4; r++)
            want[perm[4 + r]] = 1;
        ck_assert_mem_eq(again, want, n * sizeof *again);
        revl_model_free(m);
        revl_dataset_free(d);
    }
}
END_TEST

START_TEST(test_minibatch_seed_and_full_batch)
{
    size_t n = 12, widths[2] = {12, 2};
    revl_dataset *d = one_hot_data(n);
    revl_model *a = make_mlp(2, widths, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 4, 1);
    revl_model *b = make_mlp(2, widths, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 4, 2);
    int ia[12], ib[12], differ = 0;
    for (size_t step = 0; step < 3; step++) {
        batch_of(a, n, step, ia);
        batch_of(b, n, step, ib);
        differ |= memcmp(ia, ib, sizeof ia) != 0;
    }
    ck_assert(differ);
    revl_model_free(a);
    revl_model_free(b);
    /* batch 0 and batch >= n: every example at every step */
    size_t batches[2] = {0, 12};
    for (int c = 0; c < 2; c++) {
        revl_model *f = make_mlp(2, widths, d, REVL_ACT_TANH, REVL_PENALTY_NONE, batches[c], 5);
        for (size_t step = 0; step < 3; step++) {
            batch_of(f, n, step * 1000, ia);
            for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(ia[i], 1);
        }
        revl_model_free(f);
    }
    revl_dataset_free(d);
}
END_TEST

/* The minibatch loss is the reference cross-entropy over the examples the rule picks. */
START_TEST(test_minibatch_loss_matches_reference)
{
    revl_dataset *d = make_data(23, 5, 3, 80);
    revl_model *m = make_mlp(4, MLP_W, d, REVL_ACT_LOGISTIC, REVL_PENALTY_NONE, 7, 11);
    size_t p = revl_model_n_params(m), perm[23], correct;
    double *w = random_vec(p, 0.5, 0, 81), *g = malloc(p * sizeof *g);
    for (size_t step = 0; step < 7; step++) { /* 3 batches an epoch */
        expected_perm(11, step / 3, 23, perm);
        double want = reference_ce(4, MLP_W, REVL_ACT_LOGISTIC, w, d, 7, perm + (step % 3) * 7,
                                   &correct) / 7;
        ck_assert_double_eq_tol(loss_at(m, step, w, NULL, g), want, 1e-13 * want);
    }
    free(w);
    free(g);
    revl_model_free(m);
    revl_dataset_free(d);
}
END_TEST

/* ---------------------------------------------------------------- evaluate */

/* 2500 examples: three blocks of the evaluation loop (1000, 1000, 500). */
START_TEST(test_evaluate)
{
    revl_dataset *d = make_data(2500, 5, 3, 90);
    for (int arch = 0; arch < 2; arch++) {
        size_t nw = arch ? 4 : 2;
        const size_t *widths = arch ? MLP_W : LR_W;
        /* the training set is small; evaluate takes any data set of the right shape */
        revl_dataset *train = make_data(10, 5, 3, 91);
        revl_model *m = make_mlp(nw, widths, train, REVL_ACT_TANH, REVL_PENALTY_PER_LAYER, 4, 0);
        revl_model *full = make_mlp(nw, widths, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 0, 0);
        size_t p = revl_model_n_params(m), correct;
        double *w = random_vec(p, 0.7, 0, 92), *g = malloc(p * sizeof *g);
        double *gf = malloc(p * sizeof *gf), *scratch = malloc(p * sizeof *scratch);
        double loss, acc, loss2;
        ck_assert_int_eq(revl_model_evaluate(m, d, w, &loss, g, &acc), REVL_OK);
        /* loss and accuracy against the plain-loop reference; accuracy is a count, so exact */
        double want = reference_ce(nw, widths, REVL_ACT_TANH, w, d, 2500, NULL, &correct) / 2500;
        ck_assert_double_eq_tol(loss, want, 1e-13 * want);
        ck_assert_double_eq(acc, (double)correct / 2500);
        ck_assert(acc > 0.2 && acc < 0.6); /* a real count, not 0 or 1 */
        /* the gradient against the full-batch model's (the same mean, grouped in blocks) */
        ck_assert_int_eq(revl_model_grad(full, 0, w, NULL, gf, &loss2), REVL_OK);
        ck_assert_double_eq_tol(loss2, loss, 1e-13 * loss);
        for (size_t i = 0; i < p; i++)
            ck_assert_double_eq_tol(g[i], gf[i], 1e-12 * fmax(1, max_abs(gf, p)));
        /* and against finite differences of evaluate's own loss (tolerance as for test_grad_fd) */
        double tol = FD_TOL * fmax(1, max_abs(g, p));
        for (size_t i = 0; i < p; i += 3) {
            double wi = w[i], lp, lm;
            w[i] = wi + FD_H;
            ck_assert_int_eq(revl_model_evaluate(m, d, w, &lp, NULL, NULL), REVL_OK);
            w[i] = wi - FD_H;
            ck_assert_int_eq(revl_model_evaluate(m, d, w, &lm, NULL, NULL), REVL_OK);
            w[i] = wi;
            ck_assert_double_eq_tol(g[i], (lp - lm) / (2 * FD_H), tol);
        }
        /* optional outputs may be NULL, and give the same loss */
        ck_assert_int_eq(revl_model_evaluate(m, d, w, &loss2, NULL, NULL), REVL_OK);
        ck_assert_mem_eq(&loss, &loss2, sizeof loss);
        free(w);
        free(g);
        free(gf);
        free(scratch);
        revl_model_free(m);
        revl_model_free(full);
        revl_dataset_free(train);
    }
    revl_dataset_free(d);
}
END_TEST

START_TEST(test_evaluate_bad_data)
{
    revl_dataset *train = make_data(10, 5, 3, 100);
    revl_model *m = make_mlp(4, MLP_W, train, REVL_ACT_RELU, REVL_PENALTY_NONE, 4, 0);
    size_t p = revl_model_n_params(m);
    double *w = random_vec(p, 0.5, 0, 101), loss = 0;
    revl_dataset *wrong_dim = make_data(10, 4, 3, 102);
    revl_dataset *wrong_classes = make_data(10, 5, 4, 103);
    revl_dataset *fewer_classes = make_data(10, 5, 2, 104);
    revl_dataset *empty = NULL;
    ck_assert_int_eq(revl_dataset_create(&empty, NULL), REVL_OK);
    ck_assert_int_eq(revl_model_evaluate(m, wrong_dim, w, &loss, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_model_last_error(m), "4 features"));
    ck_assert_int_eq(revl_model_evaluate(m, wrong_classes, w, &loss, NULL, NULL),
                     REVL_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(revl_model_last_error(m), "4 classes"));
    ck_assert_int_eq(revl_model_evaluate(m, empty, w, &loss, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_evaluate(m, NULL, w, &loss, NULL, NULL), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_model_evaluate(m, train, NULL, &loss, NULL, NULL), REVL_ERR_INVALID);
    /* a validation set in which the last class happens not to occur is fine */
    ck_assert_int_eq(revl_model_evaluate(m, fewer_classes, w, &loss, NULL, NULL), REVL_OK);
    ck_assert(isfinite(loss));
    free(w);
    revl_model_free(m);
    revl_dataset_free(train);
    revl_dataset_free(wrong_dim);
    revl_dataset_free(wrong_classes);
    revl_dataset_free(fewer_classes);
    revl_dataset_free(empty);
}
END_TEST

/* ---------------------------------------------------------------- arguments */

#ifndef RV_CBLAS_NETLIB
int openblas_get_num_threads(void); /* the count revl_blas_threads must report and set */
#endif

/* revl_blas_threads: with OpenBLAS, the count before each call returned and the one asked for
 * in effect after it (read from OpenBLAS itself), 0 only asking; the reference BLAS build
 * reports no control. A negative count is refused either way and changes nothing. An MLP
 * trains and reverses exactly under one BLAS thread and under two. */
START_TEST(test_blas_threads)
{
    ck_assert_int_eq(revl_blas_threads(-1), REVL_ERR_INVALID);
#ifdef RV_CBLAS_NETLIB
    ck_assert_int_eq(revl_blas_threads(0), 0);
    ck_assert_int_eq(revl_blas_threads(2), 0);
    ck_assert_int_eq(revl_blas_threads(-3), REVL_ERR_INVALID);
#else
    int start = openblas_get_num_threads();
    ck_assert_int_eq(revl_blas_threads(0), start);
    ck_assert_int_eq(revl_blas_threads(1), start);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    ck_assert_int_eq(revl_blas_threads(0), 1);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    ck_assert_int_eq(revl_blas_threads(-3), REVL_ERR_INVALID);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    ck_assert_int_eq(revl_blas_threads(2), 1);
    ck_assert_int_eq(openblas_get_num_threads(), 2);
#endif
    /* the paper's hidden layers, products of 200 x 50 x 50: above the 2^18 multiply-adds below
     * which OpenBLAS stays on one thread, and of a shape whose bits it changes on two */
    revl_dataset *d = make_data(400, 50, 10, 5);
    size_t widths[4] = {50, 50, 50, 10}, off[7], T = 4;
    /* train under fwd threads, reverse under rev: the same count reverses exactly; with
     * OpenBLAS a changed count changes the recomputed gradients' bits, which the reverse pass
     * refuses (the reference BLAS has no count to change) */
    static const int counts[3][2] = {{1, 1}, {2, 2}, {1, 2}};
    for (int k = 0; k < 3; k++) {
        revl_model *m = make_mlp(4, widths, d, REVL_ACT_TANH, REVL_PENALTY_NONE, 200, 1);
        size_t p = revl_model_n_params(m);
        revl_model_group_offsets(m, off);
        revl_schedule *s = NULL;
        ck_assert_int_eq(revl_schedule_create(&s, T, revl_model_n_groups(m), off), REVL_OK);
        ck_assert_int_eq(revl_schedule_fill(s, 0.3, 0.9), REVL_OK);
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        double *w0 = random_vec(p, 0.1, 0, 6), *dfdw = random_vec(p, 1, 0, 7);
        double *dw0 = malloc(p * sizeof *dw0);
        revl_blas_threads(counts[k][0]);
        ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
        revl_blas_threads(counts[k][1]);
        int rc = revl_trainer_hypergrad(t, dfdw, NULL, dw0, NULL, NULL, NULL);
#ifndef RV_CBLAS_NETLIB
        if (counts[k][0] != counts[k][1]) {
            ck_assert_int_eq(rc, REVL_ERR_INEXACT);
            expect_msg(revl_trainer_last_error(t), "differs from the forward pass's");
        } else
#endif
            ck_assert_msg(rc == REVL_OK, "BLAS threads %d, %d: %s", counts[k][0], counts[k][1],
                          revl_trainer_last_error(t));
        revl_trainer_free(t);
        revl_schedule_free(s);
        revl_model_free(m);
        free(w0);
        free(dfdw);
        free(dw0);
    }
    revl_dataset_free(d);
#ifndef RV_CBLAS_NETLIB
    ck_assert_int_eq(revl_blas_threads(start), 2);
    ck_assert_int_eq(openblas_get_num_threads(), start);
#endif
}
END_TEST

START_TEST(test_bad_arguments)
{
    revl_dataset *d = make_data(10, 3, 2, 110);
    revl_dataset *empty = NULL;
    ck_assert_int_eq(revl_dataset_create(&empty, NULL), REVL_OK);
    size_t ok_w[3] = {3, 4, 2}, zero_w[3] = {3, 0, 2}, dim_w[3] = {4, 4, 2}, out_w[3] = {3, 4, 1};
    revl_mlp_options o;
    revl_model *m = (revl_model *)&o; /* must be reset to NULL on failure */
    revl_mlp_options_init(&o);
    ck_assert_int_eq(revl_mlp_create(NULL, 3, ok_w, d, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&m, 3, NULL, d, &o), REVL_ERR_INVALID);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(revl_mlp_create(&m, 0, ok_w, d, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&m, 1, ok_w, d, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&m, 3, zero_w, d, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, NULL, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, empty, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&m, 3, dim_w, d, &o), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_mlp_create(&m, 3, out_w, d, &o), REVL_ERR_INVALID); /* label 1 >= 1 */
    o.activation = (revl_activation)3;
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, d, &o), REVL_ERR_INVALID);
    o.activation = (revl_activation)-1;
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, d, &o), REVL_ERR_INVALID);
    revl_mlp_options_init(&o);
    o.penalty = (revl_penalty)3;
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, d, &o), REVL_ERR_INVALID);
    revl_mlp_options_init(&o);
    o.threads = -1;
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, d, &o), REVL_ERR_INVALID);
    revl_mlp_options_init(&o);
    o.struct_size = 0;
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, d, &o), REVL_ERR_INVALID);
    ck_assert_ptr_null(m);
    /* NULL options are the defaults (batch 200 >= n: full batch) */
    ck_assert_int_eq(revl_mlp_create(&m, 3, ok_w, d, NULL), REVL_OK);
    ck_assert_ptr_nonnull(m);
    size_t p = revl_model_n_params(m);
    double *w = calloc(p, sizeof *w), *g = malloc(p * sizeof *g), loss;
    ck_assert_int_eq(revl_model_grad(m, 0, w, NULL, g, &loss), REVL_OK);
    ck_assert_double_eq_tol(loss, log(2.0), 1e-15); /* w = 0: uniform over 2 classes */
    ck_assert_int_eq(revl_model_grad(m, 0, NULL, NULL, g, &loss), REVL_ERR_INVALID);
    free(w);
    free(g);
    revl_model_free(m);
    revl_model_free(NULL);
    revl_dataset_free(d);
    revl_dataset_free(empty);
}
END_TEST

/* ---------------------------------------------------------------- allocation failure */

/* failing / failing_allocator (testutil.h): fail_at is 0-based, -1 never. */

START_TEST(test_alloc_failure_create)
{
    revl_dataset *d = make_data(30, 5, 3, 120);
    /* minibatch + per-weight penalty (every optional buffer), and full batch without penalty */
    size_t batches[2] = {8, 0};
    revl_penalty pens[2] = {REVL_PENALTY_PER_WEIGHT, REVL_PENALTY_NONE};
    for (int c = 0; c < 2; c++) {
        failing cnt = {.fail_at = -1};
        revl_allocator a = failing_allocator(&cnt);
        revl_mlp_options o;
        revl_mlp_options_init(&o);
        o.batch_size = batches[c];
        o.penalty = pens[c];
        o.allocator = &a;
        long k;
        for (k = 0;; k++) {
            cnt = (failing){.fail_at = k};
            revl_model *m = NULL;
            int rc = revl_mlp_create(&m, 4, MLP_W, d, &o);
            if (rc == REVL_OK) {
                ck_assert_int_le(cnt.calls, k); /* succeeded without reaching call number k */
                revl_model_free(m);
                ck_assert_int_eq(cnt.live, 0);
                break;
            }
            ck_assert_int_eq(rc, REVL_ERR_NOMEM);
            ck_assert_ptr_null(m);
            ck_assert_int_eq(cnt.live, 0);
        }
        ck_assert_int_ge(k, 5); /* the model really allocates several blocks */
    }
    revl_dataset_free(d);
}
END_TEST

START_TEST(test_alloc_failure_evaluate)
{
    revl_dataset *train = make_data(20, 5, 3, 130), *d = make_data(1500, 5, 3, 131);
    failing cnt = {.fail_at = -1};
    revl_allocator a = failing_allocator(&cnt);
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.allocator = &a;
    o.batch_size = 5;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 4, MLP_W, train, &o), REVL_OK);
    size_t p = revl_model_n_params(m);
    double *w = random_vec(p, 0.5, 0, 132), *g = malloc(p * sizeof *g), loss, acc;
    long live = cnt.live, k;
    for (k = 0;; k++) {
        cnt.calls = 0;
        cnt.fail_at = k;
        int rc = revl_model_evaluate(m, d, w, &loss, g, &acc);
        ck_assert_int_eq(cnt.live, live);
        if (rc == REVL_OK)
            break;
        ck_assert_int_eq(rc, REVL_ERR_NOMEM);
        ck_assert_ptr_nonnull(strstr(revl_model_last_error(m), "no memory"));
    }
    ck_assert_int_ge(k, 1);
    /* the handle still works after the failures */
    cnt.fail_at = -1;
    ck_assert_int_eq(revl_model_grad(m, 0, w, NULL, g, &loss), REVL_OK);
    ck_assert_int_eq(cnt.live, live); /* no allocation per step */
    revl_model_free(m);
    ck_assert_int_eq(cnt.live, 0);
    free(w);
    free(g);
    revl_dataset_free(train);
    revl_dataset_free(d);
}
END_TEST

/* No allocation in the per-step calls: grad, hvp and the fused call allocate nothing. */
START_TEST(test_no_alloc_per_step)
{
    revl_dataset *d = make_data(40, 5, 3, 140);
    failing cnt = {.fail_at = -1};
    revl_allocator a = failing_allocator(&cnt);
    revl_mlp_options o;
    revl_mlp_options_init(&o);
    o.allocator = &a;
    o.batch_size = 10;
    o.penalty = REVL_PENALTY_PER_LAYER;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 4, MLP_W, d, &o), REVL_OK);
    size_t p = revl_model_n_params(m);
    double *w = random_vec(p, 0.5, 0, 141), *v = random_vec(p, 1, 0, 142);
    double *g = malloc(p * sizeof *g), *h = malloc(p * sizeof *h), meta[3] = {0, -1, -2}, hm[3];
    long calls = cnt.calls;
    for (size_t step = 0; step < 20; step++) {
        ck_assert_int_eq(revl_model_grad(m, step, w, meta, g, NULL), REVL_OK);
        ck_assert_int_eq(revl_model_hvp(m, step, w, meta, v, h, hm), REVL_OK);
        ck_assert_int_eq(rv_model_hvp_grad(m, step, w, meta, v, g, h, hm), REVL_OK);
        ck_assert_int_eq(rv_model_hvp_affine(m, step, w, meta, v, w, g, h, hm), REVL_OK);
    }
    ck_assert_int_eq(cnt.calls, calls);
    revl_model_free(m);
    ck_assert_int_eq(cnt.live, 0);
    free(w);
    free(v);
    free(g);
    free(h);
    revl_dataset_free(d);
}
END_TEST

/* ---------------------------------------------------------------- with the trainer */

/* The point of bit-reproducible gradients: a minibatch MLP run reverses exactly. */
START_TEST(test_trainer_reverses_exactly)
{
    revl_dataset *d = make_data(60, 5, 3, 150);
    revl_model *m = make_mlp(4, MLP_W, d, REVL_ACT_TANH, REVL_PENALTY_PER_LAYER, 16, 4);
    size_t p = revl_model_n_params(m), G = revl_model_n_groups(m), off[7], T = 12;
    revl_model_group_offsets(m, off);
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, T, G, off), REVL_OK);
    ck_assert_int_eq(revl_schedule_fill(s, 0.3, 0.9), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double *w0 = random_vec(p, 0.3, 0, 151), *dfdw = random_vec(p, 1, 0, 152);
    double *dw0 = malloc(p * sizeof *dw0), meta[3] = {-3, -3, -3}, dmeta[3];
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    int rc = revl_trainer_hypergrad(t, dfdw, NULL, dw0, NULL, NULL, dmeta);
    ck_assert_msg(rc == REVL_OK, "hypergrad: %s", revl_trainer_last_error(t));
    ck_assert(isfinite(max_abs(dw0, p)) && isfinite(max_abs(dmeta, 3)));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(d);
    free(w0);
    free(dfdw);
    free(dw0);
}
END_TEST

/* f(w_T): validation loss after training from init scales `ls` (seed 7) with meta. */
static double trained_valid_loss(revl_trainer *t, revl_model *m, const revl_dataset *valid,
                                 const double *ls, const double *meta, double *w0, double *wT)
{
    ck_assert_int_eq(revl_model_init_weights(m, ls, 7, w0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    revl_trainer_weights(t, wT);
    double f;
    ck_assert_int_eq(revl_model_evaluate(m, valid, wT, &f, NULL, NULL), REVL_OK);
    return f;
}

#define CLOSE(fd, rev)                                                                     \
    ck_assert_msg(fabs((fd) - (rev)) <= 1e-6 * fmax(fabs(fd), fabs(rev)) + 1e-10,          \
                  "%s: finite difference %.12g, reverse %.12g", #rev, fd, rev)

START_TEST(test_hypergradients_against_whole_run_fd)
{
    /* Every hypergradient of a minibatch tanh MLP with per-layer L2 (alpha and gamma per step
     * and group, log init scales through the chain rule, the L2 meta) against central
     * differences of the validation loss through the whole training run. The differences'
     * truncation error is ~h^2 times third derivatives, ~1e-10 relative at h = 1e-5 (~1e-8 at
     * the 8/2^16 gamma step), and the fixed-point rounding is 2^-52 per step: 1e-6 relative
     * (1e-5 for gamma) leaves a wide margin, while a missing term is off by far more. */
    revl_dataset *d = make_data(48, 5, 3, 160), *valid = make_data(40, 5, 3, 161);
    revl_model *m = make_mlp(4, MLP_W, d, REVL_ACT_TANH, REVL_PENALTY_PER_LAYER, 16, 5);
    size_t p = revl_model_n_params(m), G = revl_model_n_groups(m), off[7], T = 10;
    revl_model_group_offsets(m, off);
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, T, G, off), REVL_OK);
    for (size_t t = 0; t < T; t++)
        for (size_t g = 0; g < G; g++)
            revl_schedule_set(s, t, g, 0.2 + 0.05 * (double)g, 0.5 + 0.03 * (double)t);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double ls[6] = {-1, -2, -1.2, -2, -1.5, -2}, meta[3] = {-3, -2.5, -4};
    double *w0 = malloc(p * 8), *wT = malloc(p * 8), *dfdw = malloc(p * 8), *dw0 = malloc(p * 8);
    double da[60], dg[60], dm[3], dls[6], f;
    ck_assert_int_eq(revl_model_init_weights(m, ls, 7, w0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, meta), REVL_OK);
    revl_trainer_weights(t, wT);
    ck_assert_int_eq(revl_model_evaluate(m, valid, wT, &f, dfdw, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, dw0, da, dg, dm), REVL_OK);
    ck_assert_int_eq(revl_model_init_scales_grad(m, w0, dw0, dls), REVL_OK);
    for (size_t k = 0; k < T * G; k += 7) {
        size_t step = k / G, g = k % G;
        double a0 = 0.2 + 0.05 * (double)g, g0 = revl_gamma_applied(0.5 + 0.03 * (double)step);
        double h = 1e-5, gh = 8.0 / 65536;
        revl_schedule_set(s, step, g, a0 + h, g0);
        double fp = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        revl_schedule_set(s, step, g, a0 - h, g0);
        double fm = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        revl_schedule_set(s, step, g, a0, g0 + gh);
        double gp = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        revl_schedule_set(s, step, g, a0, g0 - gh);
        double gm = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        revl_schedule_set(s, step, g, a0, 0.5 + 0.03 * (double)step);
        CLOSE((fp - fm) / (2 * h), da[k]);
        ck_assert_msg(fabs((gp - gm) / (2 * gh) - dg[k]) <= 1e-5 * fmax(fabs(dg[k]), 1e-3),
                      "d_gamma[%zu]: finite difference %.12g, reverse %.12g", k,
                      (gp - gm) / (2 * gh), dg[k]);
    }
    for (size_t g = 0; g < G; g++) {
        double h = 1e-5, l0 = ls[g];
        ls[g] = l0 + h;
        double fp = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        ls[g] = l0 - h;
        double fm = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        ls[g] = l0;
        CLOSE((fp - fm) / (2 * h), dls[g]);
    }
    for (size_t j = 0; j < 3; j++) {
        double h = 1e-5, m0 = meta[j];
        meta[j] = m0 + h;
        double fp = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        meta[j] = m0 - h;
        double fm = trained_valid_loss(t, m, valid, ls, meta, w0, wT);
        meta[j] = m0;
        CLOSE((fp - fm) / (2 * h), dm[j]);
    }
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(d);
    revl_dataset_free(valid);
    free(w0);
    free(wT);
    free(dfdw);
    free(dw0);
}
END_TEST

static Suite *mlp_suite(void)
{
    Suite *s = suite_create("mlp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_options_defaults);
    tcase_add_test(tc, test_layout_and_groups);
    tcase_add_test(tc, test_loss_matches_reference);
    tcase_add_test(tc, test_softmax_stable);
    /* 2 architectures x 3 activations x 3 penalties */
    tcase_add_loop_test(tc, test_grad_fd, 0, 18);
    tcase_add_loop_test(tc, test_hvp_fd, 0, 18);
    tcase_add_loop_test(tc, test_fused_bit_identical, 0, 18);
    tcase_add_loop_test(tc, test_hvp_affine, 0, 18);
    tcase_add_test(tc, test_hvp_affine_callback_model);
    tcase_add_test(tc, test_train_changed_fails);
    tcase_add_test(tc, test_two_handles_same_bits);
    tcase_add_test(tc, test_minibatch_rule);
    tcase_add_test(tc, test_minibatch_seed_and_full_batch);
    tcase_add_test(tc, test_minibatch_loss_matches_reference);
    tcase_add_test(tc, test_evaluate);
    tcase_add_test(tc, test_evaluate_bad_data);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_blas_threads);
    tcase_add_test(tc, test_alloc_failure_create);
    tcase_add_test(tc, test_alloc_failure_evaluate);
    tcase_add_test(tc, test_no_alloc_per_step);
    tcase_add_test(tc, test_trainer_reverses_exactly);
    tcase_add_test(tc, test_hypergradients_against_whole_run_fd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mlp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
