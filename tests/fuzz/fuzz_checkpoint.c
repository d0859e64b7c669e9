/* fuzz_checkpoint.c: libFuzzer target for revl_trainer_load, the checkpoint reader.
 * FUZZ_NEEDS: revl_trainer_load
 * Three small trainers (5 parameters in 2 groups, 1 meta-parameter, 3 steps; momentum, Adam and
 * RMSprop),
 * each trained once and its checkpoint kept, then reversed with a checkpoint every step until
 * its gradient fails at step 0, which keeps a mid-reverse checkpoint (file version 2, what
 * revl_trainer_hypergrad_resume continues). Input byte 0: bit 4 picks RMSprop, else bit 1 picks
 * momentum or Adam (the inputs written before RMSprop keep their meaning); bit 3 the trainer's
 * mid-reverse file instead of the forward one; bit 0 odd, the file is that checkpoint edited
 * by the rest (triples of a 2-byte position and a byte, then a truncation), even, the rest is
 * the file; bit 2 recomputes the checksum, so that the checks behind it are reached (with bit
 * 0: the library's file with fields changed and the checksum recomputed, a forged file). A load must return REVL_OK or REVL_ERR_IO (or NOMEM) with a message;
 * what it accepts must save back to the same bytes, and its reverse pass (or the rest of its
 * training) must return, whatever it returns. */
#include "revl.h"

#include "fuzz_util.h"

#include <stdint.h>

static long fail_at = -1; /* the step whose gradient fails (setup's reverse pass only) */

static int grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                void *user)
{
    (void)user;
    if ((long)step == fail_at)
        return 1;
    double l = 0;
    for (int i = 0; i < 5; i++) {
        double d = w[i] - 0.25 * i - 0.01 * (double)step;
        g[i] = d + 1e-3 * meta[0] * w[i];
        l += 0.5 * d * d;
    }
    if (loss)
        *loss = l;
    return 0;
}

static int hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
               double *hv, double *hm, void *user)
{
    if ((long)step == fail_at)
        return 1;
    if (g)
        grad(step, w, meta, g, NULL, user);
    double wv = 0;
    for (int i = 0; i < 5; i++) {
        hv[i] = (1 + 1e-3 * meta[0]) * v[i];
        wv += w[i] * v[i];
    }
    hm[0] = 1e-3 * wv;
    return 0;
}

static revl_model *model;
#define N_TRAINERS 3
static revl_schedule *sched[N_TRAINERS];
static revl_trainer *trainer[N_TRAINERS];
static unsigned char *good[N_TRAINERS][2]; /* [trainer][0: forward, 1: mid-reverse] */
static size_t good_len[N_TRAINERS][2];

static void setup(void)
{
    revl_model_def def;
    revl_model_def_init(&def);
    def.n_params = 5;
    def.n_meta = 1;
    def.grad = grad;
    def.hvp = hvp;
    size_t offsets[3] = {0, 2, 5};
    if (revl_model_create(&model, &def) != REVL_OK)
        abort();
    double w0[5] = {0.5, -0.25, 1, 0, 2}, meta[1] = {0.5};
    static const revl_optimizer opts[N_TRAINERS] = {REVL_OPTIM_MOMENTUM, REVL_OPTIM_ADAM,
                                                    REVL_OPTIM_RMSPROP};
    for (int k = 0; k < N_TRAINERS; k++) {
        revl_optimizer opt = opts[k];
        if (revl_schedule_create_for(&sched[k], opt, 3, 2, offsets, NULL) != REVL_OK ||
            revl_trainer_create(&trainer[k], model, sched[k], NULL) != REVL_OK ||
            revl_trainer_train(trainer[k], w0, meta) != REVL_OK ||
            revl_trainer_save(trainer[k], fuzz_path(0)) != REVL_OK)
            abort();
        good[k][0] = fuzz_read(fuzz_path(0), &good_len[k][0]);
        /* reverse steps 2 and 1 save, step 0 fails: the file stands at step 1 */
        double dfdw[5] = {1, -1, 0.5, 0, 2};
        fail_at = 0;
        if (revl_trainer_set_checkpoint(trainer[k], fuzz_path(0), 1) != REVL_OK ||
            revl_trainer_hypergrad(trainer[k], dfdw, NULL, NULL, NULL, NULL, NULL) !=
                REVL_ERR_CALLBACK ||
            revl_trainer_set_checkpoint(trainer[k], NULL, 0) != REVL_OK)
            abort();
        fail_at = -1;
        good[k][1] = fuzz_read(fuzz_path(0), &good_len[k][1]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model)
        setup();
    if (size < 1)
        return 0;
    int k = data[0] & 16 ? 2 : (data[0] >> 1) & 1, rev = (data[0] >> 3) & 1;
    revl_trainer *t = trainer[k];
    const char *in = fuzz_path(1), *out = fuzz_path(2);
    unsigned char *file;
    size_t len;
    if (data[0] & 1) {
        len = good_len[k][rev];
        file = malloc(len);
        memcpy(file, good[k][rev], len);
        fuzz_edit(file, &len, data, size);
    } else {
        len = size - 1;
        file = malloc(len + 1);
        memcpy(file, data + 1, len);
    }
    if (data[0] & 4)
        fuzz_fix_crc(file, len);
    fuzz_write(in, file, len);

    int rc = revl_trainer_load(t, in);
    if (rc != REVL_OK) {
        if (rc != REVL_ERR_IO && rc != REVL_ERR_NOMEM)
            __builtin_trap();
        const char *msg = revl_trainer_last_error(t);
        if (!msg || !msg[0])
            __builtin_trap();
        free(file);
        return 0;
    }
    /* accepted: the format is canonical, so saving gives the same bytes; a checkpoint taken
     * mid-reverse cannot be saved again (REVL_ERR_STATE), only resumed */
    rc = revl_trainer_save(t, out);
    if (rc == REVL_ERR_STATE) {
        if (revl_trainer_hypergrad_resume(t, NULL, 0, NULL, NULL) == REVL_ERR_STATE)
            __builtin_trap();
        free(file);
        return 0;
    }
    if (rc != REVL_OK)
        __builtin_trap();
    size_t lo;
    unsigned char *back = fuzz_read(out, &lo);
    if (lo != len || memcmp(back, file, len) != 0)
        __builtin_trap();
    free(back);
    free(file);
    /* whatever it holds, the rest of the training and the reverse pass return */
    double dfdw[5] = {1, -1, 0.5, 0, 2};
    revl_trainer_train_resume(t);
    revl_trainer_hypergrad(t, dfdw, NULL, NULL, NULL, NULL, NULL);
    return 0;
}
