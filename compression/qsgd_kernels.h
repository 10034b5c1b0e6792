// QSGD's per-block kernels (docs/compression.md §1.4), written once as always-inline
// templates and compiled twice: for the baseline ISA (qsgd.cc) and, chosen at run time, for
// AVX-512 (qsgd_avx512.cc); same arithmetic, so the same bytes. Also the entry points of the
// AVX-512-only kernels of qsgd_avx512.cc (the fused encoder, the table decoders). Not part
// of the public interface.
//
// Include it last in a .cc file (it includes quantizer_internal.h: FP contraction is off from
// there on). Pure functions, thread-safe.
#ifndef FEDTRAIN_COMPRESSION_QSGD_KERNELS_H_
#define FEDTRAIN_COMPRESSION_QSGD_KERNELS_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "compression/quantizer_internal.h"

namespace fedtrain {
namespace compression_internal {

// The per-block loops, written once and compiled twice: for the baseline ISA and, chosen at
// run time, for AVX-512 (same arithmetic, so the same bytes; the float loop vectorizes).
struct QsgdShape {
  size_t d;
  size_t bucket;
  uint32_t levels;
  int width;
};

// Codes of x[i..end) (offsets into a block of 128): l = floor(r), up with probability r - l.
template <typename T, typename CT>
FT_ALWAYS_INLINE void QuantizeRun(const T* x, const uint32_t* u, size_t i, size_t end,
                                  CT factor, uint32_t s, uint32_t* code) {
  // Branch-free (bitwise selects) so that the loop vectorizes.
  for (; i < end; ++i) {
    const CT v = static_cast<CT>(x[i]);
    const CT r = std::fabs(v) * factor;
    // r can exceed s by a rounding error (N was rounded): clamp to level s, and p = 0 there.
    uint32_t l = static_cast<uint32_t>(r);
    l = std::min(l, s);
    // p = r - l is exact and in [0, 1); p * 2^32 is exact too (a power-of-two scaling), so
    // the truncation is floor(p 2^32).
    const CT p = r - static_cast<CT>(l);
    uint32_t t = static_cast<uint32_t>(p * static_cast<CT>(4294967296.0));
    t &= 0u - static_cast<uint32_t>(l < s);
    const uint32_t xi = l + static_cast<uint32_t>(u[i] < t);
    code[i] = (xi << 1) | (static_cast<uint32_t>(v < 0) & static_cast<uint32_t>(xi != 0));
  }
}

// Value of code (sign | level << 1) in a bucket of norm N: N * level / s in double (N * level
// is exact), rounded to T. Tables hold these values for every code of one bucket.
template <typename T>
FT_ALWAYS_INLINE T QsgdValue(double norm, uint32_t code, uint32_t s) {
  const T v = static_cast<T>(norm * static_cast<double>(code >> 1) / s);
  return (code & 1) ? -v : v;
}

// The table of one bucket of norm N, codes of nl = 2^width values: lut[l << 1] = N l / s,
// lut[l << 1 | 1] = -lut[l << 1], 0 past level s (invalid codes are never read).
template <typename T>
FT_ALWAYS_INLINE void QsgdFillTable(double norm, uint32_t s, size_t nl, T* lut) {
  for (size_t cd = 0; cd < nl; cd += 2) {
    const T v = (cd >> 1) <= s ? QsgdValue<T>(norm, static_cast<uint32_t>(cd), s) : T{0};
    lut[cd] = v;
    lut[cd + 1] = -v;
  }
}

// Decodes every block; false when a code is not a level in [0, s] with a sign (level 0 has
// no sign). `lut` has room for 2^width entries, or is null (then values are computed).
template <typename T>
FT_ALWAYS_INLINE bool QsgdDecodeBlocksImpl(const QsgdShape& sh, const char* codes,
                                           const double* norms, T* __restrict lut,
                                           T* __restrict out) {
  alignas(64) uint32_t code[kPhiloxBlock];
  const size_t nl = size_t{1} << sh.width;
  size_t lut_bucket = SIZE_MAX;
  for (size_t blk = 0; blk * kPhiloxBlock < sh.d; ++blk) {
    const size_t j0 = blk * kPhiloxBlock;
    const size_t n = std::min(kPhiloxBlock, sh.d - j0);
    UnpackBits(codes + blk * (kPhiloxBlock / 8) * sh.width, n, sh.width, code);
    uint32_t bad = 0;
    for (size_t i = 0; i < n; ++i)
      bad |= static_cast<uint32_t>((code[i] >> 1) > sh.levels) | static_cast<uint32_t>(code[i] == 1);
    if (bad) return false;
    size_t i = 0;
    while (i < n) {
      const size_t q = (j0 + i) / sh.bucket;
      const size_t end = std::min(n, (q + 1) * sh.bucket - j0);
      if (lut != nullptr) {
        if (lut_bucket != q) {
          QsgdFillTable<T>(norms[q], sh.levels, nl, lut);
          lut_bucket = q;
        }
        for (; i < end; ++i) out[j0 + i] = lut[code[i]];
      } else {
        for (; i < end; ++i) out[j0 + i] = QsgdValue<T>(norms[q], code[i], sh.levels);
      }
    }
  }
  return true;
}

#if FT_QUANT_X86
// PackBits for a full block of 128 codes of w <= 8 bits, 16 codes per step: pairs of codes
// merge inside 64-bit lanes, then pairs of lanes twice, leaving two 8-code groups of 8w bits.
// Inline, as the one caller (QsgdEncodeImpl compiled for AVX-512, in qsgd_avx512.cc) takes it.
FT_AVX512_TARGET inline void PackBlockAvx512(const uint32_t* code, int w, char* dst,
                                             const char* end) {
  const __mmask8 all8 = 0xFF;  // zero-masking forms: see PhiloxBlockAvx512
  const __m512i m32 = _mm512_set1_epi64(0xffffffffll);
  const __m512i s1 = _mm512_set1_epi64(w), s2 = _mm512_set1_epi64(2 * w),
                s4 = _mm512_set1_epi64(4 * w);
  const __m512i lane2 = _mm512_setr_epi64(2, 3, 2, 3, 6, 7, 6, 7);
  for (size_t i = 0; i < kPhiloxBlock; i += 16, dst += 2 * w) {
    const __m512i c = _mm512_loadu_si512(code + i);
    // 64-bit lane k: code 2k | code 2k+1 << w.
    const __m512i v = _mm512_or_si512(
        _mm512_and_si512(c, m32),
        _mm512_maskz_sllv_epi64(all8, _mm512_maskz_srli_epi64(all8, c, 32), s1));
    // Even lanes: four codes (lanes 2k, 2k+1 merged).
    const __m512i r = _mm512_or_si512(
        v, _mm512_maskz_sllv_epi64(all8, _mm512_maskz_unpackhi_epi64(all8, v, v), s2));
    // Lanes 0 and 4: eight codes each (lanes 0|2 and 4|6).
    const __m512i r2 = _mm512_or_si512(
        r, _mm512_maskz_sllv_epi64(all8, _mm512_maskz_permutexvar_epi64(all8, lane2, r), s4));
    alignas(64) uint64_t g[8];
    _mm512_store_si512(g, r2);
    // 8-byte stores (their bytes past w are zero and rewritten by the next group) while they
    // stay inside the message; a runtime-size copy would be a library call.
    if (dst + w + 8 <= end) {
      std::memcpy(dst, &g[0], 8);
      std::memcpy(dst + w, &g[4], 8);
    } else {
      std::memcpy(dst, &g[0], static_cast<size_t>(w));
      std::memcpy(dst + w, &g[4], static_cast<size_t>(w));
    }
  }
}
#endif

enum class QsgdEncodeOutcome { kOk, kNonFinite, kNormOverflow, kNeedDouble };

// The whole encoder in one pass over x: a bucket's norm is computed when its first
// coordinate comes up, so its values are still in cache when they are quantized; codes are
// packed per block of 128, and `decoded` (when not null) is written from the codes with the
// decoder's own formula. T input, VT wire norm, CT quantization arithmetic. On failure
// *bucket names the bucket.
template <typename T, typename VT, typename CT, bool kAvx512>
FT_ALWAYS_INLINE QsgdEncodeOutcome QsgdEncodeImpl(const QsgdShape& sh, const T* x,
                                                  uint64_t key, PhiloxFn philox, char* scales,
                                                  char* codes, T* __restrict decoded,
                                                  T* __restrict lut, size_t* bucket) {
  const char* const codes_end = codes + (sh.d * static_cast<size_t>(sh.width) + 7) / 8;
  const size_t nl = size_t{1} << sh.width;
  alignas(64) uint32_t u[kPhiloxBlock];
  alignas(64) uint32_t code[kPhiloxBlock];
  size_t cur = SIZE_MAX;
  // Squared norms are computed kNormGroup buckets at a time (SumSquaresMulti).
  constexpr int kNormGroup = 4;
  double ss_buf[kNormGroup];
  size_t ss_base = 0, ss_count = 0;
  CT factor = 0;
  double norm = 0;
  for (size_t blk = 0; blk * kPhiloxBlock < sh.d; ++blk) {
    const size_t j0 = blk * kPhiloxBlock;
    const size_t n = std::min(kPhiloxBlock, sh.d - j0);
    // Software prefetch of the block kAhead bytes on (past the group of buckets whose norms
    // are computed ahead): the hardware prefetcher alone leaves the norm loop waiting on
    // memory. A few hints per block, spread out, so that they never queue up.
    {
      constexpr size_t kAhead = 16384;
      const char* const xb = reinterpret_cast<const char*>(x);
      const size_t from = j0 * sizeof(T) + kAhead;
      const size_t to = std::min(sh.d * sizeof(T), from + kPhiloxBlock * sizeof(T));
      for (size_t off = from; off < to; off += 64) __builtin_prefetch(xb + off, 0, 3);
    }
    philox(key, blk, u);
    size_t i = 0;
    while (i < n) {
      const size_t q = (j0 + i) / sh.bucket;
      if (q != cur) {
        *bucket = q;
        const size_t len = std::min(sh.bucket, sh.d - q * sh.bucket);
        if (q >= ss_base + ss_count) {  // the next group of norms
          ss_base = q;
          if ((q + kNormGroup) * sh.bucket <= sh.d) {
            ss_count = kNormGroup;
            SumSquaresMulti<kNormGroup>(x + q * sh.bucket, sh.bucket, sh.bucket, ss_buf);
          } else {
            ss_count = 1;
            ss_buf[0] = SumSquares(x + q * sh.bucket, len);
          }
        }
        const double ss = ss_buf[q - ss_base];
        if (!std::isfinite(ss)) return QsgdEncodeOutcome::kNonFinite;
        // Spec §1.4: the norm in double, rounded to the wire type BEFORE computing r_j, so
        // the worker's C(v) is what the server decodes.
        const VT nw = static_cast<VT>(std::sqrt(ss));
        if (!std::isfinite(nw)) return QsgdEncodeOutcome::kNormOverflow;
        StoreLE<VT>(scales + q * sizeof(VT), nw);
        // r_j = |v_j| * (s / N). A norm that rounds to 0 (tiny buckets) quantizes to 0.
        const double f = nw > 0 ? sh.levels / static_cast<double>(nw) : 0.0;
        if (std::is_same<CT, float>::value && !(f <= 3.0e38))
          return QsgdEncodeOutcome::kNeedDouble;
        factor = static_cast<CT>(f);
        norm = static_cast<double>(nw);
        cur = q;
        if (decoded != nullptr && lut != nullptr) QsgdFillTable<T>(norm, sh.levels, nl, lut);
      }
      const size_t end = std::min(n, (q + 1) * sh.bucket - j0);
      QuantizeRun<T, CT>(x + j0, u, i, end, factor, sh.levels, code);
      if (decoded != nullptr) {
        T* const dst = decoded + j0;
        if (lut != nullptr) {
          for (size_t t = i; t < end; ++t) dst[t] = lut[code[t]];
        } else {
          for (size_t t = i; t < end; ++t) dst[t] = QsgdValue<T>(norm, code[t], sh.levels);
        }
      }
      i = end;
    }
    char* dst = codes + blk * (kPhiloxBlock / 8) * static_cast<size_t>(sh.width);
#if FT_QUANT_X86
    if constexpr (kAvx512) {
      if (n == kPhiloxBlock && sh.width <= 8) {
        PackBlockAvx512(code, sh.width, dst, codes_end);
        continue;
      }
    }
#endif
    PackBits(code, n, sh.width, dst);
  }
  return QsgdEncodeOutcome::kOk;
}

#if FT_QUANT_X86
// ---- The AVX-512 kernels (qsgd_avx512.cc) ------------------------------------------------

// The target of the fused encoder and of the VBMI decoder.
#define FT_FUSED_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,bmi2")))

// True when the fused encoder and the VBMI decoder may run (HasAvx512, VBMI and BMI2).
inline bool HasFusedQsgd() {
  return HasAvx512() && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("bmi2");
}

// True when QsgdEncodeFusedAvx512 takes this shape (with or without `decoded` and a table).
inline bool FusedQsgdShapeOk(const QsgdShape& sh, bool with_decoded, bool with_lut) {
  return sh.width <= 8 && sh.bucket % kPhiloxBlock == 0 &&
         (!with_decoded || (with_lut && sh.width <= 5));
}

// QsgdEncodeImpl<float, float, float> compiled for AVX-512.
FT_AVX512_TARGET QsgdEncodeOutcome QsgdEncodeAvx512(const QsgdShape& sh, const float* x,
                                                    uint64_t key, PhiloxFn philox,
                                                    char* scales, char* codes, float* decoded,
                                                    float* lut, size_t* bucket);
// The fused encoder (float input, float norms) for the shapes FusedQsgdShapeOk accepts.
FT_FUSED_TARGET QsgdEncodeOutcome QsgdEncodeFusedAvx512(const QsgdShape& sh, const float* x,
                                                        uint64_t key, char* scales,
                                                        char* codes, float* decoded,
                                                        float* lut, size_t* bucket);
// Float decoders with AVX-512 (and VBMI); the same checks and values as QsgdDecodeBlocksImpl.
FT_AVX512_TARGET bool QsgdDecodeBlocksAvx512(const QsgdShape& sh, const char* codes,
                                             const double* norms, float* lut, float* out);
FT_FUSED_TARGET bool QsgdDecodeBlocksVbmi(const QsgdShape& sh, const char* codes,
                                          const double* norms, float* lut, float* out);
#endif  // FT_QUANT_X86

}  // namespace compression_internal
}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_QSGD_KERNELS_H_
