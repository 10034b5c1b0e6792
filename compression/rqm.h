// The randomized quantization mechanism (RQM; docs/privacy.md §1): a differentially private
// uplink quantizer. Every coordinate is clipped to [-c, c], then rounded at random to one of
// m levels spread over the wider range [-(c + Δ), c + Δ], where each interior level is kept
// only with probability q. The client sends level indices (ceil(log2 m) bits each); the
// server maps them back to levels. The randomness of the kept set and of the rounding is the
// privacy noise: the output distribution of every coordinate is known exactly (RqmGrid::Pmf),
// which is what the accountant (compression/privacy_accountant.h) evaluates.
//
// Pure: no sockets, threads, files or clocks. RqmGrid and the compressor are immutable and
// thread-safe after construction.
#ifndef FEDTRAIN_COMPRESSION_RQM_H_
#define FEDTRAIN_COMPRESSION_RQM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compression/compressor.h"

namespace fedtrain {

// The mechanism's parameters; names follow the config fields (privacy.<field>).
struct RqmOptions {
  double clip = 1.0;     // c > 0: l-infinity clip of every coordinate
  double delta = 1.0;    // Δ > 0: range extension; the levels span [-(c + Δ), c + Δ]
  int64_t levels = 8;    // m >= 2 (at most 65536: 16 bits per index)
  double keep = 0.5;     // q in (0, 1): keep probability of each interior level
};

// InvalidArgument naming the field ("privacy.clip", "privacy.range_extension", "privacy.levels",
// "privacy.keep_prob") when a parameter is out of range. q = 1 or Δ = 0 would make the
// privacy loss infinite and are refused for that reason.
absl::Status ValidateRqmOptions(const RqmOptions& o);

// The level grid and the exact output distribution. Built from validated options.
class RqmGrid {
 public:
  explicit RqmGrid(const RqmOptions& o);

  const RqmOptions& options() const { return o_; }
  int64_t m() const { return o_.levels; }
  double X() const { return X_; }  // c + Δ
  double w() const { return w_; }  // 2X / (m - 1)
  // B(i) = -X + i w, always this double expression (client, server and accountant agree bit
  // for bit; docs/privacy.md §1.1).
  double Level(int64_t i) const { return -X_ + static_cast<double>(i) * w_; }
  // The j with B(j) <= x < B(j + 1), clamped to [0, m - 2]; x in [-c, c].
  int64_t Interval(double x) const;
  // (1 - q)^i for i = 0..m-1 by repeated multiplication (the sampler's thresholds and the
  // pmf use the same numbers).
  double MissPow(int64_t i) const { return miss_pow_[static_cast<size_t>(i)]; }
  // The exact distribution P_x(z), z = 0..m-1, of the output index for an input x in
  // [-c, c] (docs/privacy.md §1.3); O(m^2).
  void Pmf(double x, std::vector<double>* p) const;
  // Mean of |S| clients' decodes from the integer sum Z of their indices (what secure
  // aggregation reveals): -X + w Z / |S|.
  double DecodeSum(uint64_t z_sum, uint64_t num_clients) const;
  // Bits per index on the wire: ceil(log2 m).
  int IndexBits() const;

 private:
  RqmOptions o_;
  double X_ = 0.0, w_ = 0.0;
  std::vector<double> miss_pow_;
};

// The "rqm/1" compressor for vectors of `dim` values (validated options). Its Encode()
// clips, samples and packs the indices; `decoded` receives the levels B(z) the server will
// see. Decode() checks the header, the length, padding and that every index is below m.
absl::StatusOr<std::unique_ptr<Compressor>> MakeRqmCompressor(const RqmOptions& o, size_t dim);

// The decoded indices of an "rqm/1" message (for secure aggregation of the integer sums and
// for tests): `out` receives d indices. Same checks as Decode().
absl::Status RqmDecodeIndices(const Compressor& rqm, const EncodedView& in,
                              std::vector<uint32_t>* out);

namespace rqm_internal {
// For tests. The index the rqm/1 encoder picks for input x given the three 53-bit uniforms
// (integers below 2^53: left walk, right walk, rounding): fast = true goes through the
// encoder's path (high 32 bits first, the low 21 bits only on a tie), fast = false compares
// all 53 bits directly (the definition). The two must always agree.
absl::StatusOr<uint32_t> SampleIndexForTest(const Compressor& rqm, double x, uint64_t nl,
                                            uint64_t nr, uint64_t nz, bool fast);
// The walk thresholds ceil((1-q)^i 2^53), i = 1..m-2 (zero-padded).
std::vector<uint64_t> WalkThresholdsForTest(const Compressor& rqm);
}  // namespace rqm_internal

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_RQM_H_
