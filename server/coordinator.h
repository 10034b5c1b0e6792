// The Coordinator: the federated round loop (docs/architecture.md "One round"): select clients,
// send each a task with the server half's down payload, collect replies until all arrive or the
// round deadline passes, decode and validate them, hand the valid ones (sorted by client id) to the
// server half, evaluate every E rounds, write a metrics row. The same Coordinator runs the
// simulation (InProcHub) and the deployed server (gRPC). Not thread-safe: one thread (the round
// loop) owns it and all round state.
#ifndef FEDTRAIN_SERVER_COORDINATOR_H_
#define FEDTRAIN_SERVER_COORDINATOR_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "aggregators/algorithm.h"
#include "attacks/attack.h"
#include "comm/transport.h"
#include "compression/privacy_accountant.h"
#include "compression/uplink_codec.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/thread_pool.h"

namespace fedtrain {

struct CoordinatorOptions {
  int64_t num_clients = 0;
  int64_t clients_per_round = 0;
  int64_t rounds = 0;
  uint64_t seed = 0;           // keys the workers' RngStreams
  uint64_t sampling_seed = 0;  // keys client selection (docs/federated.md §7.5)
  double lr = 0.01;            // eta_l^0
  double lr_decay = 1.0;       // eta_l^r = lr * lr_decay^r
  int64_t eval_every = 1;
  absl::Duration round_timeout = absl::Minutes(10);
  // Stragglers (federation.over_selection / min_updates): sample
  // ceil(clients_per_round * (1 + over_selection)) clients (at most num_clients) and close the
  // round once clients_per_round updates were accepted; the clients still pending are dropped
  // ("over-selected"). A round ending with fewer than min_updates accepted updates fails the
  // run before the model is touched.
  double over_selection = 0.0;
  int64_t min_updates = 0;
  // Fail the run when a round ends with a sampled client's update missing (federation.require_all).
  bool require_all = false;
  // federation.max_rejected_rounds: the run fails (FailedPrecondition with the last round's
  // rejection reasons) once this many consecutive rounds accepted no update although at least
  // one reply arrived and was rejected. 0: never. The count starts afresh after Restore.
  int64_t max_rejected_rounds = 0;
  // Deployed runs: remember, for every client, 1 + the last round whose update was accepted,
  // and send it in each task (TaskMsg.accepted_through), so that a worker can roll back a
  // client state the server never took (client/worker.h WorkerOptions::versioned_state).
  // Costs 16 bytes per client that ever took part; the simulation leaves it off.
  bool track_accepted = false;
  // The number of training samples each client holds, as the server knows it from the
  // partition (when set): an update that reports another number is rejected, so a worker
  // cannot weight its update beyond its client's share. Unset: any positive count.
  std::function<uint64_t(ClientId)> client_samples;
  // Add the reducer's per-round diagnostics to the metrics row (columns reducer_discarded and
  // reducer_diag; aggregators/reducer.h ReduceDiagnostics). Set for any reducer but "mean", so
  // the columns of a run are the same in every round.
  bool reducer_diagnostics = false;
  // Fault injection: the accepted updates of attack.clients are replaced before the server
  // half sees them (attacks/attack.h); the metrics row then has an "attacked" column.
  AttackOptions attack;
  // Differential privacy (compression/privacy_accountant.h; may be null): the guarantee after
  // every round goes into the round's summary and metrics row (columns epsilon, delta), and
  // with privacy_budget > 0 Run() stops, before a round that would take epsilon above the
  // budget, with stop_reason() saying so. Every sampled client counts as having sent.
  std::shared_ptr<const PrivacyAccountant> privacy;
  double privacy_budget = 0.0;
  // Central Gaussian noise (privacy.placement central, docs/privacy.md §1.4): every accepted
  // update gets N(0, σ²) added to each coordinate, drawn from RngStream(seed, round, client,
  // kPrivacy), before the server half sees it; the mean of K updates then carries the noise
  // of DP-FedAvg's N(0, (z S)²) on the sum. 0: off.
  double central_noise_sigma = 0.0;
};

// Everything a Coordinator needs to continue a run (server/checkpoint.h writes it to disk).
struct CoordinatorSnapshot {
  ServerState state;
  std::map<std::string, std::vector<double>> algorithm_extra;  // ServerAlgorithm::SaveExtraState
  std::map<ClientId, uint64_t> accepted_through;
  uint64_t cum_bytes_up = 0, cum_bytes_down = 0;
  double wall_s = 0.0;
};

// Evaluates the global model on the test set.
using Evaluator = std::function<absl::StatusOr<EvalMetrics>(ConstVec w)>;

struct RoundSummary {
  uint64_t round = 0;
  int64_t sampled = 0, received = 0, rejected = 0;
  int64_t refused = 0;  // messages the transport refused before they reached the round loop
  // Sampled clients whose update the round went on without (not delivered, no reply by the
  // deadline, or rejected); over-selected clients, dropped on purpose, do not count.
  int64_t missing = 0;
  double train_loss = 0.0;  // sample-weighted mean of the clients' reported losses
  std::optional<EvalMetrics> test;
  uint64_t bytes_up = 0, bytes_down = 0;  // serialized message sizes this round
  uint64_t cum_bytes_up = 0, cum_bytes_down = 0;
  double lr = 0.0;
  double wall_s = 0.0;  // since Init
  ReduceDiagnostics reducer;  // what the reducer reported this round
  int64_t attacked = 0;       // updates replaced or omitted by the configured attack
  std::vector<std::string> rejections;  // one reason per rejected or failed reply
  std::optional<DpGuarantee> privacy;   // the guarantee after this round (privacy runs)
  std::string privacy_guarantee;        // against whom it holds ("untrusted_server", ...)
};

// `m` distinct client ids out of [0, n), sorted, drawn from RngStream(seed, round, 0,
// kSampling) with Floyd's algorithm (O(m) whatever n is). m == n returns every id.
std::vector<ClientId> SampleClients(uint64_t seed, uint64_t round, int64_t n, int64_t m);
// How many clients a round samples: clients_per_round, plus ceil(clients_per_round *
// over_selection) extra when over_selection > 0, at most num_clients.
int64_t SampleSize(int64_t num_clients, int64_t clients_per_round, double over_selection);

class Coordinator {
 public:
  // Borrows everything; `evaluator`, `sink` and `pool` may be null / empty.
  // `uplink` decodes the replies (with tracker feedback also their dense initialisations;
  // ClientUpdate::dense tells the algorithm which parts used it).
  Coordinator(CoordinatorOptions opts, ServerAlgorithm* algo, ServerTransport* transport,
              const UplinkCodec* uplink, Evaluator evaluator, MetricsSink* sink,
              const Clock* clock, ThreadPool* pool);
  // Sets the initial global model (dimension d).
  absl::Status Init(ConstVec x0);
  // Runs the next round.
  absl::StatusOr<RoundSummary> RunRound();
  // Runs the remaining rounds, calling `on_round` after each; then stops with the error
  // `after_round` (may be null) returns, if any (e.g. a checkpoint that could not be written).
  absl::Status Run(const std::function<void(const RoundSummary&)>& on_round,
                   const std::function<absl::Status()>& after_round = nullptr);

  // The state after the last completed round, and its restoration into a Coordinator that
  // was Init()ed with the same algorithm and model size (InvalidArgument naming what differs).
  absl::StatusOr<CoordinatorSnapshot> Snapshot() const;
  absl::Status Restore(CoordinatorSnapshot snap);

  // Why Run() ended before opts.rounds ("" when it did not): the privacy budget.
  const std::string& stop_reason() const { return stop_reason_; }
  // The privacy guarantee after the rounds done so far (privacy runs).
  std::optional<DpGuarantee> privacy_spent() const;

  const ServerState& state() const { return state_; }
  ConstVec model() const { return state_.x; }
  int64_t rounds_done() const { return static_cast<int64_t>(state_.round); }

 private:
  struct ClientRecord;
  struct Round;
  // The steps of RunRound, in order (coordinator.cc).
  absl::Status Broadcast(Round* r);
  absl::Status Collect(Round* r);
  absl::StatusOr<ClientRecord> Accept(const ReceivedUpdate& got, size_t dim) const;
  static ClientUpdate View(ClientId id, const ClientRecord& rec);
  absl::Status CheckProgress(const Round& r);
  absl::Status Aggregate(Round* r);
  absl::Status Record(Round* r);
  int64_t ToSample() const;
  // The most messages any client has sent once `sampled` send one more.
  uint32_t MaxSendsWith(const std::vector<ClientId>& sampled) const;
  void CountSends(const std::vector<ClientId>& sampled);

  CoordinatorOptions opts_;
  ServerAlgorithm* algo_;
  ServerTransport* transport_;
  const UplinkCodec* uplink_;
  Evaluator evaluator_;
  MetricsSink* sink_;
  const Clock* clock_;
  ThreadPool* pool_;
  ServerState state_;
  absl::Time start_;
  uint64_t cum_up_ = 0, cum_down_ = 0;
  std::map<ClientId, uint64_t> accepted_through_;  // with opts_.track_accepted
  // Rounds since the last accepted update whose replies were all rejected, from round
  // rejected_streak_first_ on (rounds without replies are skipped).
  int64_t rejected_streak_ = 0;
  uint64_t rejected_streak_first_ = 0;
  bool initialised_ = false;
  // Privacy accounting: messages sent per client, their maximum, why Run() stopped early.
  std::vector<uint32_t> sends_;
  uint32_t max_sends_ = 0;
  std::string stop_reason_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_SERVER_COORDINATOR_H_
