// SCAFFOLD (stochastic controlled averaging), docs/federated.md §2, options I and II.
//
// State and sizes (d = model dimension):
//   server x, c (2d; c^0 = 0); client c_i (d; c_i^0 = 0, ClientState key "c");
//   down (x, c) (2d); up (Delta_i, Delta c_i) (2d). Wire: 32 bits per coordinate each way
//   (identity codec), i.e. twice FedAvg's traffic.
// Client (k = 0..K_i-1): y_{k+1} = y_k - eta_l (g_k - c_i + c), c_i^+ by
//   option I : c_i^+ = grad f_i(x^r) on the whole local data set (one extra full pass, after
//              the local steps; weight decay included, clipping off: clipping is a step safeguard,
//              not part of f_i);
//   option II: c_i^+ = c_i - c + (x^r - y_K) / (K_i eta_l), with the K_i and eta_l this client
//              actually used this round (eta_l after decay). Pure SGD: = (1/K_i) sum_k g_k.
//   Up: Delta_i = y_K - x^r, Delta c_i = c_i^+ - c_i; then c_i <- c_i^+ (stored state).
//   CommitSent (after the uplink pipeline): c_i advances by the Delta c_i the server decodes,
//   c_i <- c_i + sent(Delta c_i), so the invariant below survives a lossy uplink codec on
//   Delta c_i (use compression.feedback "none"; see ClientAlgorithm::CommitSent). Computed per
//   coordinate from the stored c_i^+ as c_i^+ + (sent - Delta c_i) in double, rounded once;
//   where sent equals the exact Delta c_i bit for bit c_i^+ is kept untouched, so an
//   identity-codec run is bit-identical to the earlier c_i <- c_i^+.
//   (c_i^+ - Delta c_i equals the old c_i up to one rounding of the float subtraction that
//   formed Delta c_i: exact whenever c_i^+ and c_i are within a factor 2, Sterbenz.)
// Server: x <- x + eta_g sum_S w_i Delta_i (through the Reducer; w uniform by default, see
//   ScaffoldOptions::weighting), c <- c + (1/N) sum_S Delta c_i with N = RoundInfo::num_clients,
//   accumulated in double in client-id order, never through the Reducer, so that
//   c = (1/N) sum_{all i} c_i holds after every round for any participation pattern (§9 U13).
//   A round without updates leaves x and c unchanged.
// Invariant caveat (framework level): c tracks the Delta c_i the server *accepted*. A client
// whose reply is lost or rejected after it stored its new c_i makes c drift from mean c_i.
// (A lossy uplink codec no longer does: CommitSent above.)
// Thread-safety: ScaffoldServer is not thread-safe (the round loop owns it); ScaffoldClient is
// thread-compatible (LocalUpdate is const and keeps no state of its own).
#ifndef FEDTRAIN_AGGREGATORS_SCAFFOLD_H_
#define FEDTRAIN_AGGREGATORS_SCAFFOLD_H_

#include <memory>
#include <string>
#include <vector>

#include "aggregators/client_algorithm.h"
#include "aggregators/reducer.h"
#include "aggregators/registry.h"

namespace fedtrain {

// State keys of the SCAFFOLD family (scaffold, scaffold_m(_vr), scallion, scafcom): the
// server's control variate c (ServerState::vectors) and each client's c_i
// (ClientState::vectors). The strings are stored in checkpoints and state files.
inline constexpr char kControlVariateKey[] = "c";

struct ScaffoldOptions {
  enum class Variate { kOptionI, kOptionII };
  Variate option = Variate::kOptionII;
  double server_lr = 1.0;             // eta_g
  // Weights of the x average. The spec's SCAFFOLD uses the uniform mean_S; "samples" gives
  // n_i / sum n_j for the x step only (c keeps its 1/N update, so c = mean c_i still holds).
  std::string weighting = "uniform";
};

class ScaffoldServer final : public ServerAlgorithm {
 public:
  explicit ScaffoldServer(ScaffoldOptions o,
                          std::unique_ptr<Reducer> reducer = std::make_unique<MeanReducer>())
      : o_(std::move(o)), reducer_(std::move(reducer)) {}
  absl::Status Init(ConstVec x0, ServerState* s) override;
  size_t num_up_parts() const override { return 2; }
  absl::Status DownPayload(const ServerState& s, Payload* down) const override;
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;

 private:
  ScaffoldOptions o_;
  std::unique_ptr<Reducer> reducer_;
  std::vector<float> mean_;  // scratch: the round's mean delta
};

class ScaffoldClient final : public ClientAlgorithm {
 public:
  explicit ScaffoldClient(ScaffoldOptions o) : o_(std::move(o)) {}
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;
  absl::Status CommitSent(const Payload& up, const Payload& sent,
                          ClientState* state) const override;

 private:
  ScaffoldOptions o_;
};

// Shared by the SCAFFOLD family (also momentum.cc): c += (1/N) sum_i dc_i over `updates`
// (part `part` of each), in double, in the given (client-id) order. InvalidArgument when N is 0
// or smaller than the number of updates.
// `scale` multiplies the sum (SCALLION's alpha; 1 leaves the result bit-identical).
absl::Status AddControlVariateDeltas(absl::Span<const ClientUpdate> updates, size_t part,
                                     uint64_t num_clients, std::vector<float>* c,
                                     double scale = 1.0);

// The same through a robust reducer: with a reducer whose output is the exact mean this is
// AddControlVariateDeltas (bit for bit); otherwise c += (|S|/N) reduce(dc_i) with uniform
// weights, so a Byzantine client cannot steer c either. Stateful rules keep their memory
// under "reducer.c".
absl::Status ReduceControlVariateDeltas(absl::Span<const ClientUpdate> updates, size_t part,
                                        const RoundInfo& info, const Reducer& reducer,
                                        ServerState* s, const std::vector<uint64_t>& ids,
                                        std::vector<float>* c);

// The SCAFFOLD-family CommitSent: the stored c_i (key "c", already c_i^+ = c_i + up.parts[part]
// from LocalUpdate) is moved to c_i^+ + (sent.parts[part] - up.parts[part]), i.e. c_i advances
// by the delta the server decodes. Coordinates where the two agree bit for bit are untouched.
// InvalidArgument on missing parts or size mismatches.
absl::Status CommitSentControlVariateDelta(const Payload& up, const Payload& sent, size_t part,
                                           ClientState* state);

// The client's c_i from `state` (zeros of size d when absent); InvalidArgument on a size mismatch.
absl::StatusOr<std::vector<float>> LoadControlVariate(const ClientState& state, size_t d);

// The "scaffold" registry entry (scaffold_factory.cc).
std::unique_ptr<AlgorithmFactory> NewScaffoldFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_SCAFFOLD_H_
