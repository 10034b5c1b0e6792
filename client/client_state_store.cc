#include "client/client_state_store.h"

namespace fedtrain {

absl::Status MemoryClientStateStore::Load(ClientId id, ClientState* out) {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(id);
  *out = it == states_.end() ? ClientState{} : it->second;
  return absl::OkStatus();
}

absl::Status MemoryClientStateStore::Save(ClientId id, ClientState state) {
  absl::MutexLock lock(&mu_);
  if (state.vectors.empty() && state.wide.empty()) {
    states_.erase(id);
  } else {
    states_[id] = std::move(state);
  }
  return absl::OkStatus();
}

size_t MemoryClientStateStore::size() const {
  absl::MutexLock lock(&mu_);
  return states_.size();
}

}  // namespace fedtrain
