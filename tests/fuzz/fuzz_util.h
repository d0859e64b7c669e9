/* fuzz_util.h: what the file-loader fuzz targets share: scratch files (made once per process
 * in $TMPDIR, removed at exit) that each input is written to. */
#ifndef REVL_FUZZ_UTIL_H
#define REVL_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define FUZZ_N_FILES 3
static char fuzz_paths[FUZZ_N_FILES][256];

static inline void fuzz_remove_files(void)
{
    for (int k = 0; k < FUZZ_N_FILES; k++)
        if (fuzz_paths[k][0])
            unlink(fuzz_paths[k]);
}

/* The k-th scratch path (k < FUZZ_N_FILES), created on first use. */
static inline const char *fuzz_path(int k)
{
    if (!fuzz_paths[k][0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(fuzz_paths[k], sizeof fuzz_paths[k], "%s/revl-fuzz-XXXXXX", dir ? dir : "/tmp");
        int fd = mkstemp(fuzz_paths[k]);
        if (fd < 0)
            abort();
        close(fd);
        static int registered;
        if (!registered++)
            atexit(fuzz_remove_files);
    }
    return fuzz_paths[k];
}

static inline void fuzz_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (len && fwrite(data, 1, len, f) != len)
        abort();
    if (fclose(f) != 0)
        abort();
}

/* The whole file, malloc'd (NUL-terminated); *len its size. */
static inline unsigned char *fuzz_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap + 1);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            unsigned char *nb = realloc(b, cap + 1);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    fclose(f);
    if (!b)
        abort();
    b[n] = 0;
    *len = n;
    return b;
}

/* Recompute a checkpoint container's trailing CRC-32 (docs/file-formats.md), so that an edited
 * file reaches the checks behind the checksum: a forged file. */
static inline void fuzz_fix_crc(unsigned char *b, size_t n)
{
    if (n < 4)
        return;
    uLong c = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

/* Apply the edits of data[1..size): triples of a 2-byte position (mod *len) and a byte, then a
 * trailing byte below 128 truncating the file to that many 128ths. */
static inline void fuzz_edit(unsigned char *file, size_t *len, const unsigned char *data,
                             size_t size)
{
    size_t i = 1;
    for (; i + 3 <= size && *len; i += 3)
        file[((size_t)data[i] << 8 | data[i + 1]) % *len] = data[i + 2];
    if (i < size && data[i] < 128)
        *len = *len * data[i] / 128;
}

#endif
