// Distributed (S)GD, the setting of the error-feedback papers (docs/compression.md §2, §4):
// every round each worker sends one (stochastic) gradient step at the model it was sent and
// the server averages. In the pipeline's convention (updates are y - x) the client sends
//     Delta_i = -lr * g_i(x)          (g_i: LocalGradient, a minibatch of local.batch_size, the
//                                      whole local data when that is >= n_i)
// computed as one product, not as (x - lr g) - x, so no float cancellation; the server half
// is FedAvg's (x <- x + eta_g * mean Delta_i). With eta_g = 1 and uniform weights this is
// x <- x - lr * mean g_i, and with compression.feedback ef14 the message is EF14 form A
// (step inside). Set federation.clients_per_round = num_clients for "every worker every
// round"; fewer gives distributed SGD with client sampling.
#ifndef FEDTRAIN_AGGREGATORS_DSGD_H_
#define FEDTRAIN_AGGREGATORS_DSGD_H_

#include <memory>

#include "aggregators/client_algorithm.h"
#include "aggregators/registry.h"

namespace fedtrain {

class DsgdClient final : public ClientAlgorithm {
 public:
  absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                           Payload* up, LocalResult* result) const override;
};

// The "dsgd" registry entry (FedAvg server half without momentum, DsgdClient; dsgd_factory.cc).
std::unique_ptr<AlgorithmFactory> NewDsgdFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_DSGD_H_
