#include "cli/mpi_cmd.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "cli/server_cmd.h"
#include "cli/worker_cmd.h"
#include "core/log.h"

namespace fedtrain {

const char kMpiHelp[] = R"(usage: mpirun -np N fedtrain mpi --config FILE [options]

One deployed run over MPI's process launch: rank 0 is the server (as `fedtrain server`,
with N-1 workers), ranks 1..N-1 are workers (as `fedtrain worker`, rank r in slot r-1). The
server's address goes to the workers with MPI_Bcast, and so does the token: the one given
(--token or FEDTRAIN_TOKEN on rank 0), else a random one made for this run. Results are
bit-identical to `fedtrain simulate` of the same config. As root, add --allow-run-as-root to
mpirun; across hosts use a hostfile (deploy/mpi/hostfile.example).

options (the rest go to the server: --config, --set, --out, --checkpoint-every, TLS, ...):
  --advertise HOST     the name or address workers use to reach rank 0 (default: rank 0's
                       host name); the server listens on --listen (default 0.0.0.0:0)
  --worker-threads N   tasks each worker trains in parallel (default 1)
  --worker-arg ARG     one more argument for every worker (repeatable); an argument that
                       starts with '-' is attached with '=', e.g.
                       --worker-arg=--tls-ca --worker-arg ca.crt
  --state-dir-base D   worker r keeps its client states in D/worker-<r> (--state-dir)
  --help               this help
)";

namespace {

std::string Bcast(std::string s) {
  unsigned long long n = s.size();
  MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
  s.resize(n);
  if (n > 0) MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  return s;
}

std::string RandomToken() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  unsigned char b[16] = {0};
  in.read(reinterpret_cast<char*>(b), sizeof(b));
  if (!in) return "";
  std::string t;
  for (unsigned char c : b) absl::StrAppend(&t, absl::Hex(c, absl::kZeroPad2));
  return t;
}

}  // namespace

int MpiCommand(int* argc, char*** argv, const std::vector<std::string>& args) {
  std::string advertise, token, state_base;
  if (const char* env = std::getenv("FEDTRAIN_TOKEN")) token = env;
  int threads = 1;
  bool workers_given = false;
  std::vector<std::string> server_args, worker_extra;
  Flags flags(kMpiHelp);
  flags.String("--advertise", &advertise, "--advertise needs a host")
      .Int("--worker-threads", &threads, 1, "--worker-threads needs a positive number")
      .Append("--worker-arg", &worker_extra, "--worker-arg needs an argument")
      .String("--state-dir-base", &state_base, "--state-dir-base needs a folder")
      .String("--token", &token, "--token needs a value")
      .Custom("--workers",
              [&](const std::string&) {
                workers_given = true;
                return true;
              },
              "--workers needs a number")
      .Rest(&server_args);
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  if (workers_given)
    return flags.Usage("--workers is the number of MPI ranks less one under `fedtrain mpi`");
  bool has_listen = false;
  for (const std::string& a : server_args)
    has_listen |= a == "--listen" || absl::StartsWith(a, "--listen=");

  if (MPI_Init(argc, argv) != MPI_SUCCESS) {
    FT_LOG(kError, "fedtrain mpi: MPI_Init failed");
    return 1;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size < 2) {
    if (rank == 0)
      std::fprintf(stderr, "fedtrain mpi: needs at least 2 ranks (a server and a worker); "
                           "run it with mpirun -np N, N >= 2\n");
    MPI_Finalize();
    return 2;
  }
  int rc = 0;
  if (rank == 0) {
    if (token.empty()) token = RandomToken();
    if (advertise.empty()) {
      char host[256] = {0};
      if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
      advertise = host;
    }
    server_args.insert(server_args.end(), {"--workers", std::to_string(size - 1), "--token", token});
    if (!has_listen) server_args.insert(server_args.end(), {"--listen", "0.0.0.0:0"});
    bool sent = false;
    rc = ServerCommand(server_args, [&](const std::string& addr) {
      const std::string port = addr.substr(addr.rfind(':') + 1);
      Bcast(absl::StrCat(advertise, ":", port));
      Bcast(token);
      sent = true;
    });
    if (!sent) {  // the server failed before it listened: release the workers
      Bcast("");
      Bcast("");
    }
  } else {
    const std::string addr = Bcast("");
    const std::string tok = Bcast("");
    if (addr.empty()) {
      FT_LOG(kError, "fedtrain mpi: rank ", rank, ": the server (rank 0) did not start");
      rc = 1;
    } else {
      std::vector<std::string> w = {"--server", addr, "--token", tok, "--slot",
                                    std::to_string(rank - 1), "--threads",
                                    std::to_string(threads), "--name",
                                    absl::StrCat("mpi-rank-", rank)};
      if (!state_base.empty())
        w.insert(w.end(), {"--state-dir", absl::StrCat(state_base, "/worker-", rank)});
      w.insert(w.end(), worker_extra.begin(), worker_extra.end());
      rc = WorkerCommand(w);
    }
  }
  MPI_Finalize();
  return rc;
}

}  // namespace fedtrain
