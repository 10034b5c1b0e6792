// The server end of a federated transport: hand a task to a client, receive updates.
// Adapters move messages and report failures; they know nothing of rounds or models.
// Implementations are thread-safe.
#ifndef FEDTRAIN_COMM_TRANSPORT_H_
#define FEDTRAIN_COMM_TRANSPORT_H_

#include <cstdint>
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

class ServerTransport {
 public:
  virtual ~ServerTransport() = default;
  // Queues `task` for client `task.client_id()`; returns without waiting for the reply.
  // Unavailable when the client cannot be reached.
  virtual absl::Status SendTask(v1::TaskMsg task) = 0;
  // Next update from any client; DeadlineExceeded when none arrives by `deadline`.
  virtual absl::StatusOr<ReceivedUpdate> ReceiveUpdate(absl::Time deadline) = 0;
  // Messages the transport itself refused since the last call (one reason each, naming the
  // sender), for the round's metrics and log. In-process transports refuse nothing.
  virtual std::vector<std::string> TakeRefused() { return {}; }
};

// The reply to `task`: the handler's update, or an update that carries only the failure
// (round, client id and UpdateMsg.error), which the Coordinator counts as a rejection.
inline v1::UpdateMsg ReplyOrError(const v1::TaskMsg& task, absl::StatusOr<v1::UpdateMsg> r) {
  if (r.ok()) return std::move(r).value();
  v1::UpdateMsg reply;
  reply.set_round(task.round());
  reply.set_client_id(task.client_id());
  reply.set_error(r.status().ToString());
  return reply;
}

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_TRANSPORT_H_
