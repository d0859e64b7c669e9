/* mlp_floor.h: the floor of the built-in MLP's work: exactly the dense products (cblas_dgemm,
 * same shapes, same transposes, same BLAS) that one gradient, and one fused gradient + R-operator
 * Hessian-vector product, of an MLP with these widths must do over `rows` examples, and nothing
 * else (no activation, softmax, bias or copy). The model cannot be faster than this with the same
 * BLAS; the benchmarks report the model's times as ratios to it, measured in the same run. */
#ifndef REVL_BENCH_MLP_FLOOR_H
#define REVL_BENCH_MLP_FLOOR_H

#include <cblas.h>
#include <stdlib.h>

#include "bench_util.h"

/* The paper's network as the benches train it: 784-50-50-50-10, batch 200, one log L2 penalty
 * per layer (the rest revl_mlp_options_init's defaults). */
static const size_t bench_paper_widths[5] = {784, 50, 50, 50, 10};
static inline revl_mlp_options bench_paper_options(void)
{
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 200;
    mo.penalty = REVL_PENALTY_PER_LAYER;
    return mo;
}

/* The first n Fashion-MNIST training examples (Debian's dataset-fashion-mnist), or exit 1 with
 * a message naming the program. */
static inline revl_dataset *bench_fashion_mnist(const char *prog, size_t n)
{
    const char *dir = "/usr/share/datasets/fashion-mnist/";
    char images[256], labels[256];
    snprintf(images, sizeof images, "%strain-images-idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%strain-labels-idx1-ubyte.gz", dir);
    revl_dataset *d = NULL;
    int rc = revl_dataset_create(&d, NULL);
    if (!rc)
        rc = revl_dataset_load_idx(d, images, labels, n);
    if (rc) {
        printf("%s: Fashion-MNIST not available (%s); install dataset-fashion-mnist\n", prog,
               d ? revl_dataset_last_error(d) : "");
        exit(1);
    }
    return d;
}

/* Buffers with the model's shapes; a[k], b[k], c[k] are rows x widths[k] (k = 0 is the input),
 * W[l], V[l] are widths[l] x widths[l+1]. Contents are arbitrary but finite. */
typedef struct mlp_floor {
    size_t L, rows;
    const size_t *widths;
    double *a[8], *b[8], *c[8], *W[8], *V[8], *G[8];
} mlp_floor;

static inline void mlp_floor_init(mlp_floor *f, size_t n_widths, const size_t *widths, size_t rows)
{
    if (n_widths > 8) {
        fprintf(stderr, "mlp_floor: at most 8 widths\n");
        exit(1);
    }
    f->L = n_widths - 1;
    f->rows = rows;
    f->widths = widths;
    uint64_t s = 1;
    for (size_t k = 0; k < n_widths; k++) {
        size_t n = rows * widths[k], nw = k < f->L ? widths[k] * widths[k + 1] : 1;
        double **bufs[6] = {&f->a[k], &f->b[k], &f->c[k], &f->W[k], &f->V[k], &f->G[k]};
        for (int j = 0; j < 6; j++) {
            size_t len = j < 3 ? n : nw;
            double *p = malloc(len * sizeof *p);
            if (!p) {
                fprintf(stderr, "mlp_floor: no memory\n");
                exit(1);
            }
            for (size_t i = 0; i < len; i++) {
                s = s * 6364136223846793005u + 1442695040888963407u;
                p[i] = (double)(s >> 11) * 0x1p-53 - 0.5;
            }
            *bufs[j] = p;
        }
    }
}

static inline void mlp_floor_free(mlp_floor *f)
{
    for (size_t k = 0; k <= f->L; k++) {
        free(f->a[k]);
        free(f->b[k]);
        free(f->c[k]);
        free(f->W[k]);
        free(f->V[k]);
        free(f->G[k]);
    }
}

/* C (m x n) = op(A) op(B) + beta C, row-major, with the model's leading dimensions */
static inline void floor_gemm(int ta, int tb, size_t m, size_t n, size_t k, const double *A,
                              const double *B, double beta, double *C)
{
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0, A, ta ? (int)m : (int)k, B, tb ? (int)k : (int)n,
                beta, C, (int)n);
}

/* One gradient: forward z_{l+1} = h_l W_l; backward dW_l = h_l^T dz_{l+1}, dh_l = dz_{l+1} W_l^T */
static inline void mlp_floor_grad(mlp_floor *f)
{
    size_t L = f->L, R = f->rows;
    const size_t *n = f->widths;
    for (size_t l = 0; l < L; l++)
        floor_gemm(0, 0, R, n[l + 1], n[l], f->a[l], f->W[l], 1.0, f->a[l + 1]);
    for (size_t l = L; l-- > 0;) {
        floor_gemm(1, 0, n[l], n[l + 1], R, f->a[l], f->b[l + 1], 0.0, f->G[l]);
        if (l)
            floor_gemm(0, 1, R, n[l], n[l + 1], f->b[l + 1], f->W[l], 0.0, f->b[l]);
    }
}

/* One fused gradient + H v: the gradient's products, then the R-operator's: forward
 * R{z_{l+1}} = h_l V_l (+ R{h_l} W_l for l > 0); backward R{dW_l} = h_l^T R{dz_{l+1}}
 * (+ R{h_l}^T dz_{l+1}), R{dh_l} = R{dz_{l+1}} W_l^T + dz_{l+1} V_l^T for l > 0. */
static inline void mlp_floor_fused(mlp_floor *f)
{
    size_t L = f->L, R = f->rows;
    const size_t *n = f->widths;
    mlp_floor_grad(f);
    for (size_t l = 0; l < L; l++) {
        floor_gemm(0, 0, R, n[l + 1], n[l], f->a[l], f->V[l], 1.0, f->c[l + 1]);
        if (l)
            floor_gemm(0, 0, R, n[l + 1], n[l], f->c[l], f->W[l], 1.0, f->c[l + 1]);
    }
    for (size_t l = L; l-- > 0;) {
        floor_gemm(1, 0, n[l], n[l + 1], R, f->a[l], f->c[l + 1], 0.0, f->G[l]);
        if (l == 0)
            break;
        floor_gemm(1, 0, n[l], n[l + 1], R, f->c[l], f->b[l + 1], 1.0, f->G[l]);
        floor_gemm(0, 1, R, n[l], n[l + 1], f->c[l + 1], f->W[l], 0.0, f->c[l]);
        floor_gemm(0, 1, R, n[l], n[l + 1], f->b[l + 1], f->V[l], 1.0, f->c[l]);
    }
}

#endif
