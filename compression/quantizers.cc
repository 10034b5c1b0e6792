// Dense quantizers (specs/compression.md §1.4-§1.6): QSGD with s levels per bucket, scaled
// sign per block, natural compression; plus the Philox4x32-10 uniform generator they share.
//
// Payloads (after the 16-byte header of compressor_internal.h; V = 32 bits for value_type
// f32, 64 for f64; nb = ceil(d / b) buckets or blocks):
//   qsgd     nb bucket norms (V bits each), then d codes of 1 + ceil(log2(s+1)) bits, LSB
//            first, zero-padded to a byte. Code = sign | (level << 1), sign 1 = negative,
//            never set with level 0.                              nb V + d (1 + ceil(log2(s+1)))
//   sign     nb block scales ||x_B||_1/|B| (V bits each), then d sign bits (1 = negative,
//            sign(0) = +1), zero-padded to a byte.                nb V + d
//   natural  d codes of 9 bits: sign | (e << 1), e in 1..254 meaning 2^(e-127) and e = 0
//            meaning 0 (sign then 0), zero-padded to a byte.      9 d
//
// Randomness (QSGD, natural): one 64-bit key from the caller's RngStream per message; the
// per-coordinate uniform u_j is a 32-bit word of Philox4x32-10 in counter mode (PhiloxBlock:
// one Threefry draw per coordinate would cost several ns). A coordinate rounds up when
// u_j < floor(p_j 2^32): the rounding probability is p_j to a resolution of 2^-32 (exact when
// p_j is a multiple of 2^-32, as for natural compression of float32 inputs, whose p is
// M / 2^23). Every draw is a function of (seed, round, client, purpose) through the key.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <Random123/philox.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FT_QUANT_X86 1
#else
#define FT_QUANT_X86 0
#endif

#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "core/status_macros.h"

// No fused multiply-add anywhere in this file: the AVX-512 variants (where FMA exists) must
// round exactly like the baseline code, or the bytes would depend on the CPU. Both compilers
// contract a * b + c by default.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

// Kernels are written once as always-inline templates and instantiated in functions compiled
// for the baseline ISA and for AVX-512 (chosen at run time; the same arithmetic and bits).
#define FT_ALWAYS_INLINE __attribute__((always_inline)) inline

namespace fedtrain {
namespace compression_internal {

// ---- Philox4x32-10 in blocks of 128 uniforms --------------------------------------------

namespace {

// Portable reference: Random123's own Philox4x32 (10 rounds).
void PhiloxBlockScalar(uint64_t key, uint64_t block, uint32_t* out) {
  r123::Philox4x32 g;
  const r123::Philox4x32::key_type k = {
      {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)}};
  for (uint64_t i = 0; i < 32; ++i) {
    const uint64_t c = block * 32 + i;
    const r123::Philox4x32::ctr_type ctr = {
        {static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0, 0}};
    const r123::Philox4x32::ctr_type r = g(ctr, k);
    for (int w = 0; w < 4; ++w) out[32 * w + i] = r.v[w];
  }
}

#if FT_QUANT_X86
// The same function with SIMD lanes = counters. One Philox round on words (c0, c1, c2, c3)
// with round key (k0, k1): (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0));
// the key is bumped by (W0, W1) between rounds (Random123's philox.h constants).

// SSE2 (every x86-64): 8 groups of 4 counters.
void PhiloxBlockSse2(uint64_t key, uint64_t block, uint32_t* out) {
  constexpr int G = 8;
  const uint64_t base = block * 32;
  __m128i c0[G], c1[G], c2[G], c3[G];
  for (int g = 0; g < G; ++g) {
    const uint32_t b = static_cast<uint32_t>(base) + 4 * g;
    c0[g] = _mm_setr_epi32(static_cast<int>(b), static_cast<int>(b + 1),
                           static_cast<int>(b + 2), static_cast<int>(b + 3));
    c1[g] = _mm_set1_epi32(static_cast<int>(base >> 32));
    c2[g] = _mm_setzero_si128();
    c3[g] = _mm_setzero_si128();
  }
  const __m128i m0 = _mm_set1_epi32(static_cast<int>(PHILOX_M4x32_0));
  const __m128i m1 = _mm_set1_epi32(static_cast<int>(PHILOX_M4x32_1));
  const __m128i even = _mm_setr_epi32(-1, 0, -1, 0);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const __m128i ka = _mm_set1_epi32(static_cast<int>(k0));
    const __m128i kb = _mm_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < G; ++g) {
      const __m128i pe0 = _mm_mul_epu32(c0[g], m0);
      const __m128i po0 = _mm_mul_epu32(_mm_srli_epi64(c0[g], 32), m0);
      const __m128i pe1 = _mm_mul_epu32(c2[g], m1);
      const __m128i po1 = _mm_mul_epu32(_mm_srli_epi64(c2[g], 32), m1);
      const __m128i lo0 = _mm_or_si128(_mm_and_si128(pe0, even), _mm_slli_epi64(po0, 32));
      const __m128i hi0 = _mm_or_si128(_mm_srli_epi64(pe0, 32), _mm_andnot_si128(even, po0));
      const __m128i lo1 = _mm_or_si128(_mm_and_si128(pe1, even), _mm_slli_epi64(po1, 32));
      const __m128i hi1 = _mm_or_si128(_mm_srli_epi64(pe1, 32), _mm_andnot_si128(even, po1));
      c0[g] = _mm_xor_si128(_mm_xor_si128(hi1, c1[g]), ka);
      c2[g] = _mm_xor_si128(_mm_xor_si128(hi0, c3[g]), kb);
      c1[g] = lo1;
      c3[g] = lo0;
    }
    k0 += PHILOX_W32_0;
    k1 += PHILOX_W32_1;
  }
  for (int g = 0; g < G; ++g) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4 * g), c0[g]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32 + 4 * g), c1[g]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 64 + 4 * g), c2[g]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 96 + 4 * g), c3[g]);
  }
}

// AVX2: 4 groups of 8 counters.
__attribute__((target("avx2"))) void PhiloxBlockAvx2(uint64_t key, uint64_t block,
                                                      uint32_t* out) {
  constexpr int G = 4;
  const uint64_t base = block * 32;
  __m256i c0[G], c1[G], c2[G], c3[G];
  for (int g = 0; g < G; ++g) {
    const uint32_t b = static_cast<uint32_t>(base) + 8 * g;
    c0[g] = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(b)),
                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    c1[g] = _mm256_set1_epi32(static_cast<int>(base >> 32));
    c2[g] = _mm256_setzero_si256();
    c3[g] = _mm256_setzero_si256();
  }
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(PHILOX_M4x32_0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(PHILOX_M4x32_1));
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const __m256i ka = _mm256_set1_epi32(static_cast<int>(k0));
    const __m256i kb = _mm256_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < G; ++g) {
      const __m256i pe0 = _mm256_mul_epu32(c0[g], m0);
      const __m256i po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0[g], 32), m0);
      const __m256i pe1 = _mm256_mul_epu32(c2[g], m1);
      const __m256i po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2[g], 32), m1);
      // Odd 32-bit lanes (mask 0xAA) come from the odd products.
      const __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
      const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
      const __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);
      const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
      c0[g] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[g]), ka);
      c2[g] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[g]), kb);
      c1[g] = lo1;
      c3[g] = lo0;
    }
    k0 += PHILOX_W32_0;
    k1 += PHILOX_W32_1;
  }
  for (int g = 0; g < G; ++g) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * g), c0[g]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 + 8 * g), c1[g]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 64 + 8 * g), c2[g]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 96 + 8 * g), c3[g]);
  }
}

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

__attribute__((target("avx512f"))) void PhiloxBlockAvx512(uint64_t key, uint64_t block,
                                                           uint32_t* out) {
  __m512i r[8];
  PhiloxRegs(key, block, r);
  for (int g = 0; g < 2; ++g) {
    _mm512_storeu_si512(out + 16 * g, r[g]);
    _mm512_storeu_si512(out + 32 + 16 * g, r[2 + g]);
    _mm512_storeu_si512(out + 64 + 16 * g, r[4 + g]);
    _mm512_storeu_si512(out + 96 + 16 * g, r[6 + g]);
  }
}
#endif  // FT_QUANT_X86

using PhiloxFn = void (*)(uint64_t, uint64_t, uint32_t*);

// Chosen per message from the running CPU; every variant returns the same bits.
PhiloxFn SelectPhilox() {
#if FT_QUANT_X86
  if (__builtin_cpu_supports("avx512f")) return &PhiloxBlockAvx512;
  if (__builtin_cpu_supports("avx2")) return &PhiloxBlockAvx2;
  return &PhiloxBlockSse2;
#else
  return &PhiloxBlockScalar;
#endif
}

}  // namespace

void PhiloxBlock(uint64_t key, uint64_t block, uint32_t* out) { SelectPhilox()(key, block, out); }

void PhiloxBlockVariant(int variant, uint64_t key, uint64_t block, uint32_t* out) {
  switch (variant) {
#if FT_QUANT_X86
    case 1:
      PhiloxBlockSse2(key, block, out);
      return;
    case 2:
      if (__builtin_cpu_supports("avx2")) {
        PhiloxBlockAvx2(key, block, out);
        return;
      }
      break;
    case 3:
      if (__builtin_cpu_supports("avx512f")) {
        PhiloxBlockAvx512(key, block, out);
        return;
      }
      break;
#endif
    default:
      break;
  }
  PhiloxBlockScalar(key, block, out);
}

// ---- Shared helpers ----------------------------------------------------------------------

namespace {

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
#define FT_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
// The same sums (same partial sums, same order: the same bits) with 8-double vectors.
std::atomic<bool> g_baseline_only{false};

bool HasAvx512() {
  if (g_baseline_only.load(std::memory_order_relaxed)) return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

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

// A table of nl <= 32 floats in two registers, for _mm512_permutex2var_ps (entries past nl
// read as 0).
FT_AVX512_TARGET FT_ALWAYS_INLINE void QsgdTableRegs(const float* lut, size_t nl, __m512* lo,
                                                     __m512* hi) {
  *lo = nl >= 16 ? _mm512_loadu_ps(lut)
                 : _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << nl) - 1), lut);
  *hi = nl > 16 ? _mm512_loadu_ps(lut + 16) : _mm512_setzero_ps();
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
#endif

template <typename T>
absl::Status NonFinite(absl::Span<const T> x, const char* what) {
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]))
      return absl::InvalidArgumentError(absl::StrCat(
          what, " input has a non-finite value (", static_cast<double>(x[i]), ") at index ", i));
  return absl::OkStatus();
}

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

// ---- QSGD (§1.4) -------------------------------------------------------------------------

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

template <typename T>
bool QsgdDecodeBlocks(const QsgdShape& sh, const char* codes, const double* norms, T* lut,
                      T* out) {
  return QsgdDecodeBlocksImpl<T>(sh, codes, norms, lut, out);
}

#if FT_QUANT_X86
// PackBits for a full block of 128 codes of w <= 8 bits, 16 codes per step: pairs of codes
// merge inside 64-bit lanes, then pairs of lanes twice, leaving two 8-code groups of 8w bits.
FT_AVX512_TARGET void PackBlockAvx512(const uint32_t* code, int w, char* dst,
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

template <typename T, typename VT, typename CT>
QsgdEncodeOutcome QsgdEncode(const QsgdShape& sh, const T* x, uint64_t key, PhiloxFn philox,
                             char* scales, char* codes, T* decoded, T* lut, size_t* bucket) {
  return QsgdEncodeImpl<T, VT, CT, false>(sh, x, key, philox, scales, codes, decoded, lut,
                                          bucket);
}

#if FT_QUANT_X86
FT_AVX512_TARGET QsgdEncodeOutcome QsgdEncodeAvx512(const QsgdShape& sh, const float* x,
                                                    uint64_t key, PhiloxFn philox,
                                                    char* scales, char* codes, float* decoded,
                                                    float* lut, size_t* bucket) {
  return QsgdEncodeImpl<float, float, float, true>(sh, x, key, philox, scales, codes, decoded,
                                                   lut, bucket);
}
#endif

#if FT_QUANT_X86
// The fused AVX-512 encoder for float input with float norms, buckets of whole Philox blocks
// and codes of at most 8 bits (s <= 127); with `decoded`, s <= 15 (a table in two registers).
// Per block of 128 coordinates: the Philox4x32-10 words are computed in registers (the same
// words as PhiloxBlockAvx512: vector v = 2 w + g holds coordinates 16 v .. 16 v + 15), 16
// coordinates are quantized per step with the arithmetic of QuantizeRun<float, float> (the
// same bits), their codes are narrowed to bytes (two vectors per permute) and packed 8 at a
// time with pext into w bytes written directly into the message; `decoded` takes the
// decoder's table permute and streaming stores. A partial last block takes the generic code.
// Returns kNeedDouble exactly where QsgdEncodeImpl<float, float, float> would.
#define FT_FUSED_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,bmi2")))

bool HasFusedQsgd() {
  return HasAvx512() && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("bmi2");
}

bool FusedQsgdShapeOk(const QsgdShape& sh, bool with_decoded, bool with_lut) {
  return sh.width <= 8 && sh.bucket % kPhiloxBlock == 0 &&
         (!with_decoded || (with_lut && sh.width <= 5));
}

FT_FUSED_TARGET QsgdEncodeOutcome QsgdEncodeFusedAvx512(const QsgdShape& sh, const float* x,
                                                        uint64_t key, char* scales,
                                                        char* codes, float* decoded,
                                                        float* lut, size_t* bucket) {
  const int w = sh.width;
  const size_t nl = size_t{1} << w;
  const size_t nfull = sh.d / kPhiloxBlock;  // full blocks
  char* const codes_end = codes + (sh.d * static_cast<size_t>(w) + 7) / 8;
  const uint64_t pext_mask = 0x0101010101010101ull * ((uint64_t{1} << w) - 1);
  const __m512i s_i = _mm512_set1_epi32(static_cast<int>(sh.levels));
  const __m512 s_f = _mm512_set1_ps(static_cast<float>(sh.levels));
  const __m512 two32 = _mm512_set1_ps(4294967296.0f);
  const __m512i one = _mm512_set1_epi32(1);
  // Byte k of the result: the low byte of 32-bit lane k of (a, b) (k < 32).
  const __m512i narrow = _mm512_set_epi8(
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 124, 120, 116, 112, 108, 104, 100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56, 52,
      48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0);
  __m512 t_lo = _mm512_setzero_ps(), t_hi = _mm512_setzero_ps();
  const bool stream = decoded != nullptr && sh.d * sizeof(float) >= kStreamMinBytes;
  StreamOut so;
  if (stream) StreamStart(&so, decoded);
  constexpr int kNormGroup = 4;
  double ss_buf[kNormGroup];
  size_t ss_base = 0, ss_count = 0;
  float factor = 0;
  __m512 fac = _mm512_setzero_ps();
  alignas(64) uint32_t u[kPhiloxBlock];
  alignas(64) uint32_t code[kPhiloxBlock];
  alignas(64) uint64_t bytes[4 * 4 + 4];
  const size_t nblocks = (sh.d + kPhiloxBlock - 1) / kPhiloxBlock;
  for (size_t blk = 0; blk < nblocks; ++blk) {
    const size_t j0 = blk * kPhiloxBlock;
    {  // software prefetch, as in QsgdEncodeImpl
      constexpr size_t kAhead = 16384;
      const char* const xb = reinterpret_cast<const char*>(x);
      const size_t from = j0 * sizeof(float) + kAhead;
      const size_t to = std::min(sh.d * sizeof(float), from + kPhiloxBlock * sizeof(float));
      for (size_t off = from; off < to; off += 64) __builtin_prefetch(xb + off, 0, 3);
    }
    if (j0 % sh.bucket == 0) {  // a new bucket (buckets are whole blocks)
      const size_t q = j0 / sh.bucket;
      *bucket = q;
      const size_t len = std::min(sh.bucket, sh.d - j0);
      if (q >= ss_base + ss_count) {
        ss_base = q;
        if ((q + kNormGroup) * sh.bucket <= sh.d) {
          ss_count = kNormGroup;
          SumMultiAvx512<kNormGroup, true>(x + j0, sh.bucket, sh.bucket, ss_buf);
        } else {
          ss_count = 1;
          ss_buf[0] = SumSquares(x + j0, len);
        }
      }
      const double ss = ss_buf[q - ss_base];
      if (!std::isfinite(ss)) return QsgdEncodeOutcome::kNonFinite;
      const float nw = static_cast<float>(std::sqrt(ss));
      if (!std::isfinite(nw)) return QsgdEncodeOutcome::kNormOverflow;
      StoreLE<float>(scales + q * sizeof(float), nw);
      const double f = nw > 0 ? sh.levels / static_cast<double>(nw) : 0.0;
      if (!(f <= 3.0e38)) return QsgdEncodeOutcome::kNeedDouble;
      factor = static_cast<float>(f);
      fac = _mm512_set1_ps(factor);
      if (decoded != nullptr) {
        QsgdFillTable<float>(static_cast<double>(nw), sh.levels, nl, lut);
        QsgdTableRegs(lut, nl, &t_lo, &t_hi);
      }
    }
    char* const dst = codes + blk * (kPhiloxBlock / 8) * static_cast<size_t>(w);
    if (blk >= nfull) {  // the partial last block: the generic steps
      const size_t n = sh.d - j0;
      if (stream) StreamFinish(&so);
      PhiloxBlockAvx512(key, blk, u);
      QuantizeRun<float, float>(x + j0, u, 0, n, factor, sh.levels, code);
      if (decoded != nullptr)
        for (size_t t = 0; t < n; ++t) decoded[j0 + t] = lut[code[t]];
      PackBits(code, n, w, dst);
      return QsgdEncodeOutcome::kOk;
    }
    __m512i ur[8];
    PhiloxRegs(key, blk, ur);
    const float* const xb = x + j0;
    // Two vectors at a time (few live registers: no spills).
    for (int v = 0; v < 8; v += 2) {
      __m512i cv[2];
      for (int h = 0; h < 2; ++h) {
        const __m512 xv = _mm512_loadu_ps(xb + 16 * (v + h));
        // r = |x| (s / N); l = min(floor(r), s); p = r - l; up when u < floor(p 2^32), l < s.
        const __m512 r = _mm512_mul_ps(_mm512_abs_ps(xv), fac);
        const __mmask16 below = _mm512_cmp_ps_mask(r, s_f, _CMP_LT_OQ);
        const __m512i l = _mm512_mask_cvttps_epu32(s_i, below, r);
        const __m512 p = _mm512_reduce_ps(r, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __m512i t = _mm512_maskz_cvttps_epu32(0xFFFF, _mm512_mul_ps(p, two32));
        const __mmask16 up = _mm512_mask_cmplt_epu32_mask(below, ur[v + h], t);
        const __m512i xi = _mm512_mask_add_epi32(l, up, l, one);
        const __mmask16 neg =
            _mm512_mask_test_epi32_mask(_mm512_movepi32_mask(_mm512_castps_si512(xv)), xi, xi);
        const __m512i c = _mm512_add_epi32(xi, xi);
        cv[h] = _mm512_mask_or_epi32(c, neg, c, one);
        if (decoded != nullptr) {
          const __m512 val = _mm512_permutex2var_ps(t_lo, cv[h], t_hi);
          if (stream) {
            StreamPut(&so, val);
          } else {
            _mm512_storeu_ps(decoded + j0 + 16 * (v + h), val);
          }
        }
      }
      // Each 64-byte store's upper half (no codes) is overwritten by the next one.
      _mm512_storeu_si512(bytes + 2 * v, _mm512_permutex2var_epi8(cv[0], narrow, cv[1]));
    }
    // 16 groups of 8 codes, w bytes each; 8-byte stores (the bytes past w are zero and are
    // rewritten by the next group) while they stay inside the message.
    if (dst + 16 * w + 8 <= codes_end) {
      for (int g = 0; g < 16; ++g) {
        const uint64_t packed = _pext_u64(bytes[g], pext_mask);
        std::memcpy(dst + g * w, &packed, 8);
      }
    } else {
      for (int g = 0; g < 16; ++g) {
        const uint64_t packed = _pext_u64(bytes[g], pext_mask);
        char tmp[8];
        std::memcpy(tmp, &packed, 8);
        for (int b = 0; b < w; ++b) dst[g * w + b] = tmp[b];
      }
    }
  }
  if (stream) StreamFinish(&so);
  return QsgdEncodeOutcome::kOk;
}
#endif

#if FT_QUANT_X86

// What the AVX-512 QSGD decoders (QsgdDecodeBlocksAvx512, QsgdDecodeBlocksVbmi) share, for
// buckets of whole blocks: a block's start (a new bucket's table, in two registers when
// in_regs), the checks, lookup and store of a step's 16 codes, the rest of a block (Tail) and
// the outcome (Finish); each decoder only extracts its steps' codes (in its own target, which
// includes this one). Always inlined, so the state stays in registers. Large outputs take
// streaming stores (StreamOut).
struct QsgdDecodeAvx512State {
  const QsgdShape* sh;
  const char* codes;
  const double* norms;
  float* lut;
  float* out;
  size_t nl;
  bool in_regs;
  bool stream;
  __m512i max_code, one;
  __m512 t_lo, t_hi;
  __mmask16 bad;
  StreamOut so;
  size_t n;    // the current block's length
  float* dst;  // and its output

  FT_AVX512_TARGET FT_ALWAYS_INLINE void Start(const QsgdShape& shape, const char* c,
                                               const double* nm, float* table, float* o,
                                               bool regs) {
    sh = &shape;
    codes = c;
    norms = nm;
    lut = table;
    out = o;
    nl = size_t{1} << shape.width;
    in_regs = regs;
    stream = shape.d * sizeof(float) >= kStreamMinBytes;
    max_code = _mm512_set1_epi32(static_cast<int>(2 * shape.levels + 1));
    one = _mm512_set1_epi32(1);
    t_lo = _mm512_setzero_ps();
    t_hi = _mm512_setzero_ps();
    bad = 0;
    StreamStart(&so, o);
  }

  // Starts block blk (blk * kPhiloxBlock < d); returns its codes.
  FT_AVX512_TARGET FT_ALWAYS_INLINE const char* Block(size_t blk) {
    const size_t j0 = blk * kPhiloxBlock;
    n = std::min(kPhiloxBlock, sh->d - j0);
    dst = out + j0;
    if (j0 % sh->bucket == 0) {  // a new bucket: its table (as in QsgdDecodeBlocksImpl)
      QsgdFillTable<float>(norms[j0 / sh->bucket], sh->levels, nl, lut);
      if (in_regs) QsgdTableRegs(lut, nl, &t_lo, &t_hi);
    }
    return codes + blk * (kPhiloxBlock / 8) * static_cast<size_t>(sh->width);
  }

  // Codes i .. i + 15 of the block: checked, looked up and stored.
  FT_AVX512_TARGET FT_ALWAYS_INLINE void Step(__m512i c, size_t i) {
    bad |= _mm512_cmpgt_epu32_mask(c, max_code) | _mm512_cmpeq_epi32_mask(c, one);
    // Zero-masking gather: GCC 12 warns (falsely) about the plain form's undefined
    // pass-through operand.
    const __m512 v = in_regs ? _mm512_permutex2var_ps(t_lo, c, t_hi)
                             : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, c, lut, 4);
    if (stream) {
      StreamPut(&so, v);
    } else {
      _mm512_storeu_ps(dst + i, v);
    }
  }

  // The rest of the block from code i on (byte-aligned: i is a multiple of 16), at p; false
  // on an invalid code.
  FT_AVX512_TARGET FT_ALWAYS_INLINE bool Tail(const char* p, size_t i) {
    if (i >= n) return true;
    if (stream) {
      StreamFinish(&so);
      stream = false;
    }
    alignas(64) uint32_t code[kPhiloxBlock];
    UnpackBits(p, n - i, sh->width, code);
    uint32_t bad_tail = 0;
    for (size_t t = 0; i + t < n; ++t) {
      bad_tail |= static_cast<uint32_t>((code[t] >> 1) > sh->levels) |
                  static_cast<uint32_t>(code[t] == 1);
      dst[i + t] = lut[code[t]];
    }
    return bad_tail == 0;
  }

  FT_AVX512_TARGET FT_ALWAYS_INLINE bool Finish() {
    if (stream) StreamFinish(&so);
    return bad == 0;
  }
};

// With a table, codes of at most 8 bits and buckets of whole blocks (b = 512 and the like):
// 16 codes per step from two 8-code groups (variable shifts), checked with two compares and
// looked up with one permute of the table held in two registers (codes of at most 5 bits,
// s <= 15) or one gather. Other shapes take the generic loop.
FT_AVX512_TARGET bool QsgdDecodeBlocksAvx512(const QsgdShape& sh, const char* codes,
                                             const double* norms, float* lut, float* out) {
  if (lut == nullptr || sh.width > 8 || sh.bucket % kPhiloxBlock != 0)
    return QsgdDecodeBlocksImpl<float>(sh, codes, norms, lut, out);
  const int w = sh.width;
  const char* const end = codes + (sh.d * static_cast<size_t>(w) + 7) / 8;
  const __m512i shifts = _mm512_setr_epi64(0, w, 2 * w, 3 * w, 4 * w, 5 * w, 6 * w, 7 * w);
  const __m512i mask = _mm512_set1_epi64(static_cast<int64_t>((int64_t{1} << w) - 1));
  // Zero-masking form: see QsgdDecodeAvx512State::Step.
  const __mmask8 all8 = 0xFF;
  const __m512i evens =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  QsgdDecodeAvx512State dec;
  dec.Start(sh, codes, norms, lut, out, /*regs=*/w <= 5);
  for (size_t blk = 0; blk * kPhiloxBlock < sh.d; ++blk) {
    const char* p = dec.Block(blk);
    size_t i = 0;
    // Two 8-byte loads per step: only while they stay inside the payload.
    for (; i + 16 <= dec.n && p + w + 8 <= end; i += 16, p += 2 * w) {
      uint64_t g0, g1;
      std::memcpy(&g0, p, 8);
      std::memcpy(&g1, p + w, 8);
      const __m512i v0 = _mm512_and_si512(
          _mm512_maskz_srlv_epi64(all8, _mm512_set1_epi64(static_cast<int64_t>(g0)), shifts), mask);
      const __m512i v1 = _mm512_and_si512(
          _mm512_maskz_srlv_epi64(all8, _mm512_set1_epi64(static_cast<int64_t>(g1)), shifts), mask);
      // The low 32 bits of the 16 64-bit lanes of v0, v1, in order.
      dec.Step(_mm512_permutex2var_epi32(v0, evens, v1), i);
    }
    if (!dec.Tail(p, i)) return false;
  }
  return dec.Finish();
}

// QsgdDecodeBlocksAvx512 for codes of at most 5 bits (the table in two registers) with
// AVX512-VBMI: 16 codes per step from one 16-byte load, moved into their 32-bit lanes with one
// byte permute (the two bytes holding code i: bits w i .. w i + w - 1) and one variable shift.
// Same checks, values and stores. Other shapes take QsgdDecodeBlocksAvx512.
FT_FUSED_TARGET bool QsgdDecodeBlocksVbmi(const QsgdShape& sh, const char* codes,
                                          const double* norms, float* lut, float* out) {
  if (lut == nullptr || sh.width > 5 || sh.bucket % kPhiloxBlock != 0)
    return QsgdDecodeBlocksAvx512(sh, codes, norms, lut, out);
  const int w = sh.width;
  const char* const end = codes + (sh.d * static_cast<size_t>(w) + 7) / 8;
  alignas(64) uint8_t perm_b[64];
  alignas(64) uint32_t shift_b[16];
  for (int i = 0; i < 16; ++i) {
    const int bit = w * i;
    perm_b[4 * i] = static_cast<uint8_t>(bit / 8);
    perm_b[4 * i + 1] = static_cast<uint8_t>(bit / 8 + 1);
    perm_b[4 * i + 2] = 0;
    perm_b[4 * i + 3] = 0;
    shift_b[i] = static_cast<uint32_t>(bit % 8);
  }
  const __m512i perm = _mm512_load_si512(perm_b);
  const __m512i shifts = _mm512_load_si512(shift_b);
  const __m512i mask = _mm512_set1_epi32((1 << w) - 1);
  QsgdDecodeAvx512State dec;
  dec.Start(sh, codes, norms, lut, out, /*regs=*/true);
  for (size_t blk = 0; blk * kPhiloxBlock < sh.d; ++blk) {
    const char* p = dec.Block(blk);
    size_t i = 0;
    // One 16-byte load per step: only while it stays inside the payload.
    for (; i + 16 <= dec.n && p + 16 <= end; i += 16, p += 2 * w) {
      const __m512i raw = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      // Zero-masking forms: see PhiloxBlockAvx512.
      dec.Step(_mm512_and_si512(_mm512_maskz_srlv_epi32(
                                    0xFFFF, _mm512_maskz_permutexvar_epi8(~0ull, perm, raw), shifts),
                                mask),
               i);
    }
    if (!dec.Tail(p, i)) return false;
  }
  return dec.Finish();
}
#endif

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

// ---- Scaled sign (§1.5) ------------------------------------------------------------------

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

// ---- Natural compression (§1.6) ----------------------------------------------------------
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

void UseBaselineQuantizerKernels(bool baseline_only) {
#if FT_QUANT_X86
  g_baseline_only.store(baseline_only, std::memory_order_relaxed);
#else
  (void)baseline_only;
#endif
}

std::unique_ptr<Compressor> NewQuantizer(const QuantizerConfig& c) {
  switch (c.kind) {
    case kKindQsgd:
      return std::unique_ptr<Compressor>(new QsgdCompressor(c));
    case kKindSign:
      return std::unique_ptr<Compressor>(new SignCompressor(c));
    default:
      return std::unique_ptr<Compressor>(new NaturalCompressor(c));
  }
}

}  // namespace compression_internal
}  // namespace fedtrain
