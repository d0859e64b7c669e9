/* ckptfile.h: the binary container both checkpoints (trainer, hyper-optimiser) are written in
 * (docs/file-formats.md): an 8-byte magic, a version, the body as little-endian 64-bit words
 * (16-bit for the buffer's words), then the file's length and a CRC-32 of everything before it.
 * The writer streams to its own temporary <path>.tmp.XXXXXX (created exclusively and locked
 * while written, so that concurrent writers never share one and a killed writer's is removed by
 * the next save), fsyncs and renames, so a crash mid-write leaves the previous file intact;
 * the reader takes the whole file in, checks length and checksum before anything is parsed, and
 * then reads through a bounds-checked cursor, so that a damaged file is an error and never an
 * out-of-bounds read. */
#ifndef REVL_CKPTFILE_H
#define REVL_CKPTFILE_H

#include "base/internal.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RV_CKPT_PATH_MAX 4096

/* A path in a message: its last 96 characters, so that messages stay within RV_ERRLEN. */
#define PATH_FMT "%s%s"
#define PATH_ARG(p) (strlen(p) > 96 ? "..." : ""), (strlen(p) > 96 ? (p) + strlen(p) - 96 : (p))

typedef struct rv_ckpt_writer {
    FILE *f;
    const char *path;
    char tmp[RV_CKPT_PATH_MAX + 32];
    uint64_t length; /* bytes written so far */
    unsigned long crc;
    size_t n;
    int failed;      /* errno of the first failed write, or -1 */
    unsigned char buf[1 << 16];
} rv_ckpt_writer;

/* Remove dead writers' temporaries of path, create this writer's, and write magic and
 * version. REVL_ERR_IO with a message in err. */
RV_HIDDEN int rv_ckpt_create(rv_ckpt_writer *w, const char *path, const char magic[8],
                             uint32_t version, char *err);
RV_HIDDEN void rv_ckpt_put_u64(rv_ckpt_writer *w, uint64_t x);
RV_HIDDEN void rv_ckpt_put_f64(rv_ckpt_writer *w, double x);
RV_HIDDEN void rv_ckpt_put_u64s(rv_ckpt_writer *w, const uint64_t *x, size_t n);
RV_HIDDEN void rv_ckpt_put_f64s(rv_ckpt_writer *w, const double *x, size_t n);
RV_HIDDEN void rv_ckpt_put_u16s(rv_ckpt_writer *w, const uint16_t *x, size_t n);
/* n elements of elem = 8 or 16 bytes (int64 or rv_wide: low word first). */
RV_HIDDEN void rv_ckpt_put_ints(rv_ckpt_writer *w, const void *x, size_t elem, size_t n);
RV_HIDDEN void rv_ckpt_put_name(rv_ckpt_writer *w, const char *name); /* 16 bytes, 0-padded */
/* Write the trailer, flush, fsync, rename over path: REVL_OK, else REVL_ERR_IO (the temporary
 * is removed and path untouched). */
RV_HIDDEN int rv_ckpt_commit(rv_ckpt_writer *w, char *err);
/* rv_ckpt_commit in two halves, for writers that must all succeed or none (a sharded trainer's
 * ranks vote between them): finish writes the trailer, flushes and fsyncs, keeping the
 * temporary (open, locked) for place, which renames it over path; or rv_ckpt_abandon drops it.
 * Each, failing, removes the temporary and leaves path untouched. */
RV_HIDDEN int rv_ckpt_finish(rv_ckpt_writer *w, char *err);
RV_HIDDEN int rv_ckpt_place(rv_ckpt_writer *w, char *err);
/* Give up: close and remove the temporary. */
RV_HIDDEN void rv_ckpt_abandon(rv_ckpt_writer *w);

typedef struct rv_ckpt_reader {
    const revl_allocator *alloc;
    const char *path;
    unsigned char *data;
    size_t pos, end; /* the body: [pos, end) */
    int short_read;  /* a read went past the end */
    uint32_t version; /* the file's */
} rv_ckpt_reader;

/* Read the file whole and check magic, version, length and checksum. REVL_ERR_IO or
 * REVL_ERR_NOMEM with a message in err; on success the cursor is at the body. */
RV_HIDDEN int rv_ckpt_open(rv_ckpt_reader *r, const revl_allocator *a, const char *path,
                           const char magic[8], const char *what, uint32_t version, char *err);
/* The same for a format whose versions oldest..version are all read (r->version says which). */
RV_HIDDEN int rv_ckpt_open_versions(rv_ckpt_reader *r, const revl_allocator *a, const char *path,
                                    const char magic[8], const char *what, uint32_t oldest,
                                    uint32_t version, char *err);
RV_HIDDEN void rv_ckpt_close(rv_ckpt_reader *r);
/* Getters return 0 past the end (and set short_read). */
RV_HIDDEN uint64_t rv_ckpt_get_u64(rv_ckpt_reader *r);
RV_HIDDEN double rv_ckpt_get_f64(rv_ckpt_reader *r);
/* 1 when n elements of elem bytes remain (so the caller may allocate for them). */
RV_HIDDEN int rv_ckpt_has(const rv_ckpt_reader *r, uint64_t n, size_t elem);
RV_HIDDEN void rv_ckpt_get_f64s(rv_ckpt_reader *r, double *x, size_t n);
RV_HIDDEN void rv_ckpt_get_u64s(rv_ckpt_reader *r, uint64_t *x, size_t n);
RV_HIDDEN void rv_ckpt_get_u16s(rv_ckpt_reader *r, uint16_t *x, size_t n);
RV_HIDDEN void rv_ckpt_get_ints(rv_ckpt_reader *r, void *x, size_t elem, size_t n);
/* Compare the 16-byte name field with name: 1 when equal; the file's (printable) in out[17]. */
RV_HIDDEN int rv_ckpt_get_name(rv_ckpt_reader *r, const char *name, char out[17]);

/* A 64-bit FNV-1a hash of n words, continuing from h (start with RV_HASH_INIT). */
#define RV_HASH_INIT 0xcbf29ce484222325ULL
RV_HIDDEN uint64_t rv_hash_u64s(uint64_t h, const uint64_t *x, size_t n);
RV_HIDDEN uint64_t rv_hash_u64(uint64_t h, uint64_t x);
RV_HIDDEN uint64_t rv_hash_f64s(uint64_t h, const double *x, size_t n);

#endif
