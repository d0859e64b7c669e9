/* stats.c: revl_trainer_stats_init, so callers need not size the output struct by hand. Kept
 * apart from trainer.c: it depends on nothing but the public struct. */
#include "base/internal.h"

#include <string.h>

void revl_trainer_stats_init(revl_trainer_stats *s)
{
    if (!s)
        return;
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
}
