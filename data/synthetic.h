// Synthetic(alpha, beta) federated data (docs/federated.md §7.8; FedProx's generator):
// N devices, each with its own softmax-regression teacher, heavy-tailed sizes.
// Deterministic: every draw comes from RngStream(seed, 0, device, kSyntheticData).
// GenerateSynthetic pools every device into one data set; SyntheticPopulation generates one
// device at a time, on demand, with bit-identical samples, so a population of a million
// devices costs no memory until a device is asked for.
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

// One device's samples, exactly as GenerateSynthetic pools them (same rows, same order):
// `train` holds the device's client_train rows, `test` its test rows. The scratch vectors are
// kept between calls so that a reused SyntheticDevice allocates nothing in steady state.
struct SyntheticDevice {
  Dataset train;
  Dataset test;
  std::vector<float> scratch_x;
  std::vector<int32_t> scratch_y;
  std::vector<uint32_t> scratch_order;
};

// The generator of GenerateSynthetic, one device at a time. Holds only the options, the
// feature scales (dim doubles) and, for the IID variant, the shared teacher: nothing per
// device. Thread-compatible: immutable after Create, GenerateDevice may run concurrently
// (each caller with its own SyntheticDevice).
class SyntheticPopulation {
 public:
  // Same validation as GenerateSynthetic (InvalidArgument naming the field).
  static absl::StatusOr<SyntheticPopulation> Create(const SyntheticOptions& opts);

  const SyntheticOptions& options() const { return opts_; }
  uint64_t num_devices() const { return static_cast<uint64_t>(opts_.num_devices); }
  // n_k, the device's train + test sample count (§7.8 step 1): the head of its stream only.
  uint64_t DeviceSize(uint64_t k) const;
  static uint64_t TrainSize(uint64_t n);  // the first 90% (floor) of n samples
  // Generates device k (< num_devices) into `out`, replacing its train and test sets. `test`
  // rows are dropped when `with_test` is false (the draws are the same either way).
  void GenerateDevice(uint64_t k, SyntheticDevice* out, bool with_test = true) const;

 private:
  SyntheticPopulation() = default;
  SyntheticOptions opts_;
  std::vector<double> stddev_;             // sqrt(Sigma_jj), §7.8 step 3
  std::vector<double> shared_w_, shared_b_;  // IID variant's teacher (empty otherwise)
};

}  // namespace fedtrain

#endif  // FEDTRAIN_DATA_SYNTHETIC_H_
