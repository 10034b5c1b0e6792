// QSGD's AVX-512 kernels (docs/compression.md §1.4), chosen at run time by qsgd.cc: the
// generic encoder compiled for AVX-512, the fused encoder (Philox words, quantization and
// packing in registers) and the decoders for buckets of whole blocks. Each gives the same
// bytes and values as the baseline kernels of qsgd_kernels.h (compressor_test checks this
// with UseBaselineQuantizerKernels). Empty where the target is not x86.
//
// Pure functions, thread-safe.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
// Last: it turns FP contraction off for the rest of this file (see quantizer_internal.h).
#include "compression/qsgd_kernels.h"

#if FT_QUANT_X86

namespace fedtrain {
namespace compression_internal {

namespace {

// A table of nl <= 32 floats in two registers, for _mm512_permutex2var_ps (entries past nl
// read as 0).
FT_AVX512_TARGET FT_ALWAYS_INLINE void QsgdTableRegs(const float* lut, size_t nl, __m512* lo,
                                                     __m512* hi) {
  *lo = nl >= 16 ? _mm512_loadu_ps(lut)
                 : _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << nl) - 1), lut);
  *hi = nl > 16 ? _mm512_loadu_ps(lut + 16) : _mm512_setzero_ps();
}

}  // namespace

FT_AVX512_TARGET QsgdEncodeOutcome QsgdEncodeAvx512(const QsgdShape& sh, const float* x,
                                                    uint64_t key, PhiloxFn philox,
                                                    char* scales, char* codes, float* decoded,
                                                    float* lut, size_t* bucket) {
  return QsgdEncodeImpl<float, float, float, true>(sh, x, key, philox, scales, codes, decoded,
                                                   lut, bucket);
}

// The fused AVX-512 encoder for float input with float norms, buckets of whole Philox blocks
// and codes of at most 8 bits (s <= 127); with `decoded`, s <= 15 (a table in two registers).
// Per block of 128 coordinates: the Philox4x32-10 words are computed in registers (the same
// words as PhiloxBlockAvx512: vector v = 2 w + g holds coordinates 16 v .. 16 v + 15), 16
// coordinates are quantized per step with the arithmetic of QuantizeRun<float, float> (the
// same bits), their codes are narrowed to bytes (two vectors per permute) and packed 8 at a
// time with pext into w bytes written directly into the message; `decoded` takes the
// decoder's table permute and streaming stores. A partial last block takes the generic code.
// Returns kNeedDouble exactly where QsgdEncodeImpl<float, float, float> would.
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

namespace {

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

}  // namespace

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

}  // namespace compression_internal
}  // namespace fedtrain

#endif  // FT_QUANT_X86
