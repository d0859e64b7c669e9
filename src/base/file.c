/* file.c: opening the files the loaders read. Only regular files are read: a directory opens
 * and then reads as an empty or failing stream (reported as a truncated file), and a FIFO or a
 * device would block in open() or read() for as long as nothing writes to it. */
#include "base/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void rv_errno_text(int errnum, char *buf, size_t size)
{
    /* strerror_r (XSI) rather than strerror, which may use a static buffer */
    if (strerror_r(errnum, buf, size) != 0)
        snprintf(buf, size, "error %d", errnum);
}

static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a file";
}

FILE *rv_open_regular(const char *path, char *err)
{
    char why[128];
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rv_errno_text(errno, why, sizeof why);
        rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": cannot open: %s", RV_PATH_ARG(path), why);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rv_errno_text(errno, why, sizeof why);
        close(fd);
        rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": cannot stat: %s", RV_PATH_ARG(path), why);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": not a regular file (%s)", RV_PATH_ARG(path),
                kind_of(st.st_mode));
        return NULL;
    }
    /* a regular file never blocks, so the flag is harmless; clear it all the same */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        rv_errno_text(errno, why, sizeof why);
        close(fd);
        rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": cannot open: %s", RV_PATH_ARG(path), why);
    }
    return f;
}
