// Local SGD on one client's data: the inner loop every federated algorithm runs on a worker.
// Pure function of its inputs: minibatch order comes only from the given RngStream (keyed by
// (seed, round, client, kMinibatch) by the caller), so results do not depend on threads.
#ifndef FEDTRAIN_MODELS_LOCAL_SGD_H_
#define FEDTRAIN_MODELS_LOCAL_SGD_H_

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "core/rng.h"
#include "core/vec.h"
#include "data/dataset.h"
#include "models/trainer.h"

namespace fedtrain {

struct LocalSgdOptions {
  double lr = 0.01;
  // Exactly one of `steps` (> 0: step mode) or `epochs` (> 0: epoch mode) is used; steps
  // wins when both are set (docs/federated.md §7.4).
  int64_t steps = 0;
  int64_t epochs = 1;
  int64_t batch_size = 32;
  double momentum = 0.0;      // heavy-ball buffer, reset every round (local only)
  double weight_decay = 0.0;  // L2, added to the (clipped) loss gradient
  double clip_norm = 0.0;     // global-norm clipping of the loss gradient; 0 = off
};

// Called on every step after clipping and weight decay, before momentum, to let an algorithm
// correct the gradient (FedProx: + mu (y - x); SCAFFOLD: - c_i + c). `y` is the iterate.
using GradientHook = std::function<void(ConstVec y, Vec grad)>;

// Replaces trainer.Gradient(y, batch, grad) for algorithms whose step needs more than one
// gradient on the same minibatch (FedSpeed's perturbed gradient, the momentum paper's VR
// correction) or that record the raw gradients (SCAFFOLD-M's c_i). Returns the batch loss.
// Clipping, weight decay and the GradientHook still apply to what it writes into `grad`.
using GradientFn = std::function<absl::StatusOr<double>(ConstVec y, const Batch& b, Vec grad)>;

struct LocalSgdResult {
  int64_t steps = 0;       // K_i actually run
  double mean_loss = 0.0;  // mean of the minibatch losses seen
  int64_t samples_seen = 0;
};

// Runs local SGD from the weights in `w` and leaves the final iterate in `w`.
// Epoch mode: K = epochs * ceil(n / B); each epoch is a fresh permutation; the last batch of
// an epoch may be smaller. Step mode: `steps` batches of min(B, n) consecutive indices of a
// shuffled permutation, reshuffled when fewer than that remain.
// InvalidArgument (naming the option) for lr <= 0, batch_size <= 0, empty data, or
// neither steps nor epochs positive.
absl::StatusOr<LocalSgdResult> RunLocalSgd(Trainer& trainer, const DataView& data,
                                           const LocalSgdOptions& opts, RngStream& rng, Vec w,
                                           const GradientHook& hook = nullptr,
                                           const GradientFn& gradient = nullptr);

// One stochastic gradient at `w` (distributed SGD, docs/compression.md §2): the loss
// gradient on a minibatch of min(B, n) distinct samples drawn from `rng` (the whole local
// data, in stored order, when B >= n), clipped to opts.clip_norm, plus opts.weight_decay * w.
// Returns the minibatch loss. opts.lr, steps, epochs and momentum are not used.
absl::StatusOr<double> LocalGradient(Trainer& trainer, const DataView& data,
                                     const LocalSgdOptions& opts, RngStream& rng, ConstVec w,
                                     Vec grad);

}  // namespace fedtrain

#endif  // FEDTRAIN_MODELS_LOCAL_SGD_H_
