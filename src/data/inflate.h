/* inflate.h: the library's own gzip (RFC 1952) / DEFLATE (RFC 1951) decoder, so that revl can
 * read compressed data files without depending on zlib. Internal, never exported. */
#ifndef REVL_INFLATE_H
#define REVL_INFLATE_H

#include "base/internal.h"

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (ISO 3309, as in gzip) of buf[0..len), continuing from crc (start with 0). */
RV_HIDDEN uint32_t rv_crc32(uint32_t crc, const unsigned char *buf, size_t len);

/* Decompress the single gzip member that makes up in[0..in_len) into a new buffer allocated
 * through a: on REVL_OK, *out (free it with rv_free(a, *out)) holds *out_len bytes. The output
 * may not exceed max_out bytes. The CRC-32 and length in the trailer are checked; data after
 * the member (such as a second member) is an error.
 * Returns REVL_OK, REVL_ERR_IO (malformed or corrupt input, or larger than max_out) or
 * REVL_ERR_NOMEM, with a short reason in err[RV_ERRLEN] (may be NULL); on error *out is NULL
 * and nothing is leaked. */
RV_HIDDEN int rv_gunzip(const revl_allocator *a, const unsigned char *in, size_t in_len,
                        size_t max_out, unsigned char **out, size_t *out_len, char *err);

#endif
