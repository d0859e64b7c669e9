/* sampler.c: the tuner's global search (sampler.h): scrambled Halton points (lowdisc.c) first,
 * then the Tree-structured Parzen Estimator of Bergstra et al. (2011). The told results, sorted
 * by loss, split into the best n_good = max(1, ceil(good_fraction n)) finite ones and the rest
 * (every +inf among the rest). Each set's density on [0, 1]^dim is a Parzen estimator: an equal
 * mixture of the uniform prior and one product kernel per point, a Gaussian truncated to [0, 1]
 * in each coordinate with its own width (the larger gap to its neighbours in that coordinate
 * within its set, the cube's faces counting as neighbours, clipped to [MIN_WIDTH, 1]). A
 * proposal draws n_candidates points from the good density l and keeps the one of largest
 * log l - log g, g the bad density. Everything a proposal draws comes from a generator seeded
 * by (seed, n_told), so proposing changes nothing and a search told the same results again
 * proposes the same points. */
#include "hyperopt/sampler.h"

#include "hyperopt/lowdisc.h"

#include <math.h>
#include <string.h>

/* the narrowest kernel: keeps log densities finite where points coincide, and the search from
 * collapsing onto one point; 1 % of the side of the cube */
#define MIN_WIDTH 0.01
#define LOG_SQRT_2PI 0.91893853320467274178
/* proposals' stream, apart from the Halton digits' streams of the same seed */
#define PROPOSAL_TAG 0x6a09e667f3bcc909ULL

struct rv_sampler {
    revl_allocator a;
    rv_sampler_config cfg;
    rv_lowdisc seq;
    size_t n, cap, n_finite;
    int fitted;      /* width and lognorm hold the fit of the n results told */
    double *x;       /* cap x dim: the told points */
    double *loss;    /* cap */
    size_t *rank;    /* n: told indices by (loss, index), so ties go to the earlier one */
    /* scratch of the fit and the proposals, sized with cap (grown by tell, never by propose) */
    double *width;   /* cap x dim: each point's kernel width in its set */
    double *lognorm; /* cap x dim: log of each kernel's normaliser, sigma sqrt(2 pi) mass */
    double *terms;   /* cap + 1: a mixture's log terms */
    size_t *order;   /* cap: one set sorted by a coordinate */
    double *cand;    /* dim */
    char err[RV_ERRLEN];
};

#define FAIL(s, ...) rv_fail((s)->err, REVL_ERR_INVALID, __VA_ARGS__)

int rv_sampler_create(rv_sampler **out, const rv_sampler_config *cfg, const revl_allocator *a,
                      char *err)
{
    if (!out)
        return rv_fail(err, REVL_ERR_INVALID, "sampler: out is NULL");
    *out = NULL;
    if (!cfg)
        return rv_fail(err, REVL_ERR_INVALID, "sampler: config is NULL");
    if (cfg->dim < 1 || cfg->dim > RV_LOWDISC_MAX_DIM)
        return rv_fail(err, REVL_ERR_INVALID, "sampler: dim = %zu is outside [1, %zu]",
                       cfg->dim, RV_LOWDISC_MAX_DIM);
    if (cfg->n_initial < 1)
        return rv_fail(err, REVL_ERR_INVALID, "sampler: n_initial must be >= 1");
    if (cfg->n_candidates < 1)
        return rv_fail(err, REVL_ERR_INVALID, "sampler: n_candidates must be >= 1");
    if (!(cfg->good_fraction > 0 && cfg->good_fraction < 1)) /* NaN too */
        return rv_fail(err, REVL_ERR_INVALID, "sampler: good_fraction = %g is outside (0, 1)",
                       cfg->good_fraction);
    revl_allocator al;
    rv_allocator_copy(&al, a);
    rv_sampler *s = rv_calloc(&al, 1, sizeof *s);
    if (!s)
        return rv_fail(err, REVL_ERR_NOMEM, "sampler: no memory for the sampler");
    s->a = al;
    s->cfg = *cfg;
    s->cand = rv_alloc_array(&al, cfg->dim, sizeof *s->cand);
    if (!s->cand || rv_lowdisc_init(&s->seq, cfg->dim, cfg->seed, &al) != REVL_OK) {
        rv_sampler_free(s);
        return rv_fail(err, REVL_ERR_NOMEM, "sampler: no memory for %zu dimensions", cfg->dim);
    }
    *out = s;
    return REVL_OK;
}

void rv_sampler_free(rv_sampler *s)
{
    if (!s)
        return;
    revl_allocator a = s->a;
    rv_lowdisc_free(&s->seq, &a);
    rv_free(&a, s->cand);
    rv_free(&a, s->x); /* one block holds every array sized with cap */
    rv_free(&a, s);
}

/* Room for cap results: one block for the told arrays and the scratch, or REVL_ERR_NOMEM with
 * the sampler as it was. */
static int grow(rv_sampler *s, size_t cap)
{
    const size_t dim = s->cfg.dim, cells = cap * dim; /* no overflow: cap * the bytes below */
    /* per result: x, width and lognorm (dim each), loss and terms; rank and order */
    const size_t per_result = (3 * dim + 2) * sizeof(double) + 2 * sizeof(size_t);
    int ok = 1;
    size_t bytes = rv_mul_size(cap, per_result, &ok);
    if (!ok || bytes > SIZE_MAX - sizeof(double)) /* and terms' one more */
        return REVL_ERR_NOMEM;
    const size_t doubles = 3 * cells + 2 * cap + 1;
    double *block = rv_alloc(&s->a, bytes + sizeof(double));
    if (!block)
        return REVL_ERR_NOMEM;
    double *x = block, *loss = x + cells;
    size_t *rank = (size_t *)(void *)(block + doubles);
    if (s->n) {
        memcpy(x, s->x, s->n * dim * sizeof *x);
        memcpy(loss, s->loss, s->n * sizeof *loss);
        memcpy(rank, s->rank, s->n * sizeof *rank);
    }
    rv_free(&s->a, s->x);
    s->x = x;
    s->loss = loss;
    s->width = loss + cap;
    s->lognorm = s->width + cells;
    s->terms = s->lognorm + cells;
    s->rank = rank;
    s->order = rank + cap;
    s->cap = cap;
    return REVL_OK;
}

int rv_sampler_tell(rv_sampler *s, const double *u, double loss)
{
    if (!s)
        return REVL_ERR_INVALID;
    if (!u)
        return FAIL(s, "sampler_tell: u is NULL");
    for (size_t d = 0; d < s->cfg.dim; d++)
        if (!(u[d] >= 0 && u[d] <= 1))
            return FAIL(s, "sampler_tell: u[%zu] = %g is outside [0, 1]", d, u[d]);
    if (isnan(loss) || loss == -INFINITY)
        return FAIL(s, "sampler_tell: loss = %g (a loss is finite, or +inf for a failed run)",
                    loss);
    if (s->n == s->cap && grow(s, s->cap ? 2 * s->cap : 16) != REVL_OK)
        return rv_fail(s->err, REVL_ERR_NOMEM, "sampler_tell: no memory for %zu results",
                       s->cap ? 2 * s->cap : 16);
    const size_t k = s->n, dim = s->cfg.dim;
    memcpy(s->x + k * dim, u, dim * sizeof *u);
    s->loss[k] = loss;
    /* after every equal loss: the earlier result ranks first */
    size_t lo = 0, hi = k;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->loss[s->rank[mid]] <= loss)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(s->rank + lo + 1, s->rank + lo, (k - lo) * sizeof *s->rank);
    s->rank[lo] = k;
    s->n_finite += loss < INFINITY;
    s->n++;
    s->fitted = 0;
    return REVL_OK;
}

size_t rv_sampler_n_told(const rv_sampler *s)
{
    return s ? s->n : 0;
}

const double *rv_sampler_point(const rv_sampler *s, size_t k, double *loss)
{
    if (!s || k >= s->n)
        return NULL;
    if (loss)
        *loss = s->loss[k];
    return s->x + k * s->cfg.dim;
}

void rv_sampler_reset(rv_sampler *s)
{
    if (s) {
        s->n = s->n_finite = 0;
        s->fitted = 0;
    }
}

const char *rv_sampler_last_error(const rv_sampler *s)
{
    return s ? s->err : "sampler is NULL";
}

/* the good set is rank[0, n_good), the bad set the rest */
static size_t n_good(const rv_sampler *s)
{
    size_t g = (size_t)ceil(s->cfg.good_fraction * (double)s->n);
    if (g < 1)
        g = 1;
    return g < s->n_finite ? g : s->n_finite; /* +inf is never good */
}

/* order[a] before order[b] in coordinate d: by value, ties by index */
static int before(const rv_sampler *s, size_t d, size_t i, size_t j)
{
    const double xi = s->x[i * s->cfg.dim + d], xj = s->x[j * s->cfg.dim + d];
    return xi < xj || (xi == xj && i < j);
}

static void sift_down(const rv_sampler *s, size_t d, size_t *v, size_t root, size_t len)
{
    for (size_t child; (child = 2 * root + 1) < len; root = child) {
        if (child + 1 < len && before(s, d, v[child], v[child + 1]))
            child++;
        if (!before(s, d, v[root], v[child]))
            return;
        size_t t = v[root];
        v[root] = v[child];
        v[child] = t;
    }
}

/* heapsort: in place, no allocation, and a total order, so the same input sorts the same way */
static void sort_by_coordinate(const rv_sampler *s, size_t d, size_t *v, size_t len)
{
    for (size_t i = len / 2; i-- > 0;)
        sift_down(s, d, v, i, len);
    for (size_t end = len; end-- > 1;) {
        size_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(s, d, v, 0, end);
    }
}

static double normal_cdf(double z)
{
    return 0.5 * erfc(-z * 0.70710678118654752440);
}

/* The kernels of one set (its m told indices): widths from the neighbours in each coordinate,
 * and the log normalisers of the Gaussians truncated to [0, 1]. */
static void fit_set(rv_sampler *s, const size_t *set, size_t m)
{
    const size_t dim = s->cfg.dim;
    for (size_t d = 0; d < dim && m; d++) { /* none told yet: no scratch either */
        memcpy(s->order, set, m * sizeof *set);
        sort_by_coordinate(s, d, s->order, m);
        for (size_t p = 0; p < m; p++) {
            const size_t i = s->order[p];
            const double mu = s->x[i * dim + d];
            const double left = p ? s->x[s->order[p - 1] * dim + d] : 0;
            const double right = p + 1 < m ? s->x[s->order[p + 1] * dim + d] : 1;
            double w = fmax(mu - left, right - mu);
            w = w < MIN_WIDTH ? MIN_WIDTH : w > 1 ? 1 : w;
            /* the mass on [0, 1] is at least 0.34 (mu in [0, 1], w <= 1): log finite */
            const double mass = normal_cdf((1 - mu) / w) - normal_cdf(-mu / w);
            s->width[i * dim + d] = w;
            s->lognorm[i * dim + d] = log(w) + LOG_SQRT_2PI + log(mass);
        }
    }
}

static void fit(rv_sampler *s)
{
    if (s->fitted)
        return;
    const size_t g = n_good(s);
    fit_set(s, s->rank, g);
    fit_set(s, s->rank + g, s->n - g);
    s->fitted = 1;
}

/* log of the density of the set's mixture (the prior and m kernels, equal weights) at u */
static double log_mixture(rv_sampler *s, const size_t *set, size_t m, const double *u)
{
    const size_t dim = s->cfg.dim;
    if (m == 0)
        return 0; /* the prior alone (and no scratch yet before the first result) */
    double top = 0; /* the prior's term: log 1 on the cube */
    s->terms[0] = 0;
    for (size_t p = 0; p < m; p++) {
        const size_t i = set[p];
        double t = 0;
        for (size_t d = 0; d < dim; d++) {
            const double z = (u[d] - s->x[i * dim + d]) / s->width[i * dim + d];
            t -= 0.5 * z * z + s->lognorm[i * dim + d];
        }
        s->terms[p + 1] = t;
        top = fmax(top, t);
    }
    double sum = 0; /* log-sum-exp: every term is at most 0 after the shift */
    for (size_t p = 0; p <= m; p++)
        sum += exp(s->terms[p] - top);
    return top + log(sum) - log((double)(m + 1));
}

int rv_sampler_log_densities(rv_sampler *s, const double *u, double *log_good,
                             double *log_bad)
{
    if (!s)
        return REVL_ERR_INVALID;
    if (!u)
        return FAIL(s, "sampler_log_densities: u is NULL");
    fit(s);
    const size_t g = n_good(s);
    if (log_good)
        *log_good = log_mixture(s, s->rank, g, u);
    if (log_bad)
        *log_bad = log_mixture(s, s->rank + g, s->n - g, u);
    return REVL_OK;
}

/* One draw from the good density: a component (the prior or a good point's kernel), then each
 * coordinate from its truncated Gaussian by rejection (each try lands in [0, 1] with
 * probability >= 0.34; after 64 misses, about 1e-12, the centre). */
static void draw_good(const rv_sampler *s, size_t g, uint64_t *rng, double *c)
{
    const size_t dim = s->cfg.dim;
    size_t comp = (size_t)(rv_rand_uniform(rng) * (double)(g + 1));
    if (comp >= g) { /* the prior (and a product rounding up to g + 1) */
        for (size_t d = 0; d < dim; d++)
            c[d] = rv_rand_uniform(rng);
        return;
    }
    const size_t i = s->rank[comp];
    for (size_t d = 0; d < dim; d++) {
        const double mu = s->x[i * dim + d], w = s->width[i * dim + d];
        double v = mu;
        for (int t = 0; t < 64; t++) {
            double y = mu + w * rv_rand_normal(rng);
            if (y >= 0 && y <= 1) {
                v = y;
                break;
            }
        }
        c[d] = v < 0x1p-53 ? 0x1p-53 : v > 1 - 0x1p-53 ? 1 - 0x1p-53 : v;
    }
}

int rv_sampler_propose(rv_sampler *s, double *u)
{
    if (!s)
        return REVL_ERR_INVALID;
    if (!u)
        return FAIL(s, "sampler_propose: u is NULL");
    const size_t k = s->n, dim = s->cfg.dim;
    if (k < s->cfg.n_initial || s->n_finite == 0) {
        /* every run so far diverged: nothing to model, keep covering the cube */
        rv_lowdisc_point(&s->seq, k, u);
        return REVL_OK;
    }
    fit(s);
    const size_t g = n_good(s);
    uint64_t rng = s->cfg.seed + PROPOSAL_TAG;
    rng = rv_rand_u64(&rng) ^ (uint64_t)k;
    double best = -INFINITY;
    for (size_t c = 0; c < s->cfg.n_candidates; c++) {
        draw_good(s, g, &rng, s->cand);
        const double score = log_mixture(s, s->rank, g, s->cand) -
                             log_mixture(s, s->rank + g, s->n - g, s->cand);
        if (c == 0 || score > best) { /* the first of equal scores */
            best = score;
            memcpy(u, s->cand, dim * sizeof *u);
        }
    }
    return REVL_OK;
}
