// Membership: slots, joins, take-overs and liveness of the deployed server's workers (see
// membership.h). Thread-safe: every method locks mu_; nothing here calls out while holding it.
#include "comm/membership.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace fedtrain {

std::optional<SessionCredential> ParseSessionCredential(absl::string_view value) {
  // "<worker id>.<64 hex digits>"
  if (value.size() > 96) return std::nullopt;
  const size_t dot = value.find('.');
  SessionCredential c;
  if (dot == absl::string_view::npos || dot + 65 != value.size() ||
      !absl::SimpleAtoi(value.substr(0, dot), &c.worker_id) || c.worker_id == 0)
    return std::nullopt;
  const absl::string_view hex = value.substr(dot + 1);
  if (!std::all_of(hex.begin(), hex.end(), [](char ch) {
        return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
      }))
    return std::nullopt;
  c.secret = absl::HexStringToBytes(hex);
  return c;
}

Membership::Membership(uint32_t num_slots, absl::Duration heartbeat_interval)
    : num_slots_(num_slots), heartbeat_interval_(heartbeat_interval) {
  absl::MutexLock lock(&mu_);
  routing_.assign(num_slots_, 0);
}

bool Membership::LiveLocked(const Worker& w, absl::Time now) const {
  if (w.left) return false;
  if (w.stream_open) return true;
  if (w.had_stream) return false;  // its task stream broke: the process died or lost us
  return now - w.last_seen < 3 * heartbeat_interval_;
}

bool Membership::MayTakeOverLocked(uint32_t slot, const std::string& identity) const {
  const uint64_t holder = routing_[slot];
  return holder == 0 || workers_.at(holder).identity == identity;
}

absl::StatusOr<Membership::Joined> Membership::Join(const std::string& name,
                                                    std::optional<uint32_t> want,
                                                    absl::Time now, std::string session,
                                                    const std::string& identity) {
  absl::MutexLock lock(&mu_);
  const uint32_t w = num_slots_;
  uint32_t slot = w;
  // An identified worker's slot is the one it holds already, if any.
  std::optional<uint32_t> own;
  if (!identity.empty())
    for (uint32_t i = 0; i < w && !own.has_value(); ++i)
      if (routing_[i] != 0 && workers_.at(routing_[i]).identity == identity) own = i;
  if (own.has_value()) {
    if (want.has_value() && *want != *own)
      return absl::InvalidArgumentError(absl::StrCat(identity, " holds slot ", *own,
                                                     ", not slot ", *want));
    want = own;
  }
  if (want.has_value()) {
    if (*want >= w)
      return absl::InvalidArgumentError(absl::StrCat("slot ", *want,
                                                     " does not exist: the run has ", w,
                                                     " workers (slots 0 to ", w - 1, ")"));
    const uint64_t holder = routing_[*want];
    if (holder != 0 && LiveLocked(workers_.at(holder), now))
      return absl::AlreadyExistsError(absl::StrCat("slot ", *want, " is held by live worker ",
                                                   holder, " (", workers_.at(holder).name, ")"));
    if (!MayTakeOverLocked(*want, identity))
      return absl::PermissionDeniedError(absl::StrCat(
          "slot ", *want, " belongs to ",
          workers_.at(holder).identity.empty() ? std::string("workers of the shared token")
                                                : workers_.at(holder).identity));
    slot = *want;
  } else {
    for (uint32_t i = 0; i < w && slot == w; ++i)
      if (routing_[i] == 0) slot = i;
    for (uint32_t i = 0; i < w && slot == w; ++i)
      if (!LiveLocked(workers_.at(routing_[i]), now) && MayTakeOverLocked(i, identity)) slot = i;
  }
  if (slot == w)
    return absl::FailedPreconditionError(absl::StrCat("the run already has its ", w, " workers"));
  Joined j;
  j.replaced = routing_[slot];
  if (j.replaced != 0) workers_.at(j.replaced).left = true;  // taken over from a gone holder
  j.worker_id = next_id_++;
  Worker& rec = workers_[j.worker_id];
  rec.name = name;
  rec.session = std::move(session);
  rec.identity = identity;
  rec.last_seen = now;
  routing_[slot] = j.worker_id;
  full_ = full_ || std::find(routing_.begin(), routing_.end(), 0) == routing_.end();
  j.slot = slot;
  j.num_slots = w;
  return j;
}

bool Membership::SessionMatches(uint64_t worker_id, const std::string& session) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  return it != workers_.end() && SameSecret(session, it->second.session);
}

bool SameSecret(absl::string_view a, absl::string_view want) {
  if (a.size() != want.size() || want.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ want[i]);
  return diff == 0;
}

bool Membership::Heartbeat(uint64_t worker_id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.left) return false;
  it->second.last_seen = now;
  return true;
}

void Membership::Leave(uint64_t worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.left = true;
}

bool Membership::IsMember(uint64_t worker_id) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  return it != workers_.end() && !it->second.left;
}

absl::Status Membership::OpenStream(uint64_t worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.left)
    return absl::FailedPreconditionError(absl::StrCat("worker ", worker_id, " has not joined"));
  if (it->second.stream_open)
    return absl::AlreadyExistsError("this worker already has a task stream");
  it->second.stream_open = true;
  it->second.had_stream = true;
  return absl::OkStatus();
}

void Membership::CloseStream(uint64_t worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.stream_open = false;
}

bool Membership::full() const {
  absl::MutexLock lock(&mu_);
  return full_;
}

size_t Membership::num_joined() const {
  absl::MutexLock lock(&mu_);
  return workers_.size();
}

std::vector<uint64_t> Membership::routing() const {
  absl::MutexLock lock(&mu_);
  if (!full_) return {};
  return routing_;
}

absl::StatusOr<uint32_t> Membership::SlotOfClient(uint64_t client_id) const {
  absl::MutexLock lock(&mu_);
  if (!full_) return absl::UnavailableError("not every worker has joined");
  return static_cast<uint32_t>(client_id % num_slots_);
}

bool Membership::SlotLive(uint32_t slot, absl::Time now) const {
  absl::MutexLock lock(&mu_);
  if (slot >= num_slots_ || routing_[slot] == 0) return false;
  return LiveLocked(workers_.at(routing_[slot]), now);
}

absl::StatusOr<uint64_t> Membership::TaskRecipient(uint32_t slot) const {
  absl::MutexLock lock(&mu_);
  if (slot >= num_slots_ || routing_[slot] == 0)
    return absl::UnavailableError(absl::StrCat("slot ", slot, " has no worker"));
  const uint64_t wid = routing_[slot];
  const Worker& rec = workers_.at(wid);
  if (rec.left)
    return absl::UnavailableError(absl::StrCat("worker ", wid, " (slot ", slot, ") has left"));
  // A worker that joined but has not opened its task stream yet (a slow start on a loaded
  // machine can take longer than the heartbeats that would keep it live) gets the task
  // queued for when it does; if it never does, the round's deadline covers the task.
  if (rec.had_stream && !rec.stream_open)
    return absl::UnavailableError(absl::StrCat("worker ", wid, " (slot ", slot, ", ", rec.name,
                                               ") is gone: its task stream broke"));
  return wid;
}

bool Membership::RoutedTo(uint64_t client_id, uint64_t worker_id) const {
  absl::MutexLock lock(&mu_);
  return full_ && routing_[client_id % num_slots_] == worker_id;
}

}  // namespace fedtrain
