/* family.h: what the tuner needs of a schedule family beyond the public calls (family.c). */
#ifndef REVL_HYPEROPT_FAMILY_H
#define REVL_HYPEROPT_FAMILY_H

#include "base/internal.h"

/* A copy of src through allocator a (NULL = malloc/free): same type, options, base and bounds,
 * sharing a USER family's callbacks and user pointer. */
RV_HIDDEN int rv_family_clone(revl_family **out, const revl_family *src, const revl_allocator *a);
/* The optimiser, n_steps, n_groups and n_meta it was made for. */
RV_HIDDEN void rv_family_shape(const revl_family *f, revl_optimizer *opt, size_t *n_steps,
                               size_t *n_groups, size_t *n_meta);
/* Its options as given (group_layer pointing at the family's own copy). */
RV_HIDDEN const revl_family_options *rv_family_options(const revl_family *f);

#endif
