/* source.c: plain or gzip data files as a byte stream. zlib does the decompression (and checks
 * the gzip header, the CRC-32 and the length); this file turns its outcomes into revl statuses
 * with messages naming the file, and refuses what zlib would accept but a data file must not
 * contain: a second gzip member, or anything after the first. */
#include "data/source.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define RV_SOURCE_CHUNK ((size_t)1 << 16)

/* zlib's allocations through the data set's allocator, so that they count and can fail */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    int ok = 1;
    size_t bytes = rv_mul_size(items, size, &ok);
    return ok ? rv_alloc(opaque, bytes) : Z_NULL;
}

static void z_free(voidpf opaque, voidpf p)
{
    rv_free(opaque, p);
}

static int read_error(rv_source *s, char *err)
{
    char why[128];
    rv_errno_text(errno, why, sizeof why);
    return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": read error: %s", RV_PATH_ARG(s->path), why);
}

/* Refill the read buffer; *n = 0 at end of file. */
static int fill(rv_source *s, size_t *n, char *err)
{
    *n = fread(s->in, 1, RV_SOURCE_CHUNK, s->f);
    if (*n == 0 && ferror(s->f))
        return read_error(s, err);
    return REVL_OK;
}

int rv_source_open(rv_source *s, const revl_allocator *a, const char *path, char *err)
{
    memset(s, 0, sizeof *s);
    s->a = a;
    s->path = path;
    s->f = rv_open_regular(path, err); /* directories, FIFOs and devices refused, unblocked */
    if (!s->f)
        return REVL_ERR_IO;
    s->in = rv_alloc(a, RV_SOURCE_CHUNK);
    if (!s->in)
        return rv_fail(err, REVL_ERR_NOMEM, "out of memory reading " RV_PATH_FMT,
                       RV_PATH_ARG(path));
    int rc = fill(s, &s->in_len, err);
    if (rc != REVL_OK)
        return rc;
    s->gzip = s->in_len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
    if (!s->gzip)
        return REVL_OK;
    s->z.zalloc = z_alloc;
    s->z.zfree = z_free;
    s->z.opaque = (voidpf)a;
    s->z.next_in = s->in;
    s->z.avail_in = (uInt)s->in_len;
    rc = inflateInit2(&s->z, 16 + MAX_WBITS); /* 16: gzip wrapper only, not zlib or raw */
    if (rc != Z_OK)
        return rv_fail(err, rc == Z_MEM_ERROR ? REVL_ERR_NOMEM : REVL_ERR_IO,
                       "%s decompressing " RV_PATH_FMT,
                       rc == Z_MEM_ERROR ? "out of memory" : "zlib failed", RV_PATH_ARG(path));
    s->z_live = 1;
    return REVL_OK;
}

static int gz_read(rv_source *s, unsigned char *dst, size_t len, size_t *got, char *err)
{
    *got = 0;
    while (*got < len && !s->z_end) {
        size_t want = len - *got;
        s->z.next_out = dst + *got;
        s->z.avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
        uInt before = s->z.avail_out;
        int zr = inflate(&s->z, Z_NO_FLUSH);
        *got += before - s->z.avail_out;
        if (zr == Z_STREAM_END) {
            s->z_end = 1;
        } else if (zr == Z_MEM_ERROR) {
            return rv_fail(err, REVL_ERR_NOMEM, "out of memory decompressing " RV_PATH_FMT,
                           RV_PATH_ARG(s->path));
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) { /* corrupt data, CRC or length */
            return rv_fail(err, REVL_ERR_IO, RV_PATH_FMT ": bad gzip data: %s",
                           RV_PATH_ARG(s->path), s->z.msg ? s->z.msg : "corrupt stream");
        } else if (s->z.avail_in == 0 && *got < len) {
            /* more input wanted; Z_BUF_ERROR means inflate could not move without it */
            size_t n;
            int rc = fill(s, &n, err);
            if (rc != REVL_OK)
                return rc;
            if (n == 0 && zr == Z_BUF_ERROR)
                return rv_fail(err, REVL_ERR_IO,
                               RV_PATH_FMT ": bad gzip data: the compressed stream ends early "
                               "(truncated file?)", RV_PATH_ARG(s->path));
            s->z.next_in = s->in;
            s->z.avail_in = (uInt)n;
        }
    }
    return REVL_OK;
}

static int plain_read(rv_source *s, unsigned char *dst, size_t len, size_t *got, char *err)
{
    *got = 0;
    while (*got < len) {
        if (s->in_pos == s->in_len) {
            if (len - *got >= RV_SOURCE_CHUNK) { /* large reads skip the buffer */
                size_t n = fread(dst + *got, 1, len - *got, s->f);
                *got += n;
                if (n == 0 && ferror(s->f))
                    return read_error(s, err);
                if (n == 0)
                    break;
                continue;
            }
            int rc = fill(s, &s->in_len, err);
            s->in_pos = 0;
            if (rc != REVL_OK || s->in_len == 0)
                return rc;
        }
        size_t n = s->in_len - s->in_pos;
        n = n < len - *got ? n : len - *got;
        memcpy(dst + *got, s->in + s->in_pos, n);
        s->in_pos += n;
        *got += n;
    }
    return REVL_OK;
}

int rv_source_read(rv_source *s, void *dst, size_t len, size_t *got, char *err)
{
    return s->gzip ? gz_read(s, dst, len, got, err) : plain_read(s, dst, len, got, err);
}

int rv_source_finish(rv_source *s, size_t cap, size_t *extra, char *err)
{
    *extra = 0;
    unsigned char scratch[4096];
    size_t got;
    do { /* count what is left, up to one chunk past cap, reading the gzip stream to its end */
        int rc = rv_source_read(s, scratch, sizeof scratch, &got, err);
        if (rc != REVL_OK)
            return rc;
        *extra += got;
    } while (got == sizeof scratch && *extra <= cap);
    if (!s->gzip || !s->z_end)
        return REVL_OK;
    size_t after = s->z.avail_in;
    if (after == 0) {
        int rc = fill(s, &after, err);
        if (rc != REVL_OK)
            return rc;
    }
    if (after)
        return rv_fail(err, REVL_ERR_IO,
                       RV_PATH_FMT ": bad gzip data: data after the end of the gzip stream "
                       "(multi-member gzip is not supported)", RV_PATH_ARG(s->path));
    return REVL_OK;
}

void rv_source_close(rv_source *s)
{
    if (s->z_live)
        inflateEnd(&s->z);
    if (s->f)
        fclose(s->f);
    rv_free(s->a, s->in);
    memset(s, 0, sizeof *s);
}
