/* fuzz_wide.c: libFuzzer target for the 128-bit exact multiply (exact/wide.h) that holds Adam's
 * and RMSprop's states. The input is a random program: up to 8 states with 128-bit starting
 * values, then operations x_i <- x_i * n/2^b - d with b = 16 or 24, n in 1..2^b - 1 (or 2^16 for
 * b = 16) and a 128-bit d, on one state or on all of them. The program runs forward and then
 * backward; every state must return bit for bit, every nonzero state must never have become 0
 * by the multiply, and the buffer must end empty. Anything else traps. */
#include "exact/wide.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATES 8
#define MAX_OPS 512

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

/* A signed value below 2^bits in magnitude from the input. */
static rv_wide take_wide(reader *r, unsigned bits)
{
    rv_uwide u = ((rv_uwide)take(r, 8) << 64) | take(r, 8);
    rv_wide mag = (rv_wide)(u >> (128 - bits));
    return (take(r, 1) & 1) ? -mag : mag;
}

typedef struct op {
    unsigned bits;
    uint32_t n;
    uint32_t param; /* MAX_STATES = all */
    rv_wide d;
} op;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    size_t n = 1 + take(&r, 1) % MAX_STATES;
    revl_allocator alloc;
    revl_allocator_init(&alloc);
    rv_infobuf buf;
    if (rv_infobuf_init(&buf, &alloc, n) != REVL_OK)
        return 0;
    rv_wide x0[MAX_STATES], x[MAX_STATES];
    for (size_t i = 0; i < n; i++)
        x0[i] = x[i] = take_wide(&r, 110);
    static op ops[MAX_OPS];
    size_t n_ops = 0;
    while (r.left && n_ops < MAX_OPS) {
        op *o = &ops[n_ops++];
        o->bits = (take(&r, 1) & 1) ? 24 : 16;
        uint32_t top = o->bits == 16 ? (1u << 16) : (1u << 24) - 1;
        o->n = 1 + (uint32_t)(take(&r, 3) % top);
        o->param = (uint32_t)(take(&r, 1) % (MAX_STATES + 1));
        o->d = take_wide(&r, 100);
    }
    rv_stack *s = &buf.stacks[0];
    for (size_t k = 0; k < n_ops; k++) {
        rv_gamma_code c;
        rv_gamma_code_make(&c, ops[k].n);
        for (size_t i = 0; i < n; i++) {
            if (ops[k].param != MAX_STATES && ops[k].param != i)
                continue;
            rv_wide y = rv_wide_mul(&alloc, s, &buf.state[i], &c, ops[k].bits, x[i]);
            if ((y == 0) != (x[i] == 0))
                __builtin_trap(); /* 0 must map to 0 and nothing else to 0 */
            x[i] = y - ops[k].d;
        }
    }
    for (size_t k = n_ops; k-- > 0;) {
        rv_gamma_code c;
        rv_gamma_code_make(&c, ops[k].n);
        for (size_t i = n; i-- > 0;) {
            if (ops[k].param != MAX_STATES && ops[k].param != i)
                continue;
            x[i] = rv_wide_div(&alloc, s, &buf.state[i], &c, ops[k].bits, x[i] + ops[k].d);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (x[i] != x0[i])
            __builtin_trap(); /* not undone bit for bit */
    if (!rv_infobuf_is_empty(&buf))
        __builtin_trap(); /* the buffer kept something */
    rv_infobuf_destroy(&buf);
    return 0;
}
