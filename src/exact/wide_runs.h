/* wide_runs.h: wide_lanes.h's run functions for one second moment's bits, included by it once
 * per width and per BITS2 (24: Adam's pair, 16: RMSprop's), with RUN_MUL, RUN_DIV (the names)
 * and PLAIN_MUL, PLAIN_DIV (the matching plain runs, which redo the groups the lanes cannot)
 * defined; it undefines them. */

/* The stack's words and length are held in locals between the plain calls that redo a group. */
#define STACK_OUT() (stk.len = len)
#define STACK_IN() (len = stk.len, words = stk.words)

static LATTR void RUN_MUL(const revl_allocator *a, rv_stack *s, uint64_t *restrict state,
                          const rv_gamma_code *c1p, const rv_gamma_code *c2p, rv_wide *restrict m,
                          rv_wide *restrict v, size_t n)
{
    rv_stack stk = *s;
    rv_word *words = stk.words;
    size_t len = stk.len;
    const L(code) c1 = L(code_of)(c1p), c2 = L(code_of)(c2p);
    const VU low = L(splat)(RV_STATE_LOW);
    size_t i = 0;
    for (; c1p->n <= (1u << 24) && c2p->n <= (1u << BITS2) && i + NL <= n; i += NL) {
        VU mlo, mhi, vlo, vhi, st = L(load)(state + i), left_m, left_v, wm1, wm2, wv1, wv2;
        VI ok = (VI)st >= (VI)low;
        L(load_wide)(m + i, &mlo, &mhi);
        L(load_wide)(v + i, &vlo, &vhi);
        L(wide_mul)(&c1, 24, &mlo, &mhi, &st, &left_m, &wm1, &wm2);
        L(wide_mul)(&c2, BITS2, &vlo, &vhi, &st, &left_v, &wv1, &wv2);
        /* at most four words stay per parameter (three for BITS2 16) */
        if (MASK(ok) != (1 << NL) - 1 || stk.deficit || stk.cap - len < 4 * NL) {
            _mm256_zeroupper(); /* see update.c: no dirty upper state into the plain code */
            STACK_OUT();
            PLAIN_MUL(a, &stk, state + i, c1p, c2p, m + i, v + i, NL);
            STACK_IN();
            continue;
        }
        L(store_wide)(m + i, mlo, mhi);
        L(store_wide)(v + i, vlo, vhi);
        L(store)(state + i, st);
        /* the words that stay, in parameter order, m's before s's: at about 1 in 100
         * parameter-steps a whole group of none is common, and then nothing to do */
        if (MASK((left_m | left_v) != 0) == 0)
            continue;
        for (int j = 0; j < NL; j++) {
            words[len] = (rv_word)wm1[j];
            len += left_m[j] >= 1;
            words[len] = (rv_word)wm2[j];
            len += left_m[j] >= 2;
            words[len] = (rv_word)wv1[j];
            len += left_v[j] >= 1;
            if (BITS2 == 24) {
                words[len] = (rv_word)wv2[j];
                len += left_v[j] >= 2;
            }
        }
    }
    _mm256_zeroupper();
    STACK_OUT();
    PLAIN_MUL(a, &stk, state + i, c1p, c2p, m + i, v + i, n - i);
    *s = stk;
}

static LATTR void RUN_DIV(const revl_allocator *a, rv_stack *s, uint64_t *restrict state,
                          const rv_gamma_code *c1p, const rv_gamma_code *c2p, rv_wide *restrict m,
                          rv_wide *restrict v, size_t n)
{
    rv_stack stk = *s;
    const L(code) c1 = L(code_of)(c1p), c2 = L(code_of)(c2p);
    const VU low = L(splat)(RV_STATE_LOW);
    size_t i = n; /* parameters [i - NL, i) next, the highest first */
    for (; c1p->n <= (1u << 24) && c2p->n <= (1u << BITS2) && i >= NL; i -= NL) {
        size_t i0 = i - NL;
        VU mlo, mhi, vlo, vhi, st = L(load)(state + i0);
        VI ok = (VI)st >= (VI)low, ext_v, ext_m, push_v, push_m;
        L(load_wide)(m + i0, &mlo, &mhi);
        L(load_wide)(v + i0, &vlo, &vhi);
        L(wide_div)(&c2, BITS2, &vlo, &vhi, &st, &ext_v, &push_v);
        L(wide_div)(&c1, 24, &mlo, &mhi, &st, &ext_m, &push_m);
        /* a parameter's pushes stay below two words above the stack's length */
        if (MASK(ok) != (1 << NL) - 1 || MASK(ext_v | ext_m) || stk.deficit ||
            (MASK(push_v | push_m) && stk.cap - stk.len < 2)) {
            _mm256_zeroupper();
            PLAIN_DIV(a, &stk, state + i0, c1p, c2p, m + i0, v + i0, NL);
            continue;
        }
        L(store_wide)(m + i0, mlo, mhi);
        L(store_wide)(v + i0, vlo, vhi);
        L(store)(state + i0, st);
    }
    _mm256_zeroupper();
    PLAIN_DIV(a, &stk, state, c1p, c2p, m, v, i);
    *s = stk;
}


#undef STACK_OUT
#undef STACK_IN
#undef BITS2
#undef RUN_MUL
#undef RUN_DIV
#undef PLAIN_MUL
#undef PLAIN_DIV
