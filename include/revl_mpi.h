/* revl_mpi.h: revl's communicator (revl_comm, revl.h) over MPI, in its own library
 * librevl_mpi (pkg-config revl-mpi), so that librevl itself never needs MPI. docs/mpi.md. */
#ifndef REVL_MPI_H
#define REVL_MPI_H

#include <mpi.h>

#include "revl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A communicator over the ranks of comm: c->rank and c->size are comm's, and the all-reduce is
 * MPI_Allreduce(MPI_SUM) of MPI_INT64_T on a duplicate of comm that returns errors instead of
 * aborting. MPI must be initialised. REVL_ERR_INVALID for NULL or an MPI failure,
 * REVL_ERR_NOMEM. Release with revl_mpi_comm_destroy (after every model using it is freed). */
REVL_API int revl_mpi_comm_init(revl_comm *c, MPI_Comm comm);
/* Frees what revl_mpi_comm_init made (collective: MPI_Comm_free); NULL or an empty c is fine. */
REVL_API void revl_mpi_comm_destroy(revl_comm *c);

#ifdef __cplusplus
}
#endif
#endif /* REVL_MPI_H */
