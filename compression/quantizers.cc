// Dense quantizers (docs/compression.md §1.4-§1.6): NewQuantizer, which builds them, and the
// message checks they share. The quantizers themselves: QSGD with s levels per bucket
// (qsgd.cc; its AVX-512 kernels in qsgd_avx512.cc), scaled sign per block (sign.cc), natural
// compression (natural.cc); the Philox4x32-10 uniform generator of QSGD and natural
// compression, and the run-time choice of instruction set, in philox_simd.cc; what they
// share in quantizer_internal.h. Each codec's payload layout is documented in its file.
//
// Pure functions, thread-safe.
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "compression/compressor_internal.h"
// Last: it turns FP contraction off for the rest of this file (see there).
#include "compression/quantizer_internal.h"

namespace fedtrain {
namespace compression_internal {

absl::Status CheckQuantHeader(const Compressor& c, const Header& h, uint8_t kind, uint8_t vt,
                              size_t d, uint32_t a, uint32_t b) {
  if (h.kind != kind || h.encoding != kEncNone)
    return absl::InvalidArgumentError(
        absl::StrCat(c.codec(), ": header kind ", static_cast<int>(h.kind), " encoding ",
                     static_cast<int>(h.encoding), ", expected ", static_cast<int>(kind), " 0"));
  if (h.value_type != vt)
    return absl::InvalidArgumentError(absl::StrCat(c.codec(), ": header value type ",
                                                   static_cast<int>(h.value_type),
                                                   ", expected ", static_cast<int>(vt)));
  if (h.d != d || h.a != a || h.b != b)
    return absl::InvalidArgumentError(
        absl::StrCat(c.codec(), ": header (d, a, b) = (", h.d, ", ", h.a, ", ", h.b,
                     "), configured (", d, ", ", a, ", ", b, ")"));
  return absl::OkStatus();
}

absl::Status CheckLength(const Compressor& c, size_t got, size_t want) {
  if (got != want)
    return absl::InvalidArgumentError(
        absl::StrCat(c.codec(), ": message of ", got, " bytes; expected ", want));
  return absl::OkStatus();
}

// True when the bits of the last byte past `bits` are zero (canonical padding).
bool PaddingIsZero(const char* payload, size_t bits) {
  if (bits % 8 == 0) return true;
  return (static_cast<uint8_t>(payload[bits / 8]) >> (bits % 8)) == 0;
}

Header MakeHeader(uint8_t kind, uint8_t vt, size_t d, uint32_t a, uint32_t b) {
  Header h;
  h.kind = kind;
  h.encoding = kEncNone;
  h.value_type = vt;
  h.d = static_cast<uint32_t>(d);
  h.a = a;
  h.b = b;
  return h;
}

std::unique_ptr<Compressor> NewQuantizer(const QuantizerConfig& c) {
  switch (c.kind) {
    case kKindQsgd:
      return NewQsgdCompressor(c);
    case kKindSign:
      return NewSignCompressor(c);
    default:
      return NewNaturalCompressor(c);
  }
}

}  // namespace compression_internal
}  // namespace fedtrain
