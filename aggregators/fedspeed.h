// FedSpeed (docs/federated.md §4; arXiv 2302.10429, reference code FL-Simulator): a FedDyn-like
// prox-correction ĝ_i per client plus a SAM-like extra gradient at a perturbed point.
// Server halves are not thread-safe (the Coordinator's round loop owns them); the client half is
// thread-compatible (LocalUpdate is const and keeps nothing between calls). Pure: no I/O, no
// threads of its own; the Coordinator may lend a ThreadPool for the reduction.
//
// Local step k (one minibatch ξ, both modes; lamb = prox_coef = 1/λ):
//   g1 = ∇F_i(y; ξ)                                          (raw: no clipping, no weight decay)
//   ỹ  = y + ρ g1 / (‖g1‖₂ + 1e-7)   (normalize_perturbation, default; §10.2)  or  y + ρ g1
//   g2 = ∇F_i(ỹ; ξ)                                          (same minibatch)
//   g̃  = (1−α) g1 + α g2
//   y ← y − η_l ( clip(g̃ − ĝ_i − lamb x^t) + lamb y + wd y )
// which without clipping and weight decay is §4.1 step 5, y ← y − η_l (g̃ − ĝ_i + lamb (y − x^t)).
// Framework options (LocalContext::sgd): clip_norm clips the part the reference code clips
// (§4.2 step 4: G = g2 + lamb (H_i − x^t) = g̃ − ĝ_i − lamb x^t, global norm, exact factor
// clip/‖G‖ as everywhere in the framework), weight_decay is added outside the clip (§4.2 step 5,
// §7.6); local momentum, if set, acts on the whole direction. The ρ = 0 and α = 0 cases take
// one gradient per step (ỹ = y, resp. g̃ = g1, exactly), the others two.
// After the K steps: ĝ_i ← ĝ_i − lamb (y_K − x^t)  (client state; ĝ_i = −lamb H_i of §4.2).
//
// mode (only the server aggregation differs, §4.3 row 4, §10.1):
//   "code" (default, §4.2 = FedDyn's aggregation): up Δ_i = y_K − x^t;
//          x^{t+1} = x^t + mean_P(Δ_i) + (1/N) Σ_{j<N} H_j, with the sum Σ_j H_j kept as ONE
//          server vector updated by the participants' changes (H_i changes by Δ_i), so the
//          server holds no per-client vectors. N = RoundInfo::num_clients.
//   "paper" (§4.1): up x̂_i − x^t = Δ_i − λ ĝ_i (updated ĝ_i); x^{t+1} = x^t + mean_P(x̂_i − x^t).
// Both upload a difference from x^t (the spec's x̂_i minus the x^t the server already has), so
// that compressors see a small vector in the framework's "new minus old" convention.
// mean_P is the uniform mean over the received updates (docs/federated.md §0 mean_S), computed by
// the Reducer (MeanReducer by default); algorithm.weighting is not used (see fedspeed_factory.cc).
// With a robust reducer (anything but "mean") Σ H_j grows by |P| reduce(Δ_i) instead of the exact
// Σ_P Δ_i, so a Byzantine client cannot push it (docs/robust.md).
// With no update in a round the model and Σ H_j stay (no client changed its ĝ_i).
//
// State and sizes (d = model dimension), 32 bits per coordinate each way (identity codec):
//   client state  ClientState::vectors["fedspeed.ghat"] = ĝ_i (d floats, created as 0)
//   server state  x (d); code mode also vectors["fedspeed.h_sum"] = Σ_j H_j (d)
//   down          x^t (d)
//   up            one part of d floats (Δ_i or x̂_i − x^t)
//   compute       two forward/backward passes per local step when ρ > 0 and α > 0
#ifndef FEDTRAIN_AGGREGATORS_FEDSPEED_H_
#define FEDTRAIN_AGGREGATORS_FEDSPEED_H_

#include <memory>
#include <string>
#include <vector>

#include "aggregators/client_algorithm.h"
#include "aggregators/reducer.h"
#include "aggregators/registry.h"

namespace fedtrain {

inline constexpr char kFedSpeedGhatKey[] = "fedspeed.ghat";   // ClientState::vectors
inline constexpr char kFedSpeedHSumKey[] = "fedspeed.h_sum";  // ServerState::vectors (code)

enum class FedSpeedMode { kCode, kPaper };

struct FedSpeedOptions {
  FedSpeedMode mode = FedSpeedMode::kCode;
  double prox_coef = 0.1;  // lamb = 1/λ > 0 (§4.2 `lamb`, §10.4)
  double rho = 0.1;        // ρ >= 0, perturbation radius (normalised) or step (not)
  double alpha = 1.0;      // α in [0, 1], weight of the perturbed gradient g2
  bool normalize_perturbation = true;  // ε = ρ g1 / (‖g1‖₂ + 1e-7) (§10.2)
};

// Sends x^t alone (the default DownPayload): ĝ_i lives on the client (§4.3 last row), so the
// reference code's per-client H_i − x^t is not sent.
class FedSpeedServer final : public ServerAlgorithm {
 public:
  explicit FedSpeedServer(FedSpeedOptions o,
                          std::unique_ptr<Reducer> reducer = std::make_unique<MeanReducer>())
      : o_(o), reducer_(std::move(reducer)) {}
  absl::Status Init(ConstVec x0, ServerState* s) override;
  // Code mode needs info.num_clients = N >= number of updates and every id < N.
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;
  const FedSpeedOptions& options() const { return o_; }

 private:
  FedSpeedOptions o_;
  std::unique_ptr<Reducer> reducer_;
  std::vector<float> mean_;  // scratch: the round's mean up vector
  std::vector<double> acc_;  // scratch: Σ_j H_j + Σ_P Δ_i in double (code mode)
};

class FedSpeedClient final : public ClientAlgorithm {
 public:
  explicit FedSpeedClient(FedSpeedOptions o) : o_(o) {}
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;
  const FedSpeedOptions& options() const { return o_; }

 private:
  FedSpeedOptions o_;
};

// The "fedspeed" registry entry (fedspeed_factory.cc).
std::unique_ptr<AlgorithmFactory> NewFedSpeedFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_FEDSPEED_H_
