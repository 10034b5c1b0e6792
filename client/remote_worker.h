// The deployed worker's life cycle (`fedtrain worker`), as a class tests can drive: join a
// `fedtrain server` (with backoff while its slot is still held), learn the experiment config,
// have the runtime set up this process's Workers for it, heartbeat, run the tasks the server
// routes here on `threads` threads and push the replies, rejoin the same slot after losing the
// server (refusing one that now runs another experiment), and leave the run at the end.
// With a state folder, the slot this worker holds is recorded in <state_dir>/SLOT so that a
// restarted worker asks for the same slot (its clients' states are in that folder).
// Thread-safety: Run() on one thread; Stop() from any thread (e.g. a SignalWatcher's).
#ifndef FEDTRAIN_CLIENT_REMOTE_WORKER_H_
#define FEDTRAIN_CLIENT_REMOTE_WORKER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/worker.h"
#include "comm/grpc_client.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

struct RemoteWorkerOptions {
  GrpcWorkerOptions grpc;  // grpc.slot: the slot to ask for, -1 = recorded or any free one
  int threads = 1;         // tasks trained in parallel; results do not depend on it
  absl::Duration connect_timeout = absl::Seconds(60);
  absl::Duration reconnect_timeout = absl::Seconds(300);
  std::string state_dir;   // "" = no SLOT file (client states in memory)
};

// What the runtime builds for the joined config: one Worker per thread, and whatever they
// borrow (data, model, client-state store), kept alive until the run is over.
struct RemoteWorkerSet {
  std::shared_ptr<void> keep_alive;  // declared first: destroyed after the Workers
  std::vector<std::unique_ptr<Worker>> workers;
};
using RemoteWorkerSetup =
    std::function<absl::StatusOr<RemoteWorkerSet>(const v1::ExperimentConfig& cfg)>;
// The part of a config a rejoined server must share with the first one (ConfigFingerprint).
using ConfigIdentity = std::function<std::string(const v1::ExperimentConfig& cfg)>;

class RemoteWorker {
 public:
  // `setup` runs once, after the first join, with the server's config.
  RemoteWorker(RemoteWorkerOptions o, RemoteWorkerSetup setup, ConfigIdentity identity);
  ~RemoteWorker();

  // Runs until the server ends the run or Stop() is called (OK), or an error: Unauthenticated
  // (the token was refused), Unavailable (the server could not be reached, or not rejoined
  // within reconnect_timeout), FailedPrecondition (the rejoined server runs another
  // experiment), DataLoss (a damaged SLOT file or task stream), or the setup's error. The run
  // is left (Leave) in every case once it was joined. Tasks still running when it ends finish
  // first (their client states are saved atomically; a reply that cannot be pushed is counted
  // and logged).
  absl::Status Run();
  // Leaves the run and makes Run() return OK soon: no rejoin, no new tasks.
  void Stop(const std::string& why);

 private:
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> JoinWithBackoff(absl::Duration timeout);
  std::shared_ptr<GrpcWorkerClient> current() const;
  absl::Status RunTasks(const RemoteWorkerSet& set, const std::string& identity);

  RemoteWorkerOptions o_;
  RemoteWorkerSetup setup_;
  ConfigIdentity identity_;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  std::shared_ptr<GrpcWorkerClient> client_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CLIENT_REMOTE_WORKER_H_
