// Internals shared by the dense quantizers (docs/compression.md §1.4-§1.6): QSGD (qsgd.cc,
// qsgd_avx512.cc, qsgd_kernels.h), scaled sign (sign.cc), natural compression (natural.cc),
// the factory (quantizers.cc) and the Philox4x32-10 kernels (philox_simd.cc). Here: the
// Philox entry points the encoders call, the run-time choice of instruction set, the
// AVX-512 helpers (streaming stores, fixed-order sums) written once as always-inline
// functions, and the message checks every quantizer shares. Not part of the public interface.
//
// Include it LAST in a .cc file: it turns floating-point contraction off from that point to
// the end of the including file (see the pragma below), which every quantizer file needs and
// no header included after it should get.
//
// Pure functions, thread-safe. The one piece of process-wide state is the baseline-kernels
// switch (g_baseline_only below), which only tests and benchmarks set.
#ifndef FEDTRAIN_COMPRESSION_QUANTIZER_INTERNAL_H_
#define FEDTRAIN_COMPRESSION_QUANTIZER_INTERNAL_H_

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FT_QUANT_X86 1
#else
#define FT_QUANT_X86 0
#endif

#include <Random123/philox.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "compression/bit_io.h"
#include "compression/compressor.h"
#include "compression/compressor_internal.h"

// No fused multiply-add anywhere in the quantizer files (everything after this point in each
// file that includes this header): the AVX-512 variants (where FMA exists) must round
// exactly like the baseline code, or the bytes would depend on the CPU. Both compilers
// contract a * b + c by default.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// Kernels are written once as always-inline templates and instantiated in functions compiled
// for the baseline ISA and for AVX-512 (chosen at run time; the same arithmetic and bits).
#define FT_ALWAYS_INLINE __attribute__((always_inline)) inline
#if FT_QUANT_X86
#define FT_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#endif

namespace fedtrain {
namespace compression_internal {

// ---- Philox4x32-10 (philox_simd.cc) ------------------------------------------------------

// Randomness of QSGD and natural compression: one 64-bit key from the caller's RngStream per
// message; the per-coordinate uniform u_j is a 32-bit word of Philox4x32-10 in counter mode
// (PhiloxBlock in compressor_internal.h: one Threefry draw per coordinate would cost several
// ns). Every draw is a function of (seed, round, client, purpose) through the key.
using PhiloxFn = void (*)(uint64_t, uint64_t, uint32_t*);

// Chosen per message from the running CPU; every variant returns the same bits.
PhiloxFn SelectPhilox();

#if FT_QUANT_X86
// AVX-512F: 2 groups of 16 counters. out[2 w + g] holds word w of counters 16 g .. 16 g + 15
// of the block (out[2 w + g] lane i = word w of counter 32 blk + 16 g + i); also inlined into
// the fused QSGD encoder.
__attribute__((target("avx512f"))) FT_ALWAYS_INLINE void PhiloxRegs(uint64_t key, uint64_t blk,
                                                                     __m512i* out) {
  const uint64_t base = blk * 32;
  __m512i c0[2], c1[2], c2[2], c3[2];
  for (int g = 0; g < 2; ++g) {
    const uint32_t b = static_cast<uint32_t>(base) + 16 * g;
    c0[g] = _mm512_add_epi32(
        _mm512_set1_epi32(static_cast<int>(b)),
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    c1[g] = _mm512_set1_epi32(static_cast<int>(base >> 32));
    c2[g] = _mm512_setzero_si512();
    c3[g] = _mm512_setzero_si512();
  }
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(PHILOX_M4x32_0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(PHILOX_M4x32_1));
  const __mmask16 odd = 0xAAAA, even = 0x5555, all16 = 0xFFFF;
  // The zero-masking forms (all lanes) avoid GCC 12's false -Wuninitialized inside the
  // plain _mm512_mul_epu32 / shuffle intrinsics.
  const __mmask8 all = 0xFF;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const __m512i ka = _mm512_set1_epi32(static_cast<int>(k0));
    const __m512i kb = _mm512_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < 2; ++g) {
      // Even lanes multiply in place; odd lanes after swapping neighbours (CDAB). The
      // masked swaps then put each product's low and high halves back in their lanes.
      const __m512i pe0 = _mm512_maskz_mul_epu32(all, c0[g], m0);
      const __m512i po0 =
          _mm512_maskz_mul_epu32(all, _mm512_maskz_shuffle_epi32(all16, c0[g], _MM_PERM_CDAB), m0);
      const __m512i pe1 = _mm512_maskz_mul_epu32(all, c2[g], m1);
      const __m512i po1 =
          _mm512_maskz_mul_epu32(all, _mm512_maskz_shuffle_epi32(all16, c2[g], _MM_PERM_CDAB), m1);
      const __m512i lo0 = _mm512_mask_shuffle_epi32(pe0, odd, po0, _MM_PERM_CDAB);
      const __m512i hi0 = _mm512_mask_shuffle_epi32(po0, even, pe0, _MM_PERM_CDAB);
      const __m512i lo1 = _mm512_mask_shuffle_epi32(pe1, odd, po1, _MM_PERM_CDAB);
      const __m512i hi1 = _mm512_mask_shuffle_epi32(po1, even, pe1, _MM_PERM_CDAB);
      c0[g] = _mm512_ternarylogic_epi32(hi1, c1[g], ka, 0x96);  // three-way xor
      c2[g] = _mm512_ternarylogic_epi32(hi0, c3[g], kb, 0x96);
      c1[g] = lo1;
      c3[g] = lo0;
    }
    k0 += PHILOX_W32_0;
    k1 += PHILOX_W32_1;
  }
  for (int g = 0; g < 2; ++g) {
    out[g] = c0[g];
    out[2 + g] = c1[g];
    out[4 + g] = c2[g];
    out[6 + g] = c3[g];
  }
}

// PhiloxBlock with AVX-512F (PhiloxRegs, stored). Needs a CPU with AVX-512F.
__attribute__((target("avx512f"))) void PhiloxBlockAvx512(uint64_t key, uint64_t block,
                                                           uint32_t* out);

// ---- Run-time choice of kernels ----------------------------------------------------------

// The switch behind UseBaselineQuantizerKernels (compressor_internal.h): true makes every
// quantizer run its baseline-ISA kernels. Defined in philox_simd.cc, its one home; read it
// only through BaselineKernelsOnly(). It is process-wide on purpose: it is a test and
// benchmark switch that picks which instruction set computes the same bits, not experiment
// state (no result depends on it), so it belongs to no compressor or configuration. Not for
// concurrent use with running quantizers.
extern std::atomic<bool> g_baseline_only;

inline bool BaselineKernelsOnly() { return g_baseline_only.load(std::memory_order_relaxed); }

// True when the AVX-512 kernels (F, BW, DQ, VL) may run: the CPU has them and the baseline
// switch is off. Inline: the sign decoder asks once per block.
inline bool HasAvx512() {
  if (BaselineKernelsOnly()) return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
#endif  // FT_QUANT_X86

// ---- Fixed-order sums and streaming stores -----------------------------------------------

// Sum of squares / of absolute values in double with eight fixed partial sums (a fixed
// order, so the result is the same on every platform, and fast).
template <typename T>
FT_ALWAYS_INLINE double SumSquares(const T* x, size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double v = static_cast<double>(x[i + j]);
      acc[j] += v * v;
    }
  for (int j = 0; i < n; ++i, ++j) {
    const double v = static_cast<double>(x[i]);
    acc[j] += v * v;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// SumSquares of K consecutive buckets x[k stride, k stride + n), k < K, at once: the same
// partial sums in the same order per bucket (the same bits as SumSquares), but K independent
// chains of additions keep the adder busy instead of waiting on one chain's latency.
template <int K, typename T>
FT_ALWAYS_INLINE void SumSquaresMulti(const T* x, size_t n, size_t stride, double* out) {
  double acc[K][8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < 8; ++j) {
        const double v = static_cast<double>(x[k * stride + i + j]);
        acc[k][j] += v * v;
      }
  for (int k = 0; k < K; ++k) {
    double* a = acc[k];
    for (size_t t = i, j = 0; t < n; ++t, ++j) {
      const double v = static_cast<double>(x[k * stride + t]);
      a[j] += v * v;
    }
    out[k] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  }
}

template <typename T>
FT_ALWAYS_INLINE double SumAbs(const T* x, size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += std::fabs(static_cast<double>(x[i + j]));
  for (int j = 0; i < n; ++i, ++j) acc[j] += std::fabs(static_cast<double>(x[i]));
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// SumAbs of K consecutive blocks at once (same bits as SumAbs; see SumSquaresMulti).
template <int K, typename T>
FT_ALWAYS_INLINE void SumAbsMulti(const T* x, size_t n, size_t stride, double* out) {
  double acc[K][8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < 8; ++j) acc[k][j] += std::fabs(static_cast<double>(x[k * stride + i + j]));
  for (int k = 0; k < K; ++k) {
    double* a = acc[k];
    for (size_t t = i, j = 0; t < n; ++t, ++j) a[j] += std::fabs(static_cast<double>(x[k * stride + t]));
    out[k] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  }
}

#if FT_QUANT_X86
// Outputs at least this large are written with non-temporal (streaming) stores by the
// AVX-512 kernels: a dense decoded vector this size does not stay in the core's caches
// anyway, and streaming halves the memory traffic of writing it (no read for ownership).
// Same values either way; only the store instruction differs.
inline constexpr size_t kStreamMinBytes = size_t{4} << 20;

// Writes consecutive groups of 16 floats to out[0], out[16], ... with aligned streaming
// stores: each aligned 64-byte line is assembled from the previous and the current group
// (out need only be 4-byte aligned); the partial lines at both ends take masked ordinary
// stores. Finish() writes the pending end and fences.
struct StreamOut {
  float* line = nullptr;  // the next 64-byte aligned line to write
  unsigned m = 0;         // out's misalignment in floats (0..15)
  bool first = true;
  __m512 prev;
  __m512i idx;
};

FT_AVX512_TARGET FT_ALWAYS_INLINE void StreamStart(StreamOut* s, float* out) {
  s->m = static_cast<unsigned>((reinterpret_cast<uintptr_t>(out) / sizeof(float)) % 16);
  s->line = out - s->m;
  s->first = true;
  s->prev = _mm512_setzero_ps();
  // Lane t of a line: lane 16 - m + t of (prev, cur), i.e. prev's last m then cur's first.
  s->idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(16 - s->m)),
                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                              14, 15));
}

FT_AVX512_TARGET FT_ALWAYS_INLINE void StreamPut(StreamOut* s, __m512 v) {
  if (s->m == 0) {
    _mm512_stream_ps(s->line, v);
  } else {
    const __m512 line = _mm512_permutex2var_ps(s->prev, s->idx, v);
    if (s->first) {
      _mm512_mask_storeu_ps(s->line, static_cast<__mmask16>(0xFFFFu << s->m), line);
    } else {
      _mm512_stream_ps(s->line, line);
    }
    s->prev = v;
  }
  s->first = false;
  s->line += 16;
}

// Writes the last m floats of the final group (if any) and orders the streaming stores.
FT_AVX512_TARGET FT_ALWAYS_INLINE void StreamFinish(StreamOut* s) {
  if (s->m != 0 && !s->first) {
    const __m512 line = _mm512_permutex2var_ps(s->prev, s->idx, _mm512_setzero_ps());
    _mm512_mask_storeu_ps(s->line, static_cast<__mmask16>((1u << s->m) - 1), line);
  }
  _mm_sfence();
}

// SumSquaresMulti / SumAbsMulti for float input with explicit AVX-512 (GCC vectorizes the
// generic loops across the K buckets, with shuffles): lane j of bucket k's accumulator is the
// partial sum acc[k][j], the same additions in the same order, so the same bits.
template <int K, bool kSquares>
FT_AVX512_TARGET FT_ALWAYS_INLINE void SumMultiAvx512(const float* x, size_t n, size_t stride,
                                                      double* out) {
  __m512d acc[K];
  for (int k = 0; k < K; ++k) acc[k] = _mm512_setzero_pd();
  const __m512d abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffll));
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < K; ++k) {
      const __m512d v = _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(x + k * stride + i));
      acc[k] = _mm512_add_pd(acc[k], kSquares ? _mm512_mul_pd(v, v) : _mm512_and_pd(v, abs_mask));
    }
  for (int k = 0; k < K; ++k) {
    alignas(64) double a[8];
    _mm512_store_pd(a, acc[k]);
    for (size_t t = i, j = 0; t < n; ++t, ++j) {
      const double v = static_cast<double>(x[k * stride + t]);
      a[j] += kSquares ? v * v : std::fabs(v);
    }
    out[k] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  }
}
#endif  // FT_QUANT_X86

// ---- Message checks (quantizers.cc) ------------------------------------------------------

template <typename T>
absl::Status NonFinite(absl::Span<const T> x, const char* what) {
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]))
      return absl::InvalidArgumentError(absl::StrCat(
          what, " input has a non-finite value (", static_cast<double>(x[i]), ") at index ", i));
  return absl::OkStatus();
}

// The header of a dense quantizer's message against the configuration: kind, no index
// encoding, value type and (d, a, b).
absl::Status CheckQuantHeader(const Compressor& c, const Header& h, uint8_t kind, uint8_t vt,
                              size_t d, uint32_t a, uint32_t b);
// The message length against the configured one.
absl::Status CheckLength(const Compressor& c, size_t got, size_t want);
// True when the bits of the last byte past `bits` are zero (canonical padding).
bool PaddingIsZero(const char* payload, size_t bits);
// The header of a dense quantizer's message (index encoding none).
Header MakeHeader(uint8_t kind, uint8_t vt, size_t d, uint32_t a, uint32_t b);

// ---- The quantizers, built by NewQuantizer (quantizers.cc) -------------------------------

std::unique_ptr<Compressor> NewQsgdCompressor(const QuantizerConfig& c);     // qsgd.cc
std::unique_ptr<Compressor> NewSignCompressor(const QuantizerConfig& c);     // sign.cc
std::unique_ptr<Compressor> NewNaturalCompressor(const QuantizerConfig& c);  // natural.cc

}  // namespace compression_internal
}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_QUANTIZER_INTERNAL_H_
