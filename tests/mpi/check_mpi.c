/* check_mpi.c: exact data-parallel training over real MPI ranks (librevl_mpi). `make check-mpi`
 * runs it under mpirun on 1, 2, 3 and 4 ranks, each under a timeout: every rank's w_T, buffer
 * size and every hypergradient must be the bits of the single-process run (revl_comm_init_local,
 * all micro-batches on one process), hence the same for any number of ranks; a fault on one
 * rank must fail every rank with the same status and message. Check runs in one process per
 * rank (CK_FORK=no: MPI and fork do not mix). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "revl_mpi.h"
#include "testutil_dp.h"

static revl_comm comm;

/* The same bytes on every rank: their hashes' min and max agree. */
static int same_on_all_ranks(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211u;
    int64_t v = (int64_t)(h >> 1), lo, hi;
    MPI_Allreduce(&v, &lo, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&v, &hi, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

static const struct {
    int mlp;
    revl_optimizer opt;
    size_t n_micro;
} problems[] = {{0, REVL_OPTIM_MOMENTUM, 6}, {0, REVL_OPTIM_ADAM, 6},
                {1, REVL_OPTIM_MOMENTUM, 5}, {1, REVL_OPTIM_ADAM, 5}};

START_TEST(bit_identical_to_single_process)
{
    dp_case c = {.mlp = problems[_i].mlp, .optimizer = problems[_i].opt,
                 .n_micro = problems[_i].n_micro};
    double *ref, *got;
    size_t n_ref, n;
    char msg[256];
    ck_assert_msg(dp_run(&c, &ref, &n_ref, msg) == REVL_OK, "local: %s", msg);
    c.comm = &comm;
    int rc = dp_run(&c, &got, &n, msg);
    ck_assert_msg(rc == REVL_OK, "rank %d of %d: %s", comm.rank, comm.size, msg);
    ck_assert_uint_eq(n, n_ref);
    ck_assert_msg(memcmp(got, ref, n * sizeof *got) == 0,
                  "rank %d of %d differs from the single-process run", comm.rank, comm.size);
    ck_assert(same_on_all_ranks(got, n * sizeof *got));
    free(ref);
    free(got);
}
END_TEST

static void expect_fault(enum dp_fault fault, int want, const char *text)
{
    dp_case c = {.optimizer = REVL_OPTIM_ADAM, .n_micro = 6, .comm = &comm, .fault = fault,
                 .fault_rank = comm.size - 1, .fault_step = 3};
    double *out;
    size_t n;
    char msg[256] = {0}, rank_text[32];
    int rc = dp_run(&c, &out, &n, msg);
    ck_assert_msg(rc == want, "rank %d: status %d: %s", comm.rank, rc, msg);
    ck_assert_msg(strstr(msg, text), "rank %d: %s", comm.rank, msg);
    snprintf(rank_text, sizeof rank_text, "rank %d", comm.size - 1);
    if (want == REVL_ERR_CALLBACK)
        ck_assert_msg(strstr(msg, rank_text), "rank %d: %s", comm.rank, msg);
    ck_assert_msg(same_on_all_ranks(msg, sizeof msg), "rank %d: %s", comm.rank, msg);
}

START_TEST(callback_failure_on_last_rank)
{
    expect_fault(DP_FAULT_CALLBACK, REVL_ERR_CALLBACK, "'s gradient callback returned 7");
}
END_TEST

START_TEST(nan_on_last_rank)
{
    expect_fault(DP_FAULT_NAN, REVL_ERR_CALLBACK, "is NaN");
}
END_TEST

START_TEST(drift_on_last_rank)
{
    expect_fault(DP_FAULT_DRIFT, REVL_ERR_INEXACT, "step 3");
}
END_TEST

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    if (revl_mpi_comm_init(&comm, MPI_COMM_WORLD) != REVL_OK) {
        fprintf(stderr, "check_mpi: revl_mpi_comm_init failed\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_add_loop_test(tc, bit_identical_to_single_process, 0, 4);
    tcase_add_test(tc, callback_failure_on_last_rank);
    tcase_add_test(tc, nan_on_last_rank);
    tcase_add_test(tc, drift_on_last_rank);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_set_fork_status(r, CK_NOFORK);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r), any;
    srunner_free(r);
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any && comm.rank == 0)
        fprintf(stderr, "check_mpi: a test failed on some rank of %d\n", comm.size);
    revl_mpi_comm_destroy(&comm);
    MPI_Finalize();
    return any ? EXIT_FAILURE : EXIT_SUCCESS;
}
