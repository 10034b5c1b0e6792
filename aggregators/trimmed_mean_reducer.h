// Coordinate-wise trimmed mean (Yin et al., arXiv 1803.01498): per coordinate drop the f
// smallest and the f largest of the p values and average the other p - 2f (float64, in
// ascending order). Requires p >= 2f+1. Registry name "trimmed_mean". O(p n) with a sorting
// network. Stateless; thread-compatible.
#ifndef FEDTRAIN_AGGREGATORS_TRIMMED_MEAN_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_TRIMMED_MEAN_REDUCER_H_

#include <memory>
#include <string>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct TrimmedMeanOptions {
  RobustCommon common;
};

class TrimmedMeanReducer final : public Reducer {
 public:
  explicit TrimmedMeanReducer(TrimmedMeanOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return "trimmed_mean"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  TrimmedMeanOptions o_;
};

std::unique_ptr<ReducerFactory> NewTrimmedMeanReducerFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_TRIMMED_MEAN_REDUCER_H_
