/* quickstart.c: the smallest complete use of revl. A model given as callbacks (a noisy
 * quadratic bowl), 50 steps of exact momentum SGD, the exact reverse pass, and the
 * hypergradient of a validation loss with respect to every step's learning rate and momentum.
 * Build: cc quickstart.c $(pkg-config --cflags --libs revl) -lm */
#include <math.h>
#include <stdio.h>

#include "revl.h"

#define P 4
#define T 50

/* Training loss at step t: 0.5 * sum_i c_i (w_i - 1)^2, with curvature c_i = i + 1. */
static int grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                void *user)
{
    double l = 0;
    for (int i = 0; i < P; i++) {
        g[i] = (i + 1) * (w[i] - 1.0);
        l += 0.5 * (i + 1) * (w[i] - 1.0) * (w[i] - 1.0);
    }
    if (loss)
        *loss = l;
    return 0;
}

/* Its Hessian is diagonal and constant: H v = c * v. No meta-parameters, so hv_meta is NULL. */
static int hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
               double *hv, double *hv_meta, void *user)
{
    for (int i = 0; i < P; i++)
        hv[i] = (i + 1) * v[i];
    return 0;
}

static int check(int rc, const char *what, const char *msg)
{
    if (rc != REVL_OK)
        fprintf(stderr, "quickstart: %s failed: %s (%s)\n", what, revl_strerror(rc), msg);
    return rc != REVL_OK;
}

int main(void)
{
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = P;
    def.grad = grad;
    def.hvp = hvp;
    revl_model *model = NULL;
    if (check(revl_model_create(&model, &def), "model", ""))
        return 1;

    size_t offsets[2] = {0, P}; /* one group: every parameter shares alpha and gamma */
    revl_schedule *sched = NULL;
    if (check(revl_schedule_create(&sched, T, 1, offsets), "schedule", ""))
        return 1;
    revl_schedule_fill(sched, 0.05, 0.9);

    revl_trainer *tr = NULL;
    if (check(revl_trainer_create(&tr, model, sched, NULL), "trainer", ""))
        return 1;
    double w0[P] = {0, 0, 0, 0}, w[P], dfdw[P], d_w0[P], d_alpha[T], d_gamma[T];
    if (check(revl_trainer_train(tr, w0, NULL), "train", revl_trainer_last_error(tr)))
        return 1;

    /* validation loss f(w) = 0.5 |w - 1.1|^2 and its gradient at w_T */
    revl_trainer_weights(tr, w);
    double f = 0;
    for (int i = 0; i < P; i++) {
        dfdw[i] = w[i] - 1.1;
        f += 0.5 * dfdw[i] * dfdw[i];
    }
    if (check(revl_trainer_hypergrad(tr, dfdw, NULL, d_w0, d_alpha, d_gamma, NULL), "hypergrad",
              revl_trainer_last_error(tr)))
        return 1; /* REVL_ERR_INEXACT would mean the walk back did not return to w0 */

    revl_trainer_stats st = {.struct_size = sizeof st};
    revl_trainer_get_stats(tr, &st);
    printf("revl %s: validation loss %.6f after %d steps\n", revl_version_string(), f, T);
    printf("reversed exactly to w0; peak memory %zu bytes\n", st.peak_bytes);
    printf("df/dalpha at steps 0, 25, 49: %+.5f %+.5f %+.5f\n", d_alpha[0], d_alpha[25], d_alpha[49]);
    printf("df/dgamma at steps 0, 25, 49: %+.5f %+.5f %+.5f\n", d_gamma[0], d_gamma[25], d_gamma[49]);
    printf("df/dw0: %+.5f %+.5f %+.5f %+.5f\n", d_w0[0], d_w0[1], d_w0[2], d_w0[3]);

    revl_trainer_free(tr);
    revl_schedule_free(sched);
    revl_model_free(model);
    return 0;
}
