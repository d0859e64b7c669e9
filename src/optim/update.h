/* update.h: the forward pass's per-parameter update after the momentum multiply,
 *   v <- v - round((1-gamma) g),  w <- w + round(alpha v),  wd <- w as a double,
 * over a run of parameters of one group, with a plain version and an AVX-512 one chosen at run
 * time. Both round the same products in the same way, so they give the same bits. */
#ifndef REVL_UPDATE_H
#define REVL_UPDATE_H

#include "base/internal.h"

#include <stdint.h>

/* Update parameters [0, n); stop before the first one that cannot be updated (gradient not
 * finite, a product or a sum outside int64) and return its index, or n when all were updated.
 * The parameter returned is left unchanged. */
typedef size_t (*rv_update_fn)(size_t n, const double *grad, int64_t *v, int64_t *w, double *wd,
                               double omg_fixed, double alpha, double inv_scale);

RV_HIDDEN size_t rv_update_plain(size_t n, const double *grad, int64_t *v, int64_t *w, double *wd,
                                 double omg_fixed, double alpha, double inv_scale);
/* The fastest version this processor runs. */
RV_HIDDEN rv_update_fn rv_update_select(void);

#endif
