/* wide_lanes.h: the lane code of wide_vec.c, included once per vector width after exact/lanes.h.
 *
 * NL parameters at once: each 128-bit moment is a pair of vectors (its high and low 64 bits),
 * and rv_wide_mul's / rv_wide_div's arithmetic is done step for step on them, the stack's words
 * as masks and selects. Why no word needs the stack while the lanes compute (states in
 * [2^47, 2^63), n <= 2^24, so every base-n symbol has frequency >= 2^7):
 *  - forward, per moment: the 16-bit push always spills one word w1, the 8-bit push spills a
 *    second w2 when the state reaches 2^55, and the base-n pop reads at most as many words as
 *    were pushed (after one push it starts from at least 2^24 f >= 2^31, after two from at least
 *    2^16 f >= 2^23), so it reads back w2 and w1, last in first out, never an older word. What
 *    stays (w1, then w2) is written to the stack in parameter order after the lanes: the plain
 *    loop's words in the plain loop's order.
 *  - reverse: the mirror, so each moment's pops are at least its pushes: the words it pushed come
 *    straight back, and one popped beyond them (a word an earlier forward parameter left, about
 *    1 in 100 parameter-steps at beta1 = 0.9) would have to come from the stack while the lanes
 *    compute. The group is then redone by the plain loop, as are the rare groups with a corrupt
 *    state, a stack in deficit or one that a push could make grow.
 * The second moment may instead have bits = 16 (RMSprop's b, gamma = n/2^16, n <= 2^16, so
 * every symbol has frequency >= 2^15), a constant in the helpers below (always inlined: the
 * branches on it fold away):
 *  - forward: the one 16-bit push always spills one word w1 and leaves a state of at least
 *    2^16 2^31 = 2^47; the base-n pop then starts from at least 2^16 f >= 2^31, so one word
 *    read takes it to 2^47 or more: it reads at most one word, w1. So 0 or 1 word stays.
 *  - reverse: push base n from a state below 2^63 spills at most one word (after one, the state
 *    is below 2^47 <= 2^32 f); the state it leaves is below 2^63, so the 16-bit pop's state
 *    before its read is below 2^32 2^15 = 2^47: it always reads a word, the one just pushed when
 *    the push spilled, else a word from the stack (ext: the group is redone by the plain loop;
 *    the push spills nothing only when the state is below 2^32 f, about 1 in 100 at gamma = 0.9
 *    for states spread over [2^47, 2^63): the mirror of a forward pop that left w1 on the
 *    stack). */

/* The per-moment steps are inlined into the run loops: as calls, gcc passes their vectors
 * through memory (measured: the reverse ran ~1.5 times slower). */
#define LINLINE static inline __attribute__((always_inline)) LATTR

/* A code's constants in every lane. */
typedef struct L(code) {
    VU n, f, k, boundary, rcp_wide, rcp_f, inv_n, inv32_n, inv32_wide, inv32_f;
} L(code);

static inline LATTR L(code) L(code_of)(const rv_gamma_code *c)
{
    return (L(code)){L(splat)(c->n), L(splat)(c->f), L(splat)(c->k), L(splat)(c->boundary),
                     L(splat)(c->rcp_wide), L(splat)(c->rcp_f), L(splat)(c->inv_n),
                     L(inv32_of)(c->n, c->inv_n), L(inv32_of)(c->f + 1ULL, c->inv_wide),
                     L(inv32_of)(c->f, c->inv_f)};
}

/* x = (hi, lo) as rv_wide_mul's sign and magnitude minus one: sign is all ones for x < 0,
 * pos is 1 for x >= 0, y = |x| - 1 = (x ^ sign) - pos (for x < 0 that is ~x); nz: x != 0. */
typedef struct L(mag) {
    VU sign, pos, yl, yh;
    VI nz;
} L(mag);

LINLINE L(mag) L(mag_of)(VU lo, VU hi)
{
    L(mag) m;
    m.sign = (VU)((VI)hi >> 63);
    m.pos = ~m.sign & 1;
    m.nz = (lo | hi) != 0;
    VU xl = lo ^ m.sign;
    m.yl = xl - m.pos;
    m.yh = (hi ^ m.sign) - (m.pos & (VU)(xl == 0)); /* the borrow */
    return m;
}

/* The value back from y' (yl, yh): sign (1 + y') = (y' + pos) ^ sign; x = 0 stays 0. */
LINLINE void L(mag_out)(const L(mag) *m, VU yl, VU yh, VU *lo, VU *hi)
{
    VU rl = yl + m->pos;
    VU rh = yh + ((VU)(rl == 0) & m->pos); /* the carry */
    *lo = L(sel)(m->nz, rl ^ m->sign, *lo);
    *hi = L(sel)(m->nz, rh ^ m->sign, *hi);
}

/* rv_wide_mul (bits 24 or 16, a constant) of the lanes x = (hi, lo) from states *st: the words
 * that stay on the stack are w1, then w2, *nleft (0, 1 or 2; at most 1 for bits 16) of them;
 * lanes with x = 0 leave their state alone. */
LINLINE void L(wide_mul)(const L(code) *c, unsigned bits, VU *lo, VU *hi, VU *st, VU *nleft,
                         VU *w1, VU *w2)
{
    const VU low = L(splat)(RV_STATE_LOW), m31 = L(splat)((1ULL << RV_SCALE_BITS) - 1);
    const VU m32 = L(splat)(0xffffffffu);
    L(mag) x = L(mag_of)(*lo, *hi);
    VU r = x.yl & ((1u << bits) - 1);
    VU ql = (x.yl >> bits) | (x.yh << (64 - bits)), qh = x.yh >> bits;
    /* rv_push_bits(16): always spills */
    VU t0 = *st, s1 = t0 >> RV_WORD_BITS;
    *w1 = t0 & 0xffff;
    VU t = ((s1 >> 15) << RV_SCALE_BITS) + (s1 & 0x7fff) + ((r & 0xffff) << 15);
    VI spill = (VI){0}, pop2 = (VI){0};
    *w2 = *w1;
    if (bits == 24) { /* rv_push_bits(8) */
        spill = (VI)t >= (VI)L(splat)(1ULL << 55);
        *w2 = t & 0xffff;
        t = L(sel)(spill, t >> RV_WORD_BITS, t);
        t = ((t >> 23) << RV_SCALE_BITS) + (t & ((1u << 23) - 1)) + ((r >> 16) << 23);
    }
    /* rv_pop_base_n */
    VU slot = t & m31, th = t >> RV_SCALE_BITS;
    VU sym_wide = L(mulhi_small)(slot, c->rcp_wide);
    VU sym_narrow = c->k + L(mulhi_small)(slot - c->boundary, c->rcp_f);
    VU sym = L(sel)((VI)slot < (VI)c->boundary, sym_wide, sym_narrow);
    VI wide = (VI)sym < (VI)c->k;
    VU start = MULU(sym, c->f) + L(sel)(wide, sym, c->k);
    VU u = MULU(c->f - (VU)wide, th) + slot - start;
    VI pop1 = (VI)u < (VI)low;
    u = L(sel)(pop1, (u << RV_WORD_BITS) | L(sel)(spill, *w2, *w1), u);
    if (bits == 24) {
        pop2 = (VI)u < (VI)low; /* only after two pushes: reads w1 */
        u = L(sel)(pop2, (u << RV_WORD_BITS) | *w1, u);
    }
    *st = L(sel)(x.nz, u, t0);
    *nleft = (VU)x.nz & (1 - (VU)spill + (VU)pop1 + (VU)pop2); /* the masks are -1 */
    /* y' = q n + sym: q = (qh, ql) < 2^(128-bits) times n <= 2^bits from 32-bit products,
     * modulo 2^128 */
    VU a0 = MULU(ql, c->n), a1 = MULU(ql >> 32, c->n);
    VU yl = a0 + (a1 << 32);
    VU yh = MULLO(qh, c->n) + (a1 >> 32) + (((a0 >> 32) + (a1 & m32)) >> 32);
    VU yl2 = yl + sym;
    yh -= (VU)(yl2 < sym);
    L(mag_out)(&x, yl2, yh, lo, hi);
}

/* rv_wide_div (bits 24 or 16, a constant) of the lanes x = (hi, lo) from states *st; *ext:
 * lanes that would pop a word they did not push (their result is then wrong and the group must
 * be redone); *pushed: lanes that pushed. */
LINLINE void L(wide_div)(const L(code) *c, unsigned bits, VU *lo, VU *hi, VU *st, VI *ext,
                         VI *pushed)
{
    const VU low = L(splat)(RV_STATE_LOW), m31 = L(splat)((1ULL << RV_SCALE_BITS) - 1);
    const VU m32 = L(splat)(0xffffffffu);
    L(mag) x = L(mag_of)(*lo, *hi);
    /* y div n and y mod n in three steps, as rv_wide_div_mag (y < 2^127: yh < 2^63; then
     * r < n, so (r << 32) | 32 bits is below n 2^32) */
    VU r, qh = L(divmod)(x.yh, c->n, c->inv_n, &r);
    VU qm = L(divmod32)((r << 32) | (x.yl >> 32), c->n, c->inv32_n, &r);
    VU ql = L(divmod32)((r << 32) | (x.yl & m32), c->n, c->inv32_n, &r);
    /* rv_push_base_n: at most two words leave (freq >= 2^7, the state is below 2^63), at most
     * one for bits 16 (freq >= 2^15) */
    VI wide = (VI)r < (VI)c->k;
    VU freq = c->f - (VU)wide;
    VU start = MULU(r, c->f) + L(sel)(wide, r, c->k);
    VU t0 = *st, v1 = t0 & 0xffff;
    VI sp1 = (VI)(t0 >> 32) >= (VI)freq;
    VU t = L(sel)(sp1, t0 >> RV_WORD_BITS, t0), v2 = t & 0xffff;
    VI sp2 = bits == 24 ? (VI)((VI)(t >> 32) >= (VI)freq) : (VI){0};
    t = L(sel)(sp2, t >> RV_WORD_BITS, t);
    /* t >> 32 < freq after the spills: a quotient below 2^32 */
    VU rem, u = L(divmod32)(t, freq, L(sel)(wide, c->inv32_wide, c->inv32_f), &rem);
    u = (u << RV_SCALE_BITS) + rem + start;
    /* rv_pop_bits(8) (bits 24): reads the last word pushed, if it reads */
    VU slot = u & m31, d_hi = bits == 24 ? slot >> 23 : (VU){0};
    if (bits == 24)
        u = ((u >> RV_SCALE_BITS) << 23) + (slot & ((1u << 23) - 1));
    VI pa = bits == 24 ? (VI)((VI)u < (VI)low) : (VI){0};
    VU top = L(sel)(sp2, v2, v1);
    u = L(sel)(pa, (u << RV_WORD_BITS) | top, u);
    /* rv_pop_bits(16): always reads, the first word pushed if the 8-bit pop read the second */
    slot = u & m31;
    VU d_lo = slot >> 15;
    u = ((u >> RV_SCALE_BITS) << 15) + (slot & 0x7fff);
    u = (u << RV_WORD_BITS) | L(sel)(pa, v1, top);
    *st = L(sel)(x.nz, u, t0);
    /* pops (1 or 2) beyond pushes (0, 1 or 2): 1 - pa + sp1 + sp2 with the masks -1 */
    *ext = x.nz & ((1 - (VU)pa + (VU)sp1 + (VU)sp2) != 0);
    *pushed = x.nz & sp1;
    /* y' = q 2^bits + d_hi 2^16 + d_lo, q = (qh, qm 2^32 + ql) */
    VU qlo = (qm << 32) | ql;
    L(mag_out)(&x, (qlo << bits) | (d_hi << 16) | d_lo, (qh << bits) | (qlo >> (64 - bits)), lo,
               hi);
}

/* The run functions, once per second moment's bits (a direct function each: the same body as
 * an always-inline helper behind two thin wrappers ran Adam's reverse 15% slower, measured) */
#define BITS2 24
#define RUN_MUL L(moments_mul)
#define RUN_DIV L(moments_div)
#define PLAIN_MUL rv_moments_mul_plain
#define PLAIN_DIV rv_moments_div_plain
#include "exact/wide_runs.h"

#define BITS2 16
#define RUN_MUL L(moments16_mul)
#define RUN_DIV L(moments16_div)
#define PLAIN_MUL rv_moments16_mul_plain
#define PLAIN_DIV rv_moments16_div_plain
#include "exact/wide_runs.h"

#undef LINLINE
