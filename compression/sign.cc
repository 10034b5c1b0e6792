// Scaled sign (docs/compression.md §1.5), codec "sign/1": per block of b coordinates, the
// scale ||x_B||_1/|B| and one sign bit per coordinate; kernels for the baseline ISA and,
// chosen at run time, AVX-512 (the same bytes and values).
//
// Payload (after the 16-byte header of compressor_internal.h; V = 32 bits for value_type
// f32, 64 for f64; nb = ceil(d / b) blocks):
//   nb block scales ||x_B||_1/|B| (V bits each), then d sign bits (1 = negative,
//   sign(0) = +1), zero-padded to a byte.                          nb V + d
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
// Last: it turns FP contraction off for the rest of this file (see there).
#include "compression/quantizer_internal.h"

namespace fedtrain {
namespace compression_internal {

namespace {

#if FT_QUANT_X86
// Whole 16-coordinate groups from j (a multiple of 8): 16 signs per compare (the mask
// register is exactly the 16 wire bits). Returns where it stopped.
FT_AVX512_TARGET size_t SignBitsAvx512(const float* x, size_t j, size_t j1, char* bits) {
  const __m512 zero = _mm512_setzero_ps();
  for (; j + 16 <= j1; j += 16) {
    const uint16_t m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), zero, _CMP_LT_OQ);
    std::memcpy(bits + j / 8, &m, 2);
  }
  return j;
}
#endif

// Sign bits of x[j, j1) into `bits` (zeroed beforehand): bit 1 = negative, sign(0) = +1.
// Partial bytes at the ends are OR-ed (a neighbouring block owns their other bits).
template <typename T, bool kAvx512>
FT_ALWAYS_INLINE void SignBitsRange(const T* x, size_t j, size_t j1, char* bits) {
  for (; j < j1 && (j & 7) != 0; ++j)
    bits[j >> 3] = static_cast<char>(bits[j >> 3] | (static_cast<unsigned>(x[j] < 0) << (j & 7)));
#if FT_QUANT_X86
  if constexpr (kAvx512 && std::is_same<T, float>::value) j = SignBitsAvx512(x, j, j1, bits);
#endif
  for (; j + 8 <= j1; j += 8) {
    unsigned byte = 0;
    for (int i = 0; i < 8; ++i) byte |= static_cast<unsigned>(x[j + i] < 0) << i;
    bits[j >> 3] = static_cast<char>(byte);
  }
  for (; j < j1; ++j)
    bits[j >> 3] = static_cast<char>(bits[j >> 3] | (static_cast<unsigned>(x[j] < 0) << (j & 7)));
}

template <typename T>
FT_ALWAYS_INLINE void SignExpandRange(size_t j, size_t j1, T scale, const char* bits,
                                      T* out) {
  const T vals[2] = {scale, -scale};
  for (; j < j1; ++j) out[j] = vals[(static_cast<uint8_t>(bits[j >> 3]) >> (j & 7)) & 1];
}

#if FT_QUANT_X86
FT_AVX512_TARGET void SignExpandAvx512(size_t j, size_t j1, float scale, const char* bits,
                                       float* out) {
  const __m512 pos = _mm512_set1_ps(scale), neg = _mm512_set1_ps(-scale);
  const size_t head = std::min(j1, (j + 15) / 16 * 16);
  SignExpandRange<float>(j, head, scale, bits, out);
  for (j = head; j + 16 <= j1; j += 16) {
    uint16_t m;
    std::memcpy(&m, bits + j / 8, 2);
    _mm512_storeu_ps(out + j, _mm512_mask_blend_ps(m, pos, neg));
  }
  SignExpandRange<float>(j, j1, scale, bits, out);
}
#endif

// Whole groups of 16 (j0, j1 multiples of 16) into a StreamOut positioned at j0.
FT_AVX512_TARGET void SignExpandStream(StreamOut* so, size_t j0, size_t j1,
                                                        float scale, const char* bits) {
  const __m512 pos = _mm512_set1_ps(scale), neg = _mm512_set1_ps(-scale);
  for (size_t j = j0; j < j1; j += 16) {
    uint16_t m;
    std::memcpy(&m, bits + j / 8, 2);
    StreamPut(so, _mm512_mask_blend_ps(m, pos, neg));
  }
}
// Non-inline entry points for the templates compiled for the baseline ISA too (never called
// there: `stream` stays false).
FT_AVX512_TARGET void StreamStartF(StreamOut* so, float* out) { StreamStart(so, out); }
FT_AVX512_TARGET void StreamFinishF(StreamOut* so) { StreamFinish(so); }

// Sign decode of all blocks (b a multiple of 16) with streaming stores; the last, partial
// block with ordinary ones.
FT_AVX512_TARGET void SignDecodeStreamAvx512(size_t d, size_t b, const float* scales,
                                             const char* bits, float* out) {
  StreamOut so;
  StreamStart(&so, out);
  bool stream = true;
  for (size_t q = 0; q * b < d; ++q) {
    const size_t j0 = q * b, j1 = std::min(d, j0 + b);
    if (stream && j1 - j0 == b) {
      SignExpandStream(&so, j0, j1, scales[q], bits);
      continue;
    }
    if (stream) {
      StreamFinish(&so);
      stream = false;
    }
    SignExpandAvx512(j0, j1, scales[q], bits, out);
  }
  if (stream) StreamFinish(&so);
}

// The sign encoder in one pass over x, block by block (a block is still in cache when its
// bits are taken): scale, bits and, when `decoded` is not null, the decoded block. Returns
// false with *block set when a scale is not finite (non-finite input or overflow).
#if FT_QUANT_X86
// SumAbsMulti<4> for float input (SumMultiAvx512; the same bits).
FT_AVX512_TARGET void SumAbsMultiAvx512(const float* x, size_t n, size_t stride, double* out) {
  SumMultiAvx512<4, false>(x, n, stride, out);
}
#endif

template <typename T, typename VT, bool kAvx512>
FT_ALWAYS_INLINE bool SignEncodeImpl(const T* x, size_t d, size_t b, char* scales, char* bits,
                                     T* decoded, size_t* block) {
  constexpr int kGroup = 4;  // l1 norms of kGroup blocks at a time (SumAbsMulti)
  double l1_buf[kGroup];
  size_t l1_base = 0, l1_count = 0;
#if FT_QUANT_X86
  StreamOut so;
  bool stream = false;
  if constexpr (kAvx512 && std::is_same<T, float>::value) {
    stream = decoded != nullptr && d * sizeof(float) >= kStreamMinBytes && b % 16 == 0;
    StreamStartF(&so, decoded);  // only used when `stream`
  }
#endif
  for (size_t q = 0; q * b < d; ++q) {
    *block = q;
    const size_t j0 = q * b, j1 = std::min(d, j0 + b);
    if (q >= l1_base + l1_count) {
      l1_base = q;
      // Prefetch kGroup blocks ahead, one hint per cache line inside x (as in QSGD).
      {
        const char* const xb = reinterpret_cast<const char*>(x);
        const size_t from = (j0 + kGroup * b) * sizeof(T);
        const size_t to = std::min(d * sizeof(T), from + kGroup * b * sizeof(T));
        for (size_t off = from; off < to; off += 64) __builtin_prefetch(xb + off, 0, 3);
      }
      if (j0 + kGroup * b <= d) {
        l1_count = kGroup;
#if FT_QUANT_X86
        if constexpr (kAvx512 && std::is_same<T, float>::value) {
          static_assert(kGroup == 4, "SumAbsMultiAvx512 sums 4 blocks");
          SumAbsMultiAvx512(reinterpret_cast<const float*>(x) + j0, b, b, l1_buf);
        } else
#endif
        {
          SumAbsMulti<kGroup>(x + j0, b, b, l1_buf);
        }
      } else {
        l1_count = 1;
        l1_buf[0] = SumAbs(x + j0, j1 - j0);
      }
    }
    const double l1 = l1_buf[q - l1_base];
    const VT sc = static_cast<VT>(l1 / static_cast<double>(j1 - j0));
    if (!std::isfinite(sc) || !std::isfinite(static_cast<T>(sc))) return false;
    StoreLE<VT>(scales + q * sizeof(VT), sc);
    SignBitsRange<T, kAvx512>(x, j0, j1, bits);
    if (decoded != nullptr) {
#if FT_QUANT_X86
      if constexpr (kAvx512 && std::is_same<T, float>::value) {
        if (stream && j1 - j0 == b) {
          SignExpandStream(&so, j0, j1, static_cast<float>(sc), bits);
          continue;
        }
        if (stream) {  // the last, partial block
          StreamFinishF(&so);
          stream = false;
        }
        SignExpandAvx512(j0, j1, static_cast<float>(sc), bits, decoded);
        continue;
      }
#endif
      SignExpandRange<T>(j0, j1, static_cast<T>(sc), bits, decoded);
    }
  }
#if FT_QUANT_X86
  if constexpr (kAvx512 && std::is_same<T, float>::value) {
    if (stream) StreamFinishF(&so);
  }
#endif
  return true;
}

template <typename T, typename VT>
bool SignEncode(const T* x, size_t d, size_t b, char* scales, char* bits, T* decoded,
                size_t* block) {
  return SignEncodeImpl<T, VT, false>(x, d, b, scales, bits, decoded, block);
}

#if FT_QUANT_X86
template <typename VT>
FT_AVX512_TARGET bool SignEncodeAvx512(const float* x, size_t d, size_t b, char* scales,
                                       char* bits, float* decoded, size_t* block) {
  return SignEncodeImpl<float, VT, true>(x, d, b, scales, bits, decoded, block);
}
#endif

class SignCompressor final : public CompressorBase<SignCompressor> {
 public:
  explicit SignCompressor(const QuantizerConfig& c)
      : c_(c),
        nb_(c.d == 0 ? 0 : (c.d + c.bucket - 1) / c.bucket),
        vbytes_(c.value_type == kF64 ? 8 : 4) {}

  std::string codec() const override { return "sign/1"; }
  size_t dim() const override { return c_.d; }
  CompressorInfo info() const override { return {false, true, 1.0 / c_.bucket, 0.0}; }
  uint64_t PayloadBits() const override { return 8ull * vbytes_ * nb_ + c_.d; }

  template <typename T>
  absl::Status EncodeT(absl::Span<const T> x, RngStream&, Encoded* out,
                       absl::Span<T> decoded) const {
    FT_RETURN_IF_ERROR(CheckEncodeArgs(*this, x.size(), decoded.size()));
    if (c_.value_type == kF64) return Encode2<T, double>(x, out, decoded);
    return Encode2<T, float>(x, out, decoded);
  }

  template <typename T>
  absl::Status DecodeT(const EncodedView& in, absl::Span<T> out) const {
    FT_RETURN_IF_ERROR(CheckEnvelope(*this, in, out.size()));
    Header h;
    FT_RETURN_IF_ERROR(ReadHeader(in.bytes, &h));
    FT_RETURN_IF_ERROR(CheckQuantHeader(*this, h, kKindSign, c_.value_type, c_.d, c_.bucket, 0));
    FT_RETURN_IF_ERROR(
        CheckLength(*this, in.bytes.size(), kHeaderBytes + nb_ * vbytes_ + (c_.d + 7) / 8));
    const char* scales = in.bytes.data() + kHeaderBytes;
    const char* bits = scales + nb_ * vbytes_;
    if (!PaddingIsZero(bits, c_.d))
      return absl::InvalidArgumentError("sign/1: non-zero padding bits");
#if FT_QUANT_X86
    // Large float outputs: every scale checked first, then one streaming pass.
    if constexpr (std::is_same<T, float>::value) {
      if (HasAvx512() && c_.d * sizeof(float) >= kStreamMinBytes && c_.bucket % 16 == 0) {
        std::vector<float> sc(nb_);
        for (size_t q = 0; q < nb_; ++q) {
          FT_RETURN_IF_ERROR(Scale<T>(scales, q, &sc[q]));
        }
        SignDecodeStreamAvx512(c_.d, c_.bucket, sc.data(), bits, out.data());
        return absl::OkStatus();
      }
    }
#endif
    for (size_t q = 0; q < nb_; ++q) {
      T sc{};
      FT_RETURN_IF_ERROR(Scale<T>(scales, q, &sc));
      Expand<T>(q, sc, bits, out.data());
    }
    return absl::OkStatus();
  }

 private:
  // The scale of block q, checked.
  template <typename T>
  absl::Status Scale(const char* scales, size_t q, T* out) const {
    const double sc = c_.value_type == kF64
                          ? LoadLE<double>(scales + 8 * q)
                          : static_cast<double>(LoadLE<float>(scales + 4 * q));
    if (!(sc >= 0) || !std::isfinite(sc) || !std::isfinite(static_cast<T>(sc)))
      return absl::InvalidArgumentError(
          absl::StrCat("sign/1: block ", q, " scale ", sc, " is not finite and >= 0"));
    *out = static_cast<T>(sc);
    return absl::OkStatus();
  }

  // out[j] = +-scale for the coordinates of block q.
  template <typename T>
  void Expand(size_t q, T scale, const char* bits, T* out) const {
    const size_t j0 = q * c_.bucket, j1 = std::min(c_.d, j0 + c_.bucket);
#if FT_QUANT_X86
    if constexpr (std::is_same<T, float>::value) {
      if (HasAvx512()) {
        SignExpandAvx512(j0, j1, scale, bits, out);
        return;
      }
    }
#endif
    SignExpandRange<T>(j0, j1, scale, bits, out);
  }

  template <typename T, typename VT>
  absl::Status Encode2(absl::Span<const T> x, Encoded* out, absl::Span<T> decoded) const {
    const size_t d = c_.d;
    out->codec = codec();
    out->dim = d;
    out->bytes.clear();
    WriteHeader(MakeHeader(kKindSign, c_.value_type, d, c_.bucket, 0), &out->bytes);
    out->bytes.resize(kHeaderBytes + nb_ * vbytes_ + (d + 7) / 8);  // zero-filled
    char* scales = out->bytes.data() + kHeaderBytes;
    char* bits = scales + nb_ * vbytes_;
    T* const dec = decoded.empty() ? nullptr : decoded.data();
    size_t q = 0;
    bool ok;
#if FT_QUANT_X86
    if (std::is_same<T, float>::value && HasAvx512()) {
      ok = SignEncodeAvx512<VT>(reinterpret_cast<const float*>(x.data()), d, c_.bucket, scales,
                                bits, reinterpret_cast<float*>(dec), &q);
    } else
#endif
    {
      ok = SignEncode<T, VT>(x.data(), d, c_.bucket, scales, bits, dec, &q);
    }
    if (!ok) {
      FT_RETURN_IF_ERROR(NonFinite(x, "sign"));
      return absl::InvalidArgumentError(
          absl::StrCat("sign: scale of block ", q, " overflows the wire type"));
    }
    return absl::OkStatus();
  }

  QuantizerConfig c_;
  size_t nb_;
  size_t vbytes_;
};

}  // namespace

std::unique_ptr<Compressor> NewSignCompressor(const QuantizerConfig& c) {
  return std::unique_ptr<Compressor>(new SignCompressor(c));
}

}  // namespace compression_internal
}  // namespace fedtrain
