// The momentum paper's algorithms (Cheng, Huang, Wu, Yuan; docs/federated.md §3):
// FedAvg-M (= FedCM) §3.1, SCAFFOLD-M §3.2, FedAvg-M-VR §3.3, SCAFFOLD-M-VR §3.4.
// One server half and one client half, switched by MomentumOptions.
//
// State and sizes (d = model dimension):
//   server x, g (2d; g^0 = 0, no warm-up round), + c (d) for SCAFFOLD-M(-VR), + one float
//   "prev_scale"; client c_i (d, ClientState key "c") for SCAFFOLD-M(-VR) only.
//   down (x, g) or (x, g, c) + scalar "prev_scale"; up (s_i) or (s_i, Delta c_i).
//   Wire: 32 bits per coordinate per vector (identity codec); the VR variants send the same.
//
// Local step (k = 0..K_i-1, g_k = grad F_i(y_k; xi_k), eta = this round's local lr):
//   FedAvg-M     v = beta g_k + (1-beta) g
//   SCAFFOLD-M   v = beta (g_k - c_i + c) + (1-beta) g
//   FedAvg-M-VR  v = g_k + (1-beta) (g - grad F_i(x^{r-1}; xi_k))
//   SCAFFOLD-M-VR v = g_k - beta (c_i - c) + (1-beta) (g - grad F_i(x^{r-1}; xi_k))
//   y_{k+1} = y_k - eta v.  The VR gradient at x^{r-1} uses the same minibatch (a GradientFn),
//   with weight decay added (as to g_k) and no clipping; it is skipped when beta = 1.
//   SCAFFOLD-M(-VR): c_i^+ = (1/K_i) sum_k g_k, the raw loss gradients (before clipping, weight
//   decay and correction), accumulated in double; Delta c_i = c_i^+ - c_i; c_i <- c_i^+, then
//   CommitSent moves c_i by the decoded Delta c_i instead (bit-identical without compression;
//   see scaffold.h).
// Server (means over the received S_r with weights w, uniform unless algorithm.weighting is
//   set): g^{r+1} = -mean_S(Delta_i / (eta K_i)), x^{r+1} = x^r - gamma g^{r+1},
//   c^{r+1} = c^r + (1/N) sum_S Delta c_i (exact sum, not through the Reducer).
//   The previous model is reconstructed on the client as x^{r-1} = x^r + prev_scale * g_sent
//   (= x^r + gamma g^r, §3.3; prev_scale = 0 in round 0, so x^{-1} = x^0, and after a round
//   without updates, in which x does not move).
//
// The global step gamma, and why the up vector s_i is not always Delta_i. g is held (state and
// down payload) in gradient units in both modes; the modes differ in who scales the step:
//  * default (no params.gamma): gamma = eta_g * eta^r * Kbar with eta_g = algorithm.server_lr
//    (default 1: "gamma = eta K", the eta_g-equivalent of 1, FL-Simulator's FedCM) and Kbar =
//    sum_S w_i K_i (= K in step mode), eta^r being the local rate that produced the round's
//    Delta_i (RoundInfo::lr). The client sends s_i = Delta_i; the server steps
//    x += eta_g * mean_S(Delta_i) when all K_i are equal (exactly FedAvg with eta_g), else
//    x += eta_g Kbar mean_S(Delta_i / K_i), and sets g^{r+1} = -mean_S(Delta_i / K_i) / eta^r.
//    Exact for any local.lr_decay: g is divided by the rate that produced the Delta_i, as in
//    the spec and FL-Simulator's FedCM (g^r = -mean(Delta) / (K eta_{r-1})).
//  * explicit params.gamma > 0: the client sends s_i = gamma Delta_i / (eta^r K_i) (its share of
//    the server step, in model units and Delta's sign); the server sets x += mean_S(s_i),
//    g^{r+1} = -mean_S(s_i) / gamma. Exact for any lr schedule.
// prev_scale is the step just taken per unit of g: x^{r+1} = x^r - prev_scale * g^{r+1}
// (gamma, eta_g K eta^r or eta_g Kbar eta^r).
// A round without updates leaves x, g and c unchanged.
//
// Thread-safety: MomentumServer is not thread-safe (the round loop owns it); MomentumClient is
// thread-compatible (LocalUpdate is const and keeps no state of its own).
#ifndef FEDTRAIN_AGGREGATORS_MOMENTUM_H_
#define FEDTRAIN_AGGREGATORS_MOMENTUM_H_

#include <memory>
#include <string>
#include <vector>

#include "aggregators/client_algorithm.h"
#include "aggregators/reducer.h"
#include "aggregators/registry.h"

namespace fedtrain {

// State keys of the momentum family (ServerState::vectors): the momentum g and the previous
// round's step scale (one float, also sent as a down scalar). The key of g names its units
// (gradient units); builds before RoundInfo::lr held lr units under "g" in the default mode,
// so such a checkpoint is refused on resume instead of being misread.
inline constexpr char kMomentumGradientKey[] = "g_grad";
inline constexpr char kPrevScaleKey[] = "prev_scale";

struct MomentumOptions {
  // Weight of the fresh gradient; 1 = no momentum. The halves accept [0, 1] (beta = 0 is the
  // degenerate check U18); the factories accept (0, 1] as the paper does.
  double beta = 0.1;
  double gamma = 0.0;       // > 0: explicit global step; 0: default mode (see above)
  double server_lr = 1.0;   // eta_g-equivalent in default mode; must be 1 with an explicit gamma
  bool control_variates = false;    // SCAFFOLD-M
  bool variance_reduction = false;  // the *-VR variants
  std::string weighting = "uniform";  // weights of the x and g averages ("uniform"|"samples")
  bool explicit_gamma() const { return gamma > 0; }
};

class MomentumServer final : public ServerAlgorithm {
 public:
  explicit MomentumServer(MomentumOptions o,
                          std::unique_ptr<Reducer> reducer = std::make_unique<MeanReducer>())
      : o_(std::move(o)), reducer_(std::move(reducer)) {}
  absl::Status Init(ConstVec x0, ServerState* s) override;
  size_t num_up_parts() const override { return o_.control_variates ? 2 : 1; }
  absl::Status DownPayload(const ServerState& s, Payload* down) const override;
  // InvalidArgument for K_i = 0 (the server divides by K_i).
  absl::Status CheckUpdate(const ClientUpdate& u) const override;
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;

 private:
  MomentumOptions o_;
  std::unique_ptr<Reducer> reducer_;
  std::vector<float> mean_;  // scratch
};

class MomentumClient final : public ClientAlgorithm {
 public:
  explicit MomentumClient(MomentumOptions o) : o_(std::move(o)) {}
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;
  // SCAFFOLD-M(-VR): c_i advances by the Delta c_i the server decodes (as ScaffoldClient;
  // CommitSentControlVariateDelta). Nothing for FedAvg-M(-VR).
  absl::Status CommitSent(const Payload& up, const Payload& sent,
                          ClientState* state) const override;

 private:
  MomentumOptions o_;
};

// x^{r-1} = x^r + prev_scale * g_sent from a momentum down payload (§3.3, §9 U19).
// InvalidArgument when the payload lacks x, g or the "prev_scale" scalar.
absl::StatusOr<std::vector<float>> ReconstructPreviousModel(const Payload& down);

// The "fedavg_m", "scaffold_m", "fedavg_m_vr" and "scaffold_m_vr" registry entries
// (momentum_factory.cc).
std::unique_ptr<AlgorithmFactory> NewMomentumFactory(bool control_variates,
                                                     bool variance_reduction);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_MOMENTUM_H_
