/* bench_load.c: how long revl_dataset_load_idx takes on the Fashion-MNIST training set (60,000
 * images, 26 MB of gzip), side by side with what zlib alone needs to decompress the same two
 * files (gzread into a buffer, nothing else). The ratio is the loader's overhead over the
 * decompression it cannot avoid: parsing, checks, conversion to doubles.
 * Usage: bench_load [repeats (default 5)] [images.gz labels.gz] */
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "bench_util.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

/* Decompress the whole file with zlib into a scratch buffer; returns the byte count. */
static size_t zlib_only(const char *path)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_load: cannot open %s\n", path);
        exit(1);
    }
    gzbuffer(f, 1 << 17);
    static unsigned char buf[1 << 20];
    size_t total = 0;
    int got;
    while ((got = gzread(f, buf, sizeof buf)) > 0)
        total += (size_t)got;
    if (got < 0 || gzclose(f) != Z_OK) {
        fprintf(stderr, "bench_load: zlib error on %s\n", path);
        exit(1);
    }
    return total;
}

static double time_revl(const char *img, const char *lab)
{
    revl_dataset *d = NULL;
    if (revl_dataset_create(&d, NULL) != REVL_OK)
        exit(1);
    double t0 = bench_now();
    if (revl_dataset_load_idx(d, img, lab, 0) != REVL_OK) {
        fprintf(stderr, "bench_load: %s\n", revl_dataset_last_error(d));
        exit(1);
    }
    double t = bench_now() - t0;
    if (revl_dataset_n(d) != 60000 && revl_dataset_n(d) != 10000)
        fprintf(stderr, "bench_load: note: %zu examples\n", revl_dataset_n(d));
    revl_dataset_free(d);
    return t;
}

static double time_zlib(const char *img, const char *lab)
{
    double t0 = bench_now();
    size_t bytes = zlib_only(img) + zlib_only(lab);
    double t = bench_now() - t0;
    if (bytes == 0)
        exit(1);
    return t;
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    const char *img = argc > 3 ? argv[2] : FMNIST "train-images-idx3-ubyte.gz";
    const char *lab = argc > 3 ? argv[3] : FMNIST "train-labels-idx1-ubyte.gz";
    if (repeats < 1)
        repeats = 1;
    /* interleaved, best of `repeats` each, so both see the same machine load */
    double t_revl = 1e30, t_zlib = 1e30;
    for (int r = 0; r < repeats; r++) {
        double a = time_revl(img, lab), b = time_zlib(img, lab);
        t_revl = a < t_revl ? a : t_revl;
        t_zlib = b < t_zlib ? b : t_zlib;
    }
    printf("%-44s %8s\n", "best of", "seconds");
    printf("%-44s %8.3f\n", "revl_dataset_load_idx (to doubles, checked)", t_revl);
    printf("%-44s %8.3f\n", "zlib gzread of the same files, nothing else", t_zlib);
    printf("%-44s %8.2f\n", "ratio load / zlib decompression", t_revl / t_zlib);
    bench_target("Fashion-MNIST's 60,000 training images, seconds", t_revl, "<=", 0.3);
    return 0;
}
