// Internals shared by the compressor implementations (compressor.cc, sparse.cc, the dense
// quantizers: quantizer_internal.h) and their tests. Not part of the public interface.
//
// Message header (every codec except "identity/1" and "identity_f64/1", which are raw
// little-endian values): 16 bytes, little-endian, at the start of Encoded::bytes.
//
//   offset size field
//   0      1    kind: 2 topk, 3 randk, 4 randk_scaled, 5 qsgd, 6 sign, 7 natural
//   1      1    flags: bits 0-3 index encoding (0 none/dense, 1 packed, 2 u32, 3 varint,
//                      4 bitmap, 5 seed), bits 4-5 value type (0 f32, 1 f64), bits 6-7 zero
//   2      2    reserved, zero
//   4      4    d (vector length)
//   8      4    a: sparse k (configured); qsgd s (levels); sign block size; natural 0
//   12     4    b: sparse n (values sent, <= k); qsgd bucket size; sign 0; natural 0
//
// The payload follows immediately (its layout is documented next to each codec). Round and
// client id, which docs/compression.md §1.7 also lists in the header, travel in the transport's
// envelope.
#ifndef FEDTRAIN_COMPRESSION_COMPRESSOR_INTERNAL_H_
#define FEDTRAIN_COMPRESSION_COMPRESSOR_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "compression/compressor.h"
#include "core/rng.h"

namespace fedtrain {
namespace compression_internal {

enum Kind : uint8_t {
  kKindTopK = 2,
  kKindRandK = 3,
  kKindRandKScaled = 4,
  kKindQsgd = 5,
  kKindSign = 6,
  kKindNatural = 7,
};

enum IndexEncoding : uint8_t {
  kEncNone = 0,  // dense quantizers
  kEncPacked = 1,
  kEncU32 = 2,
  kEncVarint = 3,
  kEncBitmap = 4,
  kEncSeed = 5,
  kEncAuto = 15,  // configuration only; never on the wire
};

enum ValueType : uint8_t { kF32 = 0, kF64 = 1 };

inline constexpr size_t kHeaderBytes = 16;

struct Header {
  uint8_t kind = 0;
  uint8_t encoding = 0;
  uint8_t value_type = 0;
  uint32_t d = 0;
  uint32_t a = 0;
  uint32_t b = 0;
};

void WriteHeader(const Header& h, std::string* out);
// InvalidArgument when the bytes are too short for a header or its reserved bits are set.
absl::Status ReadHeader(absl::string_view bytes, Header* h);

// The checks every Decode starts with: codec id, Encoded::dim vs the compressor's d and the
// output length.
absl::Status CheckEnvelope(const Compressor& c, const EncodedView& in, size_t out_size);
// The checks every Encode starts with: x and decoded lengths.
absl::Status CheckEncodeArgs(const Compressor& c, size_t x_size, size_t decoded_size);

// Encode/Decode written once as templates in the derived class:
//   template <typename T> absl::Status EncodeT(absl::Span<const T>, RngStream&, Encoded*,
//                                              absl::Span<T>) const;
//   template <typename T> absl::Status DecodeT(const EncodedView&, absl::Span<T>) const;
template <typename Derived>
class CompressorBase : public Compressor {
 public:
  absl::Status Encode(ConstVec x, RngStream& rng, Encoded* out, Vec decoded) const override {
    return self().template EncodeT<float>(x, rng, out, decoded);
  }
  absl::Status Encode(absl::Span<const double> x, RngStream& rng, Encoded* out,
                      absl::Span<double> decoded) const override {
    return self().template EncodeT<double>(x, rng, out, decoded);
  }
  absl::Status Decode(const EncodedView& in, Vec out) const override {
    return self().template DecodeT<float>(in, out);
  }
  absl::Status Decode(const EncodedView& in, absl::Span<double> out) const override {
    return self().template DecodeT<double>(in, out);
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

// Validated configurations, built by MakeCompressor.
struct SparseConfig {
  uint8_t kind = kKindTopK;  // kKindTopK, kKindRandK or kKindRandKScaled
  size_t d = 0;
  uint32_t k = 0;
  uint8_t encoding = kEncAuto;
  uint8_t value_type = kF32;
};
std::unique_ptr<Compressor> NewSparseCompressor(const SparseConfig& c);

struct QuantizerConfig {
  uint8_t kind = kKindQsgd;  // kKindQsgd, kKindSign or kKindNatural
  size_t d = 0;
  uint32_t levels = 0;  // qsgd s
  uint32_t bucket = 0;  // qsgd bucket; sign block (already resolved: 0 -> d, min(b, d))
  uint8_t value_type = kF32;
};
std::unique_ptr<Compressor> NewQuantizer(const QuantizerConfig& c);
// For tests: true makes the quantizers (QSGD, sign) run their baseline-ISA kernels even where
// the CPU has AVX-512 (those kernels, streaming stores included, must give the same bytes and
// values); false restores the run-time choice. Process-wide; not for concurrent use. Defined,
// with the flag it sets, in philox_simd.cc.
void UseBaselineQuantizerKernels(bool baseline_only);

// The Rand-K sampler (Floyd's algorithm on RngStream(seed, 0, 0, kCompression)): writes the
// k-subset of [0, d) drawn from `seed`, sorted ascending. The server calls it with the seed
// of a "seed" message and gets the worker's index set. 0 < k <= d.
void SampleRandK(uint64_t seed, size_t d, size_t k, std::vector<uint32_t>* out);

// Philox4x32-10 (Random123) in counter mode, 128 uniforms per block: for block number c,
// out[32 * w + i] is word w (0..3) of Philox4x32-10(counter = {32c + i (low 32 bits), high
// 32 bits, 0, 0}, key = {key low 32 bits, key high 32 bits}), i = 0..31. Coordinate j of a
// vector uses out[j mod 128] of block j / 128. Uses SIMD where the CPU has it; the result
// is the same bits everywhere (integer arithmetic only).
inline constexpr size_t kPhiloxBlock = 128;
void PhiloxBlock(uint64_t key, uint64_t block, uint32_t* out);
// One implementation of PhiloxBlock, for tests: 0 portable (Random123's Philox4x32), 1 SSE2,
// 2 AVX2, 3 AVX-512F; a variant the CPU or build lacks runs the portable one.
void PhiloxBlockVariant(int variant, uint64_t key, uint64_t block, uint32_t* out);

}  // namespace compression_internal
}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_COMPRESSOR_INTERNAL_H_
