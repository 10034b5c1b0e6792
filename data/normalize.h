// Feature standardisation with one global mean and standard deviation (data.normalize
// standardize): the statistics are fitted on one data set (the training split) and the same
// affine map is then applied to any set (training and test). Pure functions; thread-compatible.
#ifndef FEDTRAIN_DATA_NORMALIZE_H_
#define FEDTRAIN_DATA_NORMALIZE_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace fedtrain {

struct FeatureStats {
  double mean = 0.0;
  double std = 1.0;  // > 0
};

// The mean and the population standard deviation (divisor n, not n - 1) of every feature value
// of every row of `d`, pooled into one number each: two passes in double, in row order, so the
// result does not depend on threads or on how the set was loaded. InvalidArgument for a set
// without features or whose values are all equal (std = 0: nothing to divide by).
absl::StatusOr<FeatureStats> GlobalFeatureStats(const Dataset& d);

// x <- (x - mean) / std for every feature of `d`, evaluated in double and rounded to float
// once. InvalidArgument unless std > 0 and both are finite.
absl::Status StandardizeFeatures(const FeatureStats& s, Dataset* d);

}  // namespace fedtrain

#endif  // FEDTRAIN_DATA_NORMALIZE_H_
