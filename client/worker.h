// The Worker: task in, reply out (docs/maintainers.md §6). Runs the client half of the algorithm on
// the task's client data, then the uplink pipeline (compressor -> codec -> message), then the
// algorithm's CommitSent with the payload as the server will decode it, and only then saves the
// client's state (a failed task leaves the stored state as it was). No sockets, no sleeps: the same
// Worker serves the simulation (many per process, one per pool thread) and the deployed worker
// process. Not thread-safe: one Worker per thread (it owns a Trainer with scratch buffers). The
// borrowed algorithm, uplink encoder, data and store must outlive it.
#ifndef FEDTRAIN_CLIENT_WORKER_H_
#define FEDTRAIN_CLIENT_WORKER_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "aggregators/client_algorithm.h"
#include "attacks/attack.h"
#include "client/client_state_store.h"
#include "comm/transport.h"
#include "compression/uplink_codec.h"
#include "compression/compressor.h"
#include "fedtrain/v1/messages.pb.h"
#include "models/local_sgd.h"
#include "models/trainer.h"

namespace fedtrain {

// Client id -> that client's training data. NotFound for an id this worker does not hold.
using ClientDataFn = std::function<absl::StatusOr<DataView>(ClientId)>;

struct WorkerOptions {
  LocalSgdOptions sgd;  // lr is replaced by each task's lr
  size_t num_up_parts = 1;
  // Keep two versions of each (non-empty) client state: the one the task started from and the
  // one it produced, each tagged with the TaskMsg.accepted_through it stands for. A task whose
  // accepted_through says the server never took the last reply (late, refused, lost, or a
  // server restarted from a checkpoint) starts from the older version, so the client's state
  // always matches what the server accepted. The deployed worker turns this on; the
  // simulation, where no reply is lost, leaves it off (states then cost half as much). A state
  // that can be matched to neither (e.g. a worker restarted without its state folder) fails
  // the task with FailedPrecondition naming the client and both rounds.
  bool versioned_state = false;
  // The client half uses ClientAlgorithm::CommitSent (AlgorithmTraits::commit_sent): the
  // Worker then decodes its own message once more and hands it over. Such an algorithm runs
  // with compression.feedback "none" (CheckFeedback refuses the rest at config load; the Worker
  // fails the task otherwise).
  bool commit_sent = false;
  // Byzantine behaviour (attacks/attack.h) when attack.at is kWorker: for the clients in
  // attack.clients, a vector attack or `stale` replaces the update before the uplink
  // pipeline, so the faulty client's message goes through compression and the wire like any
  // other. (Data attacks act in the ClientDataFn instead: runtime/attack_data.h.)
  AttackOptions attack;
  // The clients the server samples in a round (its SampleClients), sorted. Needed by the
  // attacks that use the round's other updates (NeedsReference): the worker recomputes those
  // clients' honest updates, which needs a client half without state (a task fails with
  // FailedPrecondition otherwise).
  std::function<std::vector<ClientId>(uint64_t round)> round_clients;
};

class Worker {
 public:
  Worker(WorkerOptions opts, const ClientAlgorithm* algo, std::unique_ptr<Trainer> trainer,
         ClientDataFn data, ClientStateStore* store, const UplinkCodec* uplink)
      : opts_(std::move(opts)), algo_(algo), trainer_(std::move(trainer)),
        data_(std::move(data)), store_(store), uplink_(uplink) {}

  // Errors: the task's payload fails to decode (InvalidArgument), the client is unknown
  // (NotFound), local training fails. The caller reports them to the server.
  absl::StatusOr<v1::UpdateMsg> Handle(const Task& task);
  absl::StatusOr<v1::UpdateMsg> Handle(const v1::TaskMsg& task) {
    return Handle(Task::Borrow(task));
  }

 private:
  // Replaces `up` (the faulty client's honest update) by what the attack sends; `history`
  // holds stale's earlier updates and is advanced.
  absl::Status Attack(const Task& task, const Payload& down, const LocalContext& ctx,
                      ClientState* history, Payload* up);
  // The honest update client `c` would send in this round (its local training from an empty
  // state), for the attacks that need the round's other updates.
  absl::Status Recompute(const Task& task, const Payload& down, const LocalContext& ctx,
                         ClientId c, Payload* up);

  WorkerOptions opts_;
  const ClientAlgorithm* algo_;
  std::unique_ptr<Trainer> trainer_;
  ClientDataFn data_;
  ClientStateStore* store_;
  const UplinkCodec* uplink_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CLIENT_WORKER_H_
