// The runtime's half of a deployed worker (client/remote_worker.h): for the config the server
// sent, the algorithms (built-ins and the config's plug-ins, which must exist on this host),
// the data set, the model, the client-state store and one Worker per thread. Client states go
// to a durable file store in `state_dir` when given (fsync()ed, so a restarted worker
// continues where it stopped), otherwise to the store the config names (a "file" store then
// lives in a private scratch folder, removed when the set is destroyed).
// Thread-compatible; the returned set owns everything its Workers borrow.
#ifndef FEDTRAIN_RUNTIME_WORKER_SETUP_H_
#define FEDTRAIN_RUNTIME_WORKER_SETUP_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/remote_worker.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

struct WorkerSetupOptions {
  int threads = 1;
  std::string state_dir;  // "" = the config's federation.state_store
};

absl::StatusOr<RemoteWorkerSet> SetUpRemoteWorkers(const v1::ExperimentConfig& cfg,
                                                   const WorkerSetupOptions& o);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_WORKER_SETUP_H_
