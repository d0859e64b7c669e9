/* internal.h: the bottom layer that every file of the library shares and users never see: the
 * allocator wrappers, the per-handle error message and deterministic random numbers. Nothing
 * here is exported. */
#ifndef REVL_INTERNAL_H
#define REVL_INTERNAL_H

#define REVL_BUILDING 1
#include "revl.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#define RV_HIDDEN __attribute__((visibility("hidden")))
#define RV_ERRLEN 256

/* ---- memory: every allocation of a handle goes through its allocator */
RV_HIDDEN void rv_allocator_copy(revl_allocator *dst, const revl_allocator *src /* NULL ok */);
RV_HIDDEN void *rv_alloc(const revl_allocator *a, size_t size);  /* NULL on failure or overflow */
RV_HIDDEN void *rv_calloc(const revl_allocator *a, size_t n, size_t size); /* zeroed */
/* n * size bytes, not zeroed, for a large array the caller fills at once (huge pages advised
 * where the system has them); NULL on failure or overflow. */
RV_HIDDEN void *rv_alloc_array(const revl_allocator *a, size_t n, size_t size);
RV_HIDDEN void rv_free(const revl_allocator *a, void *p);                 /* NULL ok */
/* n*size without overflow, or 0 with *ok = 0 */
RV_HIDDEN size_t rv_mul_size(size_t n, size_t size, int *ok);

/* ---- error messages: every handle has char err[RV_ERRLEN]; returns status for tail calls */
RV_HIDDEN int rv_fail(char *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
RV_HIDDEN void rv_clear(char *err);

/* ---- struct_size: every struct that crosses the ABI is checked against the sizes ever shipped
 * of it (struct_size.c); REVL_ERR_INVALID with a message naming the struct and the size. */
typedef enum rv_struct_id {
    RV_STRUCT_ALLOCATOR,
    RV_STRUCT_MODEL_DEF,
    RV_STRUCT_TRAINER_OPTIONS,
    RV_STRUCT_TRAINER_STATS,
    RV_STRUCT_MLP_OPTIONS,
    RV_STRUCT_HYPEROPT_OPTIONS,
    RV_STRUCT_HYPEROPT_REPORT,
    RV_STRUCT_FAMILY_OPTIONS,
    RV_STRUCT_TUNER_OPTIONS,
    RV_STRUCT_TUNER_REPORT,
    RV_STRUCT_TUNER_RESULT,
    RV_STRUCT_COUNT
} rv_struct_id;
RV_HIDDEN int rv_struct_size_check(char *err /* NULL ok */, rv_struct_id id, size_t struct_size);

/* ---- files (file.c). Long paths are shown by their tail so that the reason still fits. */
#define RV_PATH_FMT "%s%s"
#define RV_PATH_ARG(p) (strlen(p) > 96 ? "..." : ""), (strlen(p) > 96 ? (p) + strlen(p) - 96 : (p))
RV_HIDDEN void rv_errno_text(int errnum, char *buf, size_t size);
/* path opened for reading ("rb"), or NULL with REVL_ERR_IO's message in err: cannot open, or
 * not a regular file (a directory, FIFO, device), refused without blocking. */
RV_HIDDEN FILE *rv_open_regular(const char *path, char *err);

/* ---- failed creates (status.c): this thread's message of the last failed revl_*_create. A
 * create clears it first (rv_create_err()[0] = 0), writes the cause with rv_fail(rv_create_err(),
 * ...), and returns rv_create_end(rc, name), which clears it on success and names at least the
 * function and the status otherwise. */
RV_HIDDEN char *rv_create_err(void);
RV_HIDDEN int rv_create_end(int rc, const char *fn);

/* Deterministic random numbers (splitmix64), the same on every platform. */
RV_HIDDEN uint64_t rv_rand_u64(uint64_t *state);
RV_HIDDEN double rv_rand_uniform(uint64_t *state);  /* in (0, 1) */
RV_HIDDEN double rv_rand_normal(uint64_t *state);   /* standard normal, Box-Muller */

#endif
