/* fuzz_infobuf.c: libFuzzer target for the exact multiply and the information buffer (the core
 * of reversibility). The input is read as a random program: a number of parameters, their
 * int64 starting values, then operations x_i <- x_i * n/2^16 - d (single parameter, or every
 * parameter for K steps), with n in 1..65536 and arbitrary int64 d. The program is run
 * forward, partly undone and redone (the redo must give the same values, states and stacks),
 * then undone completely: every value must come back bit for bit and the buffer must be empty.
 * Anything else is a bug and traps. Links the static library: rv_* are internal. */
#include "exact/infobuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static uint64_t take(reader *r, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < bytes; k++) {
        v <<= 8;
        if (r->left) {
            v |= *r->p++;
            r->left--;
        }
    }
    return v;
}

typedef struct op {
    uint32_t n;     /* momentum numerator, 1..65536 */
    uint32_t param; /* parameter index, or UINT32_MAX = all parameters */
    uint32_t steps; /* repetitions over all parameters (param == UINT32_MAX) */
    int64_t d;      /* subtracted after the multiply (as the gradient term in training) */
} op;

typedef struct machine {
    rv_infobuf buf;
    size_t n;
    int64_t *x;
} machine;

static int64_t wrap_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static int64_t wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }

static const revl_allocator *alloc_of(const machine *m) { return m->buf.alloc; }

static void forward_one(machine *m, const rv_gamma_code *c, size_t i, int64_t d)
{
    rv_stack *s = &m->buf.stacks[i / RV_BLOCK];
    m->x[i] = wrap_sub(rv_exact_mul(alloc_of(m), s, &m->buf.state[i], c, m->x[i]), d);
}

static void reverse_one(machine *m, const rv_gamma_code *c, size_t i, int64_t d)
{
    rv_stack *s = &m->buf.stacks[i / RV_BLOCK];
    m->x[i] = rv_exact_div(alloc_of(m), s, &m->buf.state[i], c, wrap_add(m->x[i], d));
}

static void forward_op(machine *m, const op *o)
{
    rv_gamma_code c;
    rv_gamma_code_make(&c, o->n);
    if (o->param != UINT32_MAX) {
        forward_one(m, &c, o->param, o->d);
        return;
    }
    for (uint32_t t = 0; t < o->steps; t++)
        for (size_t i = 0; i < m->n; i++)
            forward_one(m, &c, i, o->d);
}

static void reverse_op(machine *m, const op *o)
{
    rv_gamma_code c;
    rv_gamma_code_make(&c, o->n);
    if (o->param != UINT32_MAX) {
        reverse_one(m, &c, o->param, o->d);
        return;
    }
    for (uint32_t t = 0; t < o->steps; t++)
        for (size_t i = m->n; i-- > 0;)
            reverse_one(m, &c, i, o->d);
}

/* Everything the buffer and the values hold, to compare two moments of the run. */
typedef struct snapshot {
    int64_t *x;
    uint64_t *state;
    size_t *len, *deficit;
    rv_word **words;
} snapshot;

static void snap_take(snapshot *s, const machine *m)
{
    size_t nb = m->buf.n_blocks;
    s->x = malloc(m->n * sizeof *s->x);
    s->state = malloc(m->n * sizeof *s->state);
    s->len = malloc(nb * sizeof *s->len);
    s->deficit = malloc(nb * sizeof *s->deficit);
    s->words = malloc(nb * sizeof *s->words);
    if (!s->x || !s->state || !s->len || !s->deficit || !s->words)
        abort();
    memcpy(s->x, m->x, m->n * sizeof *s->x);
    memcpy(s->state, m->buf.state, m->n * sizeof *s->state);
    for (size_t k = 0; k < nb; k++) {
        const rv_stack *st = &m->buf.stacks[k];
        s->len[k] = st->len;
        s->deficit[k] = st->deficit;
        s->words[k] = malloc((st->len + 1) * sizeof(rv_word));
        if (!s->words[k])
            abort();
        if (st->len)
            memcpy(s->words[k], st->words, st->len * sizeof(rv_word));
    }
}

static void snap_check(const snapshot *s, const machine *m)
{
    if (memcmp(s->x, m->x, m->n * sizeof *s->x) != 0)
        __builtin_trap(); /* values differ after undo/redo */
    if (memcmp(s->state, m->buf.state, m->n * sizeof *s->state) != 0)
        __builtin_trap(); /* coder states differ */
    for (size_t k = 0; k < m->buf.n_blocks; k++) {
        const rv_stack *st = &m->buf.stacks[k];
        if (st->len != s->len[k] || st->deficit != s->deficit[k] || st->broken || st->nomem)
            __builtin_trap();
        if (st->len && memcmp(st->words, s->words[k], st->len * sizeof(rv_word)) != 0)
            __builtin_trap();
    }
}

static void snap_free(snapshot *s, const machine *m)
{
    for (size_t k = 0; k < m->buf.n_blocks; k++)
        free(s->words[k]);
    free(s->x);
    free(s->state);
    free(s->len);
    free(s->deficit);
    free(s->words);
}

#define MAX_OPS 4096
#define MAX_WORK 300000 /* parameter-steps per input: keeps each run in milliseconds under ASan */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    /* 1..16 parameters in one block, or up to 16 past a block boundary (two stacks) */
    uint64_t shape = take(&r, 1);
    size_t n = 1 + (shape & 15);
    if (shape & 16)
        n += RV_BLOCK;

    revl_allocator alloc;
    revl_allocator_init(&alloc);
    machine m = {.n = n};
    if (rv_infobuf_init(&m.buf, &alloc, n) != REVL_OK)
        return 0;
    m.x = calloc(n, sizeof *m.x);
    int64_t *x0 = calloc(n, sizeof *x0);
    op *ops = calloc(MAX_OPS, sizeof *ops);
    if (!m.x || !x0 || !ops)
        abort();
    /* starting values for up to 16 parameters, spread over both blocks; the rest stay 0 */
    size_t stride = n > 16 ? RV_BLOCK / 8 : 1;
    for (size_t k = 0; k < 16 && k * stride < n; k++)
        m.x[k * stride] = (int64_t)take(&r, 8);
    memcpy(x0, m.x, n * sizeof *x0);

    size_t n_ops = 0, work = 0;
    while (r.left && n_ops < MAX_OPS) {
        op *o = &ops[n_ops];
        uint64_t kind = take(&r, 1);
        o->n = (uint32_t)(take(&r, 2) % 65536) + 1;
        if (kind & 1) { /* every parameter for K steps: long pushes without input bytes */
            o->param = UINT32_MAX;
            o->steps = 1 + (uint32_t)((kind >> 1) & 63) * ((kind & 128) ? 8 : 1);
            o->d = (kind & 2) ? (int64_t)take(&r, 8) : 0;
            if (work + (size_t)o->steps * n > MAX_WORK)
                break;
            work += (size_t)o->steps * n;
        } else {
            uint32_t pick = (uint32_t)(kind >> 1) % 16;
            o->param = (uint32_t)((size_t)pick * stride % n);
            o->steps = 1;
            o->d = (int64_t)take(&r, (unsigned)(1 + ((kind >> 5) & 7)));
            work++;
        }
        n_ops++;
    }

    for (size_t k = 0; k < n_ops; k++)
        forward_op(&m, &ops[k]);
    snapshot end;
    snap_take(&end, &m);

    /* undo the second half, redo it: the same bits */
    size_t mid = n_ops / 2;
    for (size_t k = n_ops; k-- > mid;)
        reverse_op(&m, &ops[k]);
    for (size_t k = mid; k < n_ops; k++)
        forward_op(&m, &ops[k]);
    snap_check(&end, &m);
    snap_free(&end, &m);

    /* undo everything: the starting values and an empty buffer */
    for (size_t k = n_ops; k-- > 0;)
        reverse_op(&m, &ops[k]);
    if (memcmp(m.x, x0, n * sizeof *x0) != 0)
        __builtin_trap();
    if (!rv_infobuf_is_empty(&m.buf))
        __builtin_trap();

    rv_infobuf_destroy(&m.buf);
    free(m.x);
    free(x0);
    free(ops);
    return 0;
}
