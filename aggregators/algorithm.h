// The federated-algorithm contract of docs/federated.md §0.1, server side: server state,
// client state, the round's information and the server half (ServerAlgorithm). The client
// half is in aggregators/client_algorithm.h, so a server-side user (the Coordinator, a
// plug-in's server half) does not pull in models/ and data/. Payload and ClientUpdate come
// from wire/payload.h.
// Pure: no sockets, files or threads of its own; a ThreadPool may be lent for kernels.
// Server halves are not thread-safe (the Coordinator's round loop owns them).
#ifndef FEDTRAIN_AGGREGATORS_ALGORITHM_H_
#define FEDTRAIN_AGGREGATORS_ALGORITHM_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/thread_pool.h"
#include "aggregators/reducer.h"
#include "core/vec.h"
#include "wire/client_state.h"
#include "wire/payload.h"

namespace fedtrain {

// Everything an algorithm keeps on the server, as named vectors so it can be checkpointed.
struct ServerState {
  std::vector<float> x;                               // global model
  std::map<std::string, std::vector<float>> vectors;  // e.g. "momentum"
  uint64_t round = 0;  // rounds completed; kept by the Coordinator, algorithms only read it
};

struct RoundInfo {
  uint64_t round = 0;
  std::vector<ClientId> sampled, dropped, rejected;
  uint64_t num_clients = 0;  // N
  // The local learning rate eta^r the round's clients were sent (local.lr * lr_decay^round):
  // the rate that produced this round's updates. 0 when the caller does not know it.
  double lr = 0.0;
  ThreadPool* pool = nullptr;  // may be null; kernels split by index (thread-count invariant)
  // Where reducers report what they did this round (the metrics row); may be null.
  ReduceDiagnostics* diagnostics = nullptr;
};

// ServerState::vectors entries under this prefix belong to stateful reducers: created on
// their first round, so a server state restored from a checkpoint may hold them before the
// algorithm's Init does.
inline constexpr char kReducerStatePrefix[] = "reducer.";

// The ids of `updates`, in order (for ReduceContext::ids).
std::vector<uint64_t> ClientIds(absl::Span<const ClientUpdate> updates);
// A reducer call inside a server half's Update: the round, pool and diagnostics of `info`,
// the stateful rules' memory in s->vectors under "reducer.<key>" (so it is checkpointed with
// the rest of the server state), and the inputs' client ids (`ids` must outlive the call).
ReduceContext RoundReduceContext(const RoundInfo& info, ServerState* s, const std::string& key,
                                 const std::vector<uint64_t>& ids);

class ServerAlgorithm {
 public:
  virtual ~ServerAlgorithm() = default;
  // Sets up state around the initial model x0.
  virtual absl::Status Init(ConstVec x0, ServerState* s) = 0;
  // Number of d-vectors in each client's up payload (validated by the Coordinator).
  virtual size_t num_up_parts() const { return 1; }
  // What every sampled client receives this round. The default sends the global model alone
  // ({x}, no scalars); a server half with more to send (control variates, momentum) overrides
  // it, keeping x as parts[0].
  virtual absl::Status DownPayload(const ServerState& s, Payload* down) const {
    down->parts.assign(1, s.x);
    down->scalars.clear();
    return absl::OkStatus();
  }
  // Checks one decoded update before the round's Update (the Coordinator rejects the update,
  // with this status's message as the reason, when it is not OK). Must not change state.
  virtual absl::Status CheckUpdate(const ClientUpdate& u) const {
    (void)u;
    return absl::OkStatus();
  }
  // `updates` are sorted by client id; accumulate in double, in that order. May be empty
  // (every sampled client failed): the algorithm decides what that means (FedAvg: no move).
  virtual absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                              ServerState* s) = 0;
  // Server checkpoints (server/checkpoint.h). A server half whose state lives entirely in
  // ServerState (every built-in one but the tracker wrapper) keeps the defaults. One that keeps
  // state across rounds in its own members must write it here and read it back in
  // LoadExtraState, or a resumed run would not continue where it stopped.
  virtual absl::Status SaveExtraState(std::map<std::string, std::vector<double>>* out) const {
    (void)out;
    return absl::OkStatus();
  }
  // Called after Init; `in` is what SaveExtraState wrote. The default refuses any entry.
  virtual absl::Status LoadExtraState(const std::map<std::string, std::vector<double>>& in) {
    if (in.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "the checkpoint holds algorithm state (", in.begin()->first,
        ", ...) that this server algorithm does not read"));
  }
};

// Normalised aggregation weights over the received updates (docs/federated.md §0): "samples" gives
// n_i / sum n_j, "uniform" 1/S. InvalidArgument for an unknown rule or a zero sample total.
absl::Status AggregationWeights(absl::Span<const ClientUpdate> updates,
                                const std::string& rule, std::vector<double>* w);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_ALGORITHM_H_
