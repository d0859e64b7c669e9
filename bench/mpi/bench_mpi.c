/* bench_mpi: the data-parallel MLP (revl_mlp_dp_create) over MPI ranks: time per training step
 * and per reversed step, the time and bytes of the all-reduces, and the scaling model of
 * docs/mpi.md evaluated for this run. Run it on several rank counts side by side
 * (`make bench-mpi`: 1 and 2 ranks); the same seed gives the same bits on any count, which the
 * last line checks through a hash of w_T and d_alpha. With shard = 1 the trainer's state is
 * sharded over the ranks (revl_trainer_create_sharded): the same bits, less memory per rank,
 * more words communicated (the all-gathers, counted in the all-reduce figures).
 *
 *   mpirun -np R bench_mpi [hidden] [steps] [shard] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "revl_mpi.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The MPI communicator, timed. */
typedef struct timed {
    revl_comm inner;
    double seconds, bytes;
    size_t calls;
} timed;

static int timed_allreduce(int64_t *data, size_t n, void *user)
{
    timed *t = user;
    double t0 = now();
    int rc = t->inner.allreduce_i64(data, n, t->inner.user);
    t->seconds += now() - t0;
    t->bytes += 8.0 * (double)n;
    t->calls++;
    return rc;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    size_t hidden = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    size_t T = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
    int shard = argc > 3 && atoi(argv[3]) != 0;
    timed tc = {0};
    revl_comm comm;
    if (revl_mpi_comm_init(&tc.inner, MPI_COMM_WORLD) != REVL_OK)
        MPI_Abort(MPI_COMM_WORLD, 1);
    comm = tc.inner;
    comm.allreduce_i64 = timed_allreduce;
    comm.user = &tc;
    int rank = comm.rank, R = comm.size;

    enum { N = 2000, D = 784, C = 10, MICRO = 8 };
    double *x = malloc(sizeof(double) * N * D);
    int32_t *y = malloc(sizeof(int32_t) * N);
    uint64_t s = 1;
    for (size_t i = 0; i < (size_t)N * D; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        x[i] = (double)(s >> 11) / 9007199254740992.0;
    }
    for (size_t i = 0; i < N; i++)
        y[i] = (int32_t)(i % C);
    revl_dataset *data;
    revl_dataset_create(&data, NULL);
    revl_dataset_set(data, N, D, C, x, y);
    size_t widths[] = {D, hidden, hidden, C};
    revl_mlp_options mo;
    revl_mlp_options_init(&mo);
    revl_model *m;
    if (revl_mlp_dp_create(&m, 4, widths, data, &mo, MICRO, 0, &comm) != REVL_OK)
        MPI_Abort(MPI_COMM_WORLD, 1);
    size_t P = revl_model_n_params(m), G = revl_model_n_groups(m), off[8];
    revl_model_group_offsets(m, off);
    revl_schedule *sch;
    revl_schedule_create(&sch, T, G, off);
    revl_schedule_fill(sch, 0.05, 0.9);
    revl_trainer *t;
    if ((shard ? revl_trainer_create_sharded(&t, m, sch, NULL, &comm)
               : revl_trainer_create(&t, m, sch, NULL)) != REVL_OK)
        MPI_Abort(MPI_COMM_WORLD, 1);
    double *w = calloc(P, sizeof *w), *d_alpha = calloc(T * G, sizeof *d_alpha);
    double scales[8] = {-3, -3, -3, -3, -3, -3, -3, -3};
    revl_model_init_weights(m, scales, 1, w);

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    int rc = revl_trainer_train(t, w, NULL);
    double t_train = now() - t0, c_train = tc.seconds, b_train = tc.bytes;
    revl_trainer_weights(t, w);
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < P; i++) {
        uint64_t b;
        memcpy(&b, &w[i], 8);
        h = (h ^ b) * 1099511628211u;
    }
    for (size_t i = 0; i < P; i++)
        w[i] *= 1e-3; /* dfdw */
    tc.seconds = tc.bytes = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = now();
    if (!rc)
        rc = revl_trainer_hypergrad(t, w, NULL, NULL, d_alpha, NULL, NULL);
    double t_rev = now() - t0, c_rev = tc.seconds, b_rev = tc.bytes;
    for (size_t i = 0; i < T * G; i++) {
        uint64_t b;
        memcpy(&b, &d_alpha[i], 8);
        h = (h ^ b) * 1099511628211u;
    }
    revl_trainer_stats st = {.struct_size = sizeof st};
    revl_trainer_get_stats(t, &st);
    long long mem[2] = {(long long)st.buffer_bytes, (long long)st.peak_bytes}, mem_max[2];
    MPI_Reduce(mem, mem_max, 2, MPI_LONG_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        if (rc)
            printf("bench_mpi: failed: %s\n", revl_trainer_last_error(t));
        printf("ranks %d  P %zu  micro-batches %d  steps %zu  state %s\n", R, P, MICRO, T,
               shard ? "sharded" : "replicated");
        printf("  forward  %.4f s/step  all-reduce %.4f s/step (%.0f%%)  %.3f MB/step\n",
               t_train / T, c_train / T, 100 * c_train / t_train, b_train / T / 1e6);
        printf("  reverse  %.4f s/step  all-reduce %.4f s/step (%.0f%%)  %.3f MB/step\n",
               t_rev / T, c_rev / T, 100 * c_rev / t_rev, b_rev / T / 1e6);
        printf("  per rank (largest): buffer %.1f MB, trainer peak %.1f MB\n", mem_max[0] / 1e6,
               mem_max[1] / 1e6);
        /* the model of docs/mpi.md: a ring all-reduce moves 2 (R-1)/R of the words per rank */
        double Pm = 1e8, Rm = 64, bw = 100e9 / 8;
        double fw = 8 * (Pm + 1 + 2 * Rm), rv = 8 * (2 * Pm + 1 + 2 * Rm);
        printf("  model, P = 1e8 on 64 ranks at 100 Gb/s (ring): forward %.0f MB/step -> %.3f s, "
               "reverse %.0f MB/step -> %.3f s\n",
               fw / 1e6, 2 * (Rm - 1) / Rm * fw / bw, rv / 1e6, 2 * (Rm - 1) / Rm * rv / bw);
        printf("  result hash %016llx (the same on every rank count)\n", (unsigned long long)h);
    }
    revl_trainer_free(t);
    revl_schedule_free(sch);
    revl_model_free(m);
    revl_dataset_free(data);
    free(x);
    free(y);
    free(w);
    free(d_alpha);
    revl_mpi_comm_destroy(&tc.inner);
    MPI_Finalize();
    return rc ? 1 : 0;
}
