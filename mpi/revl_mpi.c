/* revl_mpi.c: librevl_mpi, the revl_comm of revl.h over MPI (revl_mpi.h). */
#define REVL_BUILDING 1
#include "revl_mpi.h"

#include <stdlib.h>
#include <string.h>

/* MPI counts are int: big arrays go in chunks. */
#define CHUNK ((size_t)1 << 28)

static int mpi_allreduce(int64_t *data, size_t n, void *user)
{
    MPI_Comm comm = *(MPI_Comm *)user;
    for (size_t done = 0; done < n; done += CHUNK) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        if (MPI_Allreduce(MPI_IN_PLACE, data + done, (int)k, MPI_INT64_T, MPI_SUM, comm) !=
            MPI_SUCCESS)
            return 1;
    }
    return 0;
}

int revl_mpi_comm_init(revl_comm *c, MPI_Comm comm)
{
    if (!c)
        return REVL_ERR_INVALID;
    memset(c, 0, sizeof *c);
    int up = 0;
    if (MPI_Initialized(&up) != MPI_SUCCESS || !up)
        return REVL_ERR_INVALID; /* before MPI_Init even MPI_Comm_dup would abort */
    MPI_Comm *dup = malloc(sizeof *dup);
    if (!dup)
        return REVL_ERR_NOMEM;
    int rank, size;
    if (MPI_Comm_dup(comm, dup) != MPI_SUCCESS) {
        free(dup);
        return REVL_ERR_INVALID;
    }
    MPI_Comm_set_errhandler(*dup, MPI_ERRORS_RETURN);
    MPI_Comm_rank(*dup, &rank);
    MPI_Comm_size(*dup, &size);
    c->struct_size = sizeof *c;
    c->rank = rank;
    c->size = size;
    c->allreduce_i64 = mpi_allreduce;
    c->user = dup;
    return REVL_OK;
}

void revl_mpi_comm_destroy(revl_comm *c)
{
    if (!c || !c->user)
        return;
    MPI_Comm_free((MPI_Comm *)c->user);
    free(c->user);
    memset(c, 0, sizeof *c);
}
