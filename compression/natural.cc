// Natural compression (docs/compression.md §1.6), codec "natural/1": every coordinate
// rounded at random to a neighbouring power of two (unbiased), sent as a sign and an 8-bit
// exponent. The uniforms come from Philox4x32-10 (philox_simd.cc).
//
// Payload (after the 16-byte header of compressor_internal.h):
//   d codes of 9 bits: sign | (e << 1), e in 1..254 meaning 2^(e-127) and e = 0 meaning 0
//   (sign then 0), zero-padded to a byte.                          9 d
// A coordinate rounds up when u_j < floor(p_j 2^32): the rounding probability is p_j to a
// resolution of 2^-32, exact for float32 inputs (p is M / 2^23, a multiple of 2^-32).
//
// Thread-compatible like every Compressor: const methods may run concurrently.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "core/status_macros.h"
// Last: it turns FP contraction off for the rest of this file (see there).
#include "compression/quantizer_internal.h"

namespace fedtrain {
namespace compression_internal {

namespace {

// Exponent code e in 1..254 stands for 2^(e-127) (the float32 normal range, so every decoded
// value fits float32), e = 0 for zero. |x| in [2^-126, 2^127]: a = floor(log2|x|), round up
// to 2^(a+1) with probability p = |x|/2^a - 1. |x| < 2^-126 (subnormal range): 2^-126 with
// probability |x| / 2^-126, else 0 (unbiased; its variance |x|(2^-126 - |x|) may exceed the
// ω = 1/8 bound for such tiny values). |x| > 2^127 could round to 2^128: rejected.

class NaturalCompressor final : public CompressorBase<NaturalCompressor> {
 public:
  explicit NaturalCompressor(const QuantizerConfig& c) : c_(c) {}

  std::string codec() const override { return "natural/1"; }
  size_t dim() const override { return c_.d; }
  CompressorInfo info() const override { return {true, false, 0.0, 1.0 / 8.0}; }
  uint64_t PayloadBits() const override { return 9ull * c_.d; }

  template <typename T>
  absl::Status EncodeT(absl::Span<const T> x, RngStream& rng, Encoded* out,
                       absl::Span<T> decoded) const {
    FT_RETURN_IF_ERROR(CheckEncodeArgs(*this, x.size(), decoded.size()));
    const size_t d = c_.d;
    for (size_t j = 0; j < d; ++j) {
      if (!std::isfinite(x[j]))
        return absl::InvalidArgumentError(absl::StrCat(
            "natural input has a non-finite value (", static_cast<double>(x[j]),
            ") at index ", j));
      if (std::fabs(static_cast<double>(x[j])) > 0x1p127)
        return absl::InvalidArgumentError(absl::StrCat(
            "natural input ", static_cast<double>(x[j]), " at index ", j,
            " exceeds 2^127, the largest power of two of the 8-bit exponent code"));
    }
    out->codec = codec();
    out->dim = d;
    out->bytes.clear();
    WriteHeader(MakeHeader(kKindNatural, c_.value_type, d, 0, 0), &out->bytes);
    out->bytes.resize(kHeaderBytes + (9 * d + 7) / 8);
    char* codes = out->bytes.data() + kHeaderBytes;
    const uint64_t key = rng.NextU64();
    const PhiloxFn philox = SelectPhilox();
    uint32_t u[kPhiloxBlock], code[kPhiloxBlock];
    for (size_t blk = 0; blk * kPhiloxBlock < d; ++blk) {
      const size_t j0 = blk * kPhiloxBlock;
      const size_t n = std::min(kPhiloxBlock, d - j0);
      philox(key, blk, u);
      for (size_t i = 0; i < n; ++i) {
        const double v = static_cast<double>(x[j0 + i]);
        const double a = std::fabs(v);
        uint32_t e;
        if (a == 0) {
          code[i] = 0;
          continue;
        }
        if (a >= 0x1p-126) {
          int ex;
          const double m = std::frexp(a, &ex);  // a = m 2^ex, m in [0.5, 1)
          const double p = 2 * m - 1;           // exact
          const uint32_t t = static_cast<uint32_t>(p * 4294967296.0);
          e = static_cast<uint32_t>(ex - 1 + 127) + (u[i] < t ? 1u : 0u);
        } else {
          const double p = a * 0x1p126;  // in (0, 1)
          const uint32_t t = static_cast<uint32_t>(p * 4294967296.0);
          e = u[i] < t ? 1u : 0u;
        }
        code[i] = (e << 1) | ((v < 0 && e != 0) ? 1u : 0u);
      }
      PackBits(code, n, 9, codes + blk * (kPhiloxBlock / 8) * 9);
      if (!decoded.empty())
        for (size_t i = 0; i < n; ++i) decoded[j0 + i] = Value<T>(code[i]);
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status DecodeT(const EncodedView& in, absl::Span<T> out) const {
    FT_RETURN_IF_ERROR(CheckEnvelope(*this, in, out.size()));
    Header h;
    FT_RETURN_IF_ERROR(ReadHeader(in.bytes, &h));
    FT_RETURN_IF_ERROR(CheckQuantHeader(*this, h, kKindNatural, c_.value_type, c_.d, 0, 0));
    const size_t d = c_.d;
    FT_RETURN_IF_ERROR(CheckLength(*this, in.bytes.size(), kHeaderBytes + (9 * d + 7) / 8));
    const char* codes = in.bytes.data() + kHeaderBytes;
    if (!PaddingIsZero(codes, 9 * d))
      return absl::InvalidArgumentError("natural/1: non-zero padding bits");
    uint32_t code[kPhiloxBlock];
    for (size_t blk = 0; blk * kPhiloxBlock < d; ++blk) {
      const size_t j0 = blk * kPhiloxBlock;
      const size_t n = std::min(kPhiloxBlock, d - j0);
      UnpackBits(codes + blk * (kPhiloxBlock / 8) * 9, n, 9, code);
      for (size_t i = 0; i < n; ++i) {
        const uint32_t e = code[i] >> 1;
        if (e == 255 || code[i] == 1)
          return absl::InvalidArgumentError(absl::StrCat(
              "natural/1: code ", code[i], " at index ", j0 + i, " is not a valid 9-bit code"));
        out[j0 + i] = Value<T>(code[i]);
      }
    }
    return absl::OkStatus();
  }

 private:
  template <typename T>
  static T Value(uint32_t code) {
    const uint32_t e = code >> 1;
    if (e == 0) return T{0};
    const T v = static_cast<T>(std::ldexp(1.0, static_cast<int>(e) - 127));
    return (code & 1) ? -v : v;
  }

  QuantizerConfig c_;
};

}  // namespace

std::unique_ptr<Compressor> NewNaturalCompressor(const QuantizerConfig& c) {
  return std::unique_ptr<Compressor>(new NaturalCompressor(c));
}

}  // namespace compression_internal
}  // namespace fedtrain
