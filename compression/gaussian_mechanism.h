// The Gaussian mechanism on the uplink (docs/privacy.md §1.4), the baseline RQM is compared
// with: each client clips its vector and adds Gaussian noise before sending it.
//   local        clip every coordinate to [-c, c], add N(0, σ²) to each (σ = z c): local DP,
//                l2 sensitivity 2 c sqrt(d).
//   distributed  clip the vector to l2 norm S, add N(0, σ²) to each coordinate with
//                σ = z S / sqrt(K): the sum of K clients' noise is N(0, (z S)²), the noise of
//                central DP-FedAvg (the guarantee needs secure aggregation or a trusted
//                aggregator, and every one of the K clients to report).
// Codec "gaussian/1": the 16-byte quantizer header (kind 9) and d float32 values. Noise from
// RngStream::Normal on the caller's stream. Pure; thread-compatible.
#ifndef FEDTRAIN_COMPRESSION_GAUSSIAN_MECHANISM_H_
#define FEDTRAIN_COMPRESSION_GAUSSIAN_MECHANISM_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "compression/compressor.h"

namespace fedtrain {

struct GaussianMechanismOptions {
  std::string placement = "local";  // "local" or "distributed"
  double clip = 1.0;                // c (local, l-infinity) or S (distributed, l2), > 0
  double sigma = 1.0;               // per-coordinate noise standard deviation, >= 0
};

// InvalidArgument naming privacy.placement / privacy.clip / privacy.noise_multiplier.
absl::StatusOr<std::unique_ptr<Compressor>> MakeGaussianMechanism(
    const GaussianMechanismOptions& o, size_t dim);

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_GAUSSIAN_MECHANISM_H_
