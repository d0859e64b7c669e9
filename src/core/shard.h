/* shard.h: the collectives of a sharded trainer (shard.c; revl_trainer_create_sharded). Each
 * is a no-op returning its input on an unsharded trainer, and every rank of a sharded one must
 * make the same calls in the same order (each is one or two all-reduces). */
#ifndef REVL_CORE_SHARD_H
#define REVL_CORE_SHARD_H

#include "core/trainer.h"

/* The ranks' block range: [*b_lo, *b_lo + *nb) of n_blocks, as revl_dp_micro_range. */
RV_HIDDEN void rv_shard_blocks(const revl_comm *c, size_t n_blocks, size_t *b_lo, size_t *nb);

/* Vote on rc, this rank's status (message in t->err): every rank returns the lowest failing
 * rank's status with "rank r: <its message>" in t->err, or REVL_OK when none failed. */
RV_HIDDEN int rv_shard_vote(revl_trainer *t, int rc);
/* The same vote, and when no rank failed, on `agree` too: a rank whose word differs from rank
 * 0's fails every rank with REVL_ERR_INVALID (the ranks are not running the same training). */
RV_HIDDEN int rv_shard_agree(revl_trainer *t, int rc, uint64_t agree);

/* Every rank's slice [lo, lo + n_local) of the full-length x (8-byte words: int64 or double)
 * to every rank, in place. */
RV_HIDDEN int rv_shard_gather(revl_trainer *t, void *x);
/* w after this rank moved its slice: every rank's w, and wd from it. */
RV_HIDDEN int rv_shard_gather_w(revl_trainer *t);
/* This rank's per-(block, group) partial sums into t->partial_all, every rank's there. */
RV_HIDDEN int rv_shard_gather_partials(revl_trainer *t);

#endif
