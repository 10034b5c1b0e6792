// `fedtrain aggregate`'s work as a library: read a p x n .npy matrix (one input vector per
// row), reduce it with a registered reducer, write the n-vector as float32 .npy, and return
// the reducer's diagnostics as a JSON object. Thread-compatible.
#ifndef FEDTRAIN_RUNTIME_AGGREGATE_FILE_H_
#define FEDTRAIN_RUNTIME_AGGREGATE_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "aggregators/reducer.h"

namespace fedtrain {

struct AggregateFileOptions {
  std::string in, out;
  ReducerCfg reducer;
  uint64_t round = 0;  // keys randomized rules (flag's random init)
};

// Returns {"rule":..., "p":..., "n":..., "input_dtype":..., "wall_s":..., "diagnostics": ...}.
absl::StatusOr<std::string> AggregateNpyFile(const AggregateFileOptions& o,
                                             const ReducerRegistry& reducers);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_AGGREGATE_FILE_H_
