// FedProx, docs/federated.md §1.3: FedAvg whose clients add the proximal term
// (mu/2) ||y - x^r||^2 to their local objective.
//
// State and sizes (d = model dimension): as FedAvg. Server x (d); clients stateless;
//   down x (d); up Delta_i (d) + n_i. Wire: 32 bits per coordinate each way (identity codec).
// Client: y_{k+1} = y_k - lr (g_k + mu (y_k - x^r)), k = 0..K-1 (the proximal gradient is added
//   through RunLocalSgd's GradientHook, i.e. after clipping and weight decay, before local
//   momentum); Delta = y_K - x^r.
// Server: FedAvgServer (aggregators/fedavg.h), x <- x + eta_g sum_i w_i Delta_i. The spec's
//   eta_g is 1 (algorithm.server_lr's default); the weights follow algorithm.weighting, whose
//   default "samples" is the reference code's rule (§1.3 [A], §10.10).
// With mu = 0 the client is FedAvgClient bit for bit (no hook is installed).
//
// Thread-compatible: LocalUpdate is const and may run concurrently for different clients.
#ifndef FEDTRAIN_AGGREGATORS_FEDPROX_H_
#define FEDTRAIN_AGGREGATORS_FEDPROX_H_

#include "aggregators/client_algorithm.h"
#include "aggregators/registry.h"

namespace fedtrain {

struct FedProxOptions {
  double mu = 0.01;  // proximal coefficient, >= 0 (tune in {0.001, 0.01, 0.1, 0.5, 1})
};

class FedProxClient final : public ClientAlgorithm {
 public:
  explicit FedProxClient(FedProxOptions o) : o_(o) {}
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;

 private:
  FedProxOptions o_;
};

// The "fedprox" registry entry (fedprox_factory.cc).
std::unique_ptr<AlgorithmFactory> NewFedProxFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_FEDPROX_H_
