/* struct_size.c: the one list of the sizes ever shipped of every struct that crosses the ABI,
 * and the check against it. docs/api-stability.md promises that a struct_size the library does
 * not know is refused: a caller that forgot *_init has garbage there, and trusting a garbage size
 * would read garbage pointers (an allocator, a callback) after it. When a field is appended to a
 * struct, the old sizeof joins its row here (as offsetof of the new field), so that callers
 * built against the older header keep working. */
#include "base/internal.h"

#include <stdio.h>

typedef struct shipped {
    const char *name;
    size_t sizes[4]; /* 0-terminated; release 0.1 shipped one size of each */
} shipped;

static const shipped table[RV_STRUCT_COUNT] = {
    [RV_STRUCT_ALLOCATOR] = {"revl_allocator", {sizeof(revl_allocator)}},
    [RV_STRUCT_MODEL_DEF] = {"revl_model_def", {sizeof(revl_model_def)}},
    [RV_STRUCT_TRAINER_OPTIONS] = {"revl_trainer_options", {sizeof(revl_trainer_options)}},
    [RV_STRUCT_TRAINER_STATS] = {"revl_trainer_stats", {sizeof(revl_trainer_stats)}},
    [RV_STRUCT_MLP_OPTIONS] = {"revl_mlp_options", {sizeof(revl_mlp_options)}},
    [RV_STRUCT_HYPEROPT_OPTIONS] = {"revl_hyperopt_options", {sizeof(revl_hyperopt_options)}},
    [RV_STRUCT_HYPEROPT_REPORT] = {"revl_hyperopt_report", {sizeof(revl_hyperopt_report)}},
    [RV_STRUCT_FAMILY_OPTIONS] = {"revl_family_options", {sizeof(revl_family_options)}},
    [RV_STRUCT_TUNER_OPTIONS] = {"revl_tuner_options", {sizeof(revl_tuner_options)}},
    [RV_STRUCT_TUNER_REPORT] = {"revl_tuner_report", {sizeof(revl_tuner_report)}},
    [RV_STRUCT_TUNER_RESULT] = {"revl_tuner_result", {sizeof(revl_tuner_result)}},
};

int rv_struct_size_check(char *err, rv_struct_id id, size_t struct_size)
{
    const shipped *s = &table[id];
    char known[64] = "";
    size_t used = 0;
    for (size_t k = 0; k < sizeof s->sizes / sizeof s->sizes[0] && s->sizes[k]; k++) {
        if (struct_size == s->sizes[k])
            return REVL_OK;
        int w = snprintf(known + used, sizeof known - used, "%s%zu", k ? ", " : "", s->sizes[k]);
        if (w > 0 && (size_t)w < sizeof known - used)
            used += (size_t)w;
    }
    return rv_fail(err, REVL_ERR_INVALID,
                   "%s.struct_size is %zu, not a size this library knows (%s): set it to "
                   "sizeof(%s) or call the struct's _init",
                   s->name, struct_size, known, s->name);
}
