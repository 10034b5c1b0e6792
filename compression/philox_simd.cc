// Philox4x32-10 (Random123) in blocks of 128 uniforms, the generator of QSGD and natural
// compression (PhiloxBlock in compressor_internal.h): the portable reference and SSE2, AVX2
// and AVX-512F variants with SIMD lanes = counters (every variant gives the same bits:
// integer arithmetic only), the per-message choice among them, and the process-wide switch
// that makes every quantizer run its baseline-ISA kernels (UseBaselineQuantizerKernels).
//
// Pure functions, thread-safe; UseBaselineQuantizerKernels is not for concurrent use.
#include <atomic>
#include <cstdint>

#include <Random123/philox.h>

#include "compression/compressor_internal.h"
// Last: it turns FP contraction off for the rest of this file (see there).
#include "compression/quantizer_internal.h"

namespace fedtrain {
namespace compression_internal {

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
#endif  // FT_QUANT_X86

}  // namespace

#if FT_QUANT_X86
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

// One home of the baseline switch (see quantizer_internal.h for why it is process-wide).
std::atomic<bool> g_baseline_only{false};
#endif

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

void UseBaselineQuantizerKernels(bool baseline_only) {
#if FT_QUANT_X86
  g_baseline_only.store(baseline_only, std::memory_order_relaxed);
#else
  (void)baseline_only;
#endif
}

}  // namespace compression_internal
}  // namespace fedtrain
