/* check_pinned.c: momentum SGD's results on one fixed problem, pinned to the bits the library
 * gave before the optimiser interface existed (revl 0.1, commit 737ecf8). The optimiser
 * refactor must not change a bit of w_T, the information buffer or any hypergradient; a later
 * intended change of momentum's arithmetic must update these constants on purpose. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "revl.h"

#define P 5000 /* two coder blocks */
#define T 60
#define G 3

/* recorded with the code of commit 737ecf8 (before the optimiser interface) */
#define PIN_W 0x58f24013e6538834ULL
#define PIN_BITS 0xdb9f1ee06bbe41f3ULL /* 136626.51243453083 bits */
#define PIN_DW0 0x278fcc6df522dee3ULL
#define PIN_DALPHA 0x14810f233cb52fe1ULL
#define PIN_DGAMMA 0x98413f8b5e0d788aULL
#define PIN_DMETA 0x730e7e314523659eULL /* -547.33866927111046 */

/* L = sum_i a_i/2 (w_i - c_i - s_t)^2 + 0.3 sin(w_i) + exp(meta0)/2 w_i^2 */
static double coef_a(size_t i) { return 0.5 + 1.5 * (double)((i * 7 + 3) % 11) / 10.0; }
static double coef_c(size_t i) { return (double)((i * 3 + 1) % 5) - 2.0; }
static double shift(size_t step) { return 0.05 * (double)(step % 3); }

static int pin_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                    void *user)
{
    double lam = exp(meta[0]), l = 0;
    for (size_t i = 0; i < P; i++) {
        double d = w[i] - coef_c(i) - shift(step);
        g[i] = coef_a(i) * d + 0.3 * cos(w[i]) + lam * w[i];
        l += 0.5 * coef_a(i) * d * d + 0.3 * sin(w[i]) + 0.5 * lam * w[i] * w[i];
    }
    if (loss)
        *loss = l;
    return 0;
}

static int pin_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
                   double *hv, double *hm, void *user)
{
    double lam = exp(meta[0]), wv = 0;
    for (size_t i = 0; i < P; i++) {
        hv[i] = (coef_a(i) - 0.3 * sin(w[i]) + lam) * v[i];
        wv += w[i] * v[i];
    }
    hm[0] = lam * wv;
    return 0;
}

/* FNV-1a over the bits of n doubles */
static uint64_t hash_doubles(const double *x, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; k < n; k++) {
        uint64_t b;
        memcpy(&b, &x[k], 8);
        for (int j = 0; j < 8; j++) {
            h ^= (b >> (8 * j)) & 0xff;
            h *= 1099511628211ULL;
        }
    }
    return h;
}

START_TEST(test_momentum_pinned)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = P;
    d.n_meta = 1;
    d.grad = pin_grad;
    d.hvp = pin_hvp;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    size_t off[G + 1] = {0, 1000, 4500, P};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, T, G, off), REVL_OK);
    for (size_t t = 0; t < T; t++)
        for (size_t g = 0; g < G; g++)
            ck_assert_int_eq(revl_schedule_set(s, t, g, 0.02 + 0.001 * (double)((t * 5 + g) % 7),
                                               0.5 + 0.49 * (double)((t + 2 * g) % 9) / 8.0),
                             REVL_OK);
    revl_trainer *tr = NULL;
    ck_assert_int_eq(revl_trainer_create(&tr, m, s, NULL), REVL_OK);
    static double w0[P], wT[P], dfdw[P], dw0[P];
    double meta[1] = {-1.5}, dal[T * G], dga[T * G], dme[1];
    for (size_t i = 0; i < P; i++)
        w0[i] = 0.1 * sin((double)i);
    ck_assert_int_eq(revl_trainer_train(tr, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(tr, wT), REVL_OK);
    revl_trainer_stats st = {.struct_size = sizeof st};
    ck_assert_int_eq(revl_trainer_get_stats(tr, &st), REVL_OK);
    for (size_t i = 0; i < P; i++)
        dfdw[i] = wT[i] - 0.5;
    ck_assert_int_eq(revl_trainer_hypergrad(tr, dfdw, NULL, dw0, dal, dga, dme), REVL_OK);
    uint64_t h_w = hash_doubles(wT, P), h_bits = hash_doubles(&st.buffer_bits, 1);
    uint64_t h_dw0 = hash_doubles(dw0, P), h_dal = hash_doubles(dal, T * G);
    uint64_t h_dga = hash_doubles(dga, T * G), h_dme = hash_doubles(dme, 1);
    printf("pinned: w_T %016llx bits %016llx (%.17g) d_w0 %016llx d_alpha %016llx d_gamma %016llx "
           "d_meta %016llx (%.17g)\n",
           (unsigned long long)h_w, (unsigned long long)h_bits, st.buffer_bits,
           (unsigned long long)h_dw0, (unsigned long long)h_dal, (unsigned long long)h_dga,
           (unsigned long long)h_dme, dme[0]);
    ck_assert_uint_eq(h_w, PIN_W);
    ck_assert_uint_eq(h_bits, PIN_BITS);
    ck_assert_uint_eq(h_dw0, PIN_DW0);
    ck_assert_uint_eq(h_dal, PIN_DALPHA);
    ck_assert_uint_eq(h_dga, PIN_DGAMMA);
    ck_assert_uint_eq(h_dme, PIN_DMETA);
    revl_trainer_free(tr);
    revl_schedule_free(s);
    revl_model_free(m);
}
END_TEST

/* Momentum and RMSprop on the same problem (other rates), pinned to the bits of the code before
 * weight decay became their kind (commit 7c04af6): the hashes of w_T, the buffer, d_w0, d_meta
 * and the hypergradients of the kinds they had then. weight_decay = 0, by default or set, must
 * give these bits. */
static const struct {
    revl_optimizer opt;
    uint64_t pin[5]; /* w_T, buffer bits, d_w0, d_meta, the kinds' hypergradients */
} pins[] = {
    {REVL_OPTIM_RMSPROP, {0x67e1a4c04e8028ddULL, 0x97461a17af1809e8ULL, 0x4069b209768524c5ULL,
                          0x975138d3cfcb0a19ULL, 0x35f51b277d1e2306ULL}},
    {REVL_OPTIM_MOMENTUM, {0xf69a892afa20f75dULL, 0xcfc1d4e2622564a1ULL, 0x1a3cdb3bed5e7337ULL,
                           0x474c463c3f9d9760ULL, 0x2e1ddfe388dbcaa6ULL}},
};

static void pinned_run(revl_optimizer opt, int set_lambda0, uint64_t out[5])
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = P;
    d.n_meta = 1;
    d.grad = pin_grad;
    d.hvp = pin_hvp;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    size_t off[G + 1] = {0, 1000, 4500, P};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, T, G, off, NULL), REVL_OK);
    static double v[T * G];
    for (size_t k = 0; k < T * G; k++)
        v[k] = 0.002 + 0.0005 * (double)((k * 5) % 7);
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_ALPHA, v), REVL_OK);
    for (size_t k = 0; k < T * G; k++)
        v[k] = 0.5 + 0.49 * (double)((k / G + 2 * (k % G)) % 9) / 8.0;
    ck_assert_int_eq(revl_schedule_set_kind(s, REVL_HYPER_GAMMA, v), REVL_OK);
    if (set_lambda0)
        ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_WEIGHT_DECAY, 0.0), REVL_OK);
    revl_trainer *tr = NULL;
    ck_assert_int_eq(revl_trainer_create(&tr, m, s, NULL), REVL_OK);
    static double w0[P], wT[P], dfdw[P], dw0[P], dk[REVL_HYPER_COUNT][T * G];
    double meta[1] = {-1.5}, dme[1];
    for (size_t i = 0; i < P; i++)
        w0[i] = 0.1 * sin((double)i);
    ck_assert_int_eq(revl_trainer_train(tr, w0, meta), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(tr, wT), REVL_OK);
    revl_trainer_stats st = {.struct_size = sizeof st};
    ck_assert_int_eq(revl_trainer_get_stats(tr, &st), REVL_OK);
    for (size_t i = 0; i < P; i++)
        dfdw[i] = wT[i] - 0.5;
    revl_hyper kinds[REVL_HYPER_COUNT];
    size_t nk = revl_schedule_kinds(s, kinds);
    double *dkp[REVL_HYPER_COUNT] = {0};
    for (size_t k = 0; k < nk; k++)
        dkp[kinds[k]] = dk[kinds[k]];
    ck_assert_int_eq(revl_trainer_hypergrad_kinds_n(tr, dfdw, NULL, dw0, REVL_HYPER_COUNT, dkp, dme),
                     REVL_OK);
    out[0] = hash_doubles(wT, P);
    out[1] = hash_doubles(&st.buffer_bits, 1);
    out[2] = hash_doubles(dw0, P);
    out[3] = hash_doubles(dme, 1);
    out[4] = 1469598103934665603ULL;
    for (size_t k = 0; k < nk; k++) /* the kinds the unmodified code had */
        if (kinds[k] != REVL_HYPER_WEIGHT_DECAY)
            out[4] = out[4] * 31 + hash_doubles(dk[kinds[k]], T * G);
    printf("pinned %s: w_T %016llx bits %016llx d_w0 %016llx d_meta %016llx kinds %016llx\n",
           revl_optimizer_name(opt), (unsigned long long)out[0], (unsigned long long)out[1],
           (unsigned long long)out[2], (unsigned long long)out[3], (unsigned long long)out[4]);
    revl_trainer_free(tr);
    revl_schedule_free(s);
    revl_model_free(m);
}

/* _i: optimiser _i / 2, weight_decay left at its default (even _i) or set to 0 (odd) */
START_TEST(test_lambda0_pinned)
{
    uint64_t h[5];
    pinned_run(pins[_i / 2].opt, _i % 2, h);
    for (int k = 0; k < 5; k++)
        ck_assert_uint_eq(h[k], pins[_i / 2].pin[k]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pinned");
    TCase *tc = tcase_create("momentum");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_momentum_pinned);
    tcase_add_loop_test(tc, test_lambda0_pinned, 0, 2 * (int)(sizeof pins / sizeof pins[0]));
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
