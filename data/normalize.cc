#include "data/normalize.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace fedtrain {

absl::StatusOr<FeatureStats> GlobalFeatureStats(const Dataset& d) {
  const size_t n = d.features.size();
  if (n == 0)
    return absl::InvalidArgumentError("standardize: the training set holds no feature values");
  double sum = 0.0;
  for (float v : d.features) sum += v;
  FeatureStats s;
  s.mean = sum / static_cast<double>(n);
  double sq = 0.0;  // second pass: no cancellation from E[x^2] - E[x]^2
  for (float v : d.features) {
    const double c = static_cast<double>(v) - s.mean;
    sq += c * c;
  }
  s.std = std::sqrt(sq / static_cast<double>(n));
  if (!(s.std > 0) || !std::isfinite(s.std) || !std::isfinite(s.mean))
    return absl::InvalidArgumentError(absl::StrCat(
        "standardize: the training features have mean ", s.mean, " and standard deviation ",
        s.std, "; need a finite, non-zero spread"));
  return s;
}

absl::Status StandardizeFeatures(const FeatureStats& s, Dataset* d) {
  if (!(s.std > 0) || !std::isfinite(s.std) || !std::isfinite(s.mean))
    return absl::InvalidArgumentError(absl::StrCat("standardize: need a finite mean and std > 0; "
                                                   "got mean ", s.mean, ", std ", s.std));
  for (float& v : d->features)
    v = static_cast<float>((static_cast<double>(v) - s.mean) / s.std);
  return absl::OkStatus();
}

}  // namespace fedtrain
