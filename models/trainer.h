// The model interface the federated loop trains through. A user can implement Trainer for
// their own model; fedtrain ships an MLP / softmax regression (models/mlp.h).
// Thread-compatible; make one per worker thread with Clone() (trainers keep scratch buffers).
#ifndef FEDTRAIN_MODELS_TRAINER_H_
#define FEDTRAIN_MODELS_TRAINER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "core/vec.h"
#include "data/dataset.h"

namespace fedtrain {

class Trainer {
 public:
  virtual ~Trainer() = default;
  virtual size_t dim() const = 0;
  virtual const ParamLayout& layout() const = 0;
  // Short description stored with saved models, e.g. "mlp:784-200-10".
  virtual std::string description() const = 0;
  // Fills `w` (size dim()) with initial weights drawn from `rng`.
  virtual void InitParams(RngStream& rng, Vec w) const = 0;
  // Writes the gradient of the MEAN minibatch loss at `w` into `grad` (docs/federated.md §0)
  // and returns that mean loss. InvalidArgument on size mismatch.
  virtual absl::StatusOr<double> Gradient(ConstVec w, const Batch& b, Vec grad) = 0;
  virtual absl::StatusOr<EvalMetrics> Evaluate(ConstVec w, const DataView& d) = 0;
  virtual std::unique_ptr<Trainer> Clone() const = 0;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_MODELS_TRAINER_H_
