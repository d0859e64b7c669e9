/* dp.c: the data-parallel model. Every gradient or Hessian-vector call is one collective step:
 * this rank evaluates its micro-batches, rounds each contribution to a multiple of 2^-F and adds
 * them as int64; one all-reduce then sums, in the same integers, the contributions of all ranks
 * together with a vote (did any rank fail? were all ranks called at the same point?). Integer
 * sums are associative, so the result is the same bits however the micro-batches are spread
 * over ranks, and because every rank reads the same vote every rank takes the same branch: a
 * failure anywhere fails the call everywhere, and no rank is left waiting in a collective. */
#include "parallel/dp.h"
#include "base/ckptfile.h"

#include <math.h>
#include <string.h>

#define MSG_WORDS (RV_ERRLEN / 8) /* the failing rank's message, sent as int64 words */

typedef struct rv_dp {
    revl_dp_def def;
    revl_comm comm;
    revl_allocator alloc;
    size_t first, count; /* this rank's micro-batches */
    double scale, limit; /* 2^F, and the bound on |contribution| that keeps the sum in int64 */
    int64_t *buf;        /* 2R vote words, then up to 1 + 2 n_params + n_meta data words */
    double *g, *hv, *hm; /* one micro-batch's contributions: n_params, n_params, n_meta */
    revl_model *inner;   /* built-in model behind the callbacks, owned; NULL for callbacks */
    const revl_model *self; /* the model this wrapper is: its `agree`, set by the trainer */
    uint64_t def_hash;   /* what of the definition decides the bits (n_micro, F, sizes) */
    char local[RV_ERRLEN]; /* this rank's failure */
    char note[RV_ERRLEN];  /* the failure every rank reports: the model's fail_note */
} rv_dp;

/* A hash of the point of the call, to check that every rank asks about the same one. */
static uint64_t mix(uint64_t h, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, &x[i], sizeof b);
        h = (h ^ b) * 0x100000001b3u;
        h ^= h >> 29;
    }
    return h;
}

/* acc += round(x * 2^F) elementwise; 1 with this rank's message when an x is out of range. */
static int add_fixed(rv_dp *d, int64_t *acc, const double *x, size_t n, const char *what,
                     size_t step, size_t micro)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) { /* said once: "= nan ... is NaN" would say it twice */
            rv_fail(d->local, REVL_ERR_RANGE, "rank %d: micro-batch %zu's %s[%zu] is NaN at step %zu",
                    d->comm.rank, micro, what, i, step);
            return 1;
        }
        if (!(fabs(x[i]) < d->limit)) {
            rv_fail(d->local, REVL_ERR_RANGE,
                    "rank %d: micro-batch %zu's %s[%zu] = %g at step %zu is outside the range of "
                    "the fixed-point sum",
                    d->comm.rank, micro, what, i, x[i], step);
            return 1;
        }
        acc[i] += (int64_t)llrint(x[i] * d->scale);
    }
    return 0;
}

/* This rank's micro-batches into the data words: loss, grad (when grad), hv_w and hv_meta
 * (when v). Returns 0, or 1 with d->local set. */
static int local_sums(rv_dp *d, size_t step, const double *w, const double *meta,
                      const double *v, int want_grad, int64_t *data)
{
    size_t n = d->def.n_params, nm = d->def.n_meta;
    int64_t *dg = data + 1, *dh = dg + (want_grad ? n : 0), *dm = dh + n;
    for (size_t k = d->first; k < d->first + d->count; k++) {
        /* every output 0 on entry (the contract): a callback may write only what its
         * micro-batch adds (hv_meta in micro-batch 0 alone) or add into it */
        double loss = 0;
        memset(d->g, 0, n * sizeof *d->g);
        memset(d->hv, 0, n * sizeof *d->hv);
        memset(d->hm, 0, nm * sizeof *d->hm);
        int rc = 0;
        const char *who = "gradient";
        if (want_grad && !(v && d->def.hvp_gives_grad))
            rc = d->def.grad(step, k, w, meta, d->g, &loss, d->def.user);
        if (!rc && v) {
            who = "Hessian-vector";
            rc = d->def.hvp(step, k, w, meta, v, want_grad && d->def.hvp_gives_grad ? d->g : NULL,
                            d->hv, nm ? d->hm : NULL, d->def.user);
        }
        if (rc) {
            const char *why = d->inner ? d->inner->fail_note : NULL; /* a built-in's own fault */
            if (why && why[0])
                rv_fail(d->local, REVL_ERR_CALLBACK, "rank %d: micro-batch %zu: %s",
                        d->comm.rank, k, why);
            else
                rv_fail(d->local, REVL_ERR_CALLBACK,
                        "rank %d: micro-batch %zu's %s callback returned %d at step %zu",
                        d->comm.rank, k, who, rc, step);
            return 1;
        }
        if (add_fixed(d, data, &loss, 1, "loss", step, k) ||
            (want_grad && add_fixed(d, dg, d->g, n, "gradient", step, k)) ||
            (v && add_fixed(d, dh, d->hv, n, "Hessian-vector product", step, k)) ||
            (v && add_fixed(d, dm, d->hm, nm, "meta Hessian-vector product", step, k)))
            return 1;
    }
    return 0;
}

/* The rank every rank blames: the lowest that voted failure, or -1. */
static int failing_rank(const int64_t *vote, int size)
{
    for (int r = 0; r < size; r++)
        if (vote[r])
            return r;
    return -1;
}

/* The failing rank's message to every rank (one more collective, which every rank makes
 * because every rank read the same vote). */
static void share_message(rv_dp *d, int from, size_t step)
{
    int64_t words[MSG_WORDS] = {0};
    if (d->comm.rank == from)
        memcpy(words, d->local, sizeof words);
    if (d->comm.allreduce_i64(words, MSG_WORDS, d->comm.user)) {
        rv_fail(d->note, REVL_ERR_CALLBACK,
                "rank %d failed at step %zu; sending its message failed too", from, step);
        return;
    }
    memcpy(d->note, words, sizeof words);
    d->note[RV_ERRLEN - 1] = '\0';
}

static void to_double(const rv_dp *d, const int64_t *q, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (double)q[i] / d->scale;
}

/* One collective evaluation: grad (when grad != NULL) and loss, and H v (when v != NULL). */
static int dp_call(rv_dp *d, size_t step, const double *w, const double *meta, const double *v,
                   double *grad, double *loss, double *hv_w, double *hv_meta)
{
    size_t n = d->def.n_params, nm = d->def.n_meta, R = (size_t)d->comm.size;
    size_t k = 1 + (grad ? n : 0) + (v ? n + nm : 0);
    int64_t *vote = d->buf, *data = d->buf + 2 * R;
    memset(d->buf, 0, (2 * R + k) * sizeof *d->buf);
    d->note[0] = '\0';
    /* the point, and what decides the bits besides it: the definition and the trainer's step
     * (schedule values, truncation, step count), so that a rank that differs in any of them
     * fails the call on every rank instead of adding other bits */
    uint64_t h = mix(0xcbf29ce484222325u ^ step ^ d->def_hash, w, n);
    h = rv_hash_u64(h, d->self->agree);
    h = mix(h, meta, meta ? nm : 0);
    h = mix(h, v, v ? n : 0);
    vote[d->comm.rank] = local_sums(d, step, w, meta, v, grad != NULL, data);
    vote[R + (size_t)d->comm.rank] = (int64_t)h;
    if (d->comm.allreduce_i64(d->buf, 2 * R + k, d->comm.user)) {
        rv_fail(d->note, REVL_ERR_CALLBACK, "rank %d: the all-reduce at step %zu failed",
                d->comm.rank, step);
        return 1;
    }
    int bad = failing_rank(vote, d->comm.size);
    if (bad >= 0) {
        share_message(d, bad, step);
        return 1;
    }
    for (size_t r = 1; r < R; r++)
        if (vote[R + r] != vote[R]) {
            rv_fail(d->note, REVL_ERR_CALLBACK,
                    "rank %zu was called at step %zu at another w, meta or v than rank 0, or "
                    "with another schedule, truncation, step count, n_micro or grad_frac_bits "
                    "(the ranks are not running the same training)", r, step);
            return 1;
        }
    if (loss)
        to_double(d, data, loss, 1);
    if (grad)
        to_double(d, data + 1, grad, n);
    if (v) {
        const int64_t *q = data + 1 + (grad ? n : 0);
        to_double(d, q, hv_w, n);
        if (hv_meta)
            to_double(d, q + n, hv_meta, nm);
    }
    return 0;
}

static int dp_grad(size_t step, const double *w, const double *meta, double *grad, double *loss,
                   void *user)
{
    return dp_call(user, step, w, meta, NULL, grad, loss, NULL, NULL);
}

static int dp_hvp(size_t step, const double *w, const double *meta, const double *v,
                  double *grad, double *hv_w, double *hv_meta, void *user)
{
    return dp_call(user, step, w, meta, v, grad, NULL, hv_w, hv_meta);
}

static int dp_evaluate(void *impl, const revl_dataset *data, const double *w, double *loss,
                       double *grad_w, double *accuracy, char *err)
{
    rv_dp *d = impl;
    int rc = revl_model_evaluate(d->inner, data, w, loss, grad_w, accuracy);
    return rc ? rv_fail(err, rc, "%s", revl_model_last_error(d->inner)) : REVL_OK;
}

static void dp_free(void *user)
{
    rv_dp *d = user;
    if (d->def.user_free)
        d->def.user_free(d->def.user);
    revl_model_free(d->inner);
    revl_allocator a = d->alloc;
    rv_free(&a, d->buf);
    rv_free(&a, d->g);
    rv_free(&a, d->hv);
    rv_free(&a, d->hm);
    rv_free(&a, d);
}

void revl_dp_def_init(revl_dp_def *def)
{
    if (!def)
        return;
    memset(def, 0, sizeof *def);
    def->struct_size = sizeof *def;
    def->n_micro = 1;
    def->grad_frac_bits = 40;
}

static int check_def(const revl_dp_def *def)
{
    if (!def || def->struct_size < sizeof *def || def->n_params == 0 || def->n_micro == 0 ||
        !def->grad || !def->hvp || def->grad_frac_bits < 1 || def->grad_frac_bits > 60)
        return REVL_ERR_INVALID;
    const revl_comm *c = def->comm;
    if (c && (c->struct_size < sizeof *c || !c->allreduce_i64 || c->size < 1 || c->rank < 0 ||
              c->rank >= c->size))
        return REVL_ERR_INVALID;
    return REVL_OK;
}

int rv_dp_model_create(revl_model **out, const revl_dp_def *def, revl_model *inner)
{
    if (out)
        *out = NULL;
    if (!out || check_def(def)) {
        revl_model_free(inner);
        return REVL_ERR_INVALID;
    }
    revl_allocator a;
    rv_allocator_copy(&a, def->allocator);
    rv_dp *d = rv_calloc(&a, 1, sizeof *d);
    if (!d) {
        revl_model_free(inner);
        return REVL_ERR_NOMEM;
    }
    d->def = *def;
    d->def.allocator = NULL;
    d->alloc = a;
    d->inner = inner;
    if (def->comm)
        d->comm = *def->comm;
    else
        revl_comm_init_local(&d->comm);
    revl_dp_micro_range(def->n_micro, d->comm.rank, d->comm.size, &d->first, &d->count);
    d->scale = ldexp(1.0, (int)def->grad_frac_bits);
    d->limit = ldexp(1.0, 62 - (int)def->grad_frac_bits) / (double)def->n_micro;
    size_t n = def->n_params, nm = def->n_meta;
    d->buf = rv_calloc(&a, 2 * (size_t)d->comm.size + 1 + 2 * n + nm, sizeof *d->buf);
    d->g = rv_calloc(&a, n, sizeof *d->g);
    d->hv = rv_calloc(&a, n, sizeof *d->hv);
    d->hm = rv_calloc(&a, nm ? nm : 1, sizeof *d->hm);
    if (!d->buf || !d->g || !d->hv || !d->hm) {
        d->def.user_free = NULL; /* the caller's user stays the caller's on failure */
        dp_free(d);
        return REVL_ERR_NOMEM;
    }
    revl_model_def md;
    revl_model_def_init(&md);
    md.n_params = n;
    md.n_meta = nm;
    md.grad = dp_grad;
    md.hvp = dp_hvp;
    md.hvp_gives_grad = 1; /* gradient and H v travel in one all-reduce */
    md.user = d;
    md.user_free = dp_free;
    md.allocator = &a;
    rv_model_builtin builtin = {.evaluate = dp_evaluate};
    size_t n_groups = inner ? revl_model_n_groups(inner) : 1;
    size_t *offsets = inner ? inner->offsets : NULL;
    int rc = rv_model_create(out, &md, n_groups, offsets, inner ? &builtin : NULL);
    if (rc) {
        d->def.user_free = NULL;
        dp_free(d);
        return rc;
    }
    (*out)->fail_note = d->note;
    d->self = *out;
    uint64_t shape[] = {n, nm, def->n_micro, def->grad_frac_bits, (uint64_t)def->hvp_gives_grad};
    d->def_hash = rv_hash_u64s(RV_HASH_INIT, shape, sizeof shape / sizeof shape[0]);
    return REVL_OK;
}

int revl_dp_model_create(revl_model **out, const revl_dp_def *def)
{
    rv_create_err()[0] = '\0';
    return rv_create_end(rv_dp_model_create(out, def, NULL), "revl_dp_model_create");
}
