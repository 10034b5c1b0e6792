// In-memory labelled data sets and index views over them. A Dataset is immutable after
// loading and shared read-only by every worker thread (thread-compatible); views and batches
// borrow it and hold index lists, never copies of the samples.
#ifndef FEDTRAIN_DATA_DATASET_H_
#define FEDTRAIN_DATA_DATASET_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "core/vec.h"

namespace fedtrain {

struct Dataset {
  size_t num_features = 0;
  int num_classes = 0;
  std::vector<float> features;  // row-major, size() x num_features
  std::vector<int32_t> labels;  // in [0, num_classes)

  size_t size() const { return labels.size(); }
  ConstVec row(size_t i) const {
    return ConstVec(features.data() + i * num_features, num_features);
  }
};

// A subset of a Dataset given by sample indices (or the whole set when `all`).
struct DataView {
  const Dataset* data = nullptr;
  absl::Span<const uint32_t> indices;
  bool all = false;

  static DataView All(const Dataset& d) { return DataView{&d, {}, true}; }
  static DataView Of(const Dataset& d, absl::Span<const uint32_t> idx) {
    return DataView{&d, idx, false};
  }
  size_t size() const { return all ? data->size() : indices.size(); }
  uint32_t index(size_t i) const { return all ? static_cast<uint32_t>(i) : indices[i]; }
};

// One minibatch: indices into `data`.
struct Batch {
  const Dataset* data = nullptr;
  absl::Span<const uint32_t> indices;
  size_t size() const { return indices.size(); }
};

}  // namespace fedtrain

#endif  // FEDTRAIN_DATA_DATASET_H_
