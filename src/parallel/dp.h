/* dp.h: the data-parallel model wrapper (dp.c), which the built-in MLP's data-parallel form
 * (parallel/mlp_dp.c) builds on. */
#ifndef REVL_PARALLEL_DP_H
#define REVL_PARALLEL_DP_H

#include "core/model.h"

/* revl_dp_model_create with the wrapped model's group layout and an evaluate hook taken from
 * `inner` (a built-in model the wrapper then owns and frees; NULL = none). */
RV_HIDDEN int rv_dp_model_create(revl_model **out, const revl_dp_def *def, revl_model *inner);

#endif
