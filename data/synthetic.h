// Synthetic(alpha, beta) federated data (specs/federated.md §7.8; FedProx's generator):
// N devices, each with its own softmax-regression teacher, heavy-tailed sizes.
// Deterministic: every draw comes from RngStream(seed, 0, device, kSyntheticData).
#ifndef FEDTRAIN_DATA_SYNTHETIC_H_
#define FEDTRAIN_DATA_SYNTHETIC_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace fedtrain {

struct SyntheticOptions {
  double alpha = 1.0;  // u_k ~ Normal(0, alpha)  (alpha is a STANDARD DEVIATION, §7.8 [A])
  double beta = 1.0;   // B_k ~ Normal(0, beta)   (standard deviation as well)
  int num_devices = 30;
  int dim = 60;
  int classes = 10;
  bool iid = false;    // one shared teacher W, b and v_k = 0
  uint64_t seed = 0;
};

// A data set that comes already split by device ("natural" partition).
struct FederatedData {
  Dataset train;  // all devices' train samples, pooled
  Dataset test;   // all devices' test samples, pooled
  std::vector<std::vector<uint32_t>> client_train;  // device -> indices into train
};

// InvalidArgument (naming the field) for num_devices <= 0, dim <= 0, classes < 2,
// negative alpha or beta. ResourceExhausted if the (uncapped, heavy-tailed) sizes total more
// than uint32 indices address, which takes an astronomically unlucky seed.
absl::StatusOr<FederatedData> GenerateSynthetic(const SyntheticOptions& opts);

}  // namespace fedtrain

#endif  // FEDTRAIN_DATA_SYNTHETIC_H_
