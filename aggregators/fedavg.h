// FedAvg and FedAvgM (server momentum), docs/federated.md §1.1 and §1.2.
//
// State and sizes (d = model dimension):
//   FedAvg : server x (d); clients stateless; down x (d); up Delta_i (d) + n_i.
//   FedAvgM: server x, m (2d); otherwise as FedAvg.
//   Wire: 32 bits per coordinate each way with the identity codec.
// Server step: Dbar = sum_i w_i Delta_i (double accumulation in client-id order),
//   FedAvg : x <- x + eta_g Dbar
//   FedAvgM: m <- beta m + Dbar; x <- x + eta_g m   (Nesterov: x <- x + eta_g (beta m + Dbar))
// Client: K local SGD steps from x; Delta = y_K - x (new minus old, docs/federated.md §0).
#ifndef FEDTRAIN_AGGREGATORS_FEDAVG_H_
#define FEDTRAIN_AGGREGATORS_FEDAVG_H_

#include <memory>
#include <string>
#include <vector>

#include "aggregators/client_algorithm.h"
#include "aggregators/reducer.h"
#include "aggregators/registry.h"

namespace fedtrain {

// FedAvgM's server momentum (ServerState::vectors).
inline constexpr char kServerMomentumKey[] = "momentum";

struct FedAvgOptions {
  double server_lr = 1.0;             // eta_g
  std::string weighting = "samples";  // "samples" | "uniform"
  bool server_momentum = false;       // FedAvgM
  double beta = 0.9;
  bool nesterov = false;
};

// Averages with a Reducer (the weighted mean unless another is given).
class FedAvgServer final : public ServerAlgorithm {
 public:
  explicit FedAvgServer(FedAvgOptions o,
                        std::unique_ptr<Reducer> reducer = std::make_unique<MeanReducer>())
      : o_(std::move(o)), reducer_(std::move(reducer)) {}
  absl::Status Init(ConstVec x0, ServerState* s) override;
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;

 private:
  FedAvgOptions o_;
  std::unique_ptr<Reducer> reducer_;
  std::vector<float> mean_;  // scratch: the round's weighted mean delta
};

// The client half shared by FedAvg-family algorithms: plain local SGD, up = {Delta}.
class FedAvgClient final : public ClientAlgorithm {
 public:
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;
};

// Registry entries "fedavg" (momentum false) and "fedavgm" (fedavg_factory.cc).
std::unique_ptr<AlgorithmFactory> NewFedAvgFactory(bool momentum);
// For every algorithm whose server half is FedAvg's (fedavg, fedavgm, fedprox, dsgd): checks
// the typed fields that server half reads (server_lr, weighting with default "samples",
// reducer, and with `momentum` algorithm.momentum), and builds it. InvalidArgument naming the
// field.
absl::Status ValidateFedAvgServer(const Cfg& c, bool momentum, const ReducerRegistry* r);
absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeFedAvgServer(const Cfg& c, bool momentum, const ReducerRegistry* r);
// The traits of an algorithm whose server half is FedAvg's without momentum.
inline AlgorithmTraits FedAvgServerTraits() {
  AlgorithmTraits t;
  t.fedavg_server = true;
  return t;
}

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_FEDAVG_H_
