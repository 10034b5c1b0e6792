#include "client/client_state_store.h"

namespace fedtrain {

absl::Status MemoryClientStateStore::Load(ClientId id, ClientState* out) {
  std::shared_ptr<const ClientState> s;
  {
    absl::MutexLock lock(&mu_);
    auto it = states_.find(id);
    if (it != states_.end()) s = it->second;
  }
  *out = s ? *s : ClientState{};
  return absl::OkStatus();
}

absl::Status MemoryClientStateStore::Save(ClientId id, ClientState state) {
  std::shared_ptr<const ClientState> s;
  if (!state.vectors.empty() || !state.wide.empty())
    s = std::make_shared<const ClientState>(std::move(state));
  std::shared_ptr<const ClientState> old;  // freed after the lock is released
  absl::MutexLock lock(&mu_);
  auto it = states_.find(id);
  if (it != states_.end()) old = std::move(it->second);
  if (s) {
    states_[id] = std::move(s);
  } else if (it != states_.end()) {
    states_.erase(it);
  }
  return absl::OkStatus();
}

size_t MemoryClientStateStore::size() const {
  absl::MutexLock lock(&mu_);
  return states_.size();
}

}  // namespace fedtrain
