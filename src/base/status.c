/* status.c: status names, per-handle error messages and the version of the linked library. */
#include "base/internal.h"

#include <stdio.h>
#include <string.h>

#define RV_STR2(x) #x
#define RV_STR(x) RV_STR2(x)

unsigned revl_version_number(void)
{
    return REVL_VERSION_NUMBER;
}

const char *revl_version_string(void)
{
    return RV_STR(REVL_VERSION_MAJOR) "." RV_STR(REVL_VERSION_MINOR) "." RV_STR(REVL_VERSION_PATCH);
}

const char *revl_strerror(int status)
{
    switch (status) {
    case REVL_OK: return "ok";
    case REVL_ERR_INVALID: return "invalid argument";
    case REVL_ERR_NOMEM: return "out of memory";
    case REVL_ERR_CALLBACK: return "callback failed";
    case REVL_ERR_RANGE: return "value not finite or outside the fixed-point range";
    case REVL_ERR_STATE: return "call out of order";
    case REVL_ERR_INEXACT: return "reversal not exact";
    case REVL_ERR_IO: return "file unreadable or malformed";
    default: return "unknown status";
    }
}

int rv_fail(char *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, RV_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return status;
}

void rv_clear(char *err)
{
    if (err)
        err[0] = '\0';
}

/* The message of the last failed revl_*_create on this thread. A failed create has no handle to
 * keep its message, and a global buffer would be shared mutable state: a thread-local one is
 * not (each thread sees only its own creates, and the library stays free of locks). */
static _Thread_local char create_err[RV_ERRLEN];

char *rv_create_err(void)
{
    return create_err;
}

int rv_create_end(int rc, const char *fn)
{
    if (rc == REVL_OK)
        create_err[0] = '\0';
    else if (!create_err[0])
        rv_fail(create_err, rc, "%s: %s", fn, revl_strerror(rc));
    return rc;
}

const char *revl_last_create_error(void)
{
    return create_err;
}
