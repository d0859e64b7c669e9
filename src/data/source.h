/* source.h: a data file read as a stream of bytes, plain or gzip (decompressed by zlib), so
 * that its reader can check a header before deciding how much to allocate for the rest.
 * Internal, never exported. */
#ifndef REVL_SOURCE_H
#define REVL_SOURCE_H

#include "base/internal.h"

#include <stdio.h>
#include <zlib.h>

typedef struct rv_source {
    const revl_allocator *a;
    const char *path;
    FILE *f;
    int gzip;               /* the file starts with the gzip magic 1f 8b */
    int z_live, z_end;      /* inflate state initialised; end of the gzip member reached */
    z_stream z;             /* its allocations go through a */
    unsigned char *in;      /* read buffer (RV_SOURCE_CHUNK bytes) */
    size_t in_len, in_pos;  /* plain files: bytes in the buffer, next one to hand out */
} rv_source;

/* Open path; gzip is recognised by its magic bytes (no IDX file can start with them: its magic
 * starts with two zero bytes). REVL_OK, or REVL_ERR_IO / REVL_ERR_NOMEM with a message naming
 * the file in err; on error nothing stays open and rv_source_close is still safe. */
RV_HIDDEN int rv_source_open(rv_source *s, const revl_allocator *a, const char *path, char *err);

/* Up to len bytes into dst; *got < len only at the end of the data. Corrupt or truncated gzip
 * data is REVL_ERR_IO ("bad gzip data: ..."), a failed read REVL_ERR_IO, zlib out of memory
 * REVL_ERR_NOMEM. */
RV_HIDDEN int rv_source_read(rv_source *s, void *dst, size_t len, size_t *got, char *err);

/* Read to the end: *extra is the number of bytes that were left (at most `cap`; *extra > cap
 * means more than that), and for gzip the stream is checked to its trailer (CRC-32, length)
 * and must be the file's only member. */
RV_HIDDEN int rv_source_finish(rv_source *s, size_t cap, size_t *extra, char *err);

RV_HIDDEN void rv_source_close(rv_source *s);

/* Long paths are shown by their tail so that the reason still fits in the message. */

#endif
