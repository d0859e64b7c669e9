/* mlp_pass.c: the MLP's passes over a block of examples: forward with softmax cross-entropy,
 * backward for the gradient, and Pearlmutter's R-operator (forward then backward) for an exact
 * Hessian-vector product. Every dense product is one cblas_dgemm over the whole block. */
#include "models/mlp.h"

#include "base/vmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* bufs[k] for first <= k < end: consecutive rows x widths[k] blocks taken from *next */
static void carve(double **bufs, size_t first, size_t end, const size_t *widths, size_t rows,
                  double **next)
{
    for (size_t k = first; k < end; k++) {
        bufs[k] = *next;
        *next += rows * widths[k];
    }
}

int rv_mlp_work_init(rv_mlp_work *ws, const revl_allocator *a, size_t n_layers,
                     const size_t *widths, size_t rows, int with_r)
{
    memset(ws, 0, sizeof *ws);
    size_t L = n_layers, hidden = 0, units = 0;
    for (size_t k = 1; k < L; k++)
        hidden += widths[k];
    units = hidden + widths[L];
    /* h and p: hidden + out; dz: units; with R: rz, rh: 2 hidden, rdz: units */
    size_t per_row = hidden + widths[L] + units + (with_r ? 2 * hidden + units : 0);
    int ok = 1;
    size_t n = rv_mul_size(per_row, rows, &ok);
    if (!ok)
        return REVL_ERR_NOMEM;
    ws->ptrs = rv_calloc(a, 5 * (L + 1), sizeof *ws->ptrs);
    ws->data = rv_calloc(a, n, sizeof *ws->data);
    if (!ws->ptrs || !ws->data) {
        rv_mlp_work_destroy(ws, a);
        return REVL_ERR_NOMEM;
    }
    ws->rows = rows;
    ws->h = ws->ptrs;
    ws->dz = ws->ptrs + (L + 1);
    double *next = ws->data;
    carve(ws->h, 1, L, widths, rows, &next);
    ws->p = next;
    next += rows * widths[L];
    carve(ws->dz, 1, L + 1, widths, rows, &next);
    if (with_r) {
        ws->rz = ws->ptrs + 2 * (L + 1);
        ws->rh = ws->ptrs + 3 * (L + 1);
        ws->rdz = ws->ptrs + 4 * (L + 1);
        carve(ws->rz, 1, L, widths, rows, &next);
        carve(ws->rh, 1, L, widths, rows, &next);
        carve(ws->rdz, 1, L + 1, widths, rows, &next);
    }
    return REVL_OK;
}

void rv_mlp_work_destroy(rv_mlp_work *ws, const revl_allocator *a)
{
    rv_free(a, ws->ptrs);
    rv_free(a, ws->data);
    memset(ws, 0, sizeof *ws);
}

/* Each row of out[rows][n] starts as the bias, so that the product is added with beta = 1. */
static void fill_rows(double *out, const double *bias, size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(out + r * n, bias, n * sizeof *bias);
}

/* out[n] = sum over rows of d[rows][n], row by row (a fixed order, so the same bits every time) */
static void column_sums(const double *d, size_t rows, size_t n, double *out, int accumulate)
{
    if (!accumulate)
        memset(out, 0, n * sizeof *out);
    rv_vcolumn_sums(d, rows, n, out);
}

/* from vmath.h: vectorised, and the same bits on every call */
static void activate(revl_activation act, double *z, size_t count)
{
    switch (act) {
    case REVL_ACT_TANH:
        rv_vtanh(z, count);
        break;
    case REVL_ACT_RELU:
        rv_vrelu(z, count);
        break;
    case REVL_ACT_LOGISTIC:
        rv_vlogistic(z, count);
        break;
    }
}

/* out[i] = d[i] * act'(z_i), written through the activation h_i = act(z_i), which is what is
 * kept; out may be d. One pass, so the R-pass needs no copy before it. */
static void times_slope(revl_activation act, const double *h, const double *d, double *out,
                        size_t count)
{
    switch (act) {
    case REVL_ACT_TANH:
        rv_vslope_tanh(h, d, out, count);
        break;
    case REVL_ACT_RELU:
        rv_vslope_relu(h, d, out, count);
        break;
    case REVL_ACT_LOGISTIC:
        rv_vslope_logistic(h, d, out, count);
        break;
    }
}

double rv_mlp_forward(const rv_mlp *m, const double *w, const double *x, const int32_t *y,
                      size_t rows, rv_mlp_work *ws)
{
    size_t L = m->n_layers;
    const double *in = x;
    for (size_t l = 0; l < L; l++) {
        size_t n_in = m->widths[l], n_out = m->widths[l + 1];
        const double *W = w + m->offsets[2 * l], *b = w + m->offsets[2 * l + 1];
        double *out = l + 1 < L ? ws->h[l + 1] : ws->p;
        fill_rows(out, b, rows, n_out);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n_out, (int)n_in,
                    1.0, in, (int)n_in, W, (int)n_out, 1.0, out, (int)n_out);
        if (l + 1 < L)
            activate(m->act, out, rows * n_out);
        in = out;
    }
    /* softmax in place; the loss is log-sum-exp minus the label's logit, shifted by the row's
     * maximum so that neither overflows; one vectorised exp over the whole block */
    size_t K = m->widths[L];
    double total = 0;
    for (size_t r = 0; r < rows; r++) {
        double *z = ws->p + r * K;
        double zmax = z[0];
        for (size_t j = 1; j < K; j++)
            zmax = z[j] > zmax ? z[j] : zmax;
        for (size_t j = 0; j < K; j++)
            z[j] -= zmax;
        total -= z[y[r]];
    }
    rv_vexp(ws->p, rows * K);
    for (size_t r = 0; r < rows; r++) {
        double *z = ws->p + r * K, s = 0;
        for (size_t j = 0; j < K; j++)
            s += z[j];
        for (size_t j = 0; j < K; j++)
            z[j] /= s;
        total += log(s);
    }
    return total;
}

void rv_mlp_backward(const rv_mlp *m, const double *w, const double *x, const int32_t *y,
                     size_t rows, double scale, int accumulate, rv_mlp_work *ws, double *grad)
{
    size_t L = m->n_layers, K = m->widths[L];
    double *d = ws->dz[L];
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < K; j++)
            d[r * K + j] = ws->p[r * K + j] * scale;
        d[r * K + (size_t)y[r]] -= scale;
    }
    for (size_t l = L; l-- > 0;) {
        size_t n_in = m->widths[l], n_out = m->widths[l + 1];
        const double *in = l ? ws->h[l] : x;
        const double *W = w + m->offsets[2 * l];
        double *gW = grad + m->offsets[2 * l], *gb = grad + m->offsets[2 * l + 1];
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_in, (int)n_out, (int)rows,
                    1.0, in, (int)n_in, ws->dz[l + 1], (int)n_out, accumulate ? 1.0 : 0.0, gW,
                    (int)n_out);
        column_sums(ws->dz[l + 1], rows, n_out, gb, accumulate);
        if (l == 0)
            break;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_in, (int)n_out,
                    1.0, ws->dz[l + 1], (int)n_out, W, (int)n_out, 0.0, ws->dz[l], (int)n_in);
        times_slope(m->act, ws->h[l], ws->dz[l], ws->dz[l], rows * n_in);
    }
}

/* R{dz} = R{dh} * act' + dh * act'' * R{z}. With c = act''/act' as a function of the activation
 * (tanh: -2h, logistic: 1 - 2h, ReLU: 0 almost everywhere), dh * act'' = dz * c, which needs no
 * division and stays right where act' = 0 (there act'' = 0 too). */
static void r_slope(revl_activation act, const double *h, const double *dz, const double *rz,
                    double *rd, size_t count)
{
    switch (act) {
    case REVL_ACT_TANH:
        rv_vr_slope_tanh(h, dz, rz, rd, count);
        break;
    case REVL_ACT_RELU:
        rv_vr_slope_relu(h, dz, rz, rd, count);
        break;
    case REVL_ACT_LOGISTIC:
        rv_vr_slope_logistic(h, dz, rz, rd, count);
        break;
    }
}

void rv_mlp_r_pass(const rv_mlp *m, const double *w, const double *v, const double *x,
                   size_t rows, double scale, rv_mlp_work *ws, double *hv)
{
    size_t L = m->n_layers, K = m->widths[L];
    /* forward: R{z_{l+1}} = R{h_l} W_l + h_l V_l + 1 Vb_l^T, with R{h_0} = 0 */
    for (size_t l = 0; l < L; l++) {
        size_t n_in = m->widths[l], n_out = m->widths[l + 1];
        const double *in = l ? ws->h[l] : x;
        const double *W = w + m->offsets[2 * l];
        const double *V = v + m->offsets[2 * l], *Vb = v + m->offsets[2 * l + 1];
        double *out = l + 1 < L ? ws->rz[l + 1] : ws->rdz[L];
        fill_rows(out, Vb, rows, n_out);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n_out, (int)n_in,
                    1.0, in, (int)n_in, V, (int)n_out, 1.0, out, (int)n_out);
        if (l)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n_out,
                        (int)n_in, 1.0, ws->rh[l], (int)n_in, W, (int)n_out, 1.0, out,
                        (int)n_out);
        if (l + 1 < L)
            times_slope(m->act, ws->h[l + 1], out, ws->rh[l + 1], rows * n_out);
    }
    /* softmax: R{p} = p * (R{z} - p . R{z}); R{dz_L} = scale * R{p} */
    for (size_t r = 0; r < rows; r++) {
        const double *p = ws->p + r * K;
        double *rd = ws->rdz[L] + r * K;
        double dot = 0;
        for (size_t j = 0; j < K; j++)
            dot += p[j] * rd[j];
        for (size_t j = 0; j < K; j++)
            rd[j] = scale * (p[j] * (rd[j] - dot));
    }
    /* backward: R{dW_l} = h_l^T R{dz_{l+1}} + R{h_l}^T dz_{l+1};
     *           R{dh_l} = R{dz_{l+1}} W_l^T + dz_{l+1} V_l^T */
    for (size_t l = L; l-- > 0;) {
        size_t n_in = m->widths[l], n_out = m->widths[l + 1];
        const double *in = l ? ws->h[l] : x;
        const double *W = w + m->offsets[2 * l], *V = v + m->offsets[2 * l];
        double *hW = hv + m->offsets[2 * l], *hb = hv + m->offsets[2 * l + 1];
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_in, (int)n_out, (int)rows,
                    1.0, in, (int)n_in, ws->rdz[l + 1], (int)n_out, 0.0, hW, (int)n_out);
        column_sums(ws->rdz[l + 1], rows, n_out, hb, 0);
        if (l == 0)
            break;
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_in, (int)n_out, (int)rows,
                    1.0, ws->rh[l], (int)n_in, ws->dz[l + 1], (int)n_out, 1.0, hW, (int)n_out);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_in, (int)n_out,
                    1.0, ws->rdz[l + 1], (int)n_out, W, (int)n_out, 0.0, ws->rdz[l], (int)n_in);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_in, (int)n_out,
                    1.0, ws->dz[l + 1], (int)n_out, V, (int)n_out, 1.0, ws->rdz[l], (int)n_in);
        r_slope(m->act, ws->h[l], ws->dz[l], ws->rz[l], ws->rdz[l], rows * n_in);
    }
}
