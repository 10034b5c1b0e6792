// Nearest-neighbour averaging with a pivot: the mean of the p - f inputs closest (Euclidean)
// to a pivot z (ties: lower index). The pivot is the output of another rule (`pivot`:
// "median" by default, "trimmed_mean", "krum", "mean") or the zero vector ("zero"). This is
// the server-side adaptation ("CVA") that the MoNNA code base offers of MoNNA's
// peer-to-peer rule (Farhadkhani et al., "Robust Collaborative Learning with Linear Gradient
// Overhead", arXiv 2209.10931), not MoNNA itself. Requires p >= 2f+1 (and the pivot rule's
// own requirement). Registry name "nna". Stateless.
#ifndef FEDTRAIN_AGGREGATORS_NNA_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_NNA_REDUCER_H_

#include <memory>
#include <string>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct NnaOptions {
  RobustCommon common;
  std::string pivot = "median";
  std::shared_ptr<const Reducer> pivot_rule;  // null for "zero"
};

class NnaReducer final : public Reducer {
 public:
  explicit NnaReducer(NnaOptions o) : o_(std::move(o)) {}
  using Reducer::Reduce;
  std::string name() const override { return "nna"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  NnaOptions o_;
};

std::unique_ptr<ReducerFactory> NewNnaReducerFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_NNA_REDUCER_H_
