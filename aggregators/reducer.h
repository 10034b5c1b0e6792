// The averaging step of server halves, behind an interface so a robust reducer (coordinate
// median, trimmed mean, Krum, Flag Aggregator) can replace the weighted mean without touching
// any algorithm: server halves hold a Reducer and call it wherever the spec writes
// "sum_i w_i v_i" over the received clients. Pure; a ThreadPool may be lent.
#ifndef FEDTRAIN_AGGREGATORS_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_REDUCER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/thread_pool.h"
#include "core/vec.h"

namespace fedtrain {

class Reducer {
 public:
  virtual ~Reducer() = default;
  virtual std::string name() const = 0;
  // out = reduction of `in` (sorted by client id) with normalised weights `w` (sum 1).
  // The mean is sum_k w[k] in[k] accumulated in double in that order (weighted_mean.h).
  // InvalidArgument for empty input or mismatched sizes.
  virtual absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                              Vec out, ThreadPool* pool) const = 0;
};

class MeanReducer final : public Reducer {
 public:
  std::string name() const override { return "mean"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      ThreadPool* pool) const override;
};

// "mean"; InvalidArgument naming algorithm.reducer and listing the known names otherwise.
absl::StatusOr<std::unique_ptr<Reducer>> MakeReducer(const std::string& name);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_REDUCER_H_
