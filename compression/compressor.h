// Uplink compressors and their codecs. Pure: no sockets, threads, files or clocks.
// Thread-compatible: const methods may run concurrently (one compressor serves every
// worker thread). Each compressor names its codec ("identity/1"); the name travels with the
// bytes and a decoder refuses a codec it does not implement.
//
// This build ships the identity compressor (32 bits per coordinate, little-endian float32).
// Decode() validates what the server will rely on: codec id, declared and actual size, and
// that every value is finite.
#ifndef FEDTRAIN_COMPRESSION_COMPRESSOR_H_
#define FEDTRAIN_COMPRESSION_COMPRESSOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/rng.h"
#include "core/vec.h"

namespace fedtrain {

struct Encoded {
  std::string codec;  // e.g. "identity/1"
  uint64_t dim = 0;   // decoded length
  std::string bytes;
};

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual std::string codec() const = 0;
  // Encodes `x`; `decoded`, when not empty, receives exactly what Decode() will produce
  // (error feedback needs it without a second pass).
  virtual absl::Status Encode(ConstVec x, RngStream& rng, Encoded* out, Vec decoded) const = 0;
  // Decodes into `out` (size == in.dim). InvalidArgument for a codec mismatch, a size that
  // does not match, or a non-finite value (naming the first bad index).
  virtual absl::Status Decode(const Encoded& in, Vec out) const = 0;
};

class IdentityCompressor final : public Compressor {
 public:
  std::string codec() const override { return "identity/1"; }
  absl::Status Encode(ConstVec x, RngStream& rng, Encoded* out, Vec decoded) const override;
  absl::Status Decode(const Encoded& in, Vec out) const override;
};

// NotFound listing the known names ("identity").
absl::StatusOr<std::unique_ptr<Compressor>> MakeCompressor(const std::string& name);

// InvalidArgument naming the first non-finite index of `v` (`what` says whose vector).
absl::Status CheckFinite(ConstVec v, const std::string& what);

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_COMPRESSOR_H_
