/* fuzz_hyperopt.c: libFuzzer target for revl_hyperopt_load, the hyperparameter file reader.
 * FUZZ_NEEDS: revl_hyperopt_load
 * The hyper-optimiser is a small fixed one (3 parameters in 2 groups, 1 meta-parameter,
 * 3 steps). Input byte 0 picks the mode: even, the rest is the file; odd, the file is one that
 * revl_hyperopt_save just wrote, edited by the rest (triples of a 2-byte position and a byte,
 * then a truncation), which keeps the fuzzer near the format whatever it is.
 * A load must return REVL_OK or REVL_ERR_IO (or NOMEM) with a message, and whatever it
 * accepts must survive save -> load -> save unchanged.
 * Bit 1 of byte 0 fuzzes revl_hyperopt_checkpoint_load instead, the same way: the file is the
 * checkpoint setup saved after one meta-iteration (odd) or the rest (even); bit 2 recomputes the
 * checksum, so that with bit 0 the file is forged (the library's file, fields changed, checksum
 * valid) and reaches the loader's structural checks. What it accepts must survive checkpoint
 * save -> load -> save unchanged, and the next meta-iteration must return. */
#include "revl.h"

#include "fuzz_util.h"

#include <stdint.h>

static int quad_grad(size_t step, const double *w, const double *meta, double *grad,
                     double *loss, void *user)
{
    (void)step;
    (void)user;
    double l = 0;
    for (int i = 0; i < 3; i++) {
        grad[i] = (w[i] - 0.5 * i) + (meta ? 1e-3 * meta[0] * w[i] : 0);
        l += 0.5 * (w[i] - 0.5 * i) * (w[i] - 0.5 * i);
    }
    if (loss)
        *loss = l;
    return 0;
}

static int objective(const double *w, const double *meta, double *f, double *dfdw,
                     double *dfdmeta, void *user)
{
    (void)meta;
    (void)user;
    *f = 0;
    for (int i = 0; i < 3; i++) {
        *f += 0.5 * w[i] * w[i];
        dfdw[i] = w[i];
    }
    if (dfdmeta)
        dfdmeta[0] = 0;
    return 0;
}

static revl_model *model;
static revl_hyperopt *hyper;
static unsigned char *ckpt; /* the checkpoint after one meta-iteration */
static size_t ckpt_len;

static void setup(void)
{
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = 3;
    def.n_meta = 1;
    def.grad = quad_grad;
    size_t offsets[3] = {0, 1, 3};
    if (revl_model_create(&model, &def) != REVL_OK ||
        revl_model_set_groups(model, 2, offsets) != REVL_OK)
        abort();
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.objective = objective;
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA | REVL_LEARN_INIT_SCALE | REVL_LEARN_META;
    o.threads = 1;
    if (revl_hyperopt_create(&hyper, model, NULL, 3, &o) != REVL_OK ||
        revl_hyperopt_step(hyper, NULL) != REVL_OK ||
        revl_hyperopt_checkpoint_save(hyper, fuzz_path(0)) != REVL_OK)
        abort();
    ckpt = fuzz_read(fuzz_path(0), &ckpt_len);
}

static void check_failure(int rc)
{
    if (rc != REVL_ERR_IO && rc != REVL_ERR_NOMEM)
        __builtin_trap();
    const char *msg = revl_hyperopt_last_error(hyper);
    if (!msg || !msg[0])
        __builtin_trap();
}

static int same_files(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *fa = fuzz_read(a, &la), *fb = fuzz_read(b, &lb);
    int same = la == lb && memcmp(fa, fb, la) == 0;
    free(fa);
    free(fb);
    return same;
}

static int checkpoint_input(const uint8_t *data, size_t size, const char *in, const char *a,
                            const char *b)
{
    size_t len = data[0] & 1 ? ckpt_len : size - 1;
    unsigned char *file = malloc(len + 1);
    memcpy(file, data[0] & 1 ? ckpt : data + 1, len);
    if (data[0] & 1)
        fuzz_edit(file, &len, data, size);
    if (data[0] & 4)
        fuzz_fix_crc(file, len);
    fuzz_write(in, file, len);
    free(file);
    int rc = revl_hyperopt_checkpoint_load(hyper, in);
    if (rc != REVL_OK) {
        check_failure(rc);
        return 0;
    }
    if (revl_hyperopt_checkpoint_save(hyper, a) != REVL_OK ||
        revl_hyperopt_checkpoint_load(hyper, a) != REVL_OK ||
        revl_hyperopt_checkpoint_save(hyper, b) != REVL_OK || !same_files(a, b))
        __builtin_trap();
    revl_hyperopt_step(hyper, NULL); /* whatever it returns, it returns */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!hyper)
        setup();
    if (size < 1)
        return 0;
    const char *in = fuzz_path(0), *a = fuzz_path(1), *b = fuzz_path(2);
    if (data[0] & 2)
        return checkpoint_input(data, size, in, a, b);
    if (data[0] & 1) {
        if (revl_hyperopt_save(hyper, 0, in) != REVL_OK)
            __builtin_trap();
        size_t len;
        unsigned char *file = fuzz_read(in, &len);
        fuzz_edit(file, &len, data, size);
        fuzz_write(in, file, len);
        free(file);
    } else {
        fuzz_write(in, data + 1, size - 1);
    }

    int rc = revl_hyperopt_load(hyper, in);
    if (rc != REVL_OK) {
        check_failure(rc);
        return 0;
    }
    /* accepted: it must now be the current state, and survive a save/load round trip */
    if (revl_hyperopt_save(hyper, 0, a) != REVL_OK || revl_hyperopt_load(hyper, a) != REVL_OK ||
        revl_hyperopt_save(hyper, 0, b) != REVL_OK)
        __builtin_trap();
    if (!same_files(a, b))
        __builtin_trap();
    return 0;
}
