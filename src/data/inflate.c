/* inflate.c: a small gzip/DEFLATE decoder written from RFC 1951 and RFC 1952, after the canonical
 * Huffman scheme of Mark Adler's puff. Input is treated as hostile: every read is bounds-checked,
 * every malformation ends the decode with an error (sticky, so loops stop), output is capped. */
#include "data/inflate.h"

#include <string.h>

#define MAXBITS 15   /* longest Huffman code */
#define MAXLCODES 286 /* literal/length symbols a dynamic block may declare */
#define MAXDCODES 30  /* distance symbols */
#define FIXLCODES 288 /* literal/length symbols of the fixed code (286, 287 are invalid) */

typedef struct {
    const unsigned char *in;
    size_t in_len, in_pos;
    uint32_t bitbuf; /* bits not yet used, LSB first; fewer than 8 between calls to bits() */
    int bitcnt;
    const revl_allocator *a;
    unsigned char *out;
    size_t out_len, out_cap, max_out;
    int status; /* REVL_OK until the first failure; every loop checks it */
    char *err;
} inflater;

/* Canonical Huffman code: count[len] codes of each length, symbols in code order. */
typedef struct {
    short count[MAXBITS + 1];
    short symbol[FIXLCODES];
} huffman;

static void fail(inflater *s, int status, const char *why)
{
    if (s->status == REVL_OK) {
        s->status = status;
        rv_fail(s->err, status, "%s", why);
    }
}

uint32_t rv_crc32(uint32_t crc, const unsigned char *buf, size_t len)
{
    /* the table is rebuilt per call (2k operations) so that no global state is needed */
    uint32_t table[256];
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[n] = c;
    }
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* need (0..16) bits from the input, LSB first; 0 and a failure when the input runs out */
static unsigned bits(inflater *s, int need)
{
    uint32_t val = s->bitbuf;
    while (s->bitcnt < need) {
        if (s->in_pos == s->in_len) {
            fail(s, REVL_ERR_IO, "compressed data ends early (truncated file?)");
            return 0;
        }
        val |= (uint32_t)s->in[s->in_pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
    s->bitbuf = val >> need;
    s->bitcnt -= need;
    return val & ((1u << need) - 1);
}

/* Room for `need` more output bytes: grow by doubling (the allocator has no realloc), never
 * past max_out. */
static int reserve(inflater *s, size_t need)
{
    if (s->out_cap - s->out_len >= need)
        return 1;
    if (need > s->max_out - s->out_len) {
        fail(s, REVL_ERR_IO, "decompressed data larger than the size limit");
        return 0;
    }
    size_t cap = s->out_cap > s->max_out / 2 ? s->max_out : s->out_cap * 2;
    if (cap < s->out_len + need)
        cap = s->out_len + need;
    if (cap < 4096 && s->max_out >= 4096)
        cap = 4096;
    unsigned char *p = rv_alloc(s->a, cap);
    if (!p) {
        fail(s, REVL_ERR_NOMEM, "out of memory for decompressed data");
        return 0;
    }
    if (s->out_len)
        memcpy(p, s->out, s->out_len);
    rv_free(s->a, s->out);
    s->out = p;
    s->out_cap = cap;
    return 1;
}

/* Build h from code lengths. Returns 0 for a complete code, > 0 for an incomplete one, < 0 for
 * an over-subscribed one (then h is unusable). */
static int construct(huffman *h, const short *length, int n)
{
    short offs[MAXBITS + 1];
    for (int len = 0; len <= MAXBITS; len++)
        h->count[len] = 0;
    for (int sym = 0; sym < n; sym++)
        h->count[length[sym]]++;
    if (h->count[0] == n) /* no codes: decoding anything with it will fail */
        return 0;
    int left = 1;
    for (int len = 1; len <= MAXBITS; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0)
            return left;
    }
    offs[1] = 0;
    for (int len = 1; len < MAXBITS; len++)
        offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int sym = 0; sym < n; sym++)
        if (length[sym])
            h->symbol[offs[length[sym]]++] = (short)sym;
    return left;
}

/* One symbol, a bit at a time: codes of each length are consecutive integers from `first`.
 * The bit reading of bits() is inlined here, the decoder's hot loop. */
static int decode(inflater *s, const huffman *h)
{
    int code = 0, first = 0, index = 0, left = s->bitcnt;
    uint32_t buf = s->bitbuf;
    for (int len = 1; len <= MAXBITS; len++) {
        if (left == 0) {
            if (s->in_pos == s->in_len) {
                fail(s, REVL_ERR_IO, "compressed data ends early (truncated file?)");
                return -1;
            }
            buf = s->in[s->in_pos++];
            left = 8;
        }
        code |= (int)(buf & 1);
        buf >>= 1;
        left--;
        int count = h->count[len];
        if (code - count < first) {
            s->bitbuf = buf;
            s->bitcnt = left;
            return h->symbol[index + (code - first)];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    fail(s, REVL_ERR_IO, "invalid Huffman code in compressed data");
    return -1;
}

/* Literals and (length, distance) pairs until end of block. */
static void codes(inflater *s, const huffman *lencode, const huffman *distcode)
{
    static const short lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                    31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const short lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                   2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const short dbase[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                    33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static const short dext[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
        int sym = decode(s, lencode);
        if (sym < 0)
            return;
        if (sym < 256) {
            if (!reserve(s, 1))
                return;
            s->out[s->out_len++] = (unsigned char)sym;
        } else if (sym == 256) {
            return;
        } else {
            sym -= 257;
            if (sym >= 29) {
                fail(s, REVL_ERR_IO, "invalid length symbol in compressed data");
                return;
            }
            size_t len = (size_t)lbase[sym] + bits(s, lext[sym]);
            int dsym = decode(s, distcode);
            if (dsym < 0)
                return;
            if (dsym >= 30) { /* cannot happen with the codes built here; guards dbase[] */
                fail(s, REVL_ERR_IO, "invalid distance symbol in compressed data");
                return;
            }
            size_t dist = (size_t)dbase[dsym] + bits(s, dext[dsym]);
            if (s->status)
                return;
            if (dist > s->out_len) {
                fail(s, REVL_ERR_IO, "back-reference before the start of the data");
                return;
            }
            if (!reserve(s, len))
                return;
            /* byte by byte: the source may overlap what is being written (dist < len) */
            unsigned char *to = s->out + s->out_len;
            const unsigned char *from = to - dist;
            for (size_t i = 0; i < len; i++)
                to[i] = from[i];
            s->out_len += len;
        }
    }
}

static void stored(inflater *s)
{
    s->bitbuf = 0; /* skip to the byte boundary (fewer than 8 bits are buffered) */
    s->bitcnt = 0;
    if (s->in_len - s->in_pos < 4) {
        fail(s, REVL_ERR_IO, "compressed data ends early (truncated file?)");
        return;
    }
    const unsigned char *p = s->in + s->in_pos;
    size_t len = (size_t)p[0] | (size_t)p[1] << 8;
    size_t nlen = (size_t)p[2] | (size_t)p[3] << 8;
    if (len != (~nlen & 0xffff)) {
        fail(s, REVL_ERR_IO, "stored block length check failed");
        return;
    }
    s->in_pos += 4;
    if (s->in_len - s->in_pos < len) {
        fail(s, REVL_ERR_IO, "compressed data ends early (truncated file?)");
        return;
    }
    if (len == 0)
        return;
    if (!reserve(s, len))
        return;
    memcpy(s->out + s->out_len, s->in + s->in_pos, len);
    s->out_len += len;
    s->in_pos += len;
}

static void fixed(inflater *s)
{
    /* built per block rather than cached in a static, to keep no global mutable state */
    short lengths[FIXLCODES];
    huffman lencode, distcode;
    int sym = 0;
    for (; sym < 144; sym++)
        lengths[sym] = 8;
    for (; sym < 256; sym++)
        lengths[sym] = 9;
    for (; sym < 280; sym++)
        lengths[sym] = 7;
    for (; sym < FIXLCODES; sym++)
        lengths[sym] = 8;
    construct(&lencode, lengths, FIXLCODES);
    for (sym = 0; sym < MAXDCODES; sym++)
        lengths[sym] = 5;
    construct(&distcode, lengths, MAXDCODES);
    codes(s, &lencode, &distcode);
}

static void dynamic(inflater *s)
{
    static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    short lengths[MAXLCODES + MAXDCODES];
    huffman lencode, distcode;
    int nlen = (int)bits(s, 5) + 257;
    int ndist = (int)bits(s, 5) + 1;
    int ncode = (int)bits(s, 4) + 4;
    if (s->status)
        return;
    if (nlen > MAXLCODES || ndist > MAXDCODES) {
        fail(s, REVL_ERR_IO, "too many length or distance codes in a dynamic block");
        return;
    }
    int index = 0;
    for (; index < ncode; index++)
        lengths[order[index]] = (short)bits(s, 3);
    for (; index < 19; index++)
        lengths[order[index]] = 0;
    if (s->status)
        return;
    if (construct(&lencode, lengths, 19) != 0) { /* must be complete */
        fail(s, REVL_ERR_IO, "invalid code-length code in a dynamic block");
        return;
    }
    index = 0;
    while (index < nlen + ndist) {
        int sym = decode(s, &lencode);
        if (sym < 0)
            return;
        if (sym < 16) {
            lengths[index++] = (short)sym;
            continue;
        }
        short len = 0;
        int rep;
        if (sym == 16) {
            if (index == 0) {
                fail(s, REVL_ERR_IO, "length repeat with no previous length");
                return;
            }
            len = lengths[index - 1];
            rep = 3 + (int)bits(s, 2);
        } else if (sym == 17) {
            rep = 3 + (int)bits(s, 3);
        } else {
            rep = 11 + (int)bits(s, 7);
        }
        if (s->status)
            return;
        if (index + rep > nlen + ndist) {
            fail(s, REVL_ERR_IO, "too many code lengths in a dynamic block");
            return;
        }
        while (rep--)
            lengths[index++] = len;
    }
    if (lengths[256] == 0) {
        fail(s, REVL_ERR_IO, "dynamic block without an end-of-block code");
        return;
    }
    /* incomplete codes are allowed only when they are a single code of one bit (RFC 1951
     * permits a lone distance code; zlib and puff accept the same) */
    int left = construct(&lencode, lengths, nlen);
    if (left < 0 || (left > 0 && nlen != lencode.count[0] + lencode.count[1])) {
        fail(s, REVL_ERR_IO, "invalid literal/length code in a dynamic block");
        return;
    }
    left = construct(&distcode, lengths + nlen, ndist);
    if (left < 0 || (left > 0 && ndist != distcode.count[0] + distcode.count[1])) {
        fail(s, REVL_ERR_IO, "invalid distance code in a dynamic block");
        return;
    }
    codes(s, &lencode, &distcode);
}

/* The DEFLATE stream starting at s->in_pos: blocks until the one marked last. Each block uses
 * at least 3 bits of a finite input, so this ends. */
static void inflate_blocks(inflater *s)
{
    int last;
    do {
        last = (int)bits(s, 1);
        int type = (int)bits(s, 2);
        if (s->status)
            return;
        if (type == 0)
            stored(s);
        else if (type == 1)
            fixed(s);
        else if (type == 2)
            dynamic(s);
        else
            fail(s, REVL_ERR_IO, "invalid block type 3 in compressed data");
    } while (!last && s->status == REVL_OK);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int rv_gunzip(const revl_allocator *a, const unsigned char *in, size_t in_len, size_t max_out,
              unsigned char **out, size_t *out_len, char *err)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!a || !in || !out || !out_len)
        return rv_fail(err, REVL_ERR_INVALID, "gunzip: NULL argument");
    /* header: ID1 ID2 CM FLG MTIME(4) XFL OS, then the optional fields FLG announces */
    if (in_len < 10)
        return rv_fail(err, REVL_ERR_IO, "gzip header truncated");
    if (in[0] != 0x1f || in[1] != 0x8b)
        return rv_fail(err, REVL_ERR_IO, "not a gzip file (bad magic bytes)");
    if (in[2] != 8)
        return rv_fail(err, REVL_ERR_IO, "unknown gzip compression method %u", in[2]);
    unsigned flg = in[3];
    if (flg & 0xe0)
        return rv_fail(err, REVL_ERR_IO, "reserved gzip header flags set (0x%02x)", flg);
    size_t pos = 10;
    if (flg & 4) { /* FEXTRA */
        if (in_len - pos < 2)
            return rv_fail(err, REVL_ERR_IO, "gzip header truncated");
        size_t xlen = (size_t)in[pos] | (size_t)in[pos + 1] << 8;
        pos += 2;
        if (in_len - pos < xlen)
            return rv_fail(err, REVL_ERR_IO, "gzip header truncated");
        pos += xlen;
    }
    for (unsigned bit = 8; bit <= 16; bit <<= 1) { /* FNAME, FCOMMENT: zero-terminated */
        if (!(flg & bit))
            continue;
        const unsigned char *z = memchr(in + pos, 0, in_len - pos);
        if (!z)
            return rv_fail(err, REVL_ERR_IO, "gzip header truncated");
        pos = (size_t)(z - in) + 1;
    }
    if (flg & 2) { /* FHCRC: low 16 bits of the CRC-32 of the header so far */
        if (in_len - pos < 2)
            return rv_fail(err, REVL_ERR_IO, "gzip header truncated");
        unsigned want = (unsigned)in[pos] | (unsigned)in[pos + 1] << 8;
        if ((rv_crc32(0, in, pos) & 0xffff) != want)
            return rv_fail(err, REVL_ERR_IO, "gzip header CRC mismatch");
        pos += 2;
    }

    inflater s = {.in = in, .in_len = in_len, .in_pos = pos, .a = a, .max_out = max_out,
                  .status = REVL_OK, .err = err};
    /* Pre-size the output from the trailer's ISIZE so that a sound file needs no regrowth; the
     * hint is bounded by DEFLATE's best ratio (258 bytes from 2 bits) so a corrupt trailer
     * cannot make us allocate much. */
    if (in_len - pos >= 8) {
        size_t hint = le32(in + in_len - 4);
        size_t bound = (in_len - pos) <= (SIZE_MAX - 64) / 1032 ? (in_len - pos) * 1032 + 64 : SIZE_MAX;
        if (hint > bound)
            hint = bound;
        if (hint > max_out)
            hint = max_out;
        if (hint)
            reserve(&s, hint);
    }
    if (s.status == REVL_OK)
        inflate_blocks(&s);
    if (s.status == REVL_OK) {
        /* trailer: CRC-32 and ISIZE (length mod 2^32), little-endian, on a byte boundary */
        if (s.in_len - s.in_pos < 8)
            fail(&s, REVL_ERR_IO, "gzip trailer truncated");
        else if (le32(in + s.in_pos) != rv_crc32(0, s.out, s.out_len))
            fail(&s, REVL_ERR_IO, "CRC-32 mismatch: the data is corrupt");
        else if (le32(in + s.in_pos + 4) != (uint32_t)s.out_len)
            fail(&s, REVL_ERR_IO, "length in the gzip trailer does not match the data");
        else if (s.in_len - s.in_pos > 8)
            fail(&s, REVL_ERR_IO,
                 "data after the end of the gzip stream (multi-member gzip is not supported)");
    }
    if (s.status != REVL_OK) {
        rv_free(a, s.out);
        return s.status;
    }
    if (!s.out) { /* empty output: still hand back a buffer, so that *out != NULL means OK */
        s.out = rv_alloc(a, 1);
        if (!s.out)
            return rv_fail(err, REVL_ERR_NOMEM, "out of memory for decompressed data");
    }
    *out = s.out;
    *out_len = s.out_len;
    return REVL_OK;
}
