/* ckptfile.c: the checkpoint container (ckptfile.h): buffered little-endian writes with a
 * running CRC-32 (zlib), an atomic replace by rename, and a reader that trusts nothing it has
 * not checked. */
#include "base/ckptfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>


#define TRAILER_BYTES 12 /* u64 length, u32 crc */
#define HEADER_BYTES 12  /* magic, u32 version */

static void flush_buf(rv_ckpt_writer *w)
{
    if (!w->n)
        return;
    w->crc = crc32_z(w->crc, w->buf, w->n);
    if (!w->failed && fwrite(w->buf, 1, w->n, w->f) != w->n)
        w->failed = errno ? errno : -1;
    w->length += w->n;
    w->n = 0;
}

static void put_bytes(rv_ckpt_writer *w, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        size_t k = sizeof w->buf - w->n < n ? sizeof w->buf - w->n : n;
        memcpy(w->buf + w->n, b, k);
        w->n += k;
        b += k;
        n -= k;
        if (w->n == sizeof w->buf)
            flush_buf(w);
    }
}

static void le_bytes(unsigned char *b, uint64_t x, int n)
{
    for (int i = 0; i < n; i++)
        b[i] = (unsigned char)(x >> (8 * i));
}

static uint64_t le_value(const unsigned char *b, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x |= (uint64_t)b[i] << (8 * i);
    return x;
}

/* The directory holding path ("." for a bare name). */
static void dir_of(const char *path, char dir[RV_CKPT_PATH_MAX + 1])
{
    snprintf(dir, RV_CKPT_PATH_MAX + 1, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, RV_CKPT_PATH_MAX + 1, ".");
}

#define TMP_TAG ".tmp."
#define TMP_SUFFIX 6 /* characters after TMP_TAG */

/* Remove the temporaries <path>.tmp.XXXXXX of saves that died (killed mid-write): a writer holds
 * an exclusive flock on its temporary until it has renamed it, so a temporary whose lock can be
 * taken has no writer left. The name is checked to be the same file after locking, so that only
 * what was locked is removed. */
static void remove_stale(const char *path)
{
    char dir[RV_CKPT_PATH_MAX + 1], full[2 * RV_CKPT_PATH_MAX + 2];
    dir_of(path, dir);
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    size_t nb = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *n = e->d_name;
        if (strlen(n) != nb + strlen(TMP_TAG) + TMP_SUFFIX || strncmp(n, base, nb) != 0 ||
            strncmp(n + nb, TMP_TAG, strlen(TMP_TAG)) != 0)
            continue;
        snprintf(full, sizeof full, "%s/%s", dir, n);
        int fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat held, named;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 &&
            S_ISREG(held.st_mode) && lstat(full, &named) == 0 && held.st_ino == named.st_ino &&
            held.st_dev == named.st_dev)
            unlink(full);
        close(fd);
    }
    closedir(d);
}

/* Create w->tmp = <path>.tmp.XXXXXX exclusively (O_EXCL: no two writers, threads or processes,
 * ever share one) and lock it for as long as it is written. */
static int create_tmp(rv_ckpt_writer *w, const char *path)
{
    static _Atomic unsigned long counter;
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t h = rv_hash_u64(rv_hash_u64(rv_hash_u64(RV_HASH_INIT, (uint64_t)getpid()),
                                         (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec),
                             (uint64_t)(uintptr_t)w);
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t x = rv_hash_u64(h, counter++);
        char suffix[TMP_SUFFIX + 1];
        for (int i = 0; i < TMP_SUFFIX; i++, x /= 36)
            suffix[i] = digits[x % 36];
        suffix[TMP_SUFFIX] = '\0';
        snprintf(w->tmp, sizeof w->tmp, "%s" TMP_TAG "%s", path, suffix);
        int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return -1;
        }
        /* a file system without flock: no stale cleanup can see this writer's lock, but none
         * can take one either, so nothing is removed under it */
        int locked = flock(fd, LOCK_EX) == 0;
        struct stat st;
        if (locked && fstat(fd, &st) == 0 && st.st_nlink == 0) {
            close(fd); /* a cleanup removed it between open and flock: take another name */
            continue;
        }
        return fd;
    }
    errno = EEXIST;
    return -1;
}

int rv_ckpt_create(rv_ckpt_writer *w, const char *path, const char magic[8], uint32_t version,
                   char *err)
{
    w->f = NULL;
    w->path = path;
    w->length = 0;
    w->crc = crc32(0L, Z_NULL, 0);
    w->n = 0;
    w->failed = 0;
    if (strlen(path) > RV_CKPT_PATH_MAX)
        return rv_fail(err, REVL_ERR_IO, PATH_FMT ": path too long", PATH_ARG(path));
    remove_stale(path);
    int fd = create_tmp(w, path);
    if (fd >= 0 && !(w->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        remove(w->tmp);
        errno = e;
    }
    if (!w->f)
        return rv_fail(err, REVL_ERR_IO, PATH_FMT ": cannot create its temporary file: %s",
                       PATH_ARG(path), strerror(errno));
    unsigned char v[4];
    le_bytes(v, version, 4);
    put_bytes(w, magic, 8);
    put_bytes(w, v, 4);
    return REVL_OK;
}

void rv_ckpt_put_u64(rv_ckpt_writer *w, uint64_t x)
{
    unsigned char b[8];
    le_bytes(b, x, 8);
    put_bytes(w, b, 8);
}

void rv_ckpt_put_f64(rv_ckpt_writer *w, double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    rv_ckpt_put_u64(w, b);
}

void rv_ckpt_put_u64s(rv_ckpt_writer *w, const uint64_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rv_ckpt_put_u64(w, x[i]);
}

void rv_ckpt_put_f64s(rv_ckpt_writer *w, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rv_ckpt_put_f64(w, x[i]);
}

void rv_ckpt_put_u16s(rv_ckpt_writer *w, const uint16_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b[2];
        le_bytes(b, x[i], 2);
        put_bytes(w, b, 2);
    }
}

void rv_ckpt_put_ints(rv_ckpt_writer *w, const void *x, size_t elem, size_t n)
{
    if (elem == 8) {
        const int64_t *v = x;
        for (size_t i = 0; i < n; i++)
            rv_ckpt_put_u64(w, (uint64_t)v[i]);
        return;
    }
    const __int128 *v = x;
    for (size_t i = 0; i < n; i++) {
        unsigned __int128 u = (unsigned __int128)v[i];
        rv_ckpt_put_u64(w, (uint64_t)u);
        rv_ckpt_put_u64(w, (uint64_t)(u >> 64));
    }
}

void rv_ckpt_put_name(rv_ckpt_writer *w, const char *name)
{
    char b[16] = {0};
    strncpy(b, name, sizeof b - 1);
    put_bytes(w, b, sizeof b);
}

void rv_ckpt_abandon(rv_ckpt_writer *w)
{
    if (w->f)
        fclose(w->f);
    w->f = NULL;
    remove(w->tmp);
}

/* The directory entry of the rename must reach the disk too. */
static void sync_dir(const char *path)
{
    char dir[RV_CKPT_PATH_MAX + 1];
    dir_of(path, dir);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* A failed write: the temporary closed and removed, path untouched. */
static int write_failed(rv_ckpt_writer *w, char *err)
{
    if (w->f)
        fclose(w->f);
    w->f = NULL;
    remove(w->tmp);
    return rv_fail(err, REVL_ERR_IO, PATH_FMT ": write failed (%s); the previous file is "
                   "unchanged", PATH_ARG(w->path),
                   w->failed > 0 ? strerror(w->failed) : "unknown error");
}

int rv_ckpt_finish(rv_ckpt_writer *w, char *err)
{
    flush_buf(w);
    unsigned char t[TRAILER_BYTES];
    le_bytes(t, w->length + TRAILER_BYTES, 8);
    w->crc = crc32(w->crc, t, 8);
    le_bytes(t + 8, w->crc, 4);
    if (!w->failed && fwrite(t, 1, sizeof t, w->f) != sizeof t)
        w->failed = errno ? errno : -1;
    if (!w->failed && fflush(w->f) != 0)
        w->failed = errno ? errno : -1;
    if (!w->failed && fsync(fileno(w->f)) != 0)
        w->failed = errno ? errno : -1;
    return w->failed ? write_failed(w, err) : REVL_OK;
}

int rv_ckpt_place(rv_ckpt_writer *w, char *err)
{
    /* renamed while still open and locked, so that no stale cleanup takes it for a dead one's;
     * the bytes are on disk (fsync), so a failing close after that loses nothing */
    if (rename(w->tmp, w->path) != 0) {
        w->failed = errno ? errno : -1;
        return write_failed(w, err);
    }
    fclose(w->f);
    w->f = NULL;
    sync_dir(w->path);
    return REVL_OK;
}

int rv_ckpt_commit(rv_ckpt_writer *w, char *err)
{
    int rc = rv_ckpt_finish(w, err);
    return rc ? rc : rv_ckpt_place(w, err);
}

int rv_ckpt_open(rv_ckpt_reader *r, const revl_allocator *a, const char *path,
                 const char magic[8], const char *what, uint32_t version, char *err)
{
    return rv_ckpt_open_versions(r, a, path, magic, what, version, version, err);
}

int rv_ckpt_open_versions(rv_ckpt_reader *r, const revl_allocator *a, const char *path,
                          const char magic[8], const char *what, uint32_t oldest,
                          uint32_t version, char *err)
{
    memset(r, 0, sizeof *r);
    r->alloc = a;
    r->path = path;
    /* a regular file only: a FIFO would block, a directory's "size" is 2^63 - 1 */
    FILE *f = rv_open_regular(path, err);
    if (!f)
        return REVL_ERR_IO;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return rv_fail(err, REVL_ERR_IO, PATH_FMT ": cannot find its size", PATH_ARG(path));
    }
    if ((size_t)size < HEADER_BYTES + TRAILER_BYTES) {
        fclose(f);
        return rv_fail(err, REVL_ERR_IO, PATH_FMT ": %ld bytes, too short for a %s",
                       PATH_ARG(path), size, what);
    }
    r->data = rv_alloc(a, (size_t)size);
    if (!r->data) {
        fclose(f);
        return rv_fail(err, REVL_ERR_NOMEM, "no memory to read " PATH_FMT " (%ld bytes)",
                       PATH_ARG(path), size);
    }
    size_t got = fread(r->data, 1, (size_t)size, f);
    fclose(f);
    int rc = REVL_OK;
    size_t n = (size_t)size;
    uint64_t length = le_value(r->data + n - TRAILER_BYTES, 8);
    uint32_t v = (uint32_t)le_value(r->data + 8, 4);
    if (got != n)
        rc = rv_fail(err, REVL_ERR_IO, PATH_FMT ": read error", PATH_ARG(path));
    else if (memcmp(r->data, magic, 8) != 0)
        rc = rv_fail(err, REVL_ERR_IO, PATH_FMT ": not a %s (wrong magic number)",
                     PATH_ARG(path), what);
    else if (v < oldest || v > version)
        rc = oldest == version
                 ? rv_fail(err, REVL_ERR_IO, PATH_FMT ": %s version %u; this library reads "
                           "version %u", PATH_ARG(path), what, v, version)
                 : rv_fail(err, REVL_ERR_IO, PATH_FMT ": %s version %u; this library reads "
                           "versions %u to %u", PATH_ARG(path), what, v, oldest, version);
    else if (length != n)
        rc = rv_fail(err, REVL_ERR_IO, PATH_FMT ": truncated or extended (%zu bytes; its trailer "
                     "says %llu)", PATH_ARG(path), n, (unsigned long long)length);
    else if ((uint32_t)crc32_z(crc32(0L, Z_NULL, 0), r->data, n - 4) !=
             (uint32_t)le_value(r->data + n - 4, 4))
        rc = rv_fail(err, REVL_ERR_IO, PATH_FMT ": checksum mismatch: the file is corrupted",
                     PATH_ARG(path));
    if (rc) {
        rv_ckpt_close(r);
        return rc;
    }
    r->pos = HEADER_BYTES;
    r->end = n - TRAILER_BYTES;
    r->version = v;
    return REVL_OK;
}

void rv_ckpt_close(rv_ckpt_reader *r)
{
    rv_free(r->alloc, r->data);
    r->data = NULL;
}

int rv_ckpt_has(const rv_ckpt_reader *r, uint64_t n, size_t elem)
{
    return !r->short_read && n <= (r->end - r->pos) / elem;
}

static const unsigned char *take(rv_ckpt_reader *r, size_t n)
{
    if (r->short_read || r->end - r->pos < n) {
        r->short_read = 1;
        return NULL;
    }
    const unsigned char *p = r->data + r->pos;
    r->pos += n;
    return p;
}

uint64_t rv_ckpt_get_u64(rv_ckpt_reader *r)
{
    const unsigned char *p = take(r, 8);
    return p ? le_value(p, 8) : 0;
}

double rv_ckpt_get_f64(rv_ckpt_reader *r)
{
    uint64_t b = rv_ckpt_get_u64(r);
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

void rv_ckpt_get_f64s(rv_ckpt_reader *r, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rv_ckpt_get_f64(r);
}

void rv_ckpt_get_u64s(rv_ckpt_reader *r, uint64_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rv_ckpt_get_u64(r);
}

void rv_ckpt_get_u16s(rv_ckpt_reader *r, uint16_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = take(r, 2);
        x[i] = p ? (uint16_t)le_value(p, 2) : 0;
    }
}

void rv_ckpt_get_ints(rv_ckpt_reader *r, void *x, size_t elem, size_t n)
{
    if (elem == 8) {
        int64_t *v = x;
        for (size_t i = 0; i < n; i++)
            v[i] = (int64_t)rv_ckpt_get_u64(r);
        return;
    }
    __int128 *v = x;
    for (size_t i = 0; i < n; i++) {
        uint64_t lo = rv_ckpt_get_u64(r), hi = rv_ckpt_get_u64(r);
        v[i] = (__int128)(((unsigned __int128)hi << 64) | lo);
    }
}

int rv_ckpt_get_name(rv_ckpt_reader *r, const char *name, char out[17])
{
    const unsigned char *p = take(r, 16);
    memset(out, 0, 17);
    if (!p)
        return 0;
    for (int i = 0; i < 16 && p[i]; i++)
        out[i] = p[i] >= 32 && p[i] < 127 ? (char)p[i] : '?';
    char want[16] = {0};
    strncpy(want, name, sizeof want - 1);
    return memcmp(p, want, 16) == 0;
}

uint64_t rv_hash_u64(uint64_t h, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        h = (h ^ ((x >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
    return h;
}

uint64_t rv_hash_u64s(uint64_t h, const uint64_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = rv_hash_u64(h, x[i]);
    return h;
}

uint64_t rv_hash_f64s(uint64_t h, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, &x[i], sizeof b);
        h = rv_hash_u64(h, b);
    }
    return h;
}
