/* bench_mlp_floor.c: the built-in MLP against its floor (mlp_floor.h): one gradient and one
 * fused gradient + Hessian-vector product of the paper's network, 784-50-50-50-10 tanh (and
 * logistic, ReLU), batch 200, float64, on 10,000 Fashion-MNIST examples, next to exactly the
 * dense products each must do with the same BLAS. Best of many calls, interleaved round by round
 * so that a change of machine load hits every side alike; every figure is also printed as a
 * ratio to its floor. Usage: bench_mlp_floor [rounds] (default 300). Threads: as
 * OPENBLAS_NUM_THREADS says (make bench runs it with 1). */
#include <string.h>

#include "mlp_floor.h"

enum { N_SIDES = 4 };

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 300;
    if (rounds < 1)
        rounds = 1;
    revl_dataset *train = bench_fashion_mnist("bench_mlp_floor", 10000);
    static const size_t widths[5] = {784, 50, 50, 50, 10};
    const size_t batch = 200;
    mlp_floor f;
    mlp_floor_init(&f, 5, widths, batch);
    const char *ob = getenv("OPENBLAS_NUM_THREADS");
    printf("MLP 784-50-50-50-10, batch 200, 10,000 Fashion-MNIST, float64, L2 per layer; "
           "OPENBLAS_NUM_THREADS=%s; best of %d, ms per call\n", ob ? ob : "(unset)", rounds);
    printf("%-9s | %9s %9s %9s | %9s %9s %9s\n", "act", "floor g", "grad", "grad/fl", "floor gH",
           "grad+H v", "gH/fl");
    static const revl_activation acts[3] = {REVL_ACT_TANH, REVL_ACT_LOGISTIC, REVL_ACT_RELU};
    static const char *names[3] = {"tanh", "logistic", "relu"};
    for (int a = 0; a < 3; a++) {
        revl_mlp_options mo;
        revl_mlp_options_init(&mo);
        mo.batch_size = batch;
        mo.activation = acts[a];
        mo.penalty = REVL_PENALTY_PER_LAYER;
        revl_model *m = NULL;
        bench_check(revl_mlp_create(&m, 5, widths, train, &mo), "revl_mlp_create", "");
        size_t p = revl_model_n_params(m), ng = revl_model_n_groups(m);
        double *w = malloc(p * sizeof *w), *v = malloc(p * sizeof *v), *g = malloc(p * sizeof *g);
        double *hv = malloc(p * sizeof *hv), *scales = malloc(ng * sizeof *scales);
        double meta[4] = {-6, -6, -6, -6}, hm[4];
        for (size_t k = 0; k < ng; k++)
            scales[k] = -2;
        revl_model_init_weights(m, scales, 1, w);
        revl_model_init_weights(m, scales, 2, v);
        double best[N_SIDES];
        for (int s = 0; s < N_SIDES; s++)
            best[s] = 1e30;
        for (int r = 0; r < rounds; r++) {
            size_t step = (size_t)r % 50; /* a new minibatch every call, as in training */
            for (int s = 0; s < N_SIDES; s++) {
                double t0 = bench_now();
                if (s == 0)
                    mlp_floor_grad(&f);
                else if (s == 1)
                    bench_check(revl_model_grad(m, step, w, meta, g, NULL), "grad",
                                revl_model_last_error(m));
                else if (s == 2)
                    mlp_floor_fused(&f);
                else
                    bench_check(revl_model_hvp(m, step, w, meta, v, hv, hm), "hvp",
                                revl_model_last_error(m));
                double dt = bench_now() - t0;
                best[s] = dt < best[s] ? dt : best[s];
            }
        }
        printf("%-9s | %9.3f %9.3f %9.2f | %9.3f %9.3f %9.2f\n", names[a], 1e3 * best[0],
               1e3 * best[1], best[1] / best[0], 1e3 * best[2], 1e3 * best[3],
               best[3] / best[2]);
        free(w);
        free(v);
        free(g);
        free(hv);
        free(scales);
        revl_model_free(m);
    }
    mlp_floor_free(&f);
    revl_dataset_free(train);
    return 0;
}
