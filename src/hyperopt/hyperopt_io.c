/* hyperopt_io.c: the hyperparameters as plain text (docs/file-formats.md, "Hyperparameter
 * files"): sections gnuplot reads with `index` and numpy with loadtxt, numbers written with 17
 * significant digits so that loading gives back the same bits. Loading is strict and
 * all-or-nothing: a file that does not match this hyper-optimiser exactly changes nothing. */
#include "hyperopt/hyperopt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------ save */

static void write_table(FILE *f, const char *title, const double *x, size_t rows, size_t cols)
{
    fprintf(f, "# %s\n", title);
    for (size_t r = 0; r < rows; r++) {
        fprintf(f, "%zu", r);
        for (size_t c = 0; c < cols; c++)
            fprintf(f, " %.17g", x[r * cols + c]);
        fputc('\n', f);
    }
}

/* Are the kinds the optimiser gained after it shipped (optim.h) all 0 in x, as in the files of
 * the optimiser without them? */
static int later_kinds_zero(const revl_hyperopt *h, const double *x)
{
    size_t shipped = h->opt->n_kinds_shipped;
    for (size_t k = shipped ? shipped * h->n_sg : SIZE_MAX; k < h->n_kinds * h->n_sg; k++)
        if (x[k] != 0)
            return 0;
    return 1;
}

int revl_hyperopt_save(const revl_hyperopt *hc, int best, const char *path)
{
    if (!hc)
        return REVL_ERR_INVALID;
    /* the message buffer is not part of the values that const protects */
    revl_hyperopt *h = (revl_hyperopt *)hc;
    if (!path)
        return rv_fail(h->err, REVL_ERR_INVALID, "revl_hyperopt_save: path is NULL");
    const double *src = best && h->have_best ? h->best : h->cur;
    size_t n = h->n_sg, g = h->n_groups, off = h->n_kinds * n;
    char why[128];
    FILE *f = fopen(path, "w");
    if (!f) {
        rv_errno_text(errno, why, sizeof why);
        return rv_fail(h->err, REVL_ERR_IO, RV_PATH_FMT ": cannot open for writing: %s",
                       RV_PATH_ARG(path), why);
    }
    /* momentum without weight decay keeps version 1, byte for byte what revl 0.1 wrote and
     * reads (alpha and gamma only) */
    size_t n_kinds = h->n_kinds;
    if (h->opt->id == REVL_OPTIM_MOMENTUM && later_kinds_zero(h, src)) {
        fputs("# revl hyperparameters 1\n", f);
        n_kinds = h->opt->n_kinds_shipped;
    } else
        fprintf(f, "# revl hyperparameters 2\n# optimizer %s\n", h->opt->name);
    fprintf(f, "# n_steps %zu\n# n_groups %zu\n# n_meta %zu\n", h->n_steps, g, h->n_meta);
    /* a section per kind; sections are separated by two blank lines: gnuplot's `index`
     * counts them */
    for (size_t j = 0; j < n_kinds; j++) {
        write_table(f, revl_hyper_name(h->opt->kinds[j]), src + j * n, h->n_steps, g);
        fputs("\n\n", f);
    }
    write_table(f, "log_init_scale", src + off, g, 1);
    fputs("\n\n", f);
    write_table(f, "meta", src + off + g, h->n_meta, 1);
    if (h->clip_off != SIZE_MAX) { /* learned only: without it the file is as before the clip */
        fputs("\n\n", f);
        write_table(f, revl_hyper_name(REVL_HYPER_CLIP), src + h->clip_off, h->n_steps, g);
    }
    int bad = ferror(f);
    int eno = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        eno = errno;
    }
    if (bad) {
        rv_errno_text(eno, why, sizeof why);
        return rv_fail(h->err, REVL_ERR_IO, RV_PATH_FMT ": write error: %s", RV_PATH_ARG(path), why);
    }
    rv_clear(h->err);
    return REVL_OK;
}

/* ------------------------------------------------------------------ load */

/* Tokens of a line, read a character at a time so that no line length limit or line buffer
 * is needed whatever the number of groups. */
typedef struct lexer {
    FILE *f;
    const char *path;
    size_t line; /* 1-based number of the line being read */
    char *err;
} lexer;

#define TOKEN_MAX 64 /* a %.17g number takes at most 24 characters */

/* "file:line: what is wrong" */
static int lx_fail(lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lx_fail(lexer *lx, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rv_fail(lx->err, REVL_ERR_IO, RV_PATH_FMT ":%zu: %s", RV_PATH_ARG(lx->path), lx->line, msg);
}

/* The next token of the current line into tok: 1, or 0 at the end of the line or file (the
 * newline is left for lx_end_line), or REVL_ERR_IO for a token too long to be a number. */
static int lx_token(lexer *lx, char tok[TOKEN_MAX])
{
    int c;
    do
        c = getc(lx->f);
    while (c == ' ' || c == '\t' || c == '\r');
    if (c == '\n' || c == EOF) {
        if (c == '\n')
            ungetc(c, lx->f);
        return 0;
    }
    size_t len = 0;
    while (c != EOF && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        if (len + 1 >= TOKEN_MAX) {
            tok[len] = '\0';
            return lx_fail(lx, "token '%.20s...' is too long", tok);
        }
        tok[len++] = (char)c;
        c = getc(lx->f);
    }
    if (c != EOF)
        ungetc(c, lx->f);
    tok[len] = '\0';
    /* a NUL byte inside a token would hide the rest of it from the parsers: refuse it here */
    if (strlen(tok) != len)
        return lx_fail(lx, "token contains a NUL byte");
    return 1;
}

/* Nothing more on this line; step to the next one. */
static int lx_end_line(lexer *lx)
{
    char tok[TOKEN_MAX];
    int rc = lx_token(lx, tok);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return lx_fail(lx, "unexpected '%s' at the end of the line", tok);
    if (getc(lx->f) == '\n')
        lx->line++;
    return REVL_OK;
}

static int lx_at_eof(lexer *lx)
{
    int c = getc(lx->f);
    if (c == EOF)
        return 1;
    ungetc(c, lx->f);
    return 0;
}

/* A line that must read exactly `words` (tokens separated by single spaces). */
static int expect_line(lexer *lx, const char *words)
{
    if (lx_at_eof(lx))
        return lx_fail(lx, "unexpected end of file (truncated?): expected '%s'", words);
    const char *w = words;
    char tok[TOKEN_MAX];
    while (*w) {
        size_t len = strcspn(w, " ");
        int rc = lx_token(lx, tok);
        if (rc < 0)
            return rc;
        if (rc == 0 || strlen(tok) != len || memcmp(tok, w, len) != 0)
            return lx_fail(lx, "expected '%s'", words);
        w += len;
        while (*w == ' ')
            w++;
    }
    return lx_end_line(lx);
}

/* The next token of the line must be `word`. */
static int expect_token(lexer *lx, const char *word)
{
    if (lx_at_eof(lx))
        return lx_fail(lx, "unexpected end of file (truncated?): expected '%s'", word);
    char tok[TOKEN_MAX];
    int rc = lx_token(lx, tok);
    if (rc < 0)
        return rc;
    if (rc == 0 || strcmp(tok, word) != 0)
        return lx_fail(lx, "expected '%s', found '%s'", word, rc ? tok : "");
    return REVL_OK;
}

static int expect_blank(lexer *lx, const char *before)
{
    if (lx_at_eof(lx))
        return lx_fail(lx, "unexpected end of file (truncated?): expected a blank line before "
                           "'# %s'", before);
    char tok[TOKEN_MAX];
    int rc = lx_token(lx, tok);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return lx_fail(lx, "expected a blank line before '# %s', found '%s'", before, tok);
    return lx_end_line(lx);
}

/* A non-negative decimal integer, all of the token. */
static int parse_index(const char *tok, size_t *out)
{
    size_t x = 0;
    if (!*tok)
        return 0;
    for (const char *c = tok; *c; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (size_t)(*c - '0'), &x))
            return 0;
    }
    *out = x;
    return 1;
}

/* A finite number, all of the token. strtod accepts what %.17g writes (subnormals included,
 * whatever errno says about them). */
/* clip_ok: +inf is a value (a clip's "no clipping", as save writes a learned clip not yet set) */
static int read_number(lexer *lx, const char *what, int clip_ok, double *out)
{
    char tok[TOKEN_MAX];
    int rc = lx_token(lx, tok);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return lx_fail(lx, "%s: missing value (line too short)", what);
    char *end;
    double x = strtod(tok, &end);
    if (end == tok || *end)
        return lx_fail(lx, "%s: '%s' is not a number", what, tok);
    if (!isfinite(x) && !(clip_ok && x == INFINITY))
        return lx_fail(lx, "%s: '%s' is not finite", what, tok);
    *out = x;
    return REVL_OK;
}

/* "# <name> <value>" with value equal to `want`. */
static int expect_size(lexer *lx, const char *name, size_t want)
{
    char tok[TOKEN_MAX];
    if (lx_at_eof(lx))
        return lx_fail(lx, "unexpected end of file (truncated?): expected '# %s'", name);
    int rc;
    if ((rc = lx_token(lx, tok)) < 0)
        return rc;
    if (rc == 0 || strcmp(tok, "#"))
        return lx_fail(lx, "expected '# %s N'", name);
    if ((rc = lx_token(lx, tok)) < 0)
        return rc;
    if (rc == 0 || strcmp(tok, name))
        return lx_fail(lx, "expected '# %s N'", name);
    if ((rc = lx_token(lx, tok)) < 0)
        return rc;
    size_t got;
    if (rc == 0 || !parse_index(tok, &got))
        return lx_fail(lx, "%s: '%s' is not a count", name, rc ? tok : "");
    if (got != want)
        return lx_fail(lx, "%s is %zu in the file, this hyper-optimiser has %zu", name, got, want);
    return lx_end_line(lx);
}

static int read_rows(lexer *lx, const char *title, double *x, size_t rows, size_t cols, int kind);

/* A section: "# title", then `rows` lines "r x_0 ... x_{cols-1}" with r = 0, 1, ... */
static int read_table(lexer *lx, const char *title, double *x, size_t rows, size_t cols,
                      int kind /* revl_hyper to check the values against, or -1 */)
{
    char head[32];
    snprintf(head, sizeof head, "# %s", title);
    int rc = expect_line(lx, head);
    return rc ? rc : read_rows(lx, title, x, rows, cols, kind);
}

/* A kind the optimiser gained after it shipped, in a version 2 file: its section (two blank
 * lines, "# name", the rows), or, in a file written before it, nothing (x stays 0, the value
 * that gives the optimiser without it): the reader goes back to where it was. */
static int read_later_kind(lexer *lx, const char *name, double *x, size_t rows, size_t cols,
                           int kind)
{
    long pos = ftell(lx->f);
    size_t line = lx->line;
    char head[32];
    snprintf(head, sizeof head, "# %s", name);
    if (pos >= 0 && (expect_blank(lx, name) || expect_blank(lx, name) || expect_line(lx, head))) {
        if (fseek(lx->f, pos, SEEK_SET) != 0)
            return lx_fail(lx, "cannot seek back in the file");
        lx->line = line;
        return REVL_OK;
    }
    return read_rows(lx, name, x, rows, cols, kind);
}

/* The rows of a section whose title line is read. */
static int read_rows(lexer *lx, const char *title, double *x, size_t rows, size_t cols, int kind)
{
    int rc;
    char tok[TOKEN_MAX], what[80];
    for (size_t r = 0; r < rows; r++) {
        if (lx_at_eof(lx))
            return lx_fail(lx, "unexpected end of file (truncated?): %s has %zu of %zu lines",
                           title, r, rows);
        size_t idx;
        if ((rc = lx_token(lx, tok)) < 0)
            return rc;
        if (rc == 0)
            return lx_fail(lx, "%s: empty line, expected line %zu of %zu", title, r, rows);
        if (!parse_index(tok, &idx) || idx != r)
            return lx_fail(lx, "%s: expected index %zu, found '%s'", title, r, tok);
        for (size_t c = 0; c < cols; c++) {
            double *v = &x[r * cols + c];
            snprintf(what, sizeof what, "%s line %zu, column %zu", title, r, c + 1);
            if ((rc = read_number(lx, what, kind == REVL_HYPER_CLIP, v)))
                return rc;
            char why[128];
            if (kind >= 0 && rv_hyper_problem((revl_hyper)kind, *v, why, sizeof why))
                return lx_fail(lx, "%s: %s", what, why);
        }
        if ((rc = lx_end_line(lx)))
            return rc;
    }
    return REVL_OK;
}

/* Version 2 names the optimiser and has a section per kind; version 1 (revl 0.1) is momentum's
 * alpha and gamma. */
static int parse_header(revl_hyperopt *h, lexer *lx, int *version)
{
    char tok[TOKEN_MAX];
    int rc = expect_token(lx, "#");
    if (!rc)
        rc = expect_token(lx, "revl");
    if (!rc)
        rc = expect_token(lx, "hyperparameters");
    if (rc)
        return lx_fail(lx, "expected '# revl hyperparameters %s'",
                       h->opt->id == REVL_OPTIM_MOMENTUM ? "1" : "2");
    if ((rc = lx_token(lx, tok)) < 0)
        return rc;
    if (rc == 0) /* an empty token leaves tok unwritten */
        tok[0] = '\0';
    if (strcmp(tok, "1") == 0) {
        if (h->opt->id != REVL_OPTIM_MOMENTUM)
            return lx_fail(lx, "a version 1 file holds momentum's alpha and gamma; this "
                               "hyper-optimiser is %s", h->opt->name);
        *version = 1;
        return lx_end_line(lx);
    }
    if (strcmp(tok, "2") != 0)
        return lx_fail(lx, "expected '# revl hyperparameters %s', found version '%s'",
                       h->opt->id == REVL_OPTIM_MOMENTUM ? "1" : "2", tok);
    *version = 2;
    if ((rc = lx_end_line(lx)) || (rc = expect_token(lx, "#")) ||
        (rc = expect_token(lx, "optimizer")))
        return rc;
    if ((rc = lx_token(lx, tok)) < 0)
        return rc;
    if (rc == 0)
        tok[0] = '\0';
    if (strcmp(tok, h->opt->name) != 0)
        return lx_fail(lx, "optimizer is '%s' in the file, this hyper-optimiser is %s", tok,
                       h->opt->name);
    return lx_end_line(lx);
}

static int parse_file(revl_hyperopt *h, lexer *lx, double *x)
{
    size_t n = h->n_sg, g = h->n_groups, off = h->n_kinds * n;
    int rc, version = 0;
    if ((rc = parse_header(h, lx, &version)) || (rc = expect_size(lx, "n_steps", h->n_steps)) ||
        (rc = expect_size(lx, "n_groups", g)) || (rc = expect_size(lx, "n_meta", h->n_meta)))
        return rc;
    size_t shipped = h->opt->n_kinds_shipped ? h->opt->n_kinds_shipped : h->n_kinds;
    for (size_t j = 0; j < h->n_kinds; j++) {
        revl_hyper kind = h->opt->kinds[j];
        const char *name = revl_hyper_name(kind);
        if (j >= shipped) { /* version 1: never there; version 2: there or not (0) */
            if (version == 2 && (rc = read_later_kind(lx, name, x + j * n, h->n_steps, g, (int)kind)))
                return rc;
            continue;
        }
        if (j > 0 && ((rc = expect_blank(lx, name)) || (rc = expect_blank(lx, name))))
            return rc;
        if ((rc = read_table(lx, name, x + j * n, h->n_steps, g, (int)kind)))
            return rc;
    }
    if ((rc = expect_blank(lx, "log_init_scale")) || (rc = expect_blank(lx, "log_init_scale")) ||
        (rc = read_table(lx, "log_init_scale", x + off, g, 1, -1)) ||
        (rc = expect_blank(lx, "meta")) || (rc = expect_blank(lx, "meta")) ||
        (rc = read_table(lx, "meta", x + off + g, h->n_meta, 1, -1)))
        return rc;
    /* a learned clip's section is optional: a file written without one keeps the current clip */
    if (h->clip_off != SIZE_MAX) {
        memcpy(x + h->clip_off, h->cur + h->clip_off, n * sizeof *x);
        if (!lx_at_eof(lx) &&
            ((rc = expect_blank(lx, "clip")) || (rc = expect_blank(lx, "clip")) ||
             (rc = read_table(lx, "clip", x + h->clip_off, h->n_steps, g, REVL_HYPER_CLIP))))
            return rc;
    }
    /* blank lines may follow; anything else is garbage */
    char tok[TOKEN_MAX];
    while (!lx_at_eof(lx)) {
        if ((rc = lx_token(lx, tok)) < 0)
            return rc;
        if (rc > 0)
            return lx_fail(lx, "trailing garbage '%s' after the last section", tok);
        if ((rc = lx_end_line(lx)))
            return rc;
    }
    if (ferror(lx->f)) {
        char why[128];
        rv_errno_text(errno, why, sizeof why);
        return rv_fail(h->err, REVL_ERR_IO, RV_PATH_FMT ": read error: %s", RV_PATH_ARG(lx->path), why);
    }
    return REVL_OK;
}

int revl_hyperopt_load(revl_hyperopt *h, const char *path)
{
    if (!h)
        return REVL_ERR_INVALID;
    if (!path)
        return rv_fail(h->err, REVL_ERR_INVALID, "revl_hyperopt_load: path is NULL");
    int rc = rv_hyperopt_not_in_step(h, "revl_hyperopt_load");
    if (rc)
        return rc;
    /* parse into a scratch copy, so that a bad file changes nothing */
    double *x = rv_calloc(&h->alloc, h->n_theta, sizeof *x);
    if (!x)
        return rv_fail(h->err, REVL_ERR_NOMEM, "no memory to load " RV_PATH_FMT, RV_PATH_ARG(path));
    FILE *f = rv_open_regular(path, h->err);
    if (!f) {
        rv_free(&h->alloc, x);
        return REVL_ERR_IO;
    }
    lexer lx = {f, path, 1, h->err};
    rc = parse_file(h, &lx, x);
    fclose(f);
    if (rc == REVL_OK) {
        memcpy(h->cur, x, h->n_theta * sizeof *x);
        rv_hyperopt_values_replaced(h);
        rv_clear(h->err);
    }
    rv_free(&h->alloc, x);
    return rc;
}
