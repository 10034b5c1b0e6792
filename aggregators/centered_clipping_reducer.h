// Centered clipping (Karimireddy et al., "Learning from History for Byzantine Robust
// Optimization", arXiv 2012.10333). Stateful: v_0 = the previous round's output (zero in the
// first round); `iterations` (L) times v <- v + (1/p) sum_i min(1, tau / ||x_i - v||)(x_i - v).
// Parameters tau (> 0, default 1: tune it to the honest spread) and iterations (default 1).
// Requires p >= 2f+1. The previous output is kept in ReduceContext::state under
// "<state_key>.cc_v" (float, so it goes into server checkpoints with the other server
// vectors). Registry name "centered_clipping". O(L p n).
#ifndef FEDTRAIN_AGGREGATORS_CENTERED_CLIPPING_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_CENTERED_CLIPPING_REDUCER_H_

#include <memory>
#include <string>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct CenteredClippingOptions {
  RobustCommon common;
  double tau = 1.0;
  int64_t iterations = 1;
};

class CenteredClippingReducer final : public Reducer {
 public:
  explicit CenteredClippingReducer(CenteredClippingOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return "centered_clipping"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  CenteredClippingOptions o_;
};

std::unique_ptr<ReducerFactory> NewCenteredClippingReducerFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_CENTERED_CLIPPING_REDUCER_H_
