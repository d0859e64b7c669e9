/* mpi_lr_schedule: lr_schedule's experiment (the paper's learning-rate and momentum schedule
 * on Fashion-MNIST) with the MLP's gradients computed data-parallel over MPI ranks
 * (docs/mpi.md). Each step's minibatch of 200 is 8 micro-batches of 25 whatever the number of
 * ranks, so every rank runs the same exact training and the result is the same bits on any
 * number of ranks: rank 0 prints and writes DIR as lr_schedule does; every other rank r writes
 * its own copy into DIR/rank<r>, which `make demo-mpi` compares with rank 0's byte for byte.
 *
 *   mpirun -np 4 --oversubscribe mpi_lr_schedule [--quick] [--out DIR] [--data DIR]
 *                                                  [--iterations N] [--threads N] */
#include <mpi.h>

#include "revl_mpi.h"

#define MICRO_BATCHES 8

static revl_comm comm;

static int dp_mlp(revl_model **out, size_t n_widths, const size_t *widths,
                  const revl_dataset *train, const revl_mlp_options *opts)
{
    return revl_mlp_dp_create(out, n_widths, widths, train, opts, MICRO_BATCHES, 0, &comm);
}

#define SCHEDULE_EXPERIMENT_MLP dp_mlp
#include "schedule_experiment.h"

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    if (revl_mpi_comm_init(&comm, MPI_COMM_WORLD) != REVL_OK) {
        fprintf(stderr, "mpi_lr_schedule: revl_mpi_comm_init failed\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* ranks other than 0: quiet, and their files into DIR/rank<r> */
    char **args = calloc((size_t)argc + 3, sizeof *args);
    char out[4096];
    const char *dir = "out/mpi_lr_schedule";
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            dir = argv[++i];
            continue;
        }
        args[n++] = argv[i];
    }
    if (comm.rank == 0)
        snprintf(out, sizeof out, "%s", dir);
    else
        snprintf(out, sizeof out, "%s/rank%d", dir, comm.rank);
    args[n++] = "--out";
    args[n++] = out;
    if (comm.rank != 0 && !freopen("/dev/null", "w", stdout))
        return 1;
    if (comm.rank == 0)
        printf("mpi_lr_schedule: %d rank(s), %d micro-batches per step\n", comm.size,
               MICRO_BATCHES);
    int rc = schedule_experiment(n, args, "mpi_lr_schedule", REVL_OPTIM_MOMENTUM);
    int any;
    MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    free(args);
    revl_mpi_comm_destroy(&comm);
    MPI_Finalize();
    return any;
}
