// FedDyn (dynamic regularisation), docs/federated.md §1.5, in the paper form with the
// server vector h (FL-Simulator's H_i form is the same algorithm: grad_L_i = -alpha H_i).
//
// State and sizes (d = model dimension): server x, h (2d; h is ServerState.vectors
//   "feddyn.h", init 0); client grad_L_i (d floats, ClientState.vectors "feddyn.grad_l",
//   init 0, kept across absent rounds); down x (d); up Delta_i = y_{i,K} - x^r (d) + n_i.
//   Wire: 32 bits per coordinate each way (identity codec).
// Client: y_{k+1} = y_k - lr (g_k - grad_L_i + alpha (y_k - x^r))   (through RunLocalSgd's
//   GradientHook: after clipping and weight decay, before local momentum);
//   then grad_L_i <- grad_L_i - alpha (y_K - x^r).
// Server (N = RoundInfo::num_clients, S = number of received updates; double arithmetic):
//   mean_S(Delta) = reduce(Delta_i) with uniform weights 1/S (the Reducer, "mean" by default)
//   h <- h - (alpha / N) sum_S Delta_i, where sum_S Delta_i = S mean_S(Delta)
//   x <- mean_S(y_{i,K}) - h / alpha = x^r + mean_S(Delta) - h / alpha
// A round in which no update arrived leaves x and h unchanged (mean_S is undefined).
//
// Note: grad_L_i is advanced with the client's exact Delta, h with what the server received;
// a lossy uplink compressor or a rejected update breaks h = (1/N) sum_i grad_L_i.
//
// Server half: not thread-safe. Client half: thread-compatible.
#ifndef FEDTRAIN_AGGREGATORS_FEDDYN_H_
#define FEDTRAIN_AGGREGATORS_FEDDYN_H_

#include <memory>
#include <utility>
#include <vector>

#include "aggregators/client_algorithm.h"
#include "aggregators/reducer.h"
#include "aggregators/registry.h"

namespace fedtrain {

struct FedDynOptions {
  double alpha = 0.1;  // alpha_dyn > 0 (FL-Simulator default)
};

class FedDynServer final : public ServerAlgorithm {
 public:
  explicit FedDynServer(FedDynOptions o,
                        std::unique_ptr<Reducer> reducer = std::make_unique<MeanReducer>())
      : o_(o), reducer_(std::move(reducer)) {}
  absl::Status Init(ConstVec x0, ServerState* s) override;
  // InvalidArgument when info.num_clients is smaller than the number of updates.
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;

  static constexpr const char* kH = "feddyn.h";

 private:
  FedDynOptions o_;
  std::unique_ptr<Reducer> reducer_;
  std::vector<float> mean_;  // scratch: mean_S(Delta)
};

class FedDynClient final : public ClientAlgorithm {
 public:
  explicit FedDynClient(FedDynOptions o) : o_(o) {}
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;

  static constexpr const char* kGradL = "feddyn.grad_l";

 private:
  FedDynOptions o_;
};

// The "feddyn" registry entry (feddyn_factory.cc).
std::unique_ptr<AlgorithmFactory> NewFedDynFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_FEDDYN_H_
