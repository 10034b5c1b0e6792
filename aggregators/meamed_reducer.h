// Mean around a centre, per coordinate: the average of the p - f values closest to a centre c.
// MeaMed ("Generalized Byzantine-tolerant SGD", arXiv 1802.10116): c = the coordinate median.
// Phocas ("Phocas: dimensional Byzantine-resilient SGD", arXiv 1805.09682): c = the
// coordinate trimmed mean (trim f on each side). Both require p >= 2f+1. Registry names
// "meamed" and "phocas". The p - f closest values are a contiguous window of the sorted
// values; ties in distance take the smaller value. Stateless; thread-compatible.
#ifndef FEDTRAIN_AGGREGATORS_MEAMED_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_MEAMED_REDUCER_H_

#include <memory>
#include <string>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct MeaMedOptions {
  RobustCommon common;
  bool trimmed_center = false;  // false: MeaMed (median centre); true: Phocas
};

class MeaMedReducer final : public Reducer {
 public:
  explicit MeaMedReducer(MeaMedOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return o_.trimmed_center ? "phocas" : "meamed"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  MeaMedOptions o_;
};

std::unique_ptr<ReducerFactory> NewMeaMedReducerFactory();
std::unique_ptr<ReducerFactory> NewPhocasReducerFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_MEAMED_REDUCER_H_
