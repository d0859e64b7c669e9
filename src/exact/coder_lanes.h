/* coder_lanes.h: the lane code of coder_vec.c, included once per vector width after
 * exact/lanes.h (the vector types, macros and arithmetic helpers).
 *
 * The lanes do the arithmetic of NL parameters at once and the stack traffic is then done in
 * parameter order, so the words and their order are the plain loop's. The arithmetic is
 * rv_exact_mul's / rv_exact_div's, step for step, on a state in [2^47, 2^63) and n <= 2^16:
 * then every symbol has frequency >= 2^15 and a parameter moves at most one word each way (one
 * push and at most one pop forward, at most one push and one pop in reverse). The rare groups
 * of NL that fall outside this (a corrupt state, a stack in deficit, about to grow or short of
 * the words the group pops) are redone by the plain loop from their unchanged input. */

/* The stack's words and length are held in locals (in registers) between the plain calls
 * that redo a group: the word loops below then carry no dependency through memory. */
#define STACK_OUT() (stk.len = len)
#define STACK_IN() (len = stk.len, words = stk.words)

static LATTR void L(mul_run)(const revl_allocator *a, rv_stack *s, uint64_t *restrict state,
                             const rv_gamma_code *cp, int64_t *restrict v, size_t n)
{
    rv_stack stk = *s;
    const rv_gamma_code c = *cp;
    rv_word *words = stk.words;
    size_t len = stk.len;
    const VU f = L(splat)(c.f), k = L(splat)(c.k), boundary = L(splat)(c.boundary);
    const VU rcp_wide = L(splat)(c.rcp_wide), rcp_f = L(splat)(c.rcp_f), nv = L(splat)(c.n);
    const VU low = L(splat)(RV_STATE_LOW), m31 = L(splat)((1ULL << RV_SCALE_BITS) - 1);
    size_t i = 0;
    for (; c.n <= 65536 && i + NL <= n; i += NL) {
        VU x = L(load)(v + i), t0 = L(load)(state + i);
        VI ok = (VI)t0 >= (VI)low;
        VU q = (VU)((VI)x >> 16), r = x & 0xffff;
        /* rv_push_base_d: the word spilled is always t0's low 16 bits */
        VU word = t0 & 0xffff, s1 = t0 >> RV_WORD_BITS;
        VU t = ((s1 >> 15) << RV_SCALE_BITS) + (s1 & 0x7fff) + (r << 15);
        /* rv_pop_base_n */
        VU slot = t & m31, hi = t >> RV_SCALE_BITS;
        VU sym_wide = L(mulhi_small)(slot, rcp_wide);
        VU sym_narrow = k + L(mulhi_small)(slot - boundary, rcp_f);
        VU sym = L(sel)((VI)slot < (VI)boundary, sym_wide, sym_narrow);
        VI wide = (VI)sym < (VI)k;
        VU start = MULU(sym, f) + L(sel)(wide, sym, k);
        VU st2 = MULU(f - (VU)wide, hi) + slot - start;
        /* the word pushed comes straight back; one is enough: st2 >= freq hi >= 2^15 2^16 */
        VI pop = (VI)st2 < (VI)low;
        VU st3 = L(sel)(pop, (st2 << RV_WORD_BITS) | word, st2);
        if (MASK(ok) != (1 << NL) - 1 || stk.deficit || stk.cap - len < NL) {
            _mm256_zeroupper(); /* see update.c: no dirty upper state into the plain code */
            STACK_OUT();
            rv_mul_run_plain(a, &stk, state + i, cp, v + i, NL);
            STACK_IN();
            continue;
        }
        L(store)(v + i, MULU(q, nv) + (MULU(q >> 32, nv) << 32) + sym);
        L(store)(state + i, st3);
        /* the words that stay, in parameter order; room for NL was checked */
        int keep = ~MASK(pop);
        for (int j = 0; j < NL; j++) {
            words[len] = (rv_word)word[j];
            len += (size_t)(keep >> j & 1);
        }
    }
    _mm256_zeroupper();
    STACK_OUT();
    rv_mul_run_plain(a, &stk, state + i, cp, v + i, n - i);
    *s = stk;
}

static LATTR void L(div_run)(const revl_allocator *a, rv_stack *s, uint64_t *restrict state,
                             const rv_gamma_code *cp, int64_t *restrict v, size_t n)
{
    rv_stack stk = *s;
    const rv_gamma_code c = *cp;
    rv_word *words = stk.words;
    size_t len = stk.len;
    const VU f = L(splat)(c.f), k = L(splat)(c.k), nv = L(splat)(c.n);
    const VU inv_n = L(splat)(c.inv_n), inv_wide = L(inv32_of)(c.f + 1ULL, c.inv_wide);
    const VU inv_f = L(inv32_of)(c.f, c.inv_f);
    const VU low = L(splat)(RV_STATE_LOW), m31 = L(splat)((1ULL << RV_SCALE_BITS) - 1);
    size_t i = n; /* parameters [i - NL, i) next, the highest first */
    for (; c.n <= 65536 && i >= NL; i -= NL) {
        size_t i0 = i - NL;
        VU x = L(load)(v + i0), t0 = L(load)(state + i0);
        VI ok = (VI)t0 >= (VI)low;
        /* floor division by n without a branch on the sign, as rv_exact_div */
        VU sign = (VU)((VI)x >> 63), ry;
        VU q = L(divmod)(x ^ sign, nv, inv_n, &ry) ^ sign;
        VU r = (ry ^ sign) + (sign & nv);
        /* rv_push_base_n: at most one word leaves */
        VI wide = (VI)r < (VI)k;
        VU freq = f - (VU)wide;
        VU start = MULU(r, f) + L(sel)(wide, r, k);
        VI push = (VI)(t0 >> 32) >= (VI)freq;
        VU word = t0 & 0xffff;
        VU s1 = L(sel)(push, t0 >> RV_WORD_BITS, t0), rem;
        /* s1 >> 32 < freq after the push: a quotient below 2^32 */
        VU st3 = (L(divmod32)(s1, freq, L(sel)(wide, inv_wide, inv_f), &rem) << RV_SCALE_BITS) +
                 rem + start;
        /* rv_pop_base_d */
        VU slot = st3 & m31;
        VU st4 = ((st3 >> RV_SCALE_BITS) << 15) + (slot & 0x7fff);
        /* the parameters that did not push pop the stack: there must be words for them; and
         * a push must not need the stack to grow. (A short stack is common: the states hold
         * the first 16 bits of every parameter, so up to ~100 steps at gamma = 0.9 spill
         * nothing.) */
        int pushed = MASK(push);
        size_t pops = (size_t)(NL - __builtin_popcount((unsigned)pushed));
        if (MASK(ok) != (1 << NL) - 1 || stk.deficit || len < pops ||
            (pushed && len >= stk.cap)) {
            _mm256_zeroupper();
            STACK_OUT();
            rv_div_run_plain(a, &stk, state + i0, cp, v + i0, NL);
            STACK_IN();
            continue;
        }
        L(store)(v + i0, (q << 16) + (slot >> 15));
        /* each parameter reads back the word it pushed, or else the stack's top, highest
         * parameter first. (The states are written one by one: a vector assembled lane by lane
         * in memory would stall its load.) */
        st4 = (st4 << RV_WORD_BITS) | (word & (VU)push);
        for (int j = NL; j-- > 0;) {
            int own = pushed >> j & 1;
            state[i0 + j] = st4[j] | (own ? 0 : words[len - 1]);
            len -= (size_t)!own;
        }
    }
    _mm256_zeroupper();
    STACK_OUT();
    rv_div_run_plain(a, &stk, state, cp, v, i);
    *s = stk;
}

#undef STACK_OUT
#undef STACK_IN
