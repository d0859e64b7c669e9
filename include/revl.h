/* revl.h: the one public header of revl, exact hypergradients by reversing training.
 *
 * revl trains with momentum SGD in exact fixed-point arithmetic, keeping the bits that
 * multiplication by the momentum throws away in a compact information buffer, so that the
 * training can later be undone bit for bit. Undoing it while accumulating derivatives gives the
 * gradient of a validation objective with respect to every hyperparameter of the run
 * (Maclaurin, Duvenaud & Adams, ICML 2015) without storing the trajectory.
 *
 * Conventions (see docs/conventions.md):
 *  - every exported name starts with revl_ / REVL_;
 *  - handles are opaque; revl_X_create(&out, ...) makes one, revl_X_free(h) ends it,
 *    revl_X_free(NULL) does nothing;
 *  - every fallible call returns REVL_OK (0) or a negative revl_status; the handle involved keeps
 *    a one-line message for its last failure (revl_X_last_error); a failed call leaves the
 *    handle usable (at worst it needs the call that sets its state up again, e.g. train);
 *    a failed *_create has no handle to keep a message: revl_last_create_error() gives it
 *    (thread-local), and docs/errors.md lists the causes of each;
 *  - structs that cross the ABI start with size_t struct_size (set it to sizeof, or call the
 *    matching *_init, which fills the documented defaults);
 *  - arrays are caller-owned double * with explicit lengths; the library copies what it keeps;
 *  - callbacks get the caller's void *user last, return 0 to go on or nonzero to stop, run
 *    synchronously on the calling thread and never after the call that ran them returned.
 *
 * Thread safety: the library has no global mutable state. A handle must be used by one thread
 * at a time; distinct handles may be used from different threads at once, and give the same
 * bits as when used one after another. A trainer uses its model: two trainers sharing one model
 * must not run at the same time. revl_strerror and the version functions may be called from any
 * thread at any time. A trainer refuses a call made while another of its calls runs (from one
 * of its callbacks or another thread) with REVL_ERR_STATE, changing nothing: every
 * revl_trainer_* call but _last_error and _free (which stays the caller's to order);
 * _weights and _get_stats answer in the running call's own progress callback.
 */
#ifndef REVL_H
#define REVL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(REVL_BUILDING) && defined(__GNUC__)
#define REVL_API __attribute__((visibility("default")))
#else
#define REVL_API
#endif

/* ------------------------------------------------------------------ versions */
/* The single source of the version: the Makefile and meson.build read these three lines. */
#define REVL_VERSION_MAJOR 0
#define REVL_VERSION_MINOR 1
#define REVL_VERSION_PATCH 0
#define REVL_VERSION_NUMBER \
    (REVL_VERSION_MAJOR * 10000 + REVL_VERSION_MINOR * 100 + REVL_VERSION_PATCH)

/* MAJOR*10000 + MINOR*100 + PATCH of the library actually linked. */
REVL_API unsigned revl_version_number(void);
/* "MAJOR.MINOR.PATCH" of the library actually linked; static storage. */
REVL_API const char *revl_version_string(void);

/* ------------------------------------------------------------------ status */
typedef enum revl_status {
    REVL_OK = 0,
    REVL_ERR_INVALID = -1,  /* bad argument: NULL, size 0, gamma outside [2^-16, 1], alpha not finite, ... */
    REVL_ERR_NOMEM = -2,    /* an allocation failed; nothing leaked, the handle is still usable */
    REVL_ERR_CALLBACK = -3, /* a user callback returned nonzero */
    REVL_ERR_RANGE = -4,    /* NaN/Inf, or a value outside the fixed-point range */
    REVL_ERR_STATE = -5,    /* wrong order of calls, e.g. hypergradient before training */
    REVL_ERR_INEXACT = -6,  /* the reverse pass did not reproduce w_0 and v_0 bit for bit */
    REVL_ERR_IO = -7        /* a file could not be read or written, or is malformed */
} revl_status;

/* A short constant name for a status ("invalid argument", ...); never NULL. */
REVL_API const char *revl_strerror(int status);
/* Why the last revl_*_create called on this thread failed ("revl_trainer_create:
 * revl_trainer_options.struct_size is 7, ..."), or "" when it succeeded. A failed create has no
 * handle to keep a message; this one is thread-local, so threads never see each other's. */
REVL_API const char *revl_last_create_error(void);

/* ------------------------------------------------------------------ memory */
/* Where a handle gets its memory. Every handle created with an allocator uses it for all of
 * its memory, for its whole life (handles created from it, e.g. a trainer from a model, use
 * their own allocator argument). alloc returns NULL on failure; free is never passed NULL.
 * Both may be called from whichever thread uses the handle. An allocator whose struct_size is
 * too small or whose alloc or free is NULL is ignored: the handle uses malloc and free. */
typedef struct revl_allocator {
    size_t struct_size;
    void *(*alloc)(size_t size, void *user); /* default: malloc */
    void (*free)(void *ptr, void *user);     /* default: free */
    void *user;                              /* default: NULL */
} revl_allocator;
REVL_API void revl_allocator_init(revl_allocator *a);

/* ------------------------------------------------------------------ model */
/* A training loss L(w, meta, step) given as callbacks, or a built-in model (revl_mlp_create).
 * n_params parameters w, n_meta model hyperparameters meta (e.g. log L2 penalties). */
typedef struct revl_model revl_model;

/* Training-loss gradient at step `step` (which picks the minibatch). Must be deterministic in
 * (step, w, meta): the reverse pass calls it again and needs the same bits.
 * Writes grad[n_params]; writes *loss when loss != NULL. Returns 0, or nonzero to stop. */
typedef int (*revl_grad_fn)(size_t step, const double *w, const double *meta, double *grad,
                            double *loss, void *user);

/* At the same point and for a vector v[n_params]:
 *   hv_w[n_params]  = (d^2 L / dw^2) v
 *   hv_meta[n_meta] = d/dmeta (grad_w L . v)    (hv_meta is NULL when n_meta == 0)
 *   grad            = the gradient, bit-identical to grad_fn's, when grad != NULL
 *                     (lets a model share one forward pass; the library passes NULL unless
 *                     the model sets hvp_gives_grad). */
typedef int (*revl_hvp_fn)(size_t step, const double *w, const double *meta, const double *v,
                           double *grad, double *hv_w, double *hv_meta, void *user);

typedef struct revl_model_def {
    size_t struct_size;
    size_t n_params, n_meta;
    revl_grad_fn grad;          /* required */
    revl_hvp_fn hvp;            /* optional: NULL = central finite differences of grad:
                                   h = 1e-5 * max(1, |w|_inf) / |v|_inf along v (2 gradient
                                   calls) and along each meta coordinate (2 * n_meta calls);
                                   relative error about 1e-8 on smooth losses */
    int hvp_gives_grad;         /* nonzero: hvp fills grad when asked */
    void *user;
    void (*user_free)(void *user); /* optional; called by revl_model_free */
    const revl_allocator *allocator; /* optional; NULL = malloc/free; copied */
} revl_model_def;
REVL_API void revl_model_def_init(revl_model_def *def);
REVL_API int revl_model_create(revl_model **out, const revl_model_def *def);
REVL_API void revl_model_free(revl_model *m);
REVL_API size_t revl_model_n_params(const revl_model *m);
REVL_API size_t revl_model_n_meta(const revl_model *m);
REVL_API const char *revl_model_last_error(const revl_model *m);

/* Call the model directly (built-in or not). hv_meta may be NULL (not wanted; the callback
 * still gets a buffer of n_meta to write). */
REVL_API int revl_model_grad(revl_model *m, size_t step, const double *w, const double *meta,
                             double *grad, double *loss);
REVL_API int revl_model_hvp(revl_model *m, size_t step, const double *w, const double *meta,
                            const double *v, double *hv_w, double *hv_meta);

/* Optional, for optimisers whose Hessian direction depends on the gradient at the same point
 * (Adam; RMSprop's direction is not affine in g, so it asks for the gradient and then
 * the Hessian-vector product): at (step, w, meta) compute
 *   grad[n_params]  = the gradient, bit-identical to grad_fn's,
 *   v               = a + b * grad elementwise, each v[i] computed as the double a[i] + b[i] * grad[i]
 *                     (no fused multiply-add: the library computes the same v when it falls back),
 *   hv_w[n_params]  = (d^2 L / dw^2) v,  hv_meta[n_meta] = d/dmeta (grad_w L . v) (NULL when
 *                     n_meta == 0),
 * in one pass over the model. Without it the library calls grad and then hvp (two passes, the
 * same bits). The model's own user pointer is passed. Returns 0, or nonzero to stop. */
typedef int (*revl_hvp_affine_fn)(size_t step, const double *w, const double *meta,
                                  const double *a, const double *b, double *grad, double *hv_w,
                                  double *hv_meta, void *user);
/* Register (fn) or remove (NULL) the model's fused gradient + affine-direction HVP. The built-in
 * MLP has its own. */
REVL_API int revl_model_set_hvp_affine(revl_model *m, revl_hvp_affine_fn fn);

/* The library's half of a fused gradient + Hessian-direction callback (revl_hvp_dir_fn): from
 * the gradient just computed it writes the direction v the callback was given. Returns 0, or
 * nonzero when the direction failed (the trainer keeps that error): the callback then returns
 * nonzero at once, without reading v. */
typedef int (*revl_dir_fn)(void *dir_ctx, const double *grad);
/* Optional, for optimisers whose Hessian direction is any function of the gradient at the same
 * point (RMSprop; every optimiser's steps with a finite gradient clip): at (step, w, meta)
 *   grad[n_params] = the gradient, bit-identical to grad_fn's,
 *   then dir(dir_ctx, grad), exactly once, which writes v[n_params] (read it only after),
 *   hv_w[n_params] = (d^2 L / dw^2) v,  hv_meta[n_meta] = d/dmeta (grad_w L . v) (NULL when
 *   n_meta == 0),
 * in one pass over the model. Without it the library calls grad and then hvp (two passes, the
 * same bits). The model's own user pointer is passed. Returns 0, or nonzero to stop. */
typedef int (*revl_hvp_dir_fn)(size_t step, const double *w, const double *meta,
                               revl_dir_fn dir, void *dir_ctx, const double *v, double *grad,
                               double *hv_w, double *hv_meta, void *user);
/* Register (fn) or remove (NULL) a callback model's fused gradient + Hessian-direction callback
 * (models of revl_model_create only: the built-in MLP has its own). */
REVL_API int revl_model_set_hvp_dir(revl_model *m, revl_hvp_dir_fn fn);

/* Parameter groups: contiguous ranges of w that share alpha and gamma in a schedule.
 * A callback model has one group [0, n_params) until revl_model_set_groups; a built-in model
 * has its own layout (MLP: per layer, its weights then its biases). offsets has n_groups+1
 * entries, offsets[0] = 0, strictly increasing, last = n_params. */
REVL_API size_t revl_model_n_groups(const revl_model *m);
REVL_API int revl_model_group_offsets(const revl_model *m, size_t *offsets);
REVL_API int revl_model_set_groups(revl_model *m, size_t n_groups, const size_t *offsets);

/* Initial weights from one log scale per group: w0[i] = exp(log_scales[g]) * z_i with z_i
 * standard normal from `seed` (same seed, same z, on every platform). */
REVL_API int revl_model_init_weights(revl_model *m, const double *log_scales, uint64_t seed,
                                     double *w0);
/* Chain rule from d f / d w0 (as from revl_trainer_hypergrad) to d f / d log_scales[g]
 * for weights made by revl_model_init_weights with the same w0:  sum_{i in g} d_w0[i] * w0[i]. */
REVL_API int revl_model_init_scales_grad(revl_model *m, const double *w0, const double *d_w0,
                                         double *d_log_scales);

/* ------------------------------------------------------------------ schedule */
/* alpha and gamma per step and per parameter group. gamma is applied as the nearest n/2^16
 * (n in 1..65536), exactly gamma when gamma is a multiple of 2^-16; hypergradients are taken
 * at the applied value (revl_schedule_get_all returns what is stored, revl_gamma_applied
 * what is applied). */
typedef struct revl_schedule revl_schedule;
/* group g covers parameters [offsets[g], offsets[g+1]); offsets has n_groups+1 entries,
 * offsets[0] = 0, strictly increasing; the last one must equal the model's n_params.
 * Starts filled with alpha = 0.1, gamma = 0.9. */
REVL_API int revl_schedule_create(revl_schedule **out, size_t n_steps, size_t n_groups,
                                  const size_t *offsets);
/* The same with an allocator (NULL = malloc/free). */
REVL_API int revl_schedule_create_with(revl_schedule **out, size_t n_steps, size_t n_groups,
                                       const size_t *offsets, const revl_allocator *allocator);
REVL_API void revl_schedule_free(revl_schedule *s);
REVL_API int revl_schedule_fill(revl_schedule *s, double alpha, double gamma);
REVL_API int revl_schedule_set(revl_schedule *s, size_t step, size_t group, double alpha,
                               double gamma);
/* step-major arrays of n_steps*n_groups: element [step*n_groups + group]; either may be NULL.
 * alpha must be finite, gamma in [2^-16, 1]; on error nothing is changed. */
REVL_API int revl_schedule_set_all(revl_schedule *s, const double *alpha, const double *gamma);
REVL_API int revl_schedule_get_all(const revl_schedule *s, double *alpha, double *gamma);
REVL_API size_t revl_schedule_n_steps(const revl_schedule *s);
REVL_API size_t revl_schedule_n_groups(const revl_schedule *s);
REVL_API int revl_schedule_offsets(const revl_schedule *s, size_t *offsets);
REVL_API const char *revl_schedule_last_error(const revl_schedule *s);
/* The momentum actually applied for a requested gamma: round(gamma * 2^16) / 2^16, or NaN
 * when gamma is outside [2^-16, 1]. */
REVL_API double revl_gamma_applied(double gamma);

/* ---- optimisers (docs/method.md, "Optimisers"). The optimiser is chosen by the schedule,
 * because it decides which hyperparameters exist per (step, group). A schedule made by
 * revl_schedule_create is momentum SGD with alpha and gamma, as always. */
typedef enum revl_optimizer {
    REVL_OPTIM_MOMENTUM = 0, /* v <- gamma v - (1-gamma) g;  w <- w + alpha v */
    REVL_OPTIM_ADAM = 1,     /* torch.optim.Adam: m, s with beta1, beta2, bias correction, eps */
    REVL_OPTIM_RMSPROP = 2,  /* torch.optim.RMSprop with momentum: s <- beta2 s + (1-beta2) g^2,
                                b <- gamma b + g / (sqrt(s) + eps),  w <- w - alpha b */
    REVL_OPTIM_ADAMW = 3     /* torch.optim.AdamW: w <- w (1 - alpha weight_decay) (decoupled,
                                exact through the buffer), then Adam's step */
} revl_optimizer;
#define REVL_OPTIM_COUNT 4

/* Hyperparameter kinds; each schedule has a subset (revl_schedule_kinds). Ranges: alpha finite;
 * gamma in [2^-16, 1], applied as round(gamma 2^16) / 2^16; beta1, beta2 in [2^-24, 1 - 2^-24],
 * applied as round(beta 2^24) / 2^24 (1 - beta within 0.03% of the request at 0.9999); eps
 * finite and > 0; clip > 0 (+inf allowed); weight_decay finite and >= 0 (AdamW: alpha * weight_decay must also be in
 * [0, 1 - 2^-18] at every step and group, checked by revl_trainer_train; the factor
 * 1 - alpha weight_decay is applied as a fraction within 2^-51 of the request). Hypergradients
 * are taken at the applied values.
 * Arrays indexed by kind: see revl_trainer_hypergrad_kinds_n (REVL_HYPER_COUNT grows). */
typedef enum revl_hyper {
    REVL_HYPER_ALPHA = 0,
    REVL_HYPER_GAMMA = 1,
    REVL_HYPER_BETA1 = 2,
    REVL_HYPER_BETA2 = 3,
    REVL_HYPER_EPS = 4,
    REVL_HYPER_WEIGHT_DECAY = 5, /* lambda: coupled (momentum, RMSprop), decoupled (AdamW) */
    REVL_HYPER_CLIP = 6 /* gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_:
                           group k's gradient is multiplied by min(1, clip / (||g||_2 + 1e-6)),
                           ||g|| over all parameters; > 0, default +inf (no clipping, today's
                           bits). Every schedule has it (the driver's, not the optimiser's), so
                           it is not listed by revl_schedule_kinds; set and read it with
                           revl_schedule_set_kind / fill_kind / get_kind, its hypergradient
                           through revl_trainer_hypergrad_kinds_n. Not on a sharded trainer. */
} revl_hyper;
#define REVL_HYPER_COUNT 7

/* "momentum", "adam", "rmsprop", "adamw" / "alpha", "gamma", "beta1", "beta2", "eps",
 * "weight_decay", "clip"; NULL when unknown (so a binding can list them: name(k) for k = 0, 1, ...
 * until NULL). */
REVL_API const char *revl_optimizer_name(revl_optimizer opt);
REVL_API const char *revl_hyper_name(revl_hyper kind);
/* The value actually applied for a requested one (the grid of gamma and the betas; alpha and
 * eps as they are), or NaN when the value is outside the kind's range. */
REVL_API double revl_hyper_applied(revl_hyper kind, double value);

/* A schedule for an optimiser, each kind filled with its default (momentum: alpha 0.1,
 * gamma 0.9; Adam: alpha 1e-3, beta1 0.9, beta2 0.999, eps 1e-8; RMSprop: alpha 1e-2, gamma
 * 0.9, beta2 0.99, eps 1e-8; AdamW: Adam's and weight_decay 0.01, as torch.optim.AdamW).
 * allocator may be NULL. */
REVL_API int revl_schedule_create_for(revl_schedule **out, revl_optimizer opt, size_t n_steps,
                                      size_t n_groups, const size_t *offsets,
                                      const revl_allocator *allocator);
/* The schedule's optimiser (REVL_OPTIM_MOMENTUM for a NULL schedule). */
REVL_API revl_optimizer revl_schedule_optimizer(const revl_schedule *s);
/* The number of kinds the schedule has; writes them to kinds (when not NULL) in the order of
 * the optimiser (momentum: alpha, gamma; Adam: alpha, beta1, beta2, eps; RMSprop: alpha, gamma,
 * beta2, eps; AdamW: alpha, beta1, beta2, eps, weight_decay). No optimiser has more than 5. */
REVL_API size_t revl_schedule_kinds(const revl_schedule *s, revl_hyper *kinds);
/* One kind's step-major n_steps*n_groups array. set checks every value first and changes
 * nothing on error; a kind the schedule does not have is REVL_ERR_INVALID. */
REVL_API int revl_schedule_set_kind(revl_schedule *s, revl_hyper kind, const double *values);
REVL_API int revl_schedule_get_kind(const revl_schedule *s, revl_hyper kind, double *values);
REVL_API int revl_schedule_fill_kind(revl_schedule *s, revl_hyper kind, double value);

/* ------------------------------------------------------------------ trainer */
typedef struct revl_trainer revl_trainer;
typedef struct revl_trainer_options {
    size_t struct_size;
    unsigned frac_bits; /* fixed-point fractional bits of w and v (int64), 1..62; default 52,
                           so |w|, |v| < 2^(63-52) = 2048 */
    size_t truncate;    /* 0: reverse all steps; K: hypergradient of the last K steps only
                           (the bits of earlier steps are not kept) */
    int threads;        /* threads for the exact core (OpenMP); 0 = library default: all cores
                           (omp_get_max_threads) for models of 2^18 parameters or more, else 1;
                           2 or more below 2^18 parameters: a second thread also runs each
                           step's exact multiplies while the model computes the gradient (the
                           model is always called on the calling thread); results are
                           bit-identical for any value */
    const revl_allocator *allocator; /* optional; NULL = malloc/free; copied */
} revl_trainer_options;
REVL_API void revl_trainer_options_init(revl_trainer_options *o);
/* The trainer keeps pointers to model and sched: both must outlive it. */
REVL_API int revl_trainer_create(revl_trainer **out, revl_model *model, const revl_schedule *sched,
                                 const revl_trainer_options *opts /* NULL = defaults */);
REVL_API void revl_trainer_free(revl_trainer *t);

/* T exact steps from w0 (v0 = 0) with the model's meta-parameters meta (NULL if n_meta == 0).
 * The schedule is read at this call. w0 must be in the fixed-point range; it is rounded to the
 * nearest multiple of 2^-frac_bits (that rounded w0 is where the reverse pass returns to).
 * Callbacks get meta = NULL when n_meta == 0. On failure the trainer must be trained again. */
REVL_API int revl_trainer_train(revl_trainer *t, const double *w0, const double *meta);
/* The same T steps from w0 with the same arithmetic, so the same w_T bits as
 * revl_trainer_train (any optimiser, thread count and truncate), keeping nothing for a reverse
 * pass: the information buffer stays at a small fixed size, there is no copy of the start and
 * no gradient fingerprint, and revl_trainer_set_checkpoint's checkpoints are not written. For
 * evaluations that will never be reversed (the trials of a search). Afterwards
 * revl_trainer_weights gives w_T and the stats' last_loss is set; revl_trainer_hypergrad and
 * revl_trainer_save refuse with REVL_ERR_STATE (revl_trainer_train makes a trajectory that
 * reverses). On failure the trainer must be trained again. */
REVL_API int revl_trainer_train_forward(revl_trainer *t, const double *w0, const double *meta);
REVL_API int revl_trainer_weights(const revl_trainer *t, double *w); /* w as it stands now */
/* Round x[0..n) in place to the fixed-point grid of frac_bits fractional bits (1..62): the w0
 * that training with that many bits really starts from, and that the reverse pass returns to
 * bit for bit. For finite-difference checks (docs/checking.md): perturb and compare on this grid.
 * REVL_ERR_RANGE (x unchanged) if a value is not finite or |x| >= 2^(63 - frac_bits);
 * REVL_ERR_INVALID for frac_bits outside 1..62 or x NULL with n > 0. */
REVL_API int revl_fixed_round(unsigned int frac_bits, double *x, size_t n);

/* From dfdw = grad f(w_T) (and dfdmeta = df/dmeta, or NULL for 0), reverse the training
 * exactly and write d_w0[n_params], d_alpha[n_steps*n_groups], d_gamma[n_steps*n_groups],
 * d_meta[n_meta] (each may be NULL when not wanted). With truncate = K, d_w0 is the gradient
 * with respect to w_{T-K}, d_meta counts meta's effect through the last K steps only, and the
 * entries of d_alpha, d_gamma of earlier steps are 0 (their steps rounded the momentum product
 * to nearest instead of keeping its bits).
 * Returns REVL_ERR_INEXACT if the walk back did not end on w0 and v0 = 0 bit for bit.
 * Afterwards the trainer holds w0 again (w_{T-K} when truncated). */
REVL_API int revl_trainer_hypergrad(revl_trainer *t, const double *dfdw, const double *dfdmeta,
                                    double *d_w0, double *d_alpha, double *d_gamma,
                                    double *d_meta);

/* The same for any optimiser: d_kinds[k] receives the n_steps*n_groups hypergradient of kind k
 * (indexed by revl_hyper; an entry may be NULL when not wanted, and must be NULL for kinds the
 * schedule does not have). Truncation, verification and d_w0, d_meta as above.
 * revl_trainer_hypergrad is this call with only alpha and gamma, for schedules that have both.
 * Reads exactly the 5 entries of the kinds it shipped with (alpha, gamma, beta1, beta2, eps),
 * never REVL_HYPER_COUNT (docs/api-stability.md); kinds added later (weight_decay) are not
 * wanted here: use revl_trainer_hypergrad_kinds_n for them. */
REVL_API int revl_trainer_hypergrad_kinds(revl_trainer *t, const double *dfdw,
                                          const double *dfdmeta, double *d_w0,
                                          double *const d_kinds[5], double *d_meta);
/* The same with the length of d_kinds given: reads exactly d_kinds[0..n_kinds) (d_kinds may be
 * NULL when n_kinds is 0); kinds >= n_kinds are not wanted. Entries at or beyond the kinds this
 * library knows (REVL_HYPER_COUNT of its header) must be NULL (REVL_ERR_INVALID otherwise), so a
 * program built against a later header runs on this library as long as it asks only for kinds
 * this one has. */
REVL_API int revl_trainer_hypergrad_kinds_n(revl_trainer *t, const double *dfdw,
                                            const double *dfdmeta, double *d_w0, size_t n_kinds,
                                            double *const *d_kinds, double *d_meta);

typedef struct revl_trainer_stats {
    size_t struct_size;
    size_t steps_done;   /* steps of the trajectory the trainer now stands at */
    double buffer_bits;  /* information held in the buffer now, in bits */
    size_t buffer_bytes; /* memory the buffer occupies now */
    size_t peak_bytes;   /* peak memory of the trainer, buffer included */
    double last_loss;    /* training loss of the last step run */
} revl_trainer_stats;
/* Zero *s and set s->struct_size: call it before revl_trainer_get_stats (NULL ok). */
REVL_API void revl_trainer_stats_init(revl_trainer_stats *s);
REVL_API int revl_trainer_get_stats(const revl_trainer *t, revl_trainer_stats *out);
REVL_API const char *revl_trainer_last_error(const revl_trainer *t);

/* Checkpoints (docs/file-formats.md): the trajectory after any step of training, so that
 * training continues (revl_trainer_train_resume), or the reverse pass runs, in another process
 * with the bits of an uninterrupted run. save needs a trained trainer, or one loaded from a
 * checkpoint; it writes a temporary file, fsyncs it and renames it over path, so a crash while
 * writing leaves the previous file intact. load needs a trainer made like the saved one: same
 * optimiser, model sizes and groups, frac_bits and truncate, and a schedule with the same
 * values; anything else, or a truncated or corrupted file, is REVL_ERR_IO with a message, and
 * the trainer is left as it was. After load, revl_trainer_hypergrad works when the file was
 * written after the last step, revl_trainer_train_resume takes the remaining steps otherwise. */
REVL_API int revl_trainer_save(revl_trainer *t, const char *path);
REVL_API int revl_trainer_load(revl_trainer *t, const char *path);
REVL_API int revl_trainer_train_resume(revl_trainer *t);
/* From now on revl_trainer_train and _train_resume save a checkpoint to path every `every`
 * steps and after the last one (a failed save fails the training: REVL_ERR_IO), and the
 * hypergradient calls (revl_trainer_hypergrad*, _hypergrad_resume) every `every` steps walked
 * back, except after the last (a failed save fails the pass: REVL_ERR_IO, train again). path
 * NULL stops it. The path is copied. */
REVL_API int revl_trainer_set_checkpoint(revl_trainer *t, const char *path, size_t every);
/* A checkpoint taken during the reverse pass holds the walk so far (w and the states where it
 * stands, the buffer, the adjoints, the hypergradients accumulated, which kinds were asked for,
 * a hash of dfdw and dfdmeta). After revl_trainer_load of one, only this call (or a new
 * revl_trainer_train) is allowed (revl_trainer_hypergrad, _save and _train_resume give
 * REVL_ERR_STATE): it walks the rest of the way back and gives d_w0, d_kinds and d_meta (as
 * revl_trainer_hypergrad_kinds_n; each may be NULL) bit for bit as the uninterrupted pass,
 * with the same checks at the end. d_kinds may ask only for kinds the interrupted pass asked
 * for (REVL_ERR_INVALID otherwise). Refused from the trainer's own callbacks. */
REVL_API int revl_trainer_hypergrad_resume(revl_trainer *t, double *d_w0, size_t n_kinds,
                                           double *const *d_kinds, double *d_meta);

/* Progress of a long run. fn(step, phase, seconds, loss, user) is called on the calling thread
 * during revl_trainer_train, _train_forward and _train_resume (phase 0: `step` steps done, loss
 * = that step's training loss) and revl_trainer_hypergrad (phase 1: walked back to `step`, loss
 * = NaN), every `every` steps of the phase and after its last step; seconds since the call
 * began. A nonzero return stops the call: it returns REVL_ERR_CALLBACK ("stopped by the
 * progress callback at step k"), the trainer must be trained again (a stopped hypergrad writes
 * no output). fn NULL removes it (every is then ignored); every 0 with fn set is
 * REVL_ERR_INVALID. A sharded trainer's ranks must all set it with the same `every`. */
typedef int (*revl_progress_fn)(size_t step, int phase, double seconds, double loss, void *user);
REVL_API int revl_trainer_set_progress(revl_trainer *t, revl_progress_fn fn, size_t every,
                                       void *user);

/* ------------------------------------------------------------------ data */
/* A labelled data set: n examples of dim features (double), labels in [0, n_classes). */
typedef struct revl_dataset revl_dataset;
REVL_API int revl_dataset_create(revl_dataset **out, const revl_allocator *allocator /* NULL ok */);
REVL_API void revl_dataset_free(revl_dataset *d);
/* Replace the contents with copies of x[n*dim] (row-major) and labels[n]. */
REVL_API int revl_dataset_set(revl_dataset *d, size_t n, size_t dim, size_t n_classes,
                              const double *x, const int32_t *labels);
/* Load an IDX image file and its IDX label file (MNIST / Fashion-MNIST format, gzip or plain),
 * at most max_n examples (0 = all); pixels scaled to [0, 1]; n_classes = max label + 1.
 * Checks magic numbers, sizes, agreement of the two files and truncation: REVL_ERR_IO with a
 * message naming the file and what is wrong. The pixels' bytes are kept too (1/8 more memory;
 * by revl_dataset_subset as well, dropped by whatever changes x): the built-in MLP gathers its
 * minibatches from them, with the same bits as from x. */
REVL_API int revl_dataset_load_idx(revl_dataset *d, const char *images_path,
                                   const char *labels_path, size_t max_n);
/* Copy examples [first, first+count) of src into dst (replacing dst's contents). */
REVL_API int revl_dataset_subset(revl_dataset *dst, const revl_dataset *src, size_t first,
                                 size_t count);
/* Standardise features with the mean and standard deviation per feature of `reference`
 * (d itself when reference is NULL or d); constant features get sd 1. */
REVL_API int revl_dataset_standardize(revl_dataset *d, const revl_dataset *reference);
REVL_API size_t revl_dataset_n(const revl_dataset *d);
REVL_API size_t revl_dataset_dim(const revl_dataset *d);
REVL_API size_t revl_dataset_n_classes(const revl_dataset *d);
/* n*dim, row-major; read-only (the MLP may read the bytes x was loaded from instead) */
REVL_API const double *revl_dataset_x(const revl_dataset *d);
REVL_API const int32_t *revl_dataset_labels(const revl_dataset *d); /* n */
REVL_API const char *revl_dataset_last_error(const revl_dataset *d);

/* ------------------------------------------------------------------ built-in models */
typedef enum revl_activation {
    REVL_ACT_TANH = 0,
    REVL_ACT_RELU = 1,
    REVL_ACT_LOGISTIC = 2
} revl_activation;

typedef enum revl_penalty {
    REVL_PENALTY_NONE = 0,      /* n_meta = 0 */
    REVL_PENALTY_PER_LAYER = 1, /* n_meta = layers; adds exp(meta[l])/2 * |w of layer l|^2 (weights and biases) */
    REVL_PENALTY_PER_WEIGHT = 2 /* n_meta = n_params; adds sum_i exp(meta[i])/2 * w_i^2 */
} revl_penalty;

/* Where revl_hyperopt starts the MLP's meta-parameters (log L2 strengths): log(1e-4), a
 * penalty that barely touches a fresh network. (0 would be lambda = 1, which flattens it.) */
#define REVL_MLP_LOG_L2_START (-9.210340371976182)

typedef struct revl_mlp_options {
    size_t struct_size;
    revl_activation activation; /* hidden activation; default REVL_ACT_TANH */
    revl_penalty penalty;       /* default REVL_PENALTY_NONE */
    size_t batch_size;          /* examples per step; default 200; 0 or >= n = full batch */
    uint64_t seed;              /* minibatch order: a fixed permutation per epoch; default 0 */
    int threads;                /* reserved, must be >= 0: the dense products run on the BLAS
                                   library's threads (OPENBLAS_NUM_THREADS, or
                                   revl_blas_threads), and the gradients are reproducible for a
                                   fixed BLAS thread count */
    const revl_allocator *allocator; /* optional; NULL = malloc/free; copied */
} revl_mlp_options;
REVL_API void revl_mlp_options_init(revl_mlp_options *o);

/* A multilayer perceptron with n_widths-1 dense layers widths[0] -> ... -> widths[n_widths-1],
 * the chosen hidden activation and a softmax cross-entropy output; n_widths = 2 is
 * multinomial logistic regression. Training loss at step t: mean cross-entropy over the
 * minibatch of step t, plus the penalty. Parameters per layer l: weights W_l
 * [widths[l]][widths[l+1]] row-major, then biases b_l [widths[l+1]]; group 2l = W_l,
 * group 2l+1 = b_l. Exact gradient and Hessian-vector products (R-operator) in one fused
 * pass (hvp_gives_grad). `train` must outlive the model and not change while it is used. */
REVL_API int revl_mlp_create(revl_model **out, size_t n_widths, const size_t *widths,
                             const revl_dataset *train, const revl_mlp_options *opts);

/* For a built-in model: mean cross-entropy on data (no penalty) at w, and optionally its
 * gradient with respect to w (grad_w[n_params], may be NULL) and the accuracy (may be NULL).
 * REVL_ERR_INVALID for a callback model or a data set of the wrong dimensions. */
REVL_API int revl_model_evaluate(revl_model *m, const revl_dataset *data, const double *w,
                                 double *loss, double *grad_w, double *accuracy);

/* The BLAS library's thread count, for the whole process: the built-in MLP's dense products
 * run on it, and their bits depend on it (the paper's MLP trained under one and under two
 * OpenBLAS threads ends on different w_T), so a program that wants a result to reproduce fixes
 * the count. Nor is the faster count the same everywhere: on a two-core machine two threads
 * took 0.88-0.94 of one thread's time while the second core was free, and 3-6.5 times as long
 * while another process kept it busy (docs/performance.md, "BLAS threads"). OpenBLAS reads
 * OPENBLAS_NUM_THREADS once, when it is loaded; this call sets the count later. n > 0 sets it
 * (OpenBLAS: openblas_set_num_threads, which may bound it by the cores it was built for);
 * n == 0 only asks. Returns the count in effect before the call (>= 1), or 0 when the BLAS library offers
 * no such control (the reference BLAS, or a CBLAS other than OpenBLAS): nothing was changed;
 * REVL_ERR_INVALID for n < 0. Process-wide and not synchronised with BLAS calls: call it from
 * one thread before work starts, never while another thread is inside a BLAS call, and train
 * and reverse under one count. */
REVL_API int revl_blas_threads(int n);

/* ------------------------------------------------------------------ data parallel */
/* Exact data-parallel training (docs/mpi.md): the minibatch of step t is split into n_micro
 * micro-batches, a number that does not depend on how many processes ("ranks") share the work.
 * Each rank computes its micro-batches' contributions, rounds each to a multiple of
 * 2^-grad_frac_bits and adds them as int64; the ranks sum those integers (associative), so the
 * gradient every rank's trainer sees is the same bits for any number of ranks, and every rank
 * runs the same exact training. The library itself does no communication: a communicator is a
 * function pointer, librevl_mpi (revl_mpi.h) implements it over MPI. */
typedef struct revl_comm {
    size_t struct_size;
    int rank, size; /* this process's rank in [0, size) and the number of ranks */
    /* In-place elementwise sum of data[n] over all ranks; every rank calls it with the same n
     * in the same order. Returns 0, or nonzero on a communication failure. */
    int (*allreduce_i64)(int64_t *data, size_t n, void *user);
    void *user;
} revl_comm;
/* The single-process communicator: rank 0 of 1, the sum of one rank is its data. */
REVL_API void revl_comm_init_local(revl_comm *c);

/* The micro-batches of rank `rank` of `size`: [*first, *first + *count), contiguous, in rank
 * order, as even as possible (some ranks have none when size > n_micro). */
REVL_API int revl_dp_micro_range(size_t n_micro, int rank, int size, size_t *first,
                                 size_t *count);

/* A trainer whose state is split over the ranks of comm (copied; NULL = one rank): this rank
 * keeps the optimiser's state, its start copy and the information buffer only for its
 * contiguous share of the 4,096-parameter blocks (revl_dp_micro_range of the blocks), so they
 * take about 1/size of the memory per rank; w, the reverse pass's directions and d_w0 are
 * all-gathered (every rank sees and returns the full vectors), and the per-group partial sums
 * are summed in global block order, so w_T and every hypergradient are the bits of
 * revl_trainer_create's trainer for any number of ranks. Every call on it is collective (all
 * ranks, same arguments); a failure on one rank (a value out of range in its blocks, a reversal
 * that does not arrive) fails the call on every rank with the same status and a message naming
 * the rank. REVL_ERR_INVALID when there are fewer blocks than ranks. Checkpoints
 * (revl_trainer_save/load, set_checkpoint's saves in training and in the reverse pass, which
 * revl_trainer_hypergrad_resume on every rank continues) are collective, all or none: every rank passes the same path and rank r of R writes and reads its
 * share in <path>.rank<r>-of-<R>; a failure on any rank leaves every previous file, and every
 * trainer, as it was, with the same status on every rank. docs/mpi.md. */
REVL_API int revl_trainer_create_sharded(revl_trainer **out, revl_model *model,
                                         const revl_schedule *sched,
                                         const revl_trainer_options *opts,
                                         const revl_comm *comm);

/* Per-micro-batch callbacks. The contract: the model's gradient at step t is the sum over
 * micro = 0..n_micro-1 of what grad writes for (t, micro), e.g. (1/B) times the sum of the
 * examples' gradients of that micro-batch, plus any penalty in micro-batch 0 only; the same for
 * the loss, for hv_w and hv_meta. Every output (*loss, grad, hv_w, hv_meta) is 0 on entry to
 * every call, so a callback may skip what its micro-batch does not add, or add into them. Each
 * call must be deterministic in its arguments. A rank is only called for its own micro-batches (revl_dp_micro_range), so it needs
 * only their examples. hvp's grad is NULL unless the definition sets hvp_gives_grad; then it
 * must be grad's bits. hv_meta is NULL when n_meta == 0. Return 0, or nonzero to stop. */
typedef int (*revl_micro_grad_fn)(size_t step, size_t micro, const double *w, const double *meta,
                                  double *grad, double *loss, void *user);
typedef int (*revl_micro_hvp_fn)(size_t step, size_t micro, const double *w, const double *meta,
                                 const double *v, double *grad, double *hv_w, double *hv_meta,
                                 void *user);

typedef struct revl_dp_def {
    size_t struct_size;
    size_t n_params, n_meta;
    size_t n_micro;           /* micro-batches per step, >= 1 (default 1); fixes the bits */
    revl_micro_grad_fn grad;  /* required */
    revl_micro_hvp_fn hvp;    /* required (a finite difference of rounded sums would be noise) */
    int hvp_gives_grad;
    unsigned grad_frac_bits;  /* fractional bits of each rounded contribution, 1..60; default 40:
                                 each |contribution| must be < 2^(62 - grad_frac_bits) / n_micro */
    const revl_comm *comm;    /* NULL = revl_comm_init_local; copied */
    void *user;
    void (*user_free)(void *user); /* optional; called by revl_model_free */
    const revl_allocator *allocator; /* optional; NULL = malloc/free; copied */
} revl_dp_def;
REVL_API void revl_dp_def_init(revl_dp_def *def);
/* A model (one group until revl_model_set_groups) whose gradient and Hessian-vector products
 * are the exact integer sums above. Every call on it is collective: all ranks make it, with the
 * same step, w, meta and v (checked: a rank that differs fails the call on every rank). A
 * failure on any rank (a callback's nonzero return, a NaN, a contribution outside the range)
 * fails the call on every rank with REVL_ERR_CALLBACK and the same message, naming the rank. */
REVL_API int revl_dp_model_create(revl_model **out, const revl_dp_def *def);

/* The built-in MLP (revl_mlp_create) as a data-parallel model: micro-batch k of step t is rows
 * [k B / n_micro, (k+1) B / n_micro) of its minibatch of B examples (n_micro <= B), the penalty
 * is in micro-batch 0. Every rank holds the whole training set. grad_frac_bits 0 = 40. */
REVL_API int revl_mlp_dp_create(revl_model **out, size_t n_widths, const size_t *widths,
                                const revl_dataset *train, const revl_mlp_options *opts,
                                size_t n_micro, unsigned int grad_frac_bits,
                                const revl_comm *comm);

/* ------------------------------------------------------------------ hyper-optimiser */
/* Meta-iterations of: train -> validation objective f(w_T) -> hypergradient -> update, over a
 * chosen subset of log alpha (T x G), logit gamma (T x G), log init scales (G) and the model's
 * meta-parameters. */
typedef struct revl_hyperopt revl_hyperopt;

enum {
    REVL_LEARN_ALPHA = 1,      /* log alpha per step and group */
    REVL_LEARN_GAMMA = 2,      /* logit gamma per step and group */
    REVL_LEARN_INIT_SCALE = 4, /* log init scale per group */
    REVL_LEARN_META = 8,       /* the model's meta-parameters, as they are (e.g. log L2) */
    REVL_LEARN_BETA1 = 16,     /* logit beta1 per step and group (Adam) */
    REVL_LEARN_BETA2 = 32,     /* logit beta2 per step and group (Adam, RMSprop) */
    REVL_LEARN_EPS = 64,       /* log eps per step and group (Adam, RMSprop) */
    REVL_LEARN_WEIGHT_DECAY = 128, /* log weight_decay per step and group (every optimiser;
                                      z = -700 is exactly 0 for momentum and RMSprop) */
    REVL_LEARN_CLIP = 256 /* log clip per step and group (every optimiser: the driver's kind);
                             its start must be finite (revl_hyperopt_set_kind), the +inf default
                             is refused at step; its block comes last (docs/hyperopt.md) */
};
/* Bits of kinds the hyper-optimiser's optimiser does not have are ignored. */
/* The REVL_LEARN_* bit of a kind (REVL_HYPER_ALPHA -> REVL_LEARN_ALPHA, ...), 0 for a value that
 * is no kind: with revl_hyper_name, a binding lists the learnable kinds without a table of its
 * own (INIT_SCALE and META are not kinds). */
REVL_API unsigned revl_hyper_learn_bit(revl_hyper kind);
typedef enum revl_meta_method { REVL_META_ADAM = 0, REVL_META_SGD = 1 } revl_meta_method;
typedef enum revl_chaos_action { REVL_CHAOS_SHRINK = 0, REVL_CHAOS_STOP = 1 } revl_chaos_action;

typedef struct revl_hyperopt_report {
    size_t struct_size;
    size_t iteration;      /* 0-based meta-iteration just done */
    double train_loss;     /* training loss of the last inner step */
    double valid_loss;     /* f(w_T) */
    double valid_accuracy; /* NaN when the objective is a user callback */
    double hypergrad_norm; /* 2-norm of the hypergradient over the learned coordinates */
    double step_size;      /* meta step size in force (after any chaos shrink) */
    double seconds;        /* wall time of this meta-iteration */
    int chaos;             /* nonzero when the chaos guard fired this iteration */
} revl_hyperopt_report;
/* Zero *r and set r->struct_size: call it before revl_hyperopt_step (NULL ok). */
REVL_API void revl_hyperopt_report_init(revl_hyperopt_report *r);
typedef int (*revl_report_fn)(const revl_hyperopt_report *r, void *user);

/* The validation objective f at w (and its gradients). dfdmeta may be NULL (then 0). */
typedef int (*revl_objective_fn)(const double *w, const double *meta, double *f, double *dfdw,
                                 double *dfdmeta, void *user);

typedef struct revl_hyperopt_options {
    size_t struct_size;
    unsigned learn;             /* REVL_LEARN_* bits; default ALPHA|GAMMA|INIT_SCALE */
    revl_meta_method method;    /* default REVL_META_ADAM */
    double step_size;           /* meta step; default 0.04 */
    double momentum;            /* REVL_META_SGD momentum; default 0.9 */
    double adam_beta1, adam_beta2, adam_eps; /* defaults 0.9, 0.999, 1e-8 */
    size_t iterations;          /* revl_hyperopt_run's meta-iterations; default 50 */
    int fresh_seed;             /* nonzero: new init noise (seed + iteration) per iteration; the
                                   minibatch order is the model's own; default 0 */
    uint64_t seed;              /* init noise seed; default 0 */
    double chaos_factor;        /* guard: hypergradient norm > chaos_factor * running minimum; default 10; 0 = off */
    revl_chaos_action chaos_action; /* default REVL_CHAOS_SHRINK (halve the meta step) */
    revl_report_fn report;      /* optional; nonzero return stops run() with REVL_OK */
    void *report_user;
    revl_objective_fn objective; /* optional when a validation set is given */
    void *objective_user;
    unsigned frac_bits;         /* trainer options; defaults as revl_trainer_options */
    int threads;
    const revl_allocator *allocator;
} revl_hyperopt_options;
REVL_API void revl_hyperopt_options_init(revl_hyperopt_options *o);

/* n_steps inner steps; groups are the model's groups. valid may be NULL when
 * opts->objective is set; otherwise f = revl_model_evaluate(model, valid, w_T).
 * Starts at alpha = e^-1, gamma = 0.5, log init scale -3, and meta = REVL_MLP_LOG_L2_START
 * for the built-in MLP's penalties (0 for a callback model's meta-parameters; revl_hyperopt_set
 * changes any of them). model and valid must outlive the hyper-optimiser.
 * When the first meta-iteration's training loss is no better than chance (log n_classes, for
 * a built-in model), revl_hyperopt_step and revl_hyperopt_run return REVL_OK with a message
 * "warning: ... no better than chance ..." in revl_hyperopt_last_error. */
REVL_API int revl_hyperopt_create(revl_hyperopt **out, revl_model *model,
                                  const revl_dataset *valid, size_t n_steps,
                                  const revl_hyperopt_options *opts);
/* The same for any optimiser (revl_hyperopt_create is this with REVL_OPTIM_MOMENTUM). Starts at
 * the optimiser's schedule defaults (momentum: alpha = e^-1, gamma = 0.5, as above), log init
 * scale -3, meta 0. */
REVL_API int revl_hyperopt_create_for(revl_hyperopt **out, revl_model *model,
                                      const revl_dataset *valid, size_t n_steps,
                                      revl_optimizer optimizer,
                                      const revl_hyperopt_options *opts);
REVL_API void revl_hyperopt_free(revl_hyperopt *h);
/* Set the current hyperparameters in natural units; any pointer may be NULL (unchanged).
 * alpha, gamma: n_steps*n_groups step-major; log_init_scales: n_groups; meta: n_meta. */
REVL_API int revl_hyperopt_set(revl_hyperopt *h, const double *alpha, const double *gamma,
                               const double *log_init_scales, const double *meta);
/* Read the current (best = 0) or best-so-far (best = 1: lowest validation loss) values. */
REVL_API int revl_hyperopt_get(const revl_hyperopt *h, int best, double *alpha, double *gamma,
                               double *log_init_scales, double *meta);
/* One kind's current values (n_steps*n_groups, natural units), checked as the schedule checks
 * them; get reads the current (best = 0) or best-so-far values. A kind the optimiser does not
 * have is REVL_ERR_INVALID. revl_hyperopt_set/get's gamma likewise needs a schedule with gamma. */
REVL_API int revl_hyperopt_set_kind(revl_hyperopt *h, revl_hyper kind, const double *values);
REVL_API int revl_hyperopt_get_kind(const revl_hyperopt *h, int best, revl_hyper kind,
                                    double *values);
REVL_API revl_optimizer revl_hyperopt_optimizer(const revl_hyperopt *h);
/* One meta-iteration; fills *report when not NULL. */
REVL_API int revl_hyperopt_step(revl_hyperopt *h, revl_hyperopt_report *report);
/* opts.iterations meta-iterations (or until report returns nonzero or the chaos guard stops). */
REVL_API int revl_hyperopt_run(revl_hyperopt *h);
REVL_API size_t revl_hyperopt_n_steps(const revl_hyperopt *h);
REVL_API size_t revl_hyperopt_n_groups(const revl_hyperopt *h);
/* Plain text, readable by other tools (docs/file-formats.md): the best (best = 1) or current
 * hyperparameters. load checks sizes against this hyper-optimiser: REVL_ERR_IO when malformed. */
REVL_API int revl_hyperopt_save(const revl_hyperopt *h, int best, const char *path);
REVL_API int revl_hyperopt_load(revl_hyperopt *h, const char *path);
REVL_API const char *revl_hyperopt_last_error(const revl_hyperopt *h);
/* Checkpoints between meta-iterations (binary, docs/file-formats.md): everything the next
 * meta-iteration depends on (current and best values, best loss, the meta-optimiser's moments,
 * the chaos guard's step size, running minimum and step-back point, the iteration count), so
 * that a killed hyper-optimisation continues with the bits of an uninterrupted one. Written to
 * a temporary file, fsynced and renamed. load needs a hyper-optimiser made the same way (model
 * sizes, steps, optimiser, options other than iterations, callbacks and threads): anything
 * else, or a damaged file, is REVL_ERR_IO with a message and changes nothing. Continue with
 * revl_hyperopt_step until revl_hyperopt_iterations_done reaches the total. */
REVL_API int revl_hyperopt_checkpoint_save(revl_hyperopt *h, const char *path);
REVL_API int revl_hyperopt_checkpoint_load(revl_hyperopt *h, const char *path);
REVL_API size_t revl_hyperopt_iterations_done(const revl_hyperopt *h);

/* ------------------------------------------------------------------ schedule families */
/* A family maps a short vector theta (n_theta numbers) to every hyperparameter of a training
 * run, in the hyper-optimiser's unconstrained coordinates z (docs/hyperopt.md, "Families"):
 * for each kind of the optimiser in its order (revl_schedule_kinds) a step-major block of
 * n_steps*n_groups values (log alpha, logit gamma, logit beta1, logit beta2, log eps), then
 * n_groups log init scales, then n_meta meta-parameters as they are;
 * n_z = n_kinds*n_steps*n_groups + n_groups + n_meta. Its transpose (vector-Jacobian product)
 * maps dz = df/dz to df/dtheta, so a hypergradient in z becomes one in theta. The coordinates
 * of z that theta does not control (kinds not in `learn`) come from the family's base point. */
typedef struct revl_family revl_family;
typedef enum revl_family_type {
    REVL_FAMILY_PER_STEP = 0, /* theta = the learned blocks of z: a value per step, group, kind */
    REVL_FAMILY_WINDOWS = 1,  /* a value per window of `window` consecutive steps, group, kind */
    REVL_FAMILY_SHAPE = 2,    /* log alpha(t, g) = a + log shape(t) + c[layer of g]; every other
                                 learned kind one value; one log init scale; one meta offset */
    REVL_FAMILY_USER = 3      /* two callbacks: the map and its transpose */
} revl_family_type;
/* SHAPE's alpha over steps t = 0..T-1, with final fraction f = exp(theta) (learned):
 * CONSTANT 1; LINEAR 1 - (1 - f) t / (T - 1); COSINE f + (1 - f) (1 + cos(pi t / (T - 1))) / 2;
 * times min(1, (t + 1) / warmup) when warmup > 0. */
typedef enum revl_shape {
    REVL_SHAPE_CONSTANT = 0,
    REVL_SHAPE_LINEAR = 1,
    REVL_SHAPE_COSINE = 2
} revl_shape;
/* USER family callbacks: z[n_z] from theta[n_theta] (z starts as the family's base point, so a
 * map may write only what it controls; `learn` is not used); dtheta[n_theta] = J(theta)^T dz[n_z]
 * (dtheta starts at 0). Return 0, or nonzero to fail the call (REVL_ERR_CALLBACK). Non-finite
 * outputs are refused (REVL_ERR_RANGE naming the coordinate). */
typedef int (*revl_family_map_fn)(const double *theta, double *z, void *user);
typedef int (*revl_family_vjp_fn)(const double *theta, const double *dz, double *dtheta,
                                  void *user);
typedef struct revl_family_options {
    size_t struct_size;
    revl_family_type type;     /* default REVL_FAMILY_PER_STEP */
    unsigned learn;            /* REVL_LEARN_* bits theta controls (kinds the optimiser lacks are
                                  ignored); default ALPHA | GAMMA | INIT_SCALE */
    size_t window;             /* WINDOWS: steps per window (the last may be shorter); default 10 */
    revl_shape shape;          /* SHAPE: alpha's shape; default REVL_SHAPE_LINEAR */
    size_t warmup;             /* SHAPE: steps of linear warm-up (fixed, not learned); default 0 */
    size_t n_layers;           /* SHAPE: alpha multipliers; 0 = one per group */
    const size_t *group_layer; /* SHAPE: n_groups entries < n_layers, the multiplier each group
                                  uses; NULL = group g uses g * n_layers / n_groups; copied */
    size_t n_theta;            /* USER: length of theta */
    revl_family_map_fn map;    /* USER */
    revl_family_vjp_fn vjp;    /* USER */
    void *user;                /* USER */
} revl_family_options;
REVL_API void revl_family_options_init(revl_family_options *o);
/* A family for an optimiser's schedule of n_steps x n_groups with n_meta meta-parameters. */
REVL_API int revl_family_create(revl_family **out, revl_optimizer optimizer, size_t n_steps,
                                size_t n_groups, size_t n_meta, const revl_family_options *opts);
REVL_API void revl_family_free(revl_family *f);
REVL_API size_t revl_family_n_theta(const revl_family *f);
REVL_API size_t revl_family_n_z(const revl_family *f);
/* z[n_z] = map(theta); REVL_ERR_RANGE when theta or the result is not finite. */
REVL_API int revl_family_map(revl_family *f, const double *theta, double *z);
/* dtheta[n_theta] = J(theta)^T dz[n_z] (exact transpose of map's derivative at theta). */
REVL_API int revl_family_vjp(revl_family *f, const double *theta, const double *dz,
                             double *dtheta);
/* The base point z0[n_z] for the coordinates theta does not control (default: the optimiser's
 * schedule defaults in z, log init scale -3, meta 0). set copies it; get writes it. */
REVL_API int revl_family_set_base(revl_family *f, const double *z0);
REVL_API int revl_family_get_base(const revl_family *f, double *z0);
/* The theta whose map is nearest z (least squares): exact for PER_STEP, the window means for
 * WINDOWS; REVL_ERR_INVALID for SHAPE and USER, which have no projection. */
REVL_API int revl_family_project(revl_family *f, const double *z, double *theta);
/* The search box of theta (lo[n_theta], hi[n_theta]) that the tuner's global phase covers.
 * Defaults per coordinate: docs/hyperopt.md (USER: [-1, 1]); set checks lo < hi, both finite. */
REVL_API int revl_family_get_bounds(const revl_family *f, double *lo, double *hi);
REVL_API int revl_family_set_bounds(revl_family *f, const double *lo, const double *hi);
/* What theta[i] is, e.g. "log alpha", "log alpha multiplier of layer 2", "alpha decay log final
 * fraction", "logit gamma at step 3, group 1"; written into buf (size bytes, truncated to fit).
 * A family computes in scratch it owns: one thread at a time per family. */
REVL_API int revl_family_coord_name(const revl_family *f, size_t i, char *buf, size_t size);
REVL_API const char *revl_family_last_error(const revl_family *f);

/* ------------------------------------------------------------------ tuner */
/* revl's default way to tune (docs/hyperopt.md): a global search over a compact family's box
 * (low-discrepancy points, then Parzen-estimator proposals; each point a forward-only training;
 * diverging runs abandoned), then refinement of the best points by exact hypergradients in a
 * finer family, each meta-step accepted only when the validation loss falls (else shrunk), within
 * a budget in seconds or in training runs. */
typedef struct revl_tuner revl_tuner;
typedef enum revl_tune_strategy {
    REVL_TUNE_SEARCH_THEN_REFINE = 0, /* the default */
    REVL_TUNE_SEARCH = 1,             /* the global phase only */
    REVL_TUNE_REFINE = 2              /* refinement only, from the refine family's base point */
} revl_tune_strategy;
typedef enum revl_refine_method {
    REVL_REFINE_BACKTRACK = 0, /* Adam-preconditioned direction; a step is kept only when the
                                  validation loss falls, else halved and retried; kept steps grow */
    REVL_REFINE_ADAM = 1       /* plain Adam at a constant step with today's chaos guard */
} revl_refine_method;
enum { REVL_TUNE_PHASE_SEARCH = 0, REVL_TUNE_PHASE_REFINE = 1, REVL_TUNE_PHASE_DONE = 2 };

typedef struct revl_tuner_report {
    size_t struct_size;
    int phase;          /* REVL_TUNE_PHASE_SEARCH or _REFINE: the phase of this evaluation */
    size_t index;       /* evaluation of the search, or meta-iteration of the refinement */
    double loss;        /* validation loss of this evaluation (+inf when its training diverged) */
    double best_loss;   /* lowest validation loss so far */
    double step_size;   /* refinement: meta step in force; NaN in the search */
    int accepted;       /* refinement: the step was kept (a start's first point: 1) */
    size_t start;       /* refinement: which start (0-based) this meta-iteration belongs to */
    double seconds;     /* since the tuning began (resumed runs: plus the time before) */
    double eta_seconds; /* estimated time left in the budget; NaN when unknown */
    size_t runs;        /* budget units used: forward trainings plus reverse passes */
} revl_tuner_report;
REVL_API void revl_tuner_report_init(revl_tuner_report *r);
typedef int (*revl_tuner_report_fn)(const revl_tuner_report *r, void *user);

typedef struct revl_tuner_options {
    size_t struct_size;
    revl_tune_strategy strategy;       /* default REVL_TUNE_SEARCH_THEN_REFINE */
    double budget_seconds;             /* wall-clock budget; 0 = none */
    size_t budget_runs;                /* forward trainings + reverse passes; 0 = none. At least
                                          one of the two must be set; the first spent ends it */
    int cpu_time;                      /* nonzero: budget_seconds counts this process's CPU
                                          time (fair comparisons on a shared machine); default 0 */
    double search_fraction;            /* share of the budget for the search; default 0.5 */
    size_t n_initial;                  /* low-discrepancy points before proposals; 0 = 10 */
    size_t n_candidates;               /* candidates scored per proposal; default 24 */
    double good_fraction;              /* share of evaluations modelled as good; default 0.15 */
    size_t refine_starts;              /* best search points refined, one after another (a start
                                          ends when its step falls below min_step: the best point
                                          keeps the budget while its steps succeed); when all have
                                          ended before the budget, the search continues; default 3 */
    revl_refine_method refine_method;  /* default REVL_REFINE_BACKTRACK */
    double refine_step;                /* first meta step: largest change of a z coordinate;
                                          default 0.05 */
    double step_grow, step_shrink;     /* after a kept / refused step; defaults 1.5, 0.5 */
    double min_step;                   /* a start ends when its step falls below; default 0.003
                                          (four refusals in a row from the first step) */
    size_t n_orders;                   /* minibatch orders averaged per refinement step (built-in
                                          MLP only; its seed + k); default 1 */
    uint64_t seed;                     /* sampler and init noise; default 0 */
    const revl_dataset *test;          /* optional: the best point's test loss is reported, never
                                          used to choose */
    revl_tuner_report_fn report;       /* optional; nonzero return stops the run with REVL_OK */
    void *report_user;
    revl_objective_fn objective;       /* optional when a validation set is given */
    void *objective_user;
    unsigned frac_bits;                /* trainer options; defaults as revl_trainer_options */
    int threads;
    const revl_allocator *allocator;
} revl_tuner_options;
REVL_API void revl_tuner_options_init(revl_tuner_options *o);

/* search and refine may be NULL: the defaults are SHAPE (LINEAR, one multiplier per layer of a
 * built-in MLP, else per group) and PER_STEP, both learning alpha, gamma (or the optimiser's
 * betas), init scales. Both must be made for the same optimiser, n_steps, groups and n_meta;
 * the tuner copies what it needs (they may be freed after). */
REVL_API int revl_tuner_create(revl_tuner **out, revl_model *model, const revl_dataset *valid,
                               size_t n_steps, revl_optimizer optimizer,
                               const revl_family *search, const revl_family *refine,
                               const revl_tuner_options *opts);
REVL_API void revl_tuner_free(revl_tuner *t);
/* One evaluation of the search or one meta-iteration of the refinement; REVL_OK with
 * revl_tuner_phase == REVL_TUNE_PHASE_DONE once the budget is spent. */
REVL_API int revl_tuner_step(revl_tuner *t, revl_tuner_report *report);
/* Steps until the budget is spent or the report callback returns nonzero. */
REVL_API int revl_tuner_run(revl_tuner *t);
REVL_API int revl_tuner_phase(const revl_tuner *t);

typedef struct revl_tuner_result {
    size_t struct_size;
    double valid_loss, valid_accuracy; /* of the best point (accuracy NaN for an objective) */
    double test_loss, test_accuracy;   /* NaN without a test set */
    size_t search_evaluations, refine_iterations, runs;
    double seconds;                    /* tuning time so far */
    int best_phase;                    /* where the best point was found */
} revl_tuner_result;
REVL_API void revl_tuner_result_init(revl_tuner_result *r);
REVL_API int revl_tuner_get_result(revl_tuner *t, revl_tuner_result *r);
/* The best point: one kind's n_steps*n_groups values in natural units; log init scales and meta
 * (either may be NULL); all of z (n_z of the families); its trained weights w_T (n_params: the
 * training that gave the best loss, not a retraining); the schedule filled with its values. */
REVL_API int revl_tuner_best_kind(const revl_tuner *t, revl_hyper kind, double *values);
REVL_API int revl_tuner_best_scales_meta(const revl_tuner *t, double *log_init_scales,
                                         double *meta);
REVL_API int revl_tuner_best_z(const revl_tuner *t, double *z);
REVL_API int revl_tuner_best_weights(const revl_tuner *t, double *w);
REVL_API int revl_tuner_best_schedule(const revl_tuner *t, revl_schedule *s);
/* The refinement's current point: theta (the refine family's n_theta), its validation loss and
 * its hypergradient d loss / d theta (any pointer may be NULL). REVL_ERR_STATE when no
 * refinement start is in progress. */
REVL_API int revl_tuner_refine_point(const revl_tuner *t, double *theta, double *grad,
                                     double *loss);
/* n_theta of the tuner's search (phase REVL_TUNE_PHASE_SEARCH) or refine family (_REFINE);
 * 0 for NULL or another phase. */
REVL_API size_t revl_tuner_n_theta(const revl_tuner *t, int phase);
/* Checkpoints between steps (docs/file-formats.md): a killed tuning continues with the bits of an
 * uninterrupted one (for a budget in runs; a budget in seconds continues with the time left). */
REVL_API int revl_tuner_checkpoint_save(revl_tuner *t, const char *path);
REVL_API int revl_tuner_checkpoint_load(revl_tuner *t, const char *path);
REVL_API const char *revl_tuner_last_error(const revl_tuner *t);

/* The built-in MLP's minibatch order (reproduce a trial elsewhere): the batch_size example
 * indices (into its training set) of step `step`, in order; and a new order seed (the
 * permutation of every epoch drawn again). REVL_ERR_INVALID for other models. */
REVL_API int revl_mlp_batch_indices(revl_model *m, size_t step, size_t *indices, size_t *count);
REVL_API int revl_mlp_set_order_seed(revl_model *m, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif /* REVL_H */
