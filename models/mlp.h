// Multi-layer perceptron with ReLU hidden layers and a softmax cross-entropy head, in Eigen.
// No hidden layers = multinomial logistic (softmax) regression.
// Layout: for layer l, "fc<l>.weight" shape {out, in} (row-major) then "fc<l>.bias" {out}.
// The maths is a template over the scalar type so tests can check gradients in double.
#ifndef FEDTRAIN_MODELS_MLP_H_
#define FEDTRAIN_MODELS_MLP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/vec.h"
#include "models/trainer.h"

namespace fedtrain {

struct MlpSpec {
  size_t inputs = 0;
  std::vector<size_t> hidden;  // empty: softmax regression
  size_t classes = 0;
};

ParamLayout MlpLayout(const MlpSpec& spec);

// Mean cross-entropy over the n rows of `x` (row-major n x inputs) with `labels`, and its
// gradient into `grad` (same layout as `w`). Scalar = float or double.
template <typename Scalar>
Scalar MlpLossAndGradient(const MlpSpec& spec, const Scalar* w, const Scalar* x,
                          const int32_t* labels, size_t n, Scalar* grad);

// InvalidArgument when inputs or classes is 0 or a hidden width is 0.
absl::StatusOr<std::unique_ptr<Trainer>> MakeMlpTrainer(const MlpSpec& spec);

}  // namespace fedtrain

#endif  // FEDTRAIN_MODELS_MLP_H_
