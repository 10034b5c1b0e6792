// Membership of the deployed server's run: which worker holds which of the run's slots, and
// whether it is still live. Plain C++, no gRPC; GrpcServerTransport (comm/grpc_server.h)
// answers Join, Heartbeat, Leave and its task streams from it, and routes client i to the
// worker holding slot (i mod W). The rules:
//   - Join without a slot takes the first vacant slot, else the first whose holder is gone;
//     with a slot, that slot unless it does not exist or its holder is live. Worker ids count
//     from 1 and are never reused.
//   - A filled slot never becomes vacant again: a worker joining into it takes it over from
//     a holder that is gone, which is then replaced (no longer a member). Once every slot
//     has been filled, membership is closed (full()) and routing starts.
//   - A holder is live while it has not left (or been replaced) and its task stream is open;
//     once a stream it opened has closed it is gone at once; one that never opened a stream
//     is live for three heartbeat intervals after its Join or last Heartbeat.
// Time is passed in (`now`): nothing here reads the clock.
// Thread-safe: every method takes the object's own mutex. Owns only its records (names,
// ids); task queues and streams stay with the caller, which reports streams opening and
// closing (OpenStream / CloseStream).
#ifndef FEDTRAIN_COMM_MEMBERSHIP_H_
#define FEDTRAIN_COMM_MEMBERSHIP_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fedtrain {

// A worker's session credential as it sends it with every call after Join (the
// "x-fedtrain-session" metadata): "<worker id>.<64 lowercase hex digits of its secret>".
struct SessionCredential {
  uint64_t worker_id = 0;
  std::string secret;  // 32 bytes, to check with Membership::SessionMatches
};
// Parses `value` (at most 96 bytes, a non-zero worker id); nullopt when it is not one.
std::optional<SessionCredential> ParseSessionCredential(absl::string_view value);

// Whether secret `a` equals `want` (non-empty), in time that depends on their lengths only
// (lengths are not secret). For tokens and session secrets.
bool SameSecret(absl::string_view a, absl::string_view want);

class Membership {
 public:
  struct Joined {
    uint64_t worker_id = 0;
    uint32_t slot = 0;
    uint32_t num_slots = 0;
    uint64_t replaced = 0;  // the worker that held the slot before, now replaced (0: none)
  };

  // `num_slots` (W, at least 1) workers make up the run.
  Membership(uint32_t num_slots, absl::Duration heartbeat_interval);
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // A worker named `name` joins, into `slot` when given, proving itself later with `session`
  // (the caller's random secret; see SessionMatches). `identity` is who the credentials say
  // it is (a per-worker token's name, a client certificate's identity) or empty (the run's
  // shared token): an identified worker holds one slot, the one it first joined, and only
  // it can take that slot over; an anonymous worker takes over only anonymous workers'
  // slots. InvalidArgument: no such slot, or another slot than the identity's;
  // AlreadyExists: that slot's holder is live; FailedPrecondition: no slot is vacant or held
  // by a worker that is gone (and may be taken over by this one).
  absl::StatusOr<Joined> Join(const std::string& name, std::optional<uint32_t> slot,
                              absl::Time now, std::string session = {},
                              const std::string& identity = {}) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `session` is the secret worker `worker_id` joined with (compared in constant
  // time; false for an unknown id or an empty secret). A worker that left or was replaced
  // still matches: its calls are then answered as from a worker that is gone.
  bool SessionMatches(uint64_t worker_id, const std::string& session) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records a sign of life; false when `worker_id` is not a member.
  bool Heartbeat(uint64_t worker_id, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker leaves (no-op for an unknown id).
  void Leave(uint64_t worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Joined, and neither left nor replaced.
  bool IsMember(uint64_t worker_id) const ABSL_LOCKS_EXCLUDED(mu_);

  // The worker opened its task stream. FailedPrecondition: not a member; AlreadyExists: it
  // has one open.
  absl::Status OpenStream(uint64_t worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Its task stream closed (no-op for an unknown id).
  void CloseStream(uint64_t worker_id) ABSL_LOCKS_EXCLUDED(mu_);

  uint32_t num_slots() const { return num_slots_; }
  // Every slot has been filled once (membership closed).
  bool full() const ABSL_LOCKS_EXCLUDED(mu_);
  // Workers that joined so far, replaced ones included.
  size_t num_joined() const ABSL_LOCKS_EXCLUDED(mu_);
  // The worker id holding each slot; empty until full().
  std::vector<uint64_t> routing() const ABSL_LOCKS_EXCLUDED(mu_);

  // The slot client `client_id` is routed to (client_id mod W); Unavailable until full().
  absl::StatusOr<uint32_t> SlotOfClient(uint64_t client_id) const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the holder of `slot` is live (false for a vacant slot).
  bool SlotLive(uint32_t slot, absl::Time now) const ABSL_LOCKS_EXCLUDED(mu_);
  // The worker to queue `slot`'s tasks for: its holder, unless that left (Unavailable) or
  // its task stream broke (Unavailable). A holder that has not opened its stream yet gets
  // them. Unavailable for a vacant slot as well.
  absl::StatusOr<uint64_t> TaskRecipient(uint32_t slot) const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether client `client_id` is routed to `worker_id` (false until full()).
  bool RoutedTo(uint64_t client_id, uint64_t worker_id) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Worker {
    std::string name;
    std::string session;
    std::string identity;  // empty: joined with the run's shared token
    bool left = false;         // left, or replaced by a worker that took its slot over
    bool had_stream = false;   // opened its task stream at least once
    bool stream_open = false;  // its task stream is open now
    absl::Time last_seen;      // Join or last Heartbeat
  };

  bool LiveLocked(const Worker& w, absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a worker of `identity` may take over `slot` from its holder (who is gone).
  bool MayTakeOverLocked(uint32_t slot, const std::string& identity) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint32_t num_slots_;
  const absl::Duration heartbeat_interval_;
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> routing_ ABSL_GUARDED_BY(mu_);  // slot -> worker id (0: vacant)
  bool full_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_MEMBERSHIP_H_
