/* infobuf.h: the information buffer. Per parameter, the bits that exact multiplication by the
 * momentum discards are kept as a mixed-radix number, stored as an rANS coder: a 64-bit state per
 * parameter plus 16-bit words spilled to one LIFO stack per block of RV_BLOCK parameters.
 * Pushing a digit is encoding a symbol, popping one is decoding; both are exact bijections, so
 * the reverse pass returns the buffer to its initial state bit for bit. */
#ifndef REVL_INFOBUF_H
#define REVL_INFOBUF_H

#include "base/internal.h"

#include <stdint.h>

#define RV_BLOCK 4096            /* parameters per stack: fixed, so bits never depend on threads */
#define RV_SCALE_BITS 31          /* symbol frequencies sum to 2^31 */
#define RV_STATE_LOW (1ULL << 47) /* the coder state lives in [2^47, 2^63) */
#define RV_WORD_BITS 16           /* bits per spilled word */
/* Why these numbers: a coder loses precision when its state's lower bound is not far above the
 * sum of the frequencies (2^47 / 2^31 = 2^16 here, so the loss is ~2^-16 per operation); with a
 * 64-bit state that leaves 16-bit words. With 32-bit words the bound would be 2^31 = the sum and
 * the buffer would hold 1-2% more than the information. */
typedef uint16_t rv_word;

typedef struct rv_stack {
    rv_word *words;
    size_t len, cap;
    size_t deficit;  /* words read from the empty stack (as zeros), owed back by later pushes */
    int broken;      /* a push repaid a deficit with a nonzero word: the run was not exact */
    int nomem;       /* growing the stack failed */
} rv_stack;

typedef struct rv_infobuf {
    const revl_allocator *alloc;
    size_t n, n_blocks;
    uint64_t *state;  /* n */
    rv_stack *stacks; /* n_blocks */
} rv_infobuf;

/* How momentum n/2^16 is coded: the base-n digit is a symbol of frequency f+1 (the first k
 * symbols) or f (the others), so that the frequencies sum to 2^31 and each costs log2(n) bits
 * up to a relative loss of order (n/2^31)^2. Reciprocals make the symbol search multiply-only. */
typedef struct rv_gamma_code {
    uint32_t n, f, k;
    uint32_t boundary;        /* k*(f+1): slots below belong to the wide symbols */
    uint64_t rcp_wide, rcp_f; /* floor(2^64/(f+1))+1, floor(2^64/f)+1: exact for slots < 2^31 */
    uint64_t inv_n, inv_wide, inv_f; /* floor((2^64-1)/d) for d = n, f+1, f: see rv_divmod */
} rv_gamma_code;

RV_HIDDEN void rv_gamma_code_make(rv_gamma_code *c, uint32_t n);
/* The numerator n of the applied momentum n/2^16 for gamma in [2^-16, 1]. */
RV_HIDDEN uint32_t rv_gamma_numerator(double gamma);

RV_HIDDEN int rv_infobuf_init(rv_infobuf *b, const revl_allocator *alloc, size_t n);
RV_HIDDEN void rv_infobuf_destroy(rv_infobuf *b);
/* Empty the buffer; make sure each block has room for about `bits_per_block[b]` bits (NULL:
 * keep capacities). Returns REVL_ERR_NOMEM when a reservation fails (the buffer stays valid). */
RV_HIDDEN int rv_infobuf_reset(rv_infobuf *b, const double *bits_per_block);
/* Grow a stack by at least one word; on failure sets s->nomem and returns 0. */
RV_HIDDEN int rv_stack_grow(const revl_allocator *a, rv_stack *s);
RV_HIDDEN double rv_infobuf_bits(const rv_infobuf *b);   /* information held, in bits */
RV_HIDDEN size_t rv_infobuf_bytes(const rv_infobuf *b);  /* memory occupied */
/* 1 when every state is initial and every stack empty and intact. */
RV_HIDDEN int rv_infobuf_is_empty(const rv_infobuf *b);

/* ---- the per-parameter coder operations (inline: they run P x T times) */

static inline uint64_t rv_mulhi64(uint64_t a, uint64_t b)
{
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

static inline void rv_push_word(const revl_allocator *a, rv_stack *s, rv_word w)
{
    if (s->deficit) {
        /* the word was borrowed as a zero from the empty stack: it must come back as zero */
        if (w != 0)
            s->broken = 1;
        s->deficit--;
        return;
    }
    if (s->len == s->cap && !rv_stack_grow(a, s))
        return;
    s->words[s->len++] = w;
}

static inline rv_word rv_pop_word(rv_stack *s)
{
    if (s->len == 0) {
        s->deficit++;
        return 0;
    }
    return s->words[--s->len];
}

/* Encode a base-2^16 digit r (frequency 2^15 each). The state always exceeds 2^32 * 2^15, so
 * a word always spills first. */
static inline uint64_t rv_push_base_d(const revl_allocator *a, rv_stack *s, uint64_t st, uint32_t r)
{
    rv_push_word(a, s, (rv_word)st);
    st >>= RV_WORD_BITS;
    return ((st >> 15) << RV_SCALE_BITS) + (st & 0x7fff) + ((uint64_t)r << 15);
}

/* Decode a base-2^16 digit; the state always falls below 2^47, so a word is always read. */
static inline uint64_t rv_pop_base_d(rv_stack *s, uint64_t st, uint32_t *r)
{
    uint64_t slot = st & ((1ULL << RV_SCALE_BITS) - 1);
    *r = (uint32_t)(slot >> 15);
    st = ((st >> RV_SCALE_BITS) << 15) + (slot & 0x7fff);
    return (st << RV_WORD_BITS) | rv_pop_word(s);
}

/* Symbol layout: the first k symbols have frequency f+1, the others f, so symbol s starts at
 * s*f + min(s, k) and has frequency f + (s < k). */
static inline void rv_symbol_range(const rv_gamma_code *c, uint64_t sym, uint64_t *start,
                                   uint64_t *freq)
{
    uint64_t wide = sym < c->k;
    *freq = c->f + wide;
    *start = sym * c->f + (wide ? sym : c->k);
}

/* y / d and y % d for any 64-bit y by a precomputed inv = floor((2^64-1)/d): the estimate
 * mulhi(y, inv) is at most 2 below the quotient, so two corrections make it exact. Hardware
 * division costs several times more and this runs P x T times in the reverse pass. */
static inline uint64_t rv_divmod(uint64_t y, uint64_t d, uint64_t inv, uint64_t *rem)
{
    uint64_t q = rv_mulhi64(y, inv), r = y - q * d;
    if (r >= d) {
        q++;
        r -= d;
    }
    if (r >= d) {
        q++;
        r -= d;
    }
    *rem = r;
    return q;
}

/* Encode a base-n digit r < n. */
static inline uint64_t rv_push_base_n(const revl_allocator *a, rv_stack *s, uint64_t st,
                                      const rv_gamma_code *c, uint32_t r)
{
    uint64_t start, freq, rem;
    rv_symbol_range(c, r, &start, &freq);
    /* ((RV_STATE_LOW >> RV_SCALE_BITS) << RV_WORD_BITS) * freq; a symbol of frequency below
     * 2^15 (n > 2^16, the beta grid) can need two words */
    while (st >= (freq << 32)) {
        rv_push_word(a, s, (rv_word)st);
        st >>= RV_WORD_BITS;
    }
    uint64_t q = rv_divmod(st, freq, r < c->k ? c->inv_wide : c->inv_f, &rem);
    return (q << RV_SCALE_BITS) + rem + start;
}

/* Decode a base-n digit. */
static inline uint64_t rv_pop_base_n(rv_stack *s, uint64_t st, const rv_gamma_code *c, uint32_t *r)
{
    uint64_t slot = st & ((1ULL << RV_SCALE_BITS) - 1);
    /* both candidates computed and one selected: the comparison is data-random, a branch on it
     * would be mispredicted often */
    uint64_t sym_wide = rv_mulhi64(slot, c->rcp_wide);
    uint64_t sym_narrow = c->k + rv_mulhi64(slot - c->boundary, c->rcp_f);
    uint64_t sym = slot < c->boundary ? sym_wide : sym_narrow;
    uint64_t start, freq;
    rv_symbol_range(c, sym, &start, &freq);
    st = freq * (st >> RV_SCALE_BITS) + slot - start;
    while (st < RV_STATE_LOW)
        st = (st << RV_WORD_BITS) | rv_pop_word(s);
    *r = (uint32_t)sym;
    return st;
}

/* x <- x * n / 2^16 exactly: push x mod 2^16, x <- floor(x / 2^16) * n + pop(base n).
 * Unsigned arithmetic: wrap-around, never undefined behaviour, even on corrupt input. */
static inline int64_t rv_exact_mul(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                   const rv_gamma_code *c, int64_t x)
{
    uint32_t r = (uint32_t)((uint64_t)x & 0xffff);
    int64_t q = x >> 16; /* arithmetic shift: floor division (gcc/clang on two's complement) */
    uint32_t digit;
    uint64_t t = rv_push_base_d(a, s, *st, r);
    *st = rv_pop_base_n(s, t, c, &digit);
    return (int64_t)((uint64_t)q * c->n + digit);
}

/* The exact inverse of rv_exact_mul. */
static inline int64_t rv_exact_div(const revl_allocator *a, rv_stack *s, uint64_t *st,
                                   const rv_gamma_code *c, int64_t x)
{
    /* floor division by n, as in the forward direction, without a branch on the sign:
     * for x < 0, y = -x-1 >= 0 and floor(x/n) = -(y/n)-1, x mod n = n-1-(y mod n) */
    uint64_t sign = (uint64_t)(x >> 63), y = (uint64_t)x ^ sign, ry;
    uint64_t qy = rv_divmod(y, c->n, c->inv_n, &ry);
    int64_t q = (int64_t)(qy ^ sign);
    uint32_t r = (uint32_t)((ry ^ sign) + (sign & c->n));
    uint32_t digit;
    uint64_t t = rv_push_base_n(a, s, *st, c, r);
    *st = rv_pop_base_d(s, t, &digit);
    return (int64_t)(((uint64_t)q << 16) + digit);
}

#endif
