/* vmath_lanes.h: the lane code of vmath.c, included once per vector width. The includer
 * defines NL (2, 4 or 8 doubles) and LATTR (the width's target attribute); this file makes VD
 * (NL doubles), VI (NL signed 64-bit masks), VU (NL unsigned 64-bit integers, which wrap: NaN
 * lanes) and L(name) (the name with the suffix _NL) of them, and undefines all of it at its
 * end. Every width runs the same IEEE operations in the same order on every lane, so the bits
 * are the same whichever width runs. */
#define RV_VM_CAT2(a, b) a##_##b
#define RV_VM_CAT(a, b) RV_VM_CAT2(a, b)
#define L(name) RV_VM_CAT(name, NL)
typedef double L(vd) __attribute__((vector_size(NL * sizeof(double))));
typedef long long L(vi) __attribute__((vector_size(NL * sizeof(double))));
typedef unsigned long long L(vu) __attribute__((vector_size(NL * sizeof(double))));
#define VD L(vd)
#define VI L(vi)
#define VU L(vu)

static inline LATTR VD L(splat)(double a) { return (VD){0} + a; }

/* m ? a : b lane by lane, m from a comparison (all ones or all zeros) */
static inline LATTR VD L(sel)(VI m, VD a, VD b) { return (VD)(((VI)a & m) | ((VI)b & ~m)); }

/* x clamped to [lo, hi]; NaN stays NaN (both comparisons are false for it) */
static inline LATTR VD L(clamp)(VD x, double lo, double hi)
{
    x = L(sel)(x > L(splat)(hi), L(splat)(hi), x);
    return L(sel)(x < L(splat)(lo), L(splat)(lo), x);
}

static inline LATTR VD L(vabs)(VD x) { return (VD)((VI)x & ((VI){0} + INT64_MAX)); }

/* |m| with the sign of s */
static inline LATTR VD L(with_sign)(VD m, VD s)
{
    VI sign = (VI){0} + INT64_MIN;
    return (VD)(((VI)m & ~sign) | ((VI)s & sign));
}

/* 2^k for integer k in [-1022, 1023] (two's complement in k) */
static inline LATTR VD L(pow2)(VU k) { return (VD)((k + 1023) << 52); }

/* x in [EXP_LO, EXP_HI] (or NaN) as 2^k1 * 2^k2 * (1 + p), k1 + k2 = k, with k = round(y)
 * (r in [-ln2/2, ln2/2]: exp's best) or, when down, k = floor(y) (r in [0, ln 2), so that
 * expm1 = (2^k - 1) + 2^k p adds two terms of one sign: tanh's best) */
static inline LATTR VD L(exp_parts)(VD x, int floor_k, VD *s1, VD *s2)
{
    VD y = x * L(splat)(LOG2E);
    VD t = y + L(splat)(SHIFT);
    VD kd = t - L(splat)(SHIFT);
    VU k = (VU)t - (VU)L(splat)(SHIFT);
    VI down = (kd > y) & ((VI){0} - floor_k);
    kd = L(sel)(down, kd - L(splat)(1.0), kd);
    k = k + (VU)down; /* down is all ones (-1) where true */
    VD r = (x - kd * L(splat)(LN2_HI)) - kd * L(splat)(LN2_LO);
    /* k1 = floor(k / 2) by a logical shift of k + 2048 > 0 (SSE2 has no 64-bit arithmetic one) */
    VU k1 = ((k + 2048) >> 1) - 1024;
    *s1 = L(pow2)(k1);
    *s2 = L(pow2)(k - k1);
    /* expm1(r) = r + r^2 (1/2! + r (1/3! + ... + r / n!)): n = 16 on [0, ln 2), 13 on
     * [-ln2/2, ln2/2] (the first term left out below 0.15 ulp of p either way) */
    static const double c[15] = {
        1.0 / 20922789888000.0, 1.0 / 1307674368000.0, 1.0 / 87178291200.0,
        1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
        1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
        1.0 / 24.0, 1.0 / 6.0, 0.5};
    int first = floor_k ? 0 : 3;
    VD q = L(splat)(c[first]);
    for (int j = first + 1; j < 15; j++)
        q = L(splat)(c[j]) + r * q;
    return r + (r * r) * q;
}

static inline LATTR VD L(exp_lanes)(VD x)
{
    VD s1, s2;
    VD p = L(exp_parts)(L(clamp)(x, EXP_LO, EXP_HI), 0, &s1, &s2);
    return (s1 + s1 * p) * s2; /* s1 * p is exact, so one rounding before the scaling */
}

/* tanh|x| = e / (e + 2) with e = expm1(2|x|) = (2^k - 1) + 2^k p (two terms >= 0, so no
 * cancellation), sign restored */
static inline LATTR VD L(tanh_lanes)(VD x)
{
    VD s1, s2;
    VD a = L(clamp)(L(vabs)(x), 0.0, TANH_HI);
    VD p = L(exp_parts)(a + a, 1, &s1, &s2);
    VD s = s1 * s2; /* 2^k, k in [0, 58] */
    VD e = (s - L(splat)(1.0)) + s * p;
    return L(with_sign)(e / (e + L(splat)(2.0)), x);
}

/* logistic(x) = 1 / (1 + t) for x >= 0 and t / (1 + t) for x < 0, t = exp(-|x|) <= 1 */
static inline LATTR VD L(logistic_lanes)(VD x)
{
    VD t = L(exp_lanes)(-L(vabs)(x));
    return L(sel)(x < L(splat)(0.0), t, L(splat)(1.0)) / (L(splat)(1.0) + t);
}

/* relu(x) = x > 0 ? x : 0 (NaN and -0 give 0) */
static inline LATTR VD L(relu_lanes)(VD x) { return L(sel)(x > L(splat)(0.0), x, L(splat)(0.0)); }

/* f over x[0..n): whole vectors, then the tail through a padded vector, so a value's bits do
 * not depend on where it sits */
#define RV_VMAP(name, lanes_fn)                                                                   \
    static LATTR void name(double *x, size_t n)                                                   \
    {                                                                                             \
        size_t i = 0;                                                                             \
        for (; i + NL <= n; i += NL) {                                                            \
            VD v;                                                                                 \
            memcpy(&v, x + i, sizeof v);                                                          \
            v = lanes_fn(v);                                                                      \
            memcpy(x + i, &v, sizeof v);                                                          \
        }                                                                                         \
        if (i < n) {                                                                              \
            VD v = L(splat)(0.0);                                                                 \
            memcpy(&v, x + i, (n - i) * sizeof *x);                                               \
            v = lanes_fn(v);                                                                      \
            memcpy(x + i, &v, (n - i) * sizeof *x);                                               \
        }                                                                                         \
    }

RV_VMAP(L(map_exp), L(exp_lanes))
RV_VMAP(L(map_tanh), L(tanh_lanes))
RV_VMAP(L(map_logistic), L(logistic_lanes))
RV_VMAP(L(map_relu), L(relu_lanes))
#undef RV_VMAP

/* The elementwise passes below do the same operations in the same order as the scalar
 * expressions in their comments, so they have the same bits at every width (tests/check_vmath.c
 * compares them). Inputs are read whole vectors at a time and the tail through padded vectors,
 * as RV_VMAP. */
static inline LATTR VD L(load)(const double *p, size_t k)
{
    VD v = L(splat)(0.0);
    memcpy(&v, p, k * sizeof *p);
    return v;
}

/* whole vectors with loads of a constant size (a variable one costs a rep movs), then the tail */
#define RV_VZIP_LOOP(n, ...)                                                                      \
    do {                                                                                          \
        size_t i = 0, k = NL;                                                                     \
        for (; i + NL <= (n); i += NL)                                                            \
            __VA_ARGS__                                                                           \
        k = (n) - i;                                                                              \
        if (k)                                                                                    \
            __VA_ARGS__                                                                           \
    } while (0)

/* The activations' slopes, written through the activation h = act(z) that the MLP keeps
 * (models/mlp_pass.c says why): out = d act'(z), and below the R-pass's
 * rd <- rd act'(z) + dz rz c(h) with c = act''/act'.
 * out = d * (1 - h h) (tanh), d * (h (1 - h)) (logistic), h > 0 ? d : 0 (ReLU) */
#define RV_VSLOPE(name, expr)                                                                     \
    static LATTR void name(const double *hp, const double *dp, double *out, size_t n)             \
    {                                                                                             \
        RV_VZIP_LOOP(n, {                                                                         \
            VD h = L(load)(hp + i, k), d = L(load)(dp + i, k);                                    \
            VD y = (expr);                                                                        \
            memcpy(out + i, &y, k * sizeof *out);                                                 \
        });                                                                                       \
    }
RV_VSLOPE(L(slope_tanh), d * (L(splat)(1.0) - h * h))
RV_VSLOPE(L(slope_logistic), d * (h * (L(splat)(1.0) - h)))
RV_VSLOPE(L(slope_relu), L(sel)(h > L(splat)(0.0), d, L(splat)(0.0)))
#undef RV_VSLOPE

/* rd = rd * (1 - h h) - 2 h dz rz (tanh), rd * (h (1 - h)) + (1 - 2 h) dz rz (logistic),
 * h > 0 ? rd : 0 (ReLU) */
#define RV_VRSLOPE(name, expr)                                                                    \
    static LATTR void name(const double *hp, const double *dzp, const double *rzp, double *rdp,  \
                           size_t n)                                                              \
    {                                                                                             \
        RV_VZIP_LOOP(n, {                                                                         \
            VD h = L(load)(hp + i, k), dz = L(load)(dzp + i, k), rz = L(load)(rzp + i, k);        \
            VD rd = L(load)(rdp + i, k);                                                          \
            (void)dz;                                                                             \
            (void)rz;                                                                             \
            rd = (expr);                                                                          \
            memcpy(rdp + i, &rd, k * sizeof *rdp);                                                \
        });                                                                                       \
    }
RV_VRSLOPE(L(r_slope_tanh), rd * (L(splat)(1.0) - h * h) - L(splat)(2.0) * h * dz * rz)
RV_VRSLOPE(L(r_slope_logistic),
           rd * (h * (L(splat)(1.0) - h)) + (L(splat)(1.0) - L(splat)(2.0) * h) * dz * rz)
RV_VRSLOPE(L(r_slope_relu), L(sel)(h > L(splat)(0.0), rd, L(splat)(0.0)))
#undef RV_VRSLOPE

/* y = y + a x (a multiply and an add, never fused: the scalar expression's bits) */
static LATTR void L(axpy)(double *yp, double a, const double *xp, size_t n)
{
    RV_VZIP_LOOP(n, {
        VD y = L(load)(yp + i, k), x = L(load)(xp + i, k);
        y = y + L(splat)(a) * x;
        memcpy(yp + i, &y, k * sizeof *yp);
    });
}

/* sum of a[i] b[i] as eight interleaved partial sums (i mod 8) added pairwise at the end: 8 / NL
 * vectors hold them, so every width adds the same products in the same order; the last n mod 8
 * one by one into the first partial sums */
static LATTR double L(dot8)(const double *a, const double *b, size_t n)
{
    enum { NV = 8 / NL };
    VD s[NV], x, y;
    for (int v = 0; v < NV; v++)
        s[v] = L(splat)(0.0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int v = 0; v < NV; v++) {
            memcpy(&x, a + i + v * NL, sizeof x);
            memcpy(&y, b + i + v * NL, sizeof y);
            s[v] = s[v] + x * y;
        }
    double p[8];
    memcpy(p, s, sizeof p);
    for (int j = 0; i < n; i++, j++)
        p[j] += a[i] * b[i];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* v = a + b g */
static LATTR void L(affine)(double *vp, const double *ap, const double *bp, const double *gp,
                            size_t n)
{
    RV_VZIP_LOOP(n, {
        VD a = L(load)(ap + i, k), b = L(load)(bp + i, k), g = L(load)(gp + i, k);
        VD v = a + b * g;
        memcpy(vp + i, &v, k * sizeof *vp);
    });
}

/* out[j] = out[j] + d[0][j] + d[1][j] + ... (rows of n, added in row order): a whole vector of
 * columns summed in a register, the last n mod NL columns one by one (the same additions) */
static LATTR void L(column_sums)(const double *d, size_t rows, size_t n, double *out)
{
    size_t j = 0;
    for (; j + NL <= n; j += NL) {
        VD acc, x;
        memcpy(&acc, out + j, sizeof acc);
        for (size_t r = 0; r < rows; r++) {
            memcpy(&x, d + r * n + j, sizeof x);
            acc = acc + x;
        }
        memcpy(out + j, &acc, sizeof acc);
    }
    for (; j < n; j++) {
        double acc = out[j];
        for (size_t r = 0; r < rows; r++)
            acc = acc + d[r * n + j];
        out[j] = acc;
    }
}
#undef RV_VZIP_LOOP

#undef VD
#undef VI
#undef VU
#undef L
#undef RV_VM_CAT
#undef RV_VM_CAT2
#undef NL
#undef LATTR
