// The server end of a federated transport: hand a task to a client, receive updates.
// Adapters move messages and report failures; they know nothing of rounds or models.
// Implementations are thread-safe.
#ifndef FEDTRAIN_COMM_TRANSPORT_H_
#define FEDTRAIN_COMM_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/time/time.h"
#include "core/vec.h"
#include "fedtrain/v1/messages.pb.h"

namespace fedtrain {

// An update as a transport delivers it. A transport may leave large tensors' bytes where
// they arrived instead of copying them into the message: then `part_data` holds one Cord per
// msg.up().parts(i), and that part's own `data` is empty (DecodePayload reads either form).
// Otherwise `part_data` is empty and the message is complete.
struct ReceivedUpdate {
  v1::UpdateMsg msg;
  std::vector<absl::Cord> part_data;
};

// The size `u.msg` serializes to with its parts' bytes in it, whichever form it came in
// (the Coordinator's bytes_up metric, the same in simulation and deployment).
uint64_t SerializedSize(const ReceivedUpdate& u);

// `u.msg` with its parts' bytes in it (copied out of part_data), for callers that want one
// message; DecodePayload does not need it.
v1::UpdateMsg Assemble(ReceivedUpdate u);

// One client's task. The round's common part (round, lr, seed and the down payload, which is
// the model: d floats) is encoded once per round and shared read-only by every client's task;
// only the client's own fields are per task. Reads like a v1::TaskMsg.
struct Task {
  std::shared_ptr<const v1::TaskMsg> common;  // client_id and accepted_through unused
  ClientId client_id = 0;
  uint64_t accepted_through = 0;

  // A task that owns the whole message `m` (its client fields are taken from it).
  static Task From(v1::TaskMsg m);
  // A task that borrows `m`, which must outlive it (for a synchronous call).
  static Task Borrow(const v1::TaskMsg& m);

  uint64_t round() const { return common->round(); }
  const v1::Payload& down() const { return common->down(); }
  double lr() const { return common->lr(); }
  uint64_t seed() const { return common->seed(); }
  // The whole message (a copy of the common part with the client's fields), for a transport
  // that sends messages on.
  v1::TaskMsg Message() const;
  // Message()'s serialized size, without making it (the bytes_down metric).
  uint64_t ByteSize() const;
};

class ServerTransport {
 public:
  virtual ~ServerTransport() = default;
  // Queues `task` for client `task.client_id`; returns without waiting for the reply.
  // Unavailable when the client cannot be reached.
  virtual absl::Status SendTask(Task task) = 0;
  // Next update from any client; DeadlineExceeded when none arrives by `deadline`.
  virtual absl::StatusOr<ReceivedUpdate> ReceiveUpdate(absl::Time deadline) = 0;
  // Messages the transport itself refused since the last call (one reason each, naming the
  // sender), for the round's metrics and log. In-process transports refuse nothing.
  virtual std::vector<std::string> TakeRefused() { return {}; }
};

// The reply to `task`: the handler's update, or an update that carries only the failure
// (round, client id and UpdateMsg.error), which the Coordinator counts as a rejection.
inline v1::UpdateMsg ReplyOrError(const Task& task, absl::StatusOr<v1::UpdateMsg> r) {
  if (r.ok()) return std::move(r).value();
  v1::UpdateMsg reply;
  reply.set_round(task.round());
  reply.set_client_id(task.client_id);
  reply.set_error(r.status().ToString());
  return reply;
}

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_TRANSPORT_H_
