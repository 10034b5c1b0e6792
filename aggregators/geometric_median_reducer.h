// Geometric median by smoothed Weiszfeld iterations, as in RFA (Pillutla et al., "Robust
// Aggregation for Federated Learning", arXiv 1912.13075): minimise sum_i ||v - x_i|| / p.
// v_0 = the mean; v_{t+1} = sum_i b_i x_i / sum_i b_i with b_i = 1 / max(nu, ||v_t - x_i||),
// at most `iterations` steps, stopping early when the objective falls by less than `tol`
// relatively. Defaults nu = 1e-6, iterations = 20, tol = 1e-6. Breakdown point 1/2: requires
// p >= 2f+1. Registry name "geometric_median". O(iterations p n). Stateless.
#ifndef FEDTRAIN_AGGREGATORS_GEOMETRIC_MEDIAN_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_GEOMETRIC_MEDIAN_REDUCER_H_

#include <memory>
#include <string>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct GeometricMedianOptions {
  RobustCommon common;
  double nu = 1e-6;
  int64_t iterations = 20;
  double tol = 1e-6;
};

class GeometricMedianReducer final : public Reducer {
 public:
  explicit GeometricMedianReducer(GeometricMedianOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return "geometric_median"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  GeometricMedianOptions o_;
};

std::unique_ptr<ReducerFactory> NewGeometricMedianReducerFactory();

// ||v - x_i|| for every input, float64, one pass per input in coordinate order.
void DistancesTo(absl::Span<const double> v, absl::Span<const ConstVec> x, double* dist);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_GEOMETRIC_MEDIAN_REDUCER_H_
