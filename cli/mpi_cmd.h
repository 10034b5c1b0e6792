// `fedtrain mpi`: one deployed run launched by `mpirun -np N fedtrain mpi ...`. Rank 0 runs
// `fedtrain server` with N-1 workers, and ranks 1..N-1 run `fedtrain worker` in slots 0..N-2;
// the server's address (and, when none is given, a fresh random token) reach the workers by
// MPI_Bcast, so nothing needs to be known before launch. Data still travel over gRPC: MPI only
// starts the processes and introduces them.
#ifndef FEDTRAIN_CLI_MPI_CMD_H_
#define FEDTRAIN_CLI_MPI_CMD_H_

#include <string>
#include <vector>

namespace fedtrain {

extern const char kMpiHelp[];
int MpiCommand(int* argc, char*** argv, const std::vector<std::string>& args);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_MPI_CMD_H_
