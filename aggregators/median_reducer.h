// Coordinate-wise median (Yin et al., "Byzantine-Robust Distributed Learning: Towards Optimal
// Statistical Rates", arXiv 1803.01498): per coordinate the median of the p values; for even
// p the mean of the two middle order statistics. Requires p >= 2f+1. Registry name "median".
// Cost O(p n) per coordinate block with a sorting network (vectorised over coordinates).
// Stateless; thread-compatible.
#ifndef FEDTRAIN_AGGREGATORS_MEDIAN_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_MEDIAN_REDUCER_H_

#include <memory>
#include <string>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct MedianOptions {
  RobustCommon common;
};

class MedianReducer final : public Reducer {
 public:
  explicit MedianReducer(MedianOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return "median"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  MedianOptions o_;
};

std::unique_ptr<ReducerFactory> NewMedianReducerFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_MEDIAN_REDUCER_H_
