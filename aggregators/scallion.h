// SCALLION and SCAFCOM (docs/federated.md §5): SCAFFOLD with one uploaded vector, compressed
// by the worker's uplink pipeline (compression.compressor; unbiased, e.g. randk_scaled, for
// SCALLION; contractive, e.g. topk, for SCAFCOM), with compression.feedback "none".
//
// Units. The server never sees the clients' local learning rate eta^r (RoundInfo and
// ClientUpdate carry none, and the up payload's scalars do not reach the server half), so
// every control quantity is kept in *lr units* (model displacement per local step), the way
// aggregators/momentum.cc keeps its g: C = eta c, C_i = eta c_i, D_i = eta delta_i, V_i = eta v_i.
// In these units the spec's equations need no eta at all:
//   local step   y_{k+1} = y_k - eta (g_k + (C - C_i) / eta)       (= SCAFFOLD's step)
//   SCALLION     D_i = (x^r - y_{i,K_i}) / K_i - C^r                (= eta delta_i)
//   SCAFCOM      U_i = (x^r - y_{i,K_i}) / K_i - C^r + C_i,  V_i <- (1-beta) V_i + beta U_i,
//                D_i = V_i - C_i                                     (V_i stored only when sampled)
//   up           D_i (one d-vector, no scalars); the pipeline sends D~_i = C(D_i)
//   client       C_i <- C_i + alpha D~_i, with the *decoded* D~_i (CommitSent, after the
//                pipeline; LocalUpdate itself leaves C_i alone)
//   server       x^{r+1} = x^r - eta_g sum_S w_i K_i (C^r + D~_i)    (w uniform: mean_S)
//                C^{r+1} = C^r + (alpha/N) sum_S D~_i  (double, client-id order)
// With equal K_i = K and uniform w this is the spec's x^{r+1} = x^r - gamma (c^r + mean_S
// delta~_i), gamma = eta_g eta K, and c^{r+1} = c^r + (alpha/N) sum delta~_i, exactly (in exact
// arithmetic) for a constant local lr (local.lr_decay = 1, the default). With decay the stored
// C, C_i, V_i carry the eta of the round that formed them (the same documented deviation as
// momentum.cc's default mode). The compressor sees eta delta_i instead of delta_i: identical
// messages up to rounding for positively homogeneous compressors (identity, topk, randk*,
// qsgd, sign), and the class constants omega, kappa (hence alpha = 1/(1+omega)) are
// scale-free for all of them.
// Invariant: C = (1/N) sum_{all i} C_i after every round, for any alpha, any compressor and
// any participation, because both sides add alpha times the same decoded vectors (float32
// storage: up to rounding). It needs the Worker's CommitSent (a driver that calls only
// LocalUpdate never moves C_i) and compression.feedback "none" (with error feedback the
// decoded message is not D~_i; see ClientAlgorithm::CommitSent).
//
// State and sizes (d = model dimension): server x, C (2d; C^0 = 0); client C_i (key "c"; 0 at
// start) and for SCAFCOM V_i (key "v"; 0 at start). Down (x, C) (2d). Up: one d-vector,
// compressed (SCAFFOLD sends two uncompressed).
// Thread-safety: ScallionServer is not thread-safe (the round loop owns it); ScallionClient is
// thread-compatible (LocalUpdate and CommitSent are const and keep no state of their own).
#ifndef FEDTRAIN_AGGREGATORS_SCALLION_H_
#define FEDTRAIN_AGGREGATORS_SCALLION_H_

#include <string>

#include "aggregators/client_algorithm.h"
#include "aggregators/registry.h"

namespace fedtrain {

// SCAFCOM's client momentum v_i (ClientState::vectors).
inline constexpr char kScafcomMomentumKey[] = "v";

struct ScallionOptions {
  bool momentum = false;  // false: SCALLION; true: SCAFCOM
  // Scaling of the control-variate step, in (0, 1]. SCALLION: the spec recommends
  // 1/(1+omega) for an unbiased compressor of variance omega (k/d for rescaled rand-k: C_i then
  // takes the exact D_i on the k sent coordinates); the default 1 is the identity-compressor
  // choice (= SCAFFOLD). SCAFCOM: 1 (EF21-style).
  double alpha = 1.0;
  double beta = 0.2;       // SCAFCOM momentum weight of the fresh U_i, in (0, 1]; 1 = none
  double server_lr = 1.0;  // eta_g
  std::string weighting = "uniform";  // w of the x step ("uniform" = the spec's mean_S)
};

class ScallionServer final : public ServerAlgorithm {
 public:
  explicit ScallionServer(ScallionOptions o) : o_(std::move(o)) {}
  absl::Status Init(ConstVec x0, ServerState* s) override;
  size_t num_up_parts() const override { return 1; }
  absl::Status DownPayload(const ServerState& s, Payload* down) const override;
  // InvalidArgument for K_i <= 0 (the step is K_i-weighted).
  absl::Status CheckUpdate(const ClientUpdate& u) const override;
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;

 private:
  ScallionOptions o_;
};

class ScallionClient final : public ClientAlgorithm {
 public:
  explicit ScallionClient(ScallionOptions o) : o_(std::move(o)) {}
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;
  // C_i <- C_i + alpha * sent.parts[0].
  absl::Status CommitSent(const Payload& up, const Payload& sent,
                          ClientState* state) const override;

 private:
  ScallionOptions o_;
};

// The "scallion" (momentum false) and "scafcom" registry entries (scallion_factory.cc).
std::unique_ptr<AlgorithmFactory> NewScallionFactory(bool momentum);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_SCALLION_H_
