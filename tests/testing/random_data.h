// Small deterministic data sets for unit tests (header-only; needs fedtrain::core linked).
#ifndef FEDTRAIN_TESTS_TESTING_RANDOM_DATA_H_
#define FEDTRAIN_TESTS_TESTING_RANDOM_DATA_H_

#include <cstddef>
#include <cstdint>

#include "core/rng.h"
#include "data/dataset.h"

namespace fedtrain::testing {

// `n` samples with standard-normal features and uniform labels, from RngStream(seed, kTest).
inline Dataset RandomDataset(uint64_t seed, size_t n, size_t features, int classes) {
  RngStream rng = RngStream::For(seed, 0, 0, Purpose::kTest);
  Dataset d;
  d.num_features = features;
  d.num_classes = classes;
  d.features.resize(n * features);
  for (float& x : d.features) x = static_cast<float>(rng.Normal());
  for (size_t i = 0; i < n; ++i)
    d.labels.push_back(static_cast<int32_t>(rng.UniformInt(static_cast<uint64_t>(classes))));
  return d;
}

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_RANDOM_DATA_H_
