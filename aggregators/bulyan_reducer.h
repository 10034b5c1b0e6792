// Bulyan over Krum (El Mhamdi et al., "The Hidden Vulnerability of Distributed Learning in
// Byzantium", arXiv 1802.07927), as originally defined. Requires p >= 4f+3. theta = p - 2f,
// beta = theta - 2f. Selection: theta times, move the member with the lowest Krum score
// within the remaining set (sum of its |R| - f - 2 smallest squared distances to the other
// remaining members; 0 when that count is <= 0; ties: lower index) into S. Aggregation per
// coordinate: the mean of the beta values of S closest to their median. Squared distances
// come from one float64 Gram and are reused. Registry name "bulyan". Stateless.
#ifndef FEDTRAIN_AGGREGATORS_BULYAN_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_BULYAN_REDUCER_H_

#include <memory>
#include <string>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct BulyanOptions {
  RobustCommon common;
};

class BulyanReducer final : public Reducer {
 public:
  explicit BulyanReducer(BulyanOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return "bulyan"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  BulyanOptions o_;
};

std::unique_ptr<ReducerFactory> NewBulyanReducerFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_BULYAN_REDUCER_H_
