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
#include <vector>

#include "absl/status/statusor.h"
#include "client/remote_worker.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

struct WorkerSetupOptions {
  int threads = 1;
  std::string state_dir;  // "" = the config's federation.state_store
  // Byzantine mode: "field=value" assignments to the config's attack section (e.g.
  // "name=alie", "clients=0,1,2"), applied to the config the server sent, with attack.at
  // forced to "worker": this worker then attacks with the clients it serves that are in
  // attack.clients (the set also tells colluding attacks who the honest clients are).
  std::vector<std::string> attack;
};

// The config the server sent with the worker's attack assignments applied and checked
// (InvalidArgument naming the field); `cfg` itself when there are none.
absl::StatusOr<v1::ExperimentConfig> WithWorkerAttack(const v1::ExperimentConfig& cfg,
                                                       const std::vector<std::string>& attack);

absl::StatusOr<RemoteWorkerSet> SetUpRemoteWorkers(const v1::ExperimentConfig& cfg,
                                                   const WorkerSetupOptions& o);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_WORKER_SETUP_H_
