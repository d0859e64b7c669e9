/* infobuf.c: allocation, reservation and accounting of the information buffer (the coder
 * operations themselves are inline in infobuf.h). Stacks are reserved up front from the
 * schedule, so the per-step loop normally never allocates; a stack that still runs out grows
 * by a quarter. */
#include "exact/infobuf.h"

#include "exact/rate.h"

#include <math.h>
#include <string.h>

uint32_t rv_gamma_numerator(double gamma)
{
    return rv_rate_numerator(RV_GRID_GAMMA, gamma);
}

void rv_gamma_code_make(rv_gamma_code *c, uint32_t n)
{
    uint64_t total = 1ULL << RV_SCALE_BITS;
    c->n = n;
    c->f = (uint32_t)(total / n);
    c->k = (uint32_t)(total - (uint64_t)n * c->f);
    c->boundary = (uint32_t)((uint64_t)c->k * (c->f + 1ULL));
    c->rcp_wide = UINT64_MAX / (c->f + 1ULL) + 1;
    c->rcp_f = UINT64_MAX / c->f + 1;
    c->inv_n = UINT64_MAX / n;
    c->inv_wide = UINT64_MAX / (c->f + 1ULL);
    c->inv_f = UINT64_MAX / c->f;
}

int rv_infobuf_init(rv_infobuf *b, const revl_allocator *alloc, size_t n)
{
    memset(b, 0, sizeof *b);
    b->alloc = alloc;
    b->n = n;
    b->n_blocks = (n + RV_BLOCK - 1) / RV_BLOCK;
    b->state = rv_calloc(alloc, n, sizeof *b->state);
    b->stacks = rv_calloc(alloc, b->n_blocks, sizeof *b->stacks);
    if (!b->state || !b->stacks) {
        rv_infobuf_destroy(b);
        return REVL_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        b->state[i] = RV_STATE_LOW;
    return REVL_OK;
}

void rv_infobuf_destroy(rv_infobuf *b)
{
    if (b->stacks)
        for (size_t k = 0; k < b->n_blocks; k++)
            rv_free(b->alloc, b->stacks[k].words);
    rv_free(b->alloc, b->stacks);
    rv_free(b->alloc, b->state);
    b->stacks = NULL;
    b->state = NULL;
}

static int stack_resize(const revl_allocator *a, rv_stack *s, size_t cap)
{
    rv_word *w = rv_calloc(a, cap, sizeof *w);
    if (!w)
        return 0;
    if (s->len)
        memcpy(w, s->words, s->len * sizeof *w);
    rv_free(a, s->words);
    s->words = w;
    s->cap = cap;
    return 1;
}

int rv_stack_grow(const revl_allocator *a, rv_stack *s)
{
    size_t cap = s->cap + s->cap / 4 + 64;
    if (!stack_resize(a, s, cap)) {
        s->nomem = 1;
        return 0;
    }
    return 1;
}

int rv_infobuf_reset(rv_infobuf *b, const double *bits_per_block)
{
    for (size_t i = 0; i < b->n; i++)
        b->state[i] = RV_STATE_LOW;
    int rc = REVL_OK;
    for (size_t k = 0; k < b->n_blocks; k++) {
        rv_stack *s = &b->stacks[k];
        s->len = s->deficit = 0;
        s->broken = s->nomem = 0;
        if (!bits_per_block)
            continue;
        /* The coder spends the information plus ~2^-16 bits per operation, and each state
         * holds up to 16 bits that have not spilled: 0.1% and a few words of slack suffice. */
        size_t want = (size_t)(bits_per_block[k] * 1.001 / RV_WORD_BITS) + 16;
        /* keep a larger stack unless it is more than twice what this run needs */
        if (s->cap >= want && s->cap <= 2 * want + 64)
            continue;
        if (!stack_resize(b->alloc, s, want))
            rc = REVL_ERR_NOMEM;
    }
    return rc;
}

double rv_infobuf_bits(const rv_infobuf *b)
{
    double bits = 0;
    for (size_t i = 0; i < b->n; i++)
        bits += log2((double)b->state[i]) - 47.0; /* log2(RV_STATE_LOW) */
    for (size_t k = 0; k < b->n_blocks; k++)
        bits += RV_WORD_BITS * ((double)b->stacks[k].len - (double)b->stacks[k].deficit);
    return bits;
}

size_t rv_infobuf_bytes(const rv_infobuf *b)
{
    size_t bytes = b->n * sizeof *b->state + b->n_blocks * sizeof *b->stacks;
    for (size_t k = 0; k < b->n_blocks; k++)
        bytes += b->stacks[k].cap * sizeof(rv_word);
    return bytes;
}

int rv_infobuf_is_empty(const rv_infobuf *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->state[i] != RV_STATE_LOW)
            return 0;
    for (size_t k = 0; k < b->n_blocks; k++) {
        const rv_stack *s = &b->stacks[k];
        if (s->len || s->deficit || s->broken || s->nomem)
            return 0;
    }
    return 1;
}
