#include "aggregators/reducer.h"

#include "absl/strings/str_cat.h"
#include "aggregators/weighted_mean.h"

namespace fedtrain {

absl::Status MeanReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                 Vec out, ThreadPool* pool) const {
  return WeightedMean(in, w, out, pool);
}

absl::StatusOr<std::unique_ptr<Reducer>> MakeReducer(const std::string& name) {
  if (name == "mean") return std::unique_ptr<Reducer>(new MeanReducer());
  return absl::InvalidArgumentError(
      absl::StrCat("algorithm.reducer must be one of mean; got '", name, "'"));
}

}  // namespace fedtrain
