// QSGD (docs/compression.md §1.4), codec "qsgd/1": s levels per bucket of b coordinates;
// the compressor and its kernels compiled for the baseline ISA (qsgd_kernels.h). The AVX-512
// kernels it picks at run time are in qsgd_avx512.cc; the uniforms come from Philox4x32-10
// (philox_simd.cc).
//
// Payload (after the 16-byte header of compressor_internal.h; V = 32 bits for value_type
// f32, 64 for f64; nb = ceil(d / b) buckets):
//   nb bucket norms (V bits each), then d codes of 1 + ceil(log2(s+1)) bits, LSB first,
//   zero-padded to a byte. Code = sign | (level << 1), sign 1 = negative, never set with
//   level 0.                                                     nb V + d (1 + ceil(log2(s+1)))
// A coordinate rounds up a level when u_j < floor(p_j 2^32): the rounding probability is p_j
// to a resolution of 2^-32.
//
// Thread-compatible like every Compressor: const methods may run concurrently.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "core/status_macros.h"
// Last: it turns FP contraction off for the rest of this file (see quantizer_internal.h).
#include "compression/qsgd_kernels.h"

namespace fedtrain {
namespace compression_internal {

namespace {

// The loops of qsgd_kernels.h compiled for the baseline ISA (for AVX-512: qsgd_avx512.cc).
template <typename T>
bool QsgdDecodeBlocks(const QsgdShape& sh, const char* codes, const double* norms, T* lut,
                      T* out) {
  return QsgdDecodeBlocksImpl<T>(sh, codes, norms, lut, out);
}

template <typename T, typename VT, typename CT>
QsgdEncodeOutcome QsgdEncode(const QsgdShape& sh, const T* x, uint64_t key, PhiloxFn philox,
                             char* scales, char* codes, T* decoded, T* lut, size_t* bucket) {
  return QsgdEncodeImpl<T, VT, CT, false>(sh, x, key, philox, scales, codes, decoded, lut,
                                          bucket);
}

class QsgdCompressor final : public CompressorBase<QsgdCompressor> {
 public:
  explicit QsgdCompressor(const QuantizerConfig& c)
      : c_(c),
        width_(1 + CeilLog2(uint64_t{c.levels} + 1)),
        nb_(c.d == 0 ? 0 : (c.d + c.bucket - 1) / c.bucket),
        vbytes_(c.value_type == kF64 ? 8 : 4) {}

  std::string codec() const override { return "qsgd/1"; }
  size_t dim() const override { return c_.d; }
  CompressorInfo info() const override {
    const double b = c_.bucket, s = c_.levels;
    return {true, true, 0.0, std::min(b / (s * s), std::sqrt(b) / s)};
  }
  uint64_t PayloadBits() const override {
    return 8ull * vbytes_ * nb_ + static_cast<uint64_t>(c_.d) * width_;
  }

  template <typename T>
  absl::Status EncodeT(absl::Span<const T> x, RngStream& rng, Encoded* out,
                       absl::Span<T> decoded) const {
    FT_RETURN_IF_ERROR(CheckEncodeArgs(*this, x.size(), decoded.size()));
    if (c_.value_type == kF64) return Encode2<T, double>(x, rng, out, decoded);
    return Encode2<T, float>(x, rng, out, decoded);
  }

  template <typename T>
  absl::Status DecodeT(const EncodedView& in, absl::Span<T> out) const {
    FT_RETURN_IF_ERROR(CheckEnvelope(*this, in, out.size()));
    Header h;
    FT_RETURN_IF_ERROR(ReadHeader(in.bytes, &h));
    FT_RETURN_IF_ERROR(
        CheckQuantHeader(*this, h, kKindQsgd, c_.value_type, c_.d, c_.levels, c_.bucket));
    const size_t code_bytes = (c_.d * width_ + 7) / 8;
    FT_RETURN_IF_ERROR(
        CheckLength(*this, in.bytes.size(), kHeaderBytes + nb_ * vbytes_ + code_bytes));
    const char* scales = in.bytes.data() + kHeaderBytes;
    const char* codes = scales + nb_ * vbytes_;
    if (!PaddingIsZero(codes, c_.d * width_))
      return absl::InvalidArgumentError("qsgd/1: non-zero padding bits");
    std::vector<double> norms(nb_);
    for (size_t q = 0; q < nb_; ++q) {
      const double nq = c_.value_type == kF64
                            ? LoadLE<double>(scales + 8 * q)
                            : static_cast<double>(LoadLE<float>(scales + 4 * q));
      if (!(nq >= 0) || !std::isfinite(nq) || !std::isfinite(static_cast<T>(nq)))
        return absl::InvalidArgumentError(
            absl::StrCat("qsgd/1: bucket ", q, " norm ", nq, " is not finite and >= 0"));
      norms[q] = nq;
    }
    const bool use_lut = UseLut();
    std::vector<T> lut(use_lut ? size_t{1} << width_ : 0);
    const QsgdShape sh{c_.d, c_.bucket, c_.levels, width_};
    bool ok;
#if FT_QUANT_X86
    if (std::is_same<T, float>::value && HasFusedQsgd()) {
      ok = QsgdDecodeBlocksVbmi(sh, codes, norms.data(),
                                reinterpret_cast<float*>(use_lut ? lut.data() : nullptr),
                                reinterpret_cast<float*>(out.data()));
    } else if (std::is_same<T, float>::value && HasAvx512()) {
      ok = QsgdDecodeBlocksAvx512(sh, codes, norms.data(),
                                  reinterpret_cast<float*>(use_lut ? lut.data() : nullptr),
                                  reinterpret_cast<float*>(out.data()));
    } else
#endif
    {
      ok = QsgdDecodeBlocks<T>(sh, codes, norms.data(), use_lut ? lut.data() : nullptr,
                               out.data());
    }
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat(
          "qsgd/1: a code is not a level in [0, ", c_.levels, "] with a sign"));
    return absl::OkStatus();
  }

 private:
  bool UseLut() const {
    // A table of the 2^width code values per bucket when it is small next to a bucket.
    return width_ <= 12 && (size_t{1} << width_) <= 4 * size_t{c_.bucket};
  }

  // T input, VT wire norm. The quantization arithmetic is float for float input with float
  // norms (the fast path) unless a factor s/N overflows float (N < ~s 3e-39); else double.
  template <typename T, typename VT>
  absl::Status Encode2(absl::Span<const T> x, RngStream& rng, Encoded* out,
                       absl::Span<T> decoded) const {
    const size_t d = c_.d;
    const size_t code_bytes = (d * width_ + 7) / 8;
    out->codec = codec();
    out->dim = d;
    // Every byte (header, norms, codes with their padding) is written below: a buffer of the
    // right size is reused as it is, without zero-filling megabytes first.
    const size_t total = kHeaderBytes + nb_ * vbytes_ + code_bytes;
    if (out->bytes.size() != total) {
      out->bytes.clear();
      out->bytes.resize(total);
    }
    {
      std::string header;
      WriteHeader(MakeHeader(kKindQsgd, c_.value_type, d, c_.levels, c_.bucket), &header);
      std::memcpy(out->bytes.data(), header.data(), kHeaderBytes);
    }
    char* scales = out->bytes.data() + kHeaderBytes;
    char* codes = scales + nb_ * vbytes_;
    const uint64_t key = rng.NextU64();
    const PhiloxFn philox = SelectPhilox();
    const QsgdShape sh{d, c_.bucket, c_.levels, width_};
    std::vector<T> lut(!decoded.empty() && UseLut() ? size_t{1} << width_ : 0);
    T* const dec = decoded.empty() ? nullptr : decoded.data();
    T* const lp = lut.empty() ? nullptr : lut.data();
    size_t bucket = 0;
    QsgdEncodeOutcome r = QsgdEncodeOutcome::kNeedDouble;
    if constexpr (std::is_same<T, float>::value && std::is_same<VT, float>::value) {
#if FT_QUANT_X86
      if (HasFusedQsgd() && FusedQsgdShapeOk(sh, dec != nullptr, lp != nullptr)) {
        r = QsgdEncodeFusedAvx512(sh, x.data(), key, scales, codes, dec, lp, &bucket);
      } else if (HasAvx512()) {
        r = QsgdEncodeAvx512(sh, x.data(), key, philox, scales, codes, dec, lp, &bucket);
      } else
#endif
      {
        r = QsgdEncode<float, float, float>(sh, x.data(), key, philox, scales, codes, dec, lp,
                                            &bucket);
      }
    }
    if (r == QsgdEncodeOutcome::kNeedDouble)
      r = QsgdEncode<T, VT, double>(sh, x.data(), key, philox, scales, codes, dec, lp, &bucket);
    switch (r) {
      case QsgdEncodeOutcome::kNonFinite:
        FT_RETURN_IF_ERROR(NonFinite(x, "qsgd"));
        return absl::InvalidArgumentError(
            absl::StrCat("qsgd: squared norm of bucket ", bucket, " overflows"));
      case QsgdEncodeOutcome::kNormOverflow:
        return absl::InvalidArgumentError(
            absl::StrCat("qsgd: norm of bucket ", bucket, " overflows the wire type"));
      default:
        return absl::OkStatus();
    }
  }

  QuantizerConfig c_;
  int width_;
  size_t nb_;
  size_t vbytes_;
};

}  // namespace

std::unique_ptr<Compressor> NewQsgdCompressor(const QuantizerConfig& c) {
  return std::unique_ptr<Compressor>(new QsgdCompressor(c));
}

}  // namespace compression_internal
}  // namespace fedtrain
