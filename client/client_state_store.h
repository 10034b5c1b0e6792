// Where per-client state (control variates, error-feedback memory, ...) lives between the
// rounds a client takes part in. The simulation holds every client's state here; a deployed
// worker holds its own. Thread-safe: different clients are loaded and saved concurrently.
// A client's state is only touched while that client runs a task.
#ifndef FEDTRAIN_CLIENT_CLIENT_STATE_STORE_H_
#define FEDTRAIN_CLIENT_CLIENT_STATE_STORE_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "aggregators/algorithm.h"

namespace fedtrain {

class ClientStateStore {
 public:
  virtual ~ClientStateStore() = default;
  // The stored state, or an empty one for a client never seen.
  virtual absl::Status Load(ClientId id, ClientState* out) = 0;
  virtual absl::Status Save(ClientId id, ClientState state) = 0;
};

// Keeps states in memory; states with no vectors are not stored (stateless algorithms pay
// nothing per client, so a million clients cost nothing).
class MemoryClientStateStore final : public ClientStateStore {
 public:
  absl::Status Load(ClientId id, ClientState* out) override;
  absl::Status Save(ClientId id, ClientState state) override;
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  // Immutable once stored, so Load copies a state outside the lock (two worker threads
  // loading model-sized states do not wait on each other's copies).
  absl::flat_hash_map<ClientId, std::shared_ptr<const ClientState>> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CLIENT_CLIENT_STATE_STORE_H_
