// cpp_raii.cpp: revl from C++11. Handles live in std::unique_ptr with the library's free functions
// as deleters, failed calls throw an exception carrying the handle's last_error message, and the
// model is a pair of lambdas behind static trampolines (void *user). It checks the exact
// hypergradient of a ridge regression's validation loss wrt its log L2 by a central difference.
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "revl.h"

namespace rv {
struct error : std::runtime_error {
    int status;
    error(int rc, const std::string &what)
        : std::runtime_error(what + ": " + revl_strerror(rc)), status(rc) {}
};
inline void check(int rc, const char *what, const char *detail = "") { // detail: last_error
    if (rc != REVL_OK)
        throw error(rc, std::string(what) + (*detail ? " (" + std::string(detail) + ")" : ""));
}
template <class T, void (*Free)(T *)> struct deleter {
    void operator()(T *p) const { Free(p); }
};
using model = std::unique_ptr<revl_model, deleter<revl_model, revl_model_free>>;
using schedule = std::unique_ptr<revl_schedule, deleter<revl_schedule, revl_schedule_free>>;
using trainer = std::unique_ptr<revl_trainer, deleter<revl_trainer, revl_trainer_free>>;

// A model given as lambdas. The C library never sees an exception: the trampolines turn one
// into a nonzero return, which the library reports as REVL_ERR_CALLBACK.
struct lambda_model {
    std::function<void(const double *w, const double *meta, double *grad, double *loss)> grad;
    std::function<void(const double *w, const double *meta, const double *v, double *hv_w,
                       double *hv_meta)> hvp;
    static int grad_cb(size_t, const double *w, const double *meta, double *g, double *loss,
                       void *user) try {
        static_cast<lambda_model *>(user)->grad(w, meta, g, loss);
        return 0;
    } catch (...) { return 1; }
    static int hvp_cb(size_t, const double *w, const double *meta, const double *v, double *,
                      double *hv_w, double *hv_meta, void *user) try {
        static_cast<lambda_model *>(user)->hvp(w, meta, v, hv_w, hv_meta);
        return 0;
    } catch (...) { return 1; }
    // The returned handle points at *this: keep this object alive as long as the model.
    model create(size_t n_params, size_t n_meta)
    {
        revl_model_def def;
        revl_model_def_init(&def);
        def.n_params = n_params, def.n_meta = n_meta;
        def.grad = grad_cb, def.hvp = hvp_cb, def.user = this;
        revl_model *m = nullptr;
        check(revl_model_create(&m, &def), "revl_model_create");
        return model(m);
    }
};
} // namespace rv

int main() try {
    const size_t P = 5, N = 40, T = 60;
    // Synthetic data, half for training and half for validation: y = x . (1, -2, 0, 3, 1) + noise.
    std::vector<double> x(2 * N * P), y(2 * N);
    unsigned s = 12345u;
    auto uniform = [&s]() { s = s * 1103515245u + 12345u; return (s >> 8) / 16777216.0 - 0.5; };
    const double truth[P] = {1, -2, 0, 3, 1};
    for (size_t n = 0; n < 2 * N; n++) {
        y[n] = 0.5 * uniform();
        for (size_t i = 0; i < P; i++) y[n] += truth[i] * (x[n * P + i] = uniform());
    }
    auto xdot = [&](const double *w, size_t n) { // row n of X times w
        double d = 0;
        for (size_t i = 0; i < P; i++) d += x[n * P + i] * w[i];
        return d;
    };
    auto xt_times = [&](const std::vector<double> &r, size_t first, double *out) { // X^T r / N
        for (size_t i = 0; i < P; i++) {
            out[i] = 0;
            for (size_t n = 0; n < N; n++) out[i] += x[(first + n) * P + i] * r[n] / N;
        }
    };
    auto residuals = [&](const double *w, size_t first, std::vector<double> &r) { // |r|^2 / 2N
        double loss = 0;
        for (size_t n = 0; n < N; n++)
            r[n] = xdot(w, first + n) - y[first + n], loss += r[n] * r[n] / (2.0 * N);
        return loss;
    };
    // Ridge regression: L(w, meta) = |X w - y|^2 / 2N + exp(meta[0]) / 2 |w|^2.
    rv::lambda_model ridge;
    std::vector<double> r(N);
    ridge.grad = [&](const double *w, const double *meta, double *g, double *loss) {
        double l = residuals(w, 0, r), lam = std::exp(meta[0]);
        xt_times(r, 0, g);
        for (size_t i = 0; i < P; i++) g[i] += lam * w[i], l += 0.5 * lam * w[i] * w[i];
        if (loss) *loss = l;
    };
    ridge.hvp = [&](const double *w, const double *meta, const double *v, double *hv,
                    double *hv_meta) {
        double lam = std::exp(meta[0]);
        std::vector<double> xv(N);
        for (size_t n = 0; n < N; n++) xv[n] = xdot(v, n);
        xt_times(xv, 0, hv); // X^T X v / N
        double wv = 0;
        for (size_t i = 0; i < P; i++) hv[i] += lam * v[i], wv += w[i] * v[i];
        hv_meta[0] = lam * wv; // d/dmeta (grad . v)
    };
    rv::model m = ridge.create(P, 1);

    size_t offsets[2] = {0, P};
    const double meta = -2.0, h = 1e-4;
    revl_schedule *sp = nullptr; // raw pointers only until a unique_ptr takes them
    revl_trainer *tp = nullptr;
    rv::check(revl_schedule_create(&sp, T, 1, offsets), "revl_schedule_create");
    rv::schedule sched(sp); // owned from here on, whatever throws next
    rv::check(revl_schedule_fill(sched.get(), 0.3, 0.9), "revl_schedule_fill");
    rv::check(revl_trainer_create(&tp, m.get(), sched.get(), nullptr), "revl_trainer_create");
    rv::trainer tr(tp);
    try { // a call out of order throws, with the trainer's own message
        rv::check(revl_trainer_hypergrad(tr.get(), &h, 0, 0, 0, 0, 0), "hypergrad",
                  revl_trainer_last_error(tr.get()));
    } catch (const rv::error &e) { std::printf("as expected: %s\n", e.what()); }
    // Validation loss f(w_T) at a given log L2 strength, and its exact hypergradient.
    std::vector<double> w0(P, 0.0), w(P), dfdw(P), r_valid(N);
    auto validate = [&](double log_l2, double *d_meta) {
        rv::check(revl_trainer_train(tr.get(), w0.data(), &log_l2), "train",
                  revl_trainer_last_error(tr.get()));
        revl_trainer_weights(tr.get(), w.data());
        double f = residuals(w.data(), N, r_valid);
        xt_times(r_valid, N, dfdw.data());
        if (d_meta) // only d f / d meta wanted: the other outputs may be NULL
            rv::check(revl_trainer_hypergrad(tr.get(), dfdw.data(), nullptr, nullptr, nullptr,
                                             nullptr, d_meta), "hypergrad",
                      revl_trainer_last_error(tr.get()));
        return f;
    };
    double exact = 0, f = validate(meta, &exact);
    double fd = (validate(meta + h, nullptr) - validate(meta - h, nullptr)) / (2 * h);
    double rel = std::fabs(exact - fd) / std::fmax(std::fabs(fd), 1e-12);
    std::printf("ridge regression, log L2 = %.1f, %zu steps: validation loss %.6f\nd f / d log L2: "
                "exact %.9f, central difference %.9f (relative gap %.1e)\n", meta, T, f, exact, fd, rel);
    bool ok = rel < 1e-5; // difference error: ~h^2 truncation, ~1e-16/h rounding
    std::printf("RESULT: %s cpp_raii dfdmeta %.6f rel_gap %.1e\n", ok ? "ok" : "FAILED", exact, rel);
    return ok ? 0 : 1;
} catch (const std::exception &e) {
    std::fprintf(stderr, "cpp_raii: %s\n", e.what());
    return 1;
}
