/* check_hardening.c: the crashes and silent wrong answers a red team found (issue 11), one test
 * each, in the C library: struct sizes the library never shipped, an MLP whose training labels
 * grew past its outputs, model sizes whose workspace overflows size_t, a NULL hv_meta handed
 * to a callback, the hyper-optimiser's groups moved under it or its values replaced from inside
 * a meta-iteration, evaluation at NaN weights, and loaders given a directory or a FIFO. Each
 * test failed (or crashed) before its fix. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "revl.h"
#include "testutil.h"

/* L = sum_i 1/2 w_i^2 + meta_j w_0 (for each j); its HVP writes hv_meta unconditionally, as
 * revl.h allows when n_meta > 0. */
static int quad_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    size_t p = ((const size_t *)user)[0], nm = ((const size_t *)user)[1];
    double l = 0;
    for (size_t i = 0; i < p; i++) {
        g[i] = w[i];
        l += 0.5 * w[i] * w[i];
    }
    for (size_t j = 0; j < nm; j++) {
        g[0] += meta[j];
        l += meta[j] * w[0];
    }
    if (loss)
        *loss = l;
    return 0;
}

static int quad_hvp(size_t step, const double *w, const double *meta, const double *v,
                    double *g, double *hv, double *hm, void *user)
{
    size_t p = ((const size_t *)user)[0], nm = ((const size_t *)user)[1];
    for (size_t i = 0; i < p; i++)
        hv[i] = v[i];
    for (size_t j = 0; j < nm; j++)
        hm[j] = v[0]; /* unconditionally, n_meta > 0 */
    return 0;
}

static size_t quad_sizes[2] = {4, 2};

static revl_model_def quad_def(void)
{
    revl_model_def d;
    revl_model_def_init(&d);
    d.n_params = quad_sizes[0];
    d.n_meta = quad_sizes[1];
    d.grad = quad_grad;
    d.hvp = quad_hvp;
    d.user = quad_sizes;
    return d;
}

/* ------------------------------------------------------------------ item 5: struct_size */

static long hook_calls;
static void *counting_alloc(size_t size, void *user)
{
    hook_calls++;
    return malloc(size);
}
static void counting_free(void *p, void *user)
{
    hook_calls++;
    free(p);
}

START_TEST(test_struct_size_never_shipped)
{
    /* a struct on the stack without its _init: garbage size and garbage pointers after it.
     * A size larger than the library's (or any other unknown one) must be refused before any
     * field past struct_size is read. */
    /* 0 below stands for sizeof(the struct) + 8, a size no release shipped (0 itself is refused
     * by errors:test_struct_size) */
    const size_t bad[] = {0, 4096, (size_t)-1, 0xdeadbeef};
#define BAD(c, type) (bad[c] ? bad[c] : sizeof(type) + 8)
    revl_model_def md = quad_def();
    revl_model *model = NULL;
    ck_assert_int_eq(revl_model_create(&model, &md), REVL_OK);
    size_t off[2] = {0, 4};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off), REVL_OK);
    revl_dataset *data = test_dataset(6, 3, 2, 1);
    size_t widths[2] = {3, 2};
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        revl_trainer_options o;
        memset(&o, 0xA5, sizeof o); /* garbage allocator pointer */
        o.struct_size = BAD(c, revl_trainer_options);
        o.frac_bits = 52;
        o.truncate = 0;
        o.threads = 1;
        revl_trainer *t = (revl_trainer *)&o;
        ck_assert_int_eq(revl_trainer_create(&t, model, s, &o), REVL_ERR_INVALID);
        ck_assert_ptr_null(t);

        revl_model_def d = quad_def();
        d.allocator = (const revl_allocator *)(uintptr_t)0xA5A5A5A5A5A5A5A5u;
        d.struct_size = BAD(c, revl_model_def);
        revl_model *m = (revl_model *)&d;
        ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID);
        ck_assert_ptr_null(m);

        revl_mlp_options mo;
        memset(&mo, 0xA5, sizeof mo);
        mo.struct_size = BAD(c, revl_mlp_options);
        mo.activation = REVL_ACT_TANH;
        mo.penalty = REVL_PENALTY_NONE;
        mo.threads = 0;
        m = (revl_model *)&d;
        ck_assert_int_eq(revl_mlp_create(&m, 2, widths, data, &mo), REVL_ERR_INVALID);
        ck_assert_ptr_null(m);

        revl_hyperopt_options ho;
        revl_hyperopt_options_init(&ho);
        ho.allocator = (const revl_allocator *)(uintptr_t)0xA5A5A5A5A5A5A5A5u;
        ho.struct_size = BAD(c, revl_hyperopt_options);
        revl_hyperopt *h = (revl_hyperopt *)&d;
        ck_assert_int_eq(revl_hyperopt_create(&h, model, data, 3, &ho), REVL_ERR_INVALID);
        ck_assert_ptr_null(h);
    }
#undef BAD
    revl_model_free(model);
    revl_schedule_free(s);
    revl_dataset_free(data);
}
END_TEST

START_TEST(test_struct_size_message_names_struct)
{
    /* the one call that has a handle for it says which struct and which size */
    revl_hyperopt_options ho;
    revl_hyperopt_options_init(&ho);
    ho.objective = NULL;
    revl_dataset *data = test_dataset(6, 3, 2, 1);
    size_t widths[2] = {3, 2};
    revl_model *mlp = NULL;
    ck_assert_int_eq(revl_mlp_create(&mlp, 2, widths, data, NULL), REVL_OK);
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, mlp, data, 2, &ho), REVL_OK);
    revl_hyperopt_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r + 8;
    ck_assert_int_eq(revl_hyperopt_step(h, &r), REVL_ERR_INVALID);
    char want[160];
    snprintf(want, sizeof want,
             "revl_hyperopt_report.struct_size is %zu, not a size this library knows (%zu)",
             sizeof r + 8, sizeof r);
    expect_msg(revl_hyperopt_last_error(h), want);
    ck_assert_uint_eq(r.iteration, 0); /* nothing written */
    r.struct_size = sizeof r;
    ck_assert_int_eq(revl_hyperopt_step(h, &r), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(mlp);
    revl_dataset_free(data);
}
END_TEST

START_TEST(test_allocator_size_never_shipped_is_ignored)
{
    /* revl.h: an allocator of a size the library does not know is ignored (malloc/free used),
     * so its garbage hooks are never called */
    revl_allocator a;
    revl_allocator_init(&a);
    a.alloc = counting_alloc;
    a.free = counting_free;
    revl_dataset *d = NULL;
    hook_calls = 0;
    ck_assert_int_eq(revl_dataset_create(&d, &a), REVL_OK);
    revl_dataset_free(d);
    ck_assert_int_gt(hook_calls, 0); /* the right size: used */
    a.struct_size = sizeof a + 8;
    hook_calls = 0;
    ck_assert_int_eq(revl_dataset_create(&d, &a), REVL_OK);
    revl_dataset_free(d);
    ck_assert_int_eq(hook_calls, 0);
}
END_TEST

/* ------------------------------------------------------------------ item 2: MLP labels */

START_TEST(test_mlp_labels_grow_past_outputs)
{
    /* same n and dim, but labels up to 4 for a 2-output MLP: the pass would index past the
     * softmax rows. Refused at every entry that runs the model, full batch and minibatch. */
    for (int mini = 0; mini < 2; mini++) {
        revl_dataset *data = test_dataset(8, 3, 2, 3);
        revl_mlp_options mo;
        revl_mlp_options_init(&mo);
        mo.batch_size = mini ? 4 : 0;
        size_t widths[2] = {3, 2};
        revl_model *m = NULL;
        ck_assert_int_eq(revl_mlp_create(&m, 2, widths, data, &mo), REVL_OK);
        size_t p = revl_model_n_params(m), off[2] = {0, p};
        revl_schedule *s = NULL;
        ck_assert_int_eq(revl_schedule_create(&s, 3, 1, off), REVL_OK);
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        revl_dataset *wide = test_dataset(8, 3, 5, 4);
        ck_assert_int_eq(revl_dataset_subset(data, wide, 0, 8), REVL_OK);
        double w[8] = {0}, g[8], v[8] = {1, 1, 1, 1, 1, 1, 1, 1}, hv[8], loss;
        const char *says = "the MLP's training set changed under it at step %d: 5 classes, "
                           "more than its 2 outputs%s";
        char want[160];
        ck_assert_int_eq(revl_trainer_train(t, w, NULL), REVL_ERR_CALLBACK);
        snprintf(want, sizeof want, says, 0, " (forward)");
        ck_assert_str_eq(revl_trainer_last_error(t), want);
        ck_assert_int_eq(revl_model_grad(m, 0, w, NULL, g, &loss), REVL_ERR_CALLBACK);
        snprintf(want, sizeof want, says, 0, "");
        ck_assert_str_eq(revl_model_last_error(m), want);
        ck_assert_int_eq(revl_model_hvp(m, 2, w, NULL, v, hv, NULL), REVL_ERR_CALLBACK);
        snprintf(want, sizeof want, says, 2, "");
        ck_assert_str_eq(revl_model_last_error(m), want);
        /* back to labels that fit: usable again */
        revl_dataset *fits = test_dataset(8, 3, 2, 5);
        ck_assert_int_eq(revl_dataset_subset(data, fits, 0, 8), REVL_OK);
        ck_assert_int_eq(revl_trainer_train(t, w, NULL), REVL_OK);
        revl_trainer_free(t);
        revl_schedule_free(s);
        revl_model_free(m);
        revl_dataset_free(data);
        revl_dataset_free(wide);
        revl_dataset_free(fits);
    }
}
END_TEST

/* ------------------------------------------------------------------ items 3, 4: model sizes */

START_TEST(test_model_sizes_that_overflow)
{
    /* 3*n_params + n_meta doubles (the finite-difference workspace) must be countable */
    const size_t n_meta[] = {(size_t)-1, (size_t)-1 - 11, (size_t)-1 / 8, (size_t)-1 / 8 - 1};
    for (size_t c = 0; c < sizeof n_meta / sizeof n_meta[0]; c++) {
        revl_model_def d = quad_def();
        d.hvp = NULL;
        d.n_meta = n_meta[c];
        revl_model *m = (revl_model *)&d;
        ck_assert_msg(revl_model_create(&m, &d) == REVL_ERR_INVALID, "n_meta = %zu accepted",
                      n_meta[c]);
        ck_assert_ptr_null(m);
    }
    revl_model_def d = quad_def();
    d.n_params = (size_t)-1 / 3 + 1;
    d.n_meta = 0;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_ERR_INVALID);
}
END_TEST

START_TEST(test_hvp_without_hv_meta)
{
    /* revl_model_hvp(hv_meta = NULL) with n_meta > 0: the callback still gets a buffer */
    revl_model_def d = quad_def();
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    double w[4] = {1, 2, 3, 4}, meta[2] = {0.5, -0.5}, v[4] = {1, 0, 2, 0}, hv[4], hm[2];
    ck_assert_int_eq(revl_model_hvp(m, 0, w, meta, v, hv, NULL), REVL_OK);
    for (size_t i = 0; i < 4; i++)
        ck_assert(hv[i] == v[i]);
    ck_assert_int_eq(revl_model_hvp(m, 0, w, meta, v, hv, hm), REVL_OK);
    ck_assert(hm[0] == 1.0 && hm[1] == 1.0);
    /* the scratch comes from the model's allocator: its failure is a NOMEM with a message */
    revl_model_free(m);
    failing f = {.fail_at = -1};
    revl_allocator a = failing_allocator(&f);
    d.allocator = &a;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    f.fail_at = f.calls;
    ck_assert_int_eq(revl_model_hvp(m, 0, w, meta, v, hv, NULL), REVL_ERR_NOMEM);
    expect_msg(revl_model_last_error(m), "revl_model_hvp: no memory for the 2 meta-values");
    ck_assert_int_eq(revl_model_hvp(m, 0, w, meta, v, hv, NULL), REVL_OK);
    revl_model_free(m);
    ck_assert_int_eq(f.live, 0);
}
END_TEST

/* ------------------------------------------------------------------ item 9, 6: hyper-optimiser */

static revl_model *mlp_on(revl_dataset *data)
{
    size_t widths[2] = {3, 2};
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 2, widths, data, NULL), REVL_OK);
    return m;
}

START_TEST(test_hyperopt_groups_moved)
{
    /* same number of groups, other boundaries: refused, not mixed */
    revl_dataset *data = test_dataset(8, 3, 2, 6);
    revl_model *m = mlp_on(data);
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, data, 2, NULL), REVL_OK);
    size_t old[3], moved[3];
    ck_assert_int_eq(revl_model_group_offsets(m, old), REVL_OK);
    memcpy(moved, old, sizeof old);
    moved[1] = old[1] - 1;
    ck_assert_int_eq(revl_model_set_groups(m, 2, moved), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_ERR_STATE);
    char want[128];
    snprintf(want, sizeof want, "(offsets[1] was %zu, now %zu)", old[1], moved[1]);
    expect_msg(revl_hyperopt_last_error(h), want);
    ck_assert_int_eq(revl_model_set_groups(m, 2, old), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(h, NULL), REVL_OK);
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_dataset_free(data);
}
END_TEST

typedef struct reenter {
    revl_hyperopt *h;
    const char *path, *ckpt;
    int set_rc, load_rc, step_rc, ckpt_rc;
    char set_msg[256], ckpt_msg[256];
    size_t p;
} reenter;

static int reentering_objective(const double *w, const double *meta, double *f, double *dfdw,
                                double *dfdmeta, void *user)
{
    reenter *r = user;
    double alpha[2 * 2], gamma[2 * 2];
    for (size_t k = 0; k < 4; k++) {
        alpha[k] = 5.0;
        gamma[k] = 0.25;
    }
    r->set_rc = revl_hyperopt_set(r->h, alpha, gamma, NULL, NULL);
    snprintf(r->set_msg, sizeof r->set_msg, "%s", revl_hyperopt_last_error(r->h));
    r->load_rc = revl_hyperopt_load(r->h, r->path);
    r->ckpt_rc = revl_hyperopt_checkpoint_load(r->h, r->ckpt);
    snprintf(r->ckpt_msg, sizeof r->ckpt_msg, "%s", revl_hyperopt_last_error(r->h));
    r->step_rc = revl_hyperopt_step(r->h, NULL);
    double s = 0;
    for (size_t i = 0; i < r->p; i++) {
        s += 0.5 * w[i] * w[i];
        dfdw[i] = w[i];
    }
    *f = s;
    return 0;
}

START_TEST(test_hyperopt_values_replaced_during_step)
{
    revl_dataset *data = test_dataset(8, 3, 2, 7);
    revl_model *m = mlp_on(data);
    char path[] = "/tmp/revl_hardening_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char ckpt[] = "/tmp/revl_hardening_ckpt_XXXXXX";
    fd = mkstemp(ckpt);
    ck_assert_int_ge(fd, 0);
    close(fd);
    reenter r = {.path = path, .ckpt = ckpt, .p = revl_model_n_params(m)};
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.objective = reentering_objective;
    o.objective_user = &r;
    ck_assert_int_eq(revl_hyperopt_create(&r.h, m, NULL, 2, &o), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_save(r.h, 0, path), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_save(r.h, ckpt), REVL_OK);
    double before[4], after[4];
    ck_assert_int_eq(revl_hyperopt_get(r.h, 0, before, NULL, NULL, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_step(r.h, NULL), REVL_OK);
    ck_assert_int_eq(r.set_rc, REVL_ERR_STATE);
    ck_assert_int_eq(r.load_rc, REVL_ERR_STATE);
    ck_assert_int_eq(r.step_rc, REVL_ERR_STATE);
    ck_assert_int_eq(r.ckpt_rc, REVL_ERR_STATE);
    expect_msg(r.ckpt_msg, "revl_hyperopt_checkpoint_load called during meta-iteration 0");
    expect_msg(r.set_msg, "revl_hyperopt_set called during meta-iteration 0 (from the objective "
                          "callback?)");
    /* the best is the point that was evaluated, not what the objective tried to set */
    ck_assert_int_eq(revl_hyperopt_get(r.h, 1, after, NULL, NULL, NULL), REVL_OK);
    ck_assert_mem_eq(before, after, sizeof before);
    /* outside a step both work again */
    ck_assert_int_eq(revl_hyperopt_load(r.h, path), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_set(r.h, before, NULL, NULL, NULL), REVL_OK);
    ck_assert_int_eq(revl_hyperopt_checkpoint_load(r.h, ckpt), REVL_OK);
    revl_hyperopt_free(r.h);
    unlink(path);
    unlink(ckpt);
    revl_model_free(m);
    revl_dataset_free(data);
}
END_TEST

/* ------------------------------------------------------------------ item 11: evaluate */

START_TEST(test_evaluate_not_finite)
{
    revl_dataset *data = test_dataset(8, 3, 2, 8);
    revl_model *m = mlp_on(data);
    size_t p = revl_model_n_params(m);
    double w[8] = {0}, g[8], loss = 42, acc = 42;
    ck_assert_uint_eq(p, 8);
    w[3] = NAN;
    ck_assert_int_eq(revl_model_evaluate(m, data, w, &loss, g, &acc), REVL_ERR_RANGE);
    /* NaN said once, not "w[3] = nan is not finite" (issue 24) */
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_evaluate: w[3] is NaN");
    ck_assert(loss == 42 && acc == 42);
    w[3] = INFINITY;
    ck_assert_int_eq(revl_model_evaluate(m, data, w, &loss, NULL, NULL), REVL_ERR_RANGE);
    ck_assert_str_eq(revl_model_last_error(m), "revl_model_evaluate: w[3] = inf is not finite");
    /* finite weights whose logits overflow */
    for (size_t i = 0; i < 6; i++)
        w[i] = (i % 2 ? -1 : 1) * 1e308;
    w[6] = 1e308;
    w[7] = -1e308;
    ck_assert_int_eq(revl_model_evaluate(m, data, w, &loss, NULL, NULL), REVL_ERR_RANGE);
    expect_msg(revl_model_last_error(m), "revl_model_evaluate: the loss is NaN (the weights are "
                                         "too large)");
    ck_assert(loss == 42);
    memset(w, 0, sizeof w);
    ck_assert_int_eq(revl_model_evaluate(m, data, w, &loss, NULL, NULL), REVL_OK);
    ck_assert(fabs(loss - log(2.0)) < 1e-12);
    revl_model_free(m);
    revl_dataset_free(data);
}
END_TEST

/* ------------------------------------------------------------------ item 12: loaders */

START_TEST(test_loaders_refuse_directory_and_fifo)
{
    char dir[] = "/tmp/revl_hardening_dir_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    revl_dataset *data = test_dataset(8, 3, 2, 9);
    revl_model *m = mlp_on(data);
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, data, 2, NULL), REVL_OK);
    /* without the check the FIFO blocks in open() forever: Check's timeout fails the test */
    char want[160];
    ck_assert_int_eq(revl_hyperopt_load(h, dir), REVL_ERR_IO);
    snprintf(want, sizeof want, "%s: not a regular file (a directory)", dir);
    expect_msg(revl_hyperopt_last_error(h), want);
    ck_assert_int_eq(revl_hyperopt_load(h, fifo), REVL_ERR_IO);
    snprintf(want, sizeof want, "%s: not a regular file (a FIFO)", fifo);
    expect_msg(revl_hyperopt_last_error(h), want);
    revl_dataset *d = NULL;
    ck_assert_int_eq(revl_dataset_create(&d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_load_idx(d, fifo, fifo, 0), REVL_ERR_IO);
    expect_msg(revl_dataset_last_error(d), want);
    ck_assert_int_eq(revl_dataset_load_idx(d, dir, dir, 0), REVL_ERR_IO);
    snprintf(want, sizeof want, "%s: not a regular file (a directory)", dir);
    expect_msg(revl_dataset_last_error(d), want);
    ck_assert_int_eq(revl_dataset_load_idx(d, "/dev/null", "/dev/null", 0), REVL_ERR_IO);
    expect_msg(revl_dataset_last_error(d), "/dev/null: not a regular file (a character device)");
    revl_dataset_free(d);
    /* both checkpoint loaders: a directory once was NOMEM (its size read as 2^63 - 1), a FIFO
     * blocked in open() */
    size_t off[2] = {0, revl_model_n_params(m)};
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, 2, 1, off), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    const char *paths[3] = {dir, fifo, "/dev/null"};
    const char *kinds[3] = {"a directory", "a FIFO", "a character device"};
    for (int k = 0; k < 3; k++) {
        snprintf(want, sizeof want, "%s: not a regular file (%s)", paths[k], kinds[k]);
        ck_assert_int_eq(revl_trainer_load(t, paths[k]), REVL_ERR_IO);
        expect_msg(revl_trainer_last_error(t), want);
        ck_assert_int_eq(revl_hyperopt_checkpoint_load(h, paths[k]), REVL_ERR_IO);
        expect_msg(revl_hyperopt_last_error(h), want);
    }
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_dataset_free(data);
    unlink(fifo);
    rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------------ hyperopt pins */

/* f = sum_i (w_i - 1)^2 / 2 */
static int dist_one(const double *w, const double *meta, double *f, double *dfdw,
                    double *dfdmeta, void *user)
{
    size_t p = *(const size_t *)user;
    double s = 0;
    for (size_t i = 0; i < p; i++) {
        s += 0.5 * (w[i] - 1) * (w[i] - 1);
        dfdw[i] = w[i] - 1;
    }
    *f = s;
    return 0;
}

START_TEST(test_hyperopt_chain_rule_at_applied_gamma)
{
    /* one SGD meta-step, recomputed independently with a trainer: the hypergradient goes to
     * log alpha as d_alpha * alpha and to logit gamma as d_gamma * g (1 - g) at the gamma the
     * trainer applied (0.3 is not a multiple of 2^-16, so requested and applied differ) */
    enum { T = 4 };
    static size_t no_meta[2] = {4, 0};
    revl_model_def d = quad_def();
    d.n_meta = 0;
    d.user = no_meta;
    revl_model *m = NULL;
    ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
    size_t p = 4, off[2] = {0, 4};
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.learn = REVL_LEARN_ALPHA | REVL_LEARN_GAMMA;
    o.method = REVL_META_SGD;
    o.step_size = 0.01;
    o.chaos_factor = 0;
    o.objective = dist_one;
    o.objective_user = &p;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, NULL, T, &o), REVL_OK);
    double alpha[T] = {0.3, 0.2, 0.25, 0.1}, gamma[T] = {0.3, 0.7, 0.55, 0.9}, scales[1] = {-1};
    ck_assert_int_eq(revl_hyperopt_set(h, alpha, gamma, scales, NULL), REVL_OK);
    revl_hyperopt_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    ck_assert_int_eq(revl_hyperopt_step(h, &r), REVL_OK);
    double got_a[T], got_g[T];
    ck_assert_int_eq(revl_hyperopt_get(h, 0, got_a, got_g, NULL, NULL), REVL_OK);

    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create(&s, T, 1, off), REVL_OK);
    ck_assert_int_eq(revl_schedule_set_all(s, alpha, gamma), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    double w0[4], wT[4], dfdw[4], f, da[T], dg[T];
    ck_assert_int_eq(revl_model_init_weights(m, scales, 0, w0), REVL_OK);
    ck_assert_int_eq(revl_trainer_train(t, w0, NULL), REVL_OK);
    ck_assert_int_eq(revl_trainer_weights(t, wT), REVL_OK);
    dist_one(wT, NULL, &f, dfdw, NULL, &p);
    ck_assert_int_eq(revl_trainer_hypergrad(t, dfdw, NULL, NULL, da, dg, NULL), REVL_OK);
    double sq = 0;
    for (size_t k = 0; k < T; k++) {
        double ga = revl_gamma_applied(gamma[k]);
        double za = da[k] * alpha[k], zg = dg[k] * ga * (1 - ga);
        sq += za * za + zg * zg;
        double want_a = exp(log(alpha[k]) - 0.01 * za);
        double want_g = 1 / (1 + exp(-(log(gamma[k] / (1 - gamma[k])) - 0.01 * zg)));
        ck_assert_msg(fabs(got_a[k] - want_a) <= 1e-14 * want_a, "alpha[%zu] %.17g, want %.17g",
                      k, got_a[k], want_a);
        ck_assert_msg(fabs(got_g[k] - want_g) <= 1e-14, "gamma[%zu] %.17g, want %.17g", k,
                      got_g[k], want_g);
    }
    ck_assert_msg(fabs(r.hypergrad_norm - sqrt(sq)) <= 1e-14 * sqrt(sq), "norm %.17g, want %.17g",
                  r.hypergrad_norm, sqrt(sq));
    ck_assert(fabs(r.valid_loss - f) <= 1e-15 * f);
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_hyperopt_free(h);
    revl_model_free(m);
}
END_TEST

START_TEST(test_hyperopt_chaos_guard_running_minimum)
{
    /* the rule, recomputed from the reports alone: an iteration fires when its norm exceeds
     * chaos_factor times the smallest norm of the iterations that did not fire before it;
     * each firing halves the step */
    revl_dataset *data = test_dataset(40, 3, 2, 11), *valid = test_dataset(40, 3, 2, 12);
    revl_model *m = mlp_on(data);
    revl_hyperopt_options o;
    revl_hyperopt_options_init(&o);
    o.chaos_factor = 1.02;
    o.step_size = 0.5;
    revl_hyperopt *h = NULL;
    ck_assert_int_eq(revl_hyperopt_create(&h, m, valid, 6, &o), REVL_OK);
    double min = INFINITY, step = o.step_size;
    int fired = 0, calm = 0;
    for (int it = 0; it < 16; it++) {
        revl_hyperopt_report r;
        memset(&r, 0, sizeof r);
        r.struct_size = sizeof r;
        ck_assert_int_eq(revl_hyperopt_step(h, &r), REVL_OK);
        int want = isfinite(min) && min > 0 && r.hypergrad_norm > o.chaos_factor * min;
        ck_assert_msg(r.chaos == want, "iteration %d: norm %.17g, minimum %.17g, chaos %d", it,
                      r.hypergrad_norm, min, r.chaos);
        if (want) {
            step *= 0.5;
            fired++;
        } else {
            if (it > 0 && r.hypergrad_norm > min)
                calm++; /* grew, but not past the factor: the factor is what decided */
            min = fmin(min, r.hypergrad_norm);
        }
        ck_assert(r.step_size == step);
    }
    ck_assert_msg(fired >= 2, "the guard fired %d times: the test sees nothing", fired);
    revl_hyperopt_free(h);
    revl_model_free(m);
    revl_dataset_free(data);
    revl_dataset_free(valid);
}
END_TEST

/* ------------------------------------------------------------------ issue 24: extreme values */

/* L = 1/2 (w_0 - 1)^2 (or L = 0 when *user is 0): w_1's gradient is always exactly 0 */
static int flat_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
                     void *user)
{
    (void)step;
    (void)meta;
    int live = *(const int *)user;
    g[0] = live ? w[0] - 1 : 0;
    g[1] = 0;
    if (loss)
        *loss = live ? 0.5 * (w[0] - 1) * (w[0] - 1) : 0;
    return 0;
}

static int flat_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
                    double *hv, double *hm, void *user)
{
    (void)hm;
    if (g)
        flat_grad(step, w, meta, g, NULL, user);
    hv[0] = *(const int *)user ? v[0] : 0;
    hv[1] = 0;
    return 0;
}

/* Adam and RMSprop (_i) at the ends of their ranges where nothing overflows in the true
 * arithmetic: alpha above 2^-52 DBL_MAX (about 4e292) with every gradient exactly 0 (nothing
 * moves: was "weight left the fixed-point range", 0 times an overflowed alpha 2^frac_bits), and
 * eps = 1e-200 with a weight whose gradient is always 0 (eps^2 underflows: its hypergradient was
 * 0/0 and refused). Training and the reverse pass succeed with finite hypergradients; nothing
 * moves that should not. At alpha = DBL_MAX training still moves nothing; the reverse pass's
 * adjoint of m (alpha / eps) really is beyond DBL_MAX there, so only training is asked for. */
START_TEST(test_extreme_alpha_and_eps)
{
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_ADAM;
    enum { T = 5, P = 2 };
    const double alphas[] = {1e293, 1e296, DBL_MAX};
    for (int c = 0; c < 4; c++) {
        int live = c == 3;
        revl_model_def d;
        revl_model_def_init(&d);
        d.n_params = P;
        d.grad = flat_grad;
        d.hvp = flat_hvp;
        d.user = &live;
        revl_model *m = NULL;
        ck_assert_int_eq(revl_model_create(&m, &d), REVL_OK);
        size_t off[2] = {0, P};
        revl_schedule *s = NULL;
        ck_assert_int_eq(revl_schedule_create_for(&s, opt, T, 1, off, NULL), REVL_OK);
        if (live)
            ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_EPS, 1e-200), REVL_OK);
        else
            ck_assert_int_eq(revl_schedule_fill_kind(s, REVL_HYPER_ALPHA, alphas[c]), REVL_OK);
        revl_trainer *t = NULL;
        ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
        double w0[P] = {0.25, -0.5}, wT[P], dfdw[P] = {1, 1}, dw0[P];
        double *dk[REVL_HYPER_COUNT] = {0};
        revl_hyper kinds[REVL_HYPER_COUNT];
        size_t nk = revl_schedule_kinds(s, kinds);
        for (size_t k = 0; k < nk; k++)
            dk[kinds[k]] = malloc(T * sizeof(double));
        ck_assert_msg(revl_trainer_train(t, w0, NULL) == REVL_OK, "case %d: %s", c,
                      revl_trainer_last_error(t));
        ck_assert_int_eq(revl_trainer_weights(t, wT), REVL_OK);
        ck_assert(wT[1] == w0[1]);
        if (!live)
            ck_assert(wT[0] == w0[0]);
        if (c == 2)
            goto next;
        ck_assert_msg(revl_trainer_hypergrad_kinds_n(t, dfdw, NULL, dw0, REVL_HYPER_COUNT, dk,
                                                     NULL) == REVL_OK,
                      "case %d: %s", c, revl_trainer_last_error(t));
        ck_assert(dw0[1] == 1); /* w_1 moves nothing: its adjoint passes through */
        for (size_t k = 0; k < nk; k++)
            for (size_t j = 0; j < T; j++) {
                ck_assert_msg(isfinite(dk[kinds[k]][j]), "case %d: d_%s[%zu] = %g", c,
                              revl_hyper_name(kinds[k]), j, dk[kinds[k]][j]);
                /* nothing moved, nothing depends on a hyperparameter, except RMSprop's
                 * weight_decay: lambda > 0 would make the gradient lambda w != 0 */
                if (!live && kinds[k] != REVL_HYPER_WEIGHT_DECAY)
                    ck_assert(dk[kinds[k]][j] == 0);
            }
    next:
        for (size_t k = 0; k < nk; k++)
            free(dk[kinds[k]]);
        revl_trainer_free(t);
        revl_schedule_free(s);
        revl_model_free(m);
    }
}
END_TEST

/* The built-in MLP with a zero-initialised output layer on a balanced full batch: at step 0 the
 * output bias's gradient is a rounding residue (1/C minus each class's share), far below s's
 * resolution yet not below m's. Adam and RMSprop (_i) train it and reverse it exactly (they
 * stopped at step 0 with "s is 0 while m is not"). */
START_TEST(test_mlp_zero_output_layer_trains)
{
    revl_optimizer opt = _i ? REVL_OPTIM_RMSPROP : REVL_OPTIM_ADAM;
    revl_dataset *data = test_dataset(30, 5, 3, 11); /* labels i mod 3: balanced */
    size_t widths[3] = {5, 8, 3};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    mo.batch_size = 0; /* the full batch */
    revl_model *m = NULL;
    ck_assert_int_eq(revl_mlp_create(&m, 3, widths, data, &mo), REVL_OK);
    size_t p = revl_model_n_params(m), off[5];
    ck_assert_uint_eq(p, 5 * 8 + 8 + 8 * 3 + 3);
    ck_assert_int_eq(revl_model_group_offsets(m, off), REVL_OK);
    double *w0 = calloc(p, sizeof *w0), *dfdw = malloc(p * sizeof *dfdw);
    double *dw0 = malloc(p * sizeof *dw0), g[75];
    for (size_t i = 0; i < off[2]; i++) /* the hidden layer; W_1 and b_1 stay 0 */
        w0[i] = 0.3 * cos(1.7 * (double)i);
    for (size_t i = 0; i < p; i++)
        dfdw[i] = 0.1 * sin((double)i);
    /* the premise: the output bias's gradient is tiny but not 0 somewhere */
    double loss, acc;
    ck_assert_int_eq(revl_model_evaluate(m, data, w0, &loss, g, &acc), REVL_OK);
    int tiny = 0;
    for (size_t i = off[3]; i < off[4]; i++) {
        ck_assert(fabs(g[i]) < 1e-15);
        tiny |= g[i] != 0;
    }
    ck_assert_msg(tiny, "every output bias gradient is exactly 0: the premise does not hold");
    revl_schedule *s = NULL;
    ck_assert_int_eq(revl_schedule_create_for(&s, opt, 6, 4, off, NULL), REVL_OK);
    revl_trainer *t = NULL;
    ck_assert_int_eq(revl_trainer_create(&t, m, s, NULL), REVL_OK);
    ck_assert_msg(revl_trainer_train(t, w0, NULL) == REVL_OK, "%s", revl_trainer_last_error(t));
    ck_assert_msg(revl_trainer_hypergrad(t, dfdw, NULL, dw0, NULL, NULL, NULL) == REVL_OK, "%s",
                  revl_trainer_last_error(t));
    for (size_t i = 0; i < p; i++)
        ck_assert(isfinite(dw0[i]));
    revl_trainer_free(t);
    revl_schedule_free(s);
    revl_model_free(m);
    revl_dataset_free(data);
    free(w0);
    free(dfdw);
    free(dw0);
}
END_TEST

/* ------------------------------------------------------------------ item 14: stale messages */

START_TEST(test_success_clears_the_message)
{
    /* a message describes the last failure only while it is the last call: a later success
     * clears it, so last_error never blames a call that worked */
    revl_dataset *d = test_dataset(8, 3, 2, 13), *src = test_dataset(8, 3, 2, 14);
    double x[3] = {1, NAN, 3};
    int32_t y[1] = {0};
    ck_assert_int_eq(revl_dataset_set(d, 1, 3, 2, x, y), REVL_ERR_RANGE);
    ck_assert_str_ne(revl_dataset_last_error(d), "");
    ck_assert_int_eq(revl_dataset_subset(d, src, 0, 4), REVL_OK);
    ck_assert_str_eq(revl_dataset_last_error(d), "");
    ck_assert_int_eq(revl_dataset_standardize(d, NULL), REVL_OK);
    ck_assert_int_eq(revl_dataset_subset(d, src, 7, 4), REVL_ERR_INVALID);
    ck_assert_int_eq(revl_dataset_standardize(d, NULL), REVL_OK);
    ck_assert_str_eq(revl_dataset_last_error(d), "");

    revl_model *m = mlp_on(src);
    double w[8] = {0}, g[8], v[8] = {0}, hv[8], loss, ls[2] = {0, NAN}, ls_ok[2] = {0, 0};
    double calls[5];
    for (int c = 0; c < 5; c++) {
        w[0] = NAN;
        ck_assert_int_eq(revl_model_evaluate(m, d, w, &loss, NULL, NULL), REVL_ERR_RANGE);
        w[0] = 0;
        int rc = c == 0   ? revl_model_evaluate(m, d, w, &loss, NULL, NULL)
                 : c == 1 ? revl_model_grad(m, 0, w, NULL, g, &loss)
                 : c == 2 ? revl_model_hvp(m, 0, w, NULL, v, hv, NULL)
                 : c == 3 ? revl_model_init_weights(m, ls_ok, 1, g)
                          : revl_model_init_scales_grad(m, w, v, calls);
        ck_assert_int_eq(rc, REVL_OK);
        ck_assert_msg(revl_model_last_error(m)[0] == '\0', "call %d left '%s'", c,
                      revl_model_last_error(m));
    }
    ck_assert_int_eq(revl_model_init_weights(m, ls, 1, g), REVL_ERR_RANGE);
    revl_model_free(m);
    revl_dataset_free(d);
    revl_dataset_free(src);
}
END_TEST

static Suite *hardening_suite(void)
{
    Suite *s = suite_create("hardening");
    TCase *tc = tcase_create("c");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_struct_size_never_shipped);
    tcase_add_test(tc, test_struct_size_message_names_struct);
    tcase_add_test(tc, test_allocator_size_never_shipped_is_ignored);
    tcase_add_test(tc, test_mlp_labels_grow_past_outputs);
    tcase_add_test(tc, test_model_sizes_that_overflow);
    tcase_add_test(tc, test_hvp_without_hv_meta);
    tcase_add_test(tc, test_hyperopt_groups_moved);
    tcase_add_test(tc, test_hyperopt_values_replaced_during_step);
    tcase_add_test(tc, test_evaluate_not_finite);
    tcase_add_test(tc, test_loaders_refuse_directory_and_fifo);
    tcase_add_test(tc, test_hyperopt_chain_rule_at_applied_gamma);
    tcase_add_test(tc, test_hyperopt_chaos_guard_running_minimum);
    tcase_add_test(tc, test_success_clears_the_message);
    tcase_add_loop_test(tc, test_extreme_alpha_and_eps, 0, 2);
    tcase_add_loop_test(tc, test_mlp_zero_output_layer_trains, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hardening_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
