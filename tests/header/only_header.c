/* only_header.c: revl.h compiles on its own as C11 with -Wall -Wextra -Werror -pedantic
 * (make check-header), and the conventions the ABI relies on hold: every struct that crosses
 * the ABI starts with size_t struct_size, and the version macros agree with each other. */
#include "revl.h"

#include <stddef.h>

#define STRUCT_SIZE_FIRST(T) \
    _Static_assert(offsetof(T, struct_size) == 0, #T " must start with struct_size"); \
    _Static_assert(sizeof(((T *)0)->struct_size) == sizeof(size_t), #T ".struct_size is a size_t")

STRUCT_SIZE_FIRST(revl_allocator);
STRUCT_SIZE_FIRST(revl_model_def);
STRUCT_SIZE_FIRST(revl_trainer_options);
STRUCT_SIZE_FIRST(revl_trainer_stats);
STRUCT_SIZE_FIRST(revl_mlp_options);
STRUCT_SIZE_FIRST(revl_hyperopt_report);
STRUCT_SIZE_FIRST(revl_hyperopt_options);

_Static_assert(REVL_VERSION_NUMBER ==
                   REVL_VERSION_MAJOR * 10000 + REVL_VERSION_MINOR * 100 + REVL_VERSION_PATCH,
               "version macros disagree");
_Static_assert(REVL_OK == 0, "REVL_OK is 0");

/* Every declaration is usable from C: take the address of a few entry points of each part. */
typedef int (*create_fn)(revl_trainer **, revl_model *, const revl_schedule *,
                         const revl_trainer_options *);
int revl_header_test_c(void);
int revl_header_test_c(void)
{
    create_fn f = revl_trainer_create;
    const void *p[] = {(const void *)&f};
    return p[0] != NULL;
}
