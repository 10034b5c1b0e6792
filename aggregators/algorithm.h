// The federated-algorithm contract of specs/federated.md §0.1: server state, client state,
// down/up payloads, a local update (client half) and a server update (server half).
// Pure: no sockets, files or threads of its own; a ThreadPool may be lent for kernels.
// Server halves are not thread-safe (the Coordinator's round loop owns them); client halves
// are thread-compatible (LocalUpdate is const and runs concurrently for different clients).
#ifndef FEDTRAIN_AGGREGATORS_ALGORITHM_H_
#define FEDTRAIN_AGGREGATORS_ALGORITHM_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "core/vec.h"
#include "data/dataset.h"
#include "models/local_sgd.h"
#include "models/trainer.h"

namespace fedtrain {

// Vectors (each d floats) and named scalars exchanged between the halves. parts[0] of the
// down payload is always the global model x.
struct Payload {
  std::vector<std::vector<float>> parts;
  std::map<std::string, double> scalars;
};

// Everything an algorithm keeps on the server, as named vectors so it can be checkpointed.
struct ServerState {
  std::vector<float> x;                               // global model
  std::map<std::string, std::vector<float>> vectors;  // e.g. "momentum"
  uint64_t round = 0;  // rounds completed; kept by the Coordinator, algorithms only read it
};

// Per-client persistent state (control variates, EF memory, ...); survives absent rounds.
// `wide` holds double-precision vectors (error-feedback errors and trackers, spec
// compression.md §0), keyed like "ef.e.0" (error of up part 0).
struct ClientState {
  std::map<std::string, std::vector<float>> vectors;
  std::map<std::string, std::vector<double>> wide;
};

// A decoded, validated client message, as the server half sees it.
struct ClientUpdate {
  ClientId id = 0;
  uint64_t num_samples = 0;  // n_i
  int64_t steps = 0;         // K_i actually run
  std::vector<ConstVec> parts;
  // Per part: true when the part is an error-feedback tracker's dense initialisation
  // (identity codec) rather than a compressed message. Empty means all false.
  std::vector<bool> dense;
};

struct RoundInfo {
  uint64_t round = 0;
  std::vector<ClientId> sampled, dropped, rejected;
  uint64_t num_clients = 0;  // N
  ThreadPool* pool = nullptr;  // may be null; kernels split by index (thread-count invariant)
};

class ServerAlgorithm {
 public:
  virtual ~ServerAlgorithm() = default;
  // Sets up state around the initial model x0.
  virtual absl::Status Init(ConstVec x0, ServerState* s) = 0;
  // Number of d-vectors in each client's up payload (validated by the Coordinator).
  virtual size_t num_up_parts() const { return 1; }
  virtual absl::Status DownPayload(const ServerState& s, Payload* down) const = 0;
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

// What a client half works with during one task.
struct LocalContext {
  Trainer* trainer = nullptr;
  DataView data;
  LocalSgdOptions sgd;   // lr already decayed for this round
  RngStream* rng = nullptr;  // minibatch stream keyed (seed, round, client, kMinibatch)
  uint64_t round = 0;
  ClientId client = 0;
};

struct LocalResult {
  int64_t steps = 0;
  double train_loss = 0.0;
};

class ClientAlgorithm {
 public:
  virtual ~ClientAlgorithm() = default;
  virtual absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                                   Payload* up, LocalResult* result) const = 0;
  // Called by the Worker after the uplink pipeline and before the client's state is saved,
  // with `up` as LocalUpdate produced it and `sent` the same payload exactly as the server will
  // decode it (each part through its codec, bit for bit; scalars copied). Lets a client half
  // advance a tracker of the server's state by what the server actually received, so that
  // e.g. SCAFFOLD's c = (1/N) sum c_i survives a lossy uplink. Default: nothing.
  // `sent` is the decoded *message*: it is the part's reconstructed value only with
  // compression.feedback "none" (clipping and any compressor allowed). With error feedback
  // (ef14 / ef21 / econtrol) a message is a correction or tracker increment, so algorithms
  // that rely on CommitSent must be run with feedback "none".
  // An error fails the task; the stored state then stays as it was before the task.
  virtual absl::Status CommitSent(const Payload& up, const Payload& sent,
                                  ClientState* state) const {
    (void)up;
    (void)sent;
    (void)state;
    return absl::OkStatus();
  }
};

// The common ending of a client half that sends one vector: up = {part}, no scalars, and the
// local-SGD run's step count and mean loss as the result.
void ReplyWith(std::vector<float> part, const LocalSgdResult& r, Payload* up,
               LocalResult* result);

// Normalised aggregation weights over the received updates (specs §0): "samples" gives
// n_i / sum n_j, "uniform" 1/S. InvalidArgument for an unknown rule or a zero sample total.
absl::Status AggregationWeights(absl::Span<const ClientUpdate> updates,
                                const std::string& rule, std::vector<double>* w);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_ALGORITHM_H_
