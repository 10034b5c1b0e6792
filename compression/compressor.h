// Uplink compressors and their codecs (docs/compression.md §1). Pure: no sockets, threads,
// files or clocks. Thread-compatible: const methods may run concurrently (one compressor
// serves every worker thread).
//
// A compressor is built for one vector length d (MakeCompressor(options, d)). Encode() draws
// what it needs from the caller's RngStream (keyed (seed, round, client, kCompression)) and
// writes the wire bytes; `decoded`, when not empty, receives exactly what Decode() will
// produce from those bytes (error feedback needs it without a second pass: docs/compression.md §2's
// rule that a worker updates its state with the values as the server reconstructs them).
//
// Every message names its codec (Encoded::codec, e.g. "topk/1"); the bytes start with a
// small header (encoding and value type flags, k or bucket size) that Decode() checks against
// its own configuration. Decode() validates everything the server relies on: codec id,
// header, exact byte length, indices in range and strictly increasing, and finite values;
// any mismatch is InvalidArgument naming the problem, and `out` is then unspecified.
//
// Two numeric entry points: float (the training pipeline: model updates are float32) and
// double (error-feedback state and the float64 validation harness; with value_type f64 the
// round trip is exact, as docs/compression.md §1 asks for tests).
#ifndef FEDTRAIN_COMPRESSION_COMPRESSOR_H_
#define FEDTRAIN_COMPRESSION_COMPRESSOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/rng.h"
#include "core/vec.h"

namespace fedtrain {

struct Encoded {
  std::string codec;  // e.g. "identity/1", "topk/1"
  uint64_t dim = 0;   // decoded length
  std::string bytes;  // header + payload
};

// What Decode() reads: a message whose bytes stay where they are (an Encoded, or a received
// v1::Tensor), so decoding never copies them first.
struct EncodedView {
  EncodedView(absl::string_view codec_in, uint64_t dim_in, absl::string_view bytes_in)
      : codec(codec_in), dim(dim_in), bytes(bytes_in) {}
  EncodedView(const Encoded& e)  // NOLINT: implicit, so Decode(encoded, out) reads as before
      : codec(e.codec), dim(e.dim), bytes(e.bytes) {}
  absl::string_view codec;
  uint64_t dim = 0;
  absl::string_view bytes;
};

// Class constants of docs/compression.md §1.8 for the compressor's d.
struct CompressorInfo {
  bool unbiased = false;             // E[C(x)] = x
  bool positively_homogeneous = false;
  double delta = 1.0;                // contractive parameter (worst case); 0 if not contractive
  double omega = 0.0;                // variance parameter of unbiased compressors
};

// What a compressor is; the names match the config fields (compression.<field>) so errors can
// name them.
struct CompressorOptions {
  // "identity", "topk", "randk" (unscaled, contractive), "randk_scaled" (d/k, unbiased),
  // "qsgd", "sign" (scaled sign), "natural", "rqm" (randomized quantization, a DP mechanism), "gaussian" (clip + noise, DP).
  std::string compressor = "identity";
  double k_fraction = 0.0;  // topk / randk: k = max(1, round(k_fraction * d)) when k == 0
  int64_t k = 0;            // explicit k; wins over k_fraction
  int64_t levels = 15;      // qsgd: s >= 1
  int64_t bucket = 512;     // qsgd bucket size; sign block size (0 = the whole vector)
  // Sparse messages (topk, randk*): "auto" (smallest of packed / varint / bitmap for the
  // message at hand), "packed", "u32", "varint", "bitmap", "seed" (randk only: values plus
  // a 64-bit seed from which the server regenerates the indices).
  std::string index_encoding = "auto";
  std::string value_type = "f32";  // values on the wire: "f32" or "f64"
  // "rqm" (compression/rqm.h; set from the config's privacy section, whose field names the
  // errors use): l-infinity clip c, range extension Δ, levels m, keep probability q.
  double rqm_clip = 1.0;
  double rqm_range_extension = 1.0;
  int64_t rqm_levels = 8;
  double rqm_keep = 0.5;
  // "gaussian" (compression/gaussian_mechanism.h; from the privacy section): placement
  // "local" or "distributed", clip c or S, per-coordinate noise deviation σ.
  std::string gaussian_placement = "local";
  double gaussian_clip = 1.0;
  double gaussian_sigma = 1.0;
};

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual std::string codec() const = 0;
  virtual size_t dim() const = 0;
  virtual CompressorInfo info() const = 0;
  // Payload size in bits for a full message (k non-zeros for sparse ones) with the
  // configured encoding, excluding the header: the docs/compression.md §1.8 formula. For "auto" and
  // "varint" (data-dependent) the size of the packed encoding, which auto never exceeds.
  virtual uint64_t PayloadBits() const = 0;

  virtual absl::Status Encode(ConstVec x, RngStream& rng, Encoded* out, Vec decoded) const = 0;
  virtual absl::Status Encode(absl::Span<const double> x, RngStream& rng, Encoded* out,
                              absl::Span<double> decoded) const = 0;
  virtual absl::Status Decode(const EncodedView& in, Vec out) const = 0;
  virtual absl::Status Decode(const EncodedView& in, absl::Span<double> out) const = 0;
  // Decode() of a message whose bytes are `bytes` (in.bytes is ignored), held in pieces, as a
  // transport receives them (ReceivedUpdate::part_data). This default reads a flat Cord in
  // place and copies a fragmented one into one buffer first; IdentityCompressor decodes piece
  // by piece without that copy.
  virtual absl::Status DecodeCord(const EncodedView& in, const absl::Cord& bytes, Vec out) const;
};

// Raw float32 ("identity/1", no header: 4 bytes per value, little-endian). Any length.
class IdentityCompressor final : public Compressor {
 public:
  explicit IdentityCompressor(size_t dim = 0) : dim_(dim) {}
  std::string codec() const override { return "identity/1"; }
  size_t dim() const override { return dim_; }
  CompressorInfo info() const override { return {true, true, 1.0, 0.0}; }
  uint64_t PayloadBits() const override { return 32ull * dim_; }
  absl::Status Encode(ConstVec x, RngStream& rng, Encoded* out, Vec decoded) const override;
  absl::Status Encode(absl::Span<const double> x, RngStream& rng, Encoded* out,
                      absl::Span<double> decoded) const override;
  absl::Status Decode(const EncodedView& in, Vec out) const override;
  absl::Status Decode(const EncodedView& in, absl::Span<double> out) const override;
  absl::Status DecodeCord(const EncodedView& in, const absl::Cord& bytes, Vec out) const override;

 private:
  size_t dim_;
};

// Validates the options against d (InvalidArgument naming the field, e.g.
// "compression.k_fraction"; NotFound for an unknown compressor, listing the known ones).
absl::StatusOr<std::unique_ptr<Compressor>> MakeCompressor(const CompressorOptions& o,
                                                           size_t dim);

// InvalidArgument naming the first non-finite index of `v` (`what` says whose vector).
absl::Status CheckFinite(ConstVec v, const std::string& what);
absl::Status CheckFinite(absl::Span<const double> v, const std::string& what);

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_COMPRESSOR_H_
