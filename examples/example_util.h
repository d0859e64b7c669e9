/* example_util.h: what the Fashion-MNIST examples share (not quickstart.c, which stays
 * standalone): a monotonic clock, mkdir -p, loading a Fashion-MNIST split from its IDX files,
 * and running gnuplot on a script next to its data. Each example is one translation unit that
 * includes this header, so everything here is static. */
#ifndef REVL_EXAMPLE_UTIL_H
#define REVL_EXAMPLE_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "revl.h"

/* Where Debian's dataset-fashion-mnist package puts the files (--data DIR overrides it). */
#define EXAMPLE_FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* Seconds on a monotonic clock. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* mkdir -p; 0 on success, -1 on failure. */
static inline int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            buf[i] = saved;
        }
    }
    return 0;
}

/* The first n examples of the Fashion-MNIST split set ("train" or "t10k") in dir, into d.
 * Returns the status; on failure prints "prog: <the loader's message>" and where to get the
 * data to stderr. */
static inline int load_fashion(revl_dataset *d, const char *prog, const char *dir,
                               const char *set, size_t n)
{
    char img[4096], lab[4096];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, set);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, set);
    int rc = revl_dataset_load_idx(d, img, lab, n);
    if (rc != REVL_OK) { /* the loader's message names the file */
        fprintf(stderr, "%s: %s\n", prog, revl_dataset_last_error(d));
        fprintf(stderr, "%s: Fashion-MNIST is in Debian's dataset-fashion-mnist package "
                        "(make deps), or pass --data DIR\n", prog);
    }
    return rc;
}

/* Runs gnuplot on the script script_name inside dir: 0 when it drew, 1 when gnuplot is not
 * installed, -1 when it failed (or dir holds a single quote, which the shell command can't). */
static inline int run_gnuplot(const char *dir, const char *script_name)
{
    char cmd[8300];
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        return 1;
    if (strchr(dir, '\'')) /* the directory goes into a shell command inside single quotes */
        return -1;
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot '%s'", dir, script_name);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
