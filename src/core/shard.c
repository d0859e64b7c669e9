/* shard.c: the collectives of a sharded trainer, built on the communicator's one operation,
 * the int64 all-reduce. An all-gather is an all-reduce of a full-length vector in which every
 * rank has zeroed all but its own slice: x + 0 = x, so each word (an int64, or a double's bits)
 * arrives unchanged. That moves about twice the bytes of a true all-gather (docs/mpi.md) but
 * needs nothing more from the communicator; revl_comm's struct_size leaves room for one. */
#include "core/shard.h"

#include <string.h>

#define MSG_WORDS (RV_ERRLEN / 8)

void rv_shard_blocks(const revl_comm *c, size_t n_blocks, size_t *b_lo, size_t *nb)
{
    if (revl_dp_micro_range(n_blocks, c->rank, c->size, b_lo, nb) != REVL_OK) {
        *b_lo = 0;
        *nb = n_blocks;
    }
}

static int comm_failed(revl_trainer *t)
{
    return rv_fail(t->err, REVL_ERR_CALLBACK, "rank %d: the sharded trainer's all-reduce failed",
                   t->comm.rank);
}

/* R status words, and with `check` R agreement words after them. */
static int vote_on(revl_trainer *t, int rc, int check, uint64_t agree)
{
    if (!t->sharded)
        return rc;
    size_t R = (size_t)t->comm.size, n = check ? 2 * R : R;
    int64_t *vote = t->vote; /* made at create: every rank joins, whatever failed here */
    memset(vote, 0, n * sizeof *vote);
    vote[t->comm.rank] = rc;
    if (check)
        vote[R + (size_t)t->comm.rank] = (int64_t)agree;
    if (t->comm.allreduce_i64(vote, n, t->comm.user))
        return comm_failed(t);
    int from = -1;
    for (size_t r = 0; r < R && from < 0; r++)
        if (vote[r])
            from = (int)r;
    if (from < 0) {
        for (size_t r = 1; check && r < R; r++)
            if (vote[R + r] != vote[R])
                return rv_fail(t->err, REVL_ERR_INVALID,
                               "rank %zu's training differs from rank 0's (schedule values, "
                               "truncation, step count, frac_bits or groups): the ranks are not "
                               "running the same training", r);
        return REVL_OK;
    }
    int status = (int)vote[from];
    /* the failing rank's message to every rank: every rank read the same vote, so all make it */
    int64_t words[MSG_WORDS] = {0};
    char text[RV_ERRLEN + 32]; /* cut to RV_ERRLEN below */
    if (t->comm.rank == from) {
        snprintf(text, sizeof text, "rank %d: %s", from, t->err);
        memcpy(words, text, sizeof words);
    }
    if (t->comm.allreduce_i64(words, MSG_WORDS, t->comm.user))
        return comm_failed(t);
    memcpy(t->err, words, sizeof words);
    t->err[RV_ERRLEN - 1] = '\0';
    return status;
}

int rv_shard_vote(revl_trainer *t, int rc)
{
    return vote_on(t, rc, 0, 0);
}

int rv_shard_agree(revl_trainer *t, int rc, uint64_t agree)
{
    return vote_on(t, rc, 1, agree);
}

int rv_shard_gather(revl_trainer *t, void *x)
{
    if (!t->sharded)
        return REVL_OK;
    int64_t *q = x; /* the words are only added to zeros: their bits pass unchanged */
    memset(q, 0, t->lo * sizeof *q);
    memset(q + t->lo + t->n_local, 0, (t->n_params - t->lo - t->n_local) * sizeof *q);
    if (t->comm.allreduce_i64(q, t->n_params, t->comm.user))
        return comm_failed(t);
    return REVL_OK;
}

int rv_shard_gather_w(revl_trainer *t)
{
    if (!t->sharded)
        return REVL_OK;
    int rc = rv_shard_gather(t, t->w);
    for (size_t i = 0; !rc && i < t->n_params; i++)
        if (i < t->lo || i >= t->lo + t->n_local)
            t->wd[i] = rv_to_double(t->fx, t->w[i]);
    return rc;
}

int rv_shard_gather_partials(revl_trainer *t)
{
    if (!t->sharded)
        return REVL_OK;
    size_t ns = t->opt->n_slots, n = t->n_parts_all * ns;
    int64_t *q = (int64_t *)t->partial_all;
    memset(q, 0, n * sizeof *q);
    memcpy(t->partial_all + t->part_lo * ns, t->partial, t->n_parts * ns * sizeof *t->partial);
    if (t->comm.allreduce_i64(q, n, t->comm.user))
        return comm_failed(t);
    return REVL_OK;
}
