// RQM (docs/privacy.md §1), codec "rqm/1".
//
// Payload (after the 16-byte header of compressor_internal.h; kind 8, a = m, b = 0):
//   d indices z_j in 0..m-1 of ceil(log2 m) bits each, bit-packed LSB first (bit_io.h),
//   zero-padded to a byte.                                           d ceil(log2 m)
// (c, Δ, q) are configuration shared by both ends and do not travel.
//
// Sampling of one coordinate x (clipped to [-c, c]), j = Interval(x):
//   left neighbour  L = j - k_L,     k_L = min(j,         #{i >= 1 : u_L < (1-q)^i})
//   right neighbour R = j + 1 + k_R, k_R = min(m - 2 - j, #{i >= 1 : u_R < (1-q)^i})
//   z = R if u_Z < (x - B(L)) / (B(R) - B(L)), else L.
// k_L is the number of dropped levels the walk l = j, j-1, ... passes before it meets a kept
// one (each interior level kept independently with probability q): P(k_L >= i) = (1-q)^i, a
// geometric law, sampled here by inversion from one 53-bit uniform instead of one Bernoulli
// draw per level visited (the same distribution, up to the 2^-53 resolution of the
// thresholds; no branch per level).
//
// The three uniforms u_L, u_R, u_Z of a coordinate are 53-bit: u = (h 2^21 + l) 2^-53 with a
// high word h (32 bits) and a low part l (21 bits), compared as integers with ceil(p 2^53)
// (exactly u < p). The high words come from Philox4x32-10 (philox_simd.cc) keyed by one
// 64-bit draw from the caller's RngStream (seed, round, client, purpose): coordinate j of
// 128-block b takes word j mod 128 of Philox blocks 3b (u_L), 3b + 1 (u_R), 3b + 2 (u_Z).
// Almost every comparison is settled by h alone; only when h equals the high word of the
// threshold (probability 2^-32 per comparison) is the low part needed, and it is then taken
// from Philox block kLowBlocks + 3b + s, word j mod 128, top 21 bits. Drawing it only then
// changes which bits are computed, not the value of u or the outcome: the result is the
// comparison of the full 53-bit uniform.
#include "compression/rqm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "core/status_macros.h"
// Last: it turns FP contraction off for the rest of this file (see there).
#include "compression/quantizer_internal.h"

namespace fedtrain {

absl::Status ValidateRqmOptions(const RqmOptions& o) {
  if (!(o.clip > 0.0) || !std::isfinite(o.clip))
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.clip = ", o.clip, " must be finite and > 0"));
  if (!(o.delta > 0.0) || !std::isfinite(o.delta))
    return absl::InvalidArgumentError(absl::StrCat(
        "privacy.range_extension = ", o.delta,
        " must be finite and > 0 (0 puts the extreme levels at +-clip: infinite "
        "privacy loss)"));
  if (o.delta < 1e-9 * o.clip || o.delta > 1e9 * o.clip)
    return absl::InvalidArgumentError(absl::StrCat("privacy.range_extension = ", o.delta,
                                                   " must be within [1e-9, 1e9] x privacy.clip"));
  if (o.levels < 2 || o.levels > 65536)
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.levels = ", o.levels, " must be in [2, 65536]"));
  if (!(o.keep > 0.0 && o.keep < 1.0))
    return absl::InvalidArgumentError(absl::StrCat(
        "privacy.keep_prob = ", o.keep,
        " must be in (0, 1) (1 is plain stochastic rounding: infinite privacy loss)"));
  if (o.keep < 1e-6)
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.keep_prob = ", o.keep, " must be at least 1e-6"));
  return absl::OkStatus();
}

RqmGrid::RqmGrid(const RqmOptions& o) : o_(o) {
  X_ = o.clip + o.delta;
  w_ = (2.0 * X_) / static_cast<double>(o.levels - 1);
  miss_pow_.resize(static_cast<size_t>(o.levels));
  double p = 1.0;
  for (size_t i = 0; i < miss_pow_.size(); ++i) {
    miss_pow_[i] = p;
    p *= 1.0 - o.keep;
  }
}

int64_t RqmGrid::Interval(double x) const {
  const int64_t top = o_.levels - 2;
  double f = std::floor((x + X_) / w_);
  int64_t j = f < 0 ? 0 : f > static_cast<double>(top) ? top : static_cast<int64_t>(f);
  // The quotient may round across a level; settle on the levels as Level() computes them.
  while (j > 0 && x < Level(j)) --j;
  while (j < top && x >= Level(j + 1)) ++j;
  return j;
}

void RqmGrid::Pmf(double x, std::vector<double>* p) const {
  const int64_t m = o_.levels;
  const double q = o_.keep;
  p->assign(static_cast<size_t>(m), 0.0);
  const int64_t j = Interval(x);
  std::vector<double> pl(static_cast<size_t>(j + 1)), pr(static_cast<size_t>(m));
  pl[0] = MissPow(j);
  for (int64_t l = 1; l <= j; ++l) pl[static_cast<size_t>(l)] = q * MissPow(j - l);
  pr[static_cast<size_t>(m - 1)] = MissPow(m - 2 - j);
  for (int64_t r = j + 1; r <= m - 2; ++r) pr[static_cast<size_t>(r)] = q * MissPow(r - j - 1);
  for (int64_t l = 0; l <= j; ++l) {
    for (int64_t r = j + 1; r < m; ++r) {
      const double both = pl[static_cast<size_t>(l)] * pr[static_cast<size_t>(r)];
      const double bl = Level(l), br = Level(r);
      const double up = (x - bl) / (br - bl);
      (*p)[static_cast<size_t>(r)] += both * up;
      (*p)[static_cast<size_t>(l)] += both * (1.0 - up);
    }
  }
}

double RqmGrid::DecodeSum(uint64_t z_sum, uint64_t num_clients) const {
  return -X_ + w_ * static_cast<double>(z_sum) / static_cast<double>(num_clients);
}

int RqmGrid::IndexBits() const { return CeilLog2(static_cast<uint64_t>(o_.levels)); }

namespace compression_internal {
namespace {

constexpr uint8_t kKindRqm = 8;

// ceil(p 2^53) for p in [0, 1]: n < Threshold(p) <=> n 2^-53 < p for integers n < 2^53.
// p 2^53 is exact (a power-of-two scale); truncation is the floor of a non-negative value.
// No libm calls: this runs once per coordinate.
inline uint64_t Threshold(double p) {
  const double y = p * 0x1p53;
  uint64_t t = static_cast<uint64_t>(y);
  if (static_cast<double>(t) < y) ++t;
  return t;
}

// What the block kernel reads: the level table, 1/(B(r) - B(l)) per pair, the thresholds'
// high words (kRqmSmall of them, zero-padded) and the scalars.
struct RqmTables {
  const double* levels;
  const double* inv_gap;
  const uint32_t* th_hi;
  int32_t m, top;
  double c, X, w, inv_w;
};
constexpr int kRqmSmall = 14;  // m <= 16: the branch-free block kernel

// One 128-block of coordinates for m <= 16, written without branches so that the compiler
// vectorizes it (gathers for the tables). Writes code[i] and, in tie[i], whether one of the
// three comparisons needs the low 21 bits (then code[i] is recomputed by the caller).
// Returns whether any tie occurred. The same C++ is compiled for the baseline ISA and for
// AVX-512 (no FMA in this file): both give the same bits.
template <int K, typename T>
FT_ALWAYS_INLINE bool RqmBlockKernel(const RqmTables& tb, const T* __restrict x, size_t n,
                                     const uint32_t* __restrict hl, const uint32_t* __restrict hr,
                                     const uint32_t* __restrict hz, uint32_t* __restrict code,
                                     uint32_t* __restrict tie) {
  uint32_t any = 0;
  for (size_t i = 0; i < n; ++i) {
    double v = static_cast<double>(x[i]);
    v = v < -tb.c ? -tb.c : v;
    v = v > tb.c ? tb.c : v;
    const double f = (v + tb.X) * tb.inv_w;  // >= 0: truncation is the floor
    int32_t j = static_cast<int32_t>(f);
    j = j < tb.top ? j : tb.top;
    // (v + X) / w is within a few ulps of the exact quotient: one step each way settles j.
    // Levels as RqmGrid::Level computes them (the same double expression, so the same values
    // as the tables the general path reads), computed here instead of gathered.
    j -= static_cast<int32_t>((j > 0) & (v < -tb.X + static_cast<double>(j) * tb.w));
    j += static_cast<int32_t>((j < tb.top) & (v >= -tb.X + static_cast<double>(j + 1) * tb.w));
    int32_t kl = 0, kr = 0;
    uint32_t t = 0;
    for (int k = 0; k < K; ++k) {  // K >= m - 2 thresholds, zero-padded
      kl += static_cast<int32_t>(hl[i] < tb.th_hi[k]);
      kr += static_cast<int32_t>(hr[i] < tb.th_hi[k]);
      t |= static_cast<uint32_t>(hl[i] == tb.th_hi[k]) | static_cast<uint32_t>(hr[i] == tb.th_hi[k]);
    }
    kl = kl < j ? kl : j;
    kr = kr < tb.top - j ? kr : tb.top - j;
    const int32_t l = j - kl, r = j + 1 + kr;
    const double bl = -tb.X + static_cast<double>(l) * tb.w;
    const double br = -tb.X + static_cast<double>(r) * tb.w;
    const double p = (v - bl) * (1.0 / (br - bl));  // the value of inv_gap_[l m + r]
    const double y = p * 0x1p53;
    uint64_t th = static_cast<uint64_t>(y);
    th += static_cast<uint64_t>(static_cast<double>(th) < y);
    const uint64_t th_hi = th >> 21;
    t |= static_cast<uint32_t>(hz[i] == th_hi);
    code[i] = hz[i] < th_hi ? static_cast<uint32_t>(r) : static_cast<uint32_t>(l);
    tie[i] = t;
    any |= t;
  }
  return any != 0;
}

template <int K, typename T>
bool RqmBlockBaseline(const RqmTables& tb, const T* x, size_t n, const uint32_t* hl,
                      const uint32_t* hr, const uint32_t* hz, uint32_t* code, uint32_t* tie) {
  return RqmBlockKernel<K>(tb, x, n, hl, hr, hz, code, tie);
}
#if FT_QUANT_X86
template <int K, typename T>
FT_AVX512_TARGET bool RqmBlockAvx512(const RqmTables& tb, const T* x, size_t n, const uint32_t* hl,
                    const uint32_t* hr, const uint32_t* hz, uint32_t* code, uint32_t* tie) {
  return RqmBlockKernel<K>(tb, x, n, hl, hr, hz, code, tie);
}
#endif

class RqmCompressor final : public CompressorBase<RqmCompressor> {
 public:
  RqmCompressor(const RqmOptions& o, size_t d) : grid_(o), d_(d) {
    const int64_t m = grid_.m();
    bits_ = grid_.IndexBits();
    levels_.resize(static_cast<size_t>(m));
    levels_f_.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      levels_[static_cast<size_t>(i)] = grid_.Level(i);
      levels_f_[static_cast<size_t>(i)] = static_cast<float>(grid_.Level(i));
    }
    // thresholds_[i - 1] = ceil((1-q)^i 2^53), i = 1..m-2, padded with zeros to kSmall;
    // th_hi_ their high 32 bits (a uniform whose high word is below it is below the
    // threshold, above it above; equal: the low 21 bits decide).
    thresholds_.assign(static_cast<size_t>(std::max<int64_t>(m - 2, kSmall)), 0);
    for (int64_t i = 1; i <= m - 2; ++i)
      thresholds_[static_cast<size_t>(i - 1)] = Threshold(grid_.MissPow(i));
    th_hi_.resize(thresholds_.size());
    for (size_t i = 0; i < thresholds_.size(); ++i)
      th_hi_[i] = static_cast<uint32_t>(thresholds_[i] >> 21);
    // 1 / (B(r) - B(l)) for l < r: the rounding probability (x - B(l)) / (B(r) - B(l)) as a
    // product (rounded differently from the quotient, by at most 1 ulp of the probability).
    inv_gap_.assign(static_cast<size_t>(m * m), 0.0);
    for (int64_t l = 0; l < m; ++l)
      for (int64_t r = l + 1; r < m; ++r)
        inv_gap_[static_cast<size_t>(l * m + r)] = 1.0 / (levels_[static_cast<size_t>(r)] -
                                                          levels_[static_cast<size_t>(l)]);
  }

  // The walk length for a 53-bit uniform (h 2^21 + lo): #{i : u < (1-q)^i}, uncapped.
  int64_t Walk(uint32_t h, uint64_t lo) const {
    const uint64_t n = (static_cast<uint64_t>(h) << 21) | lo;
    int64_t k = 0;
    while (k < grid_.m() - 2 && n < thresholds_[static_cast<size_t>(k)]) ++k;
    return k;
  }

  std::string codec() const override { return "rqm/1"; }
  size_t dim() const override { return d_; }
  // Unbiased only for inputs inside [-c, c] (clipping biases the rest); no ω relative to ‖x‖.
  CompressorInfo info() const override { return {false, false, 0.0, 0.0}; }
  uint64_t PayloadBits() const override { return static_cast<uint64_t>(bits_) * d_; }
  const RqmGrid& grid() const { return grid_; }

  template <typename T>
  absl::Status EncodeT(absl::Span<const T> x, RngStream& rng, Encoded* out,
                       absl::Span<T> decoded) const {
    FT_RETURN_IF_ERROR(CheckEncodeArgs(*this, x.size(), decoded.size()));
    FT_RETURN_IF_ERROR(CheckFinite(x, "rqm input"));
    const size_t d = d_;
    out->codec = codec();
    out->dim = d;
    out->bytes.clear();
    WriteHeader(MakeHeader(kKindRqm, kF32, d, static_cast<uint32_t>(grid_.m()), 0), &out->bytes);
    const size_t payload = (static_cast<size_t>(bits_) * d + 7) / 8;
    out->bytes.resize(kHeaderBytes + payload);
    char* codes = out->bytes.data() + kHeaderBytes;
    const uint64_t key = rng.NextU64();
    const PhiloxFn philox = SelectPhilox();
    uint32_t u[3][kPhiloxBlock];
    uint32_t code[kPhiloxBlock];
    const double c = grid_.options().clip;
    const double X = grid_.X(), inv_w = 1.0 / grid_.w();
    const int64_t m = grid_.m();
    const int64_t top = m - 2;
    const bool small = m - 2 <= kSmall;
    const RqmTables tables{levels_.data(), inv_gap_.data(), th_hi_.data(),
                           static_cast<int32_t>(m), static_cast<int32_t>(top), c, X,
                           grid_.w(), inv_w};
    uint32_t tie[kPhiloxBlock];
    // The kernel for the smallest padded threshold count K >= m - 2 (2, 6 or 14).
    auto block = m <= 4 ? &RqmBlockBaseline<2, T> : m <= 8 ? &RqmBlockBaseline<6, T>
                                                            : &RqmBlockBaseline<kRqmSmall, T>;
#if FT_QUANT_X86
    if (HasAvx512())
      block = m <= 4 ? &RqmBlockAvx512<2, T> : m <= 8 ? &RqmBlockAvx512<6, T>
                                                     : &RqmBlockAvx512<kRqmSmall, T>;
#endif
    for (size_t blk = 0; blk * kPhiloxBlock < d; ++blk) {
      const size_t j0 = blk * kPhiloxBlock;
      const size_t n = std::min(kPhiloxBlock, d - j0);
      for (int s = 0; s < 3; ++s) philox(key, 3 * blk + static_cast<uint64_t>(s), u[s]);
      // The low 21 bits of the uniform (s, i), drawn only when its high word ties a threshold.
      auto low = [&](int s, size_t i) {
        uint32_t w[kPhiloxBlock];
        philox(key, kLowBlocks + 3 * blk + static_cast<uint64_t>(s), w);
        return static_cast<uint64_t>(w[i] >> 11);
      };
      // The general per-coordinate path (m > 16, and the rare ties of the block kernel).
      auto one = [&](size_t i) -> uint32_t {
        return SampleOne(static_cast<double>(x[j0 + i]), u[0][i], u[1][i], u[2][i],
                         [&](int s) { return low(s, i); });
      };
      if (small) {
        const bool any = block(tables, x.data() + j0, n, u[0], u[1], u[2], code, tie);
        if (any)
          for (size_t i = 0; i < n; ++i)
            if (tie[i]) code[i] = one(i);
      } else {
        for (size_t i = 0; i < n; ++i) code[i] = one(i);
      }
      PackBits(code, n, bits_, codes + blk * (kPhiloxBlock / 8) * static_cast<size_t>(bits_));
      if (!decoded.empty())
        for (size_t i = 0; i < n; ++i) decoded[j0 + i] = Value<T>(code[i]);
    }
    return absl::OkStatus();
  }

  // The general per-coordinate path: the index for input x (clipped here) from the high words
  // hl, hr, hz of the three uniforms; low(s) gives the low 21 bits of uniform s (0 left,
  // 1 right, 2 rounding) and is called only when the high word ties its threshold.
  template <typename LowFn>
  uint32_t SampleOne(double x, uint32_t hl, uint32_t hr, uint32_t hz, LowFn low) const {
    const double c = grid_.options().clip;
    const int64_t m = grid_.m(), top = m - 2;
    const uint32_t* th_hi = th_hi_.data();
    const double v = x < -c ? -c : x > c ? c : x;
    // Interval(v) on the level table: (v + X) / w >= 0, so truncation is the floor.
    const double f = (v + grid_.X()) * (1.0 / grid_.w());
    int64_t j = f > static_cast<double>(top) ? top : static_cast<int64_t>(f);
    while (j > 0 && v < levels_[static_cast<size_t>(j)]) --j;
    while (j < top && v >= levels_[static_cast<size_t>(j + 1)]) ++j;
    int64_t kl = 0, kr = 0;
    while (kl < top && hl < th_hi[kl]) ++kl;
    while (kr < top && hr < th_hi[kr]) ++kr;
    if (kl < top && hl == th_hi[kl]) kl = Walk(hl, low(0));  // settle with all 53 bits
    if (kr < top && hr == th_hi[kr]) kr = Walk(hr, low(1));
    kl = std::min<int64_t>(kl, j);
    kr = std::min<int64_t>(kr, top - j);
    const int64_t l = j - kl, r = j + 1 + kr;
    const double bl = levels_[static_cast<size_t>(l)];
    const double p = (v - bl) * inv_gap_[static_cast<size_t>(l * m + r)];
    // u_Z < p on 53 bits: high word first, the low part only on a tie.
    const uint64_t t = Threshold(p);
    const uint64_t t_hi = t >> 21;
    const bool up = hz < t_hi || (hz == t_hi && low(2) < (t & 0x1fffff));
    return static_cast<uint32_t>(up ? r : l);
  }

  // The definition, for tests: every comparison on all 53 bits of n_L, n_R, n_Z.
  uint32_t SampleReference(double x, uint64_t nl, uint64_t nr, uint64_t nz) const {
    const double c = grid_.options().clip;
    const int64_t m = grid_.m(), top = m - 2;
    const double v = x < -c ? -c : x > c ? c : x;
    const int64_t j = grid_.Interval(v);
    int64_t kl = 0, kr = 0;
    while (kl < j && nl < thresholds_[static_cast<size_t>(kl)]) ++kl;
    while (kr < top - j && nr < thresholds_[static_cast<size_t>(kr)]) ++kr;
    const int64_t l = j - kl, r = j + 1 + kr;
    const double bl = levels_[static_cast<size_t>(l)];
    const double p = (v - bl) * inv_gap_[static_cast<size_t>(l * m + r)];
    return static_cast<uint32_t>(nz < Threshold(p) ? r : l);
  }

  // thresholds_[i - 1] = ceil((1-q)^i 2^53) and the rounding threshold, for tests.
  const std::vector<uint64_t>& thresholds() const { return thresholds_; }

  template <typename T>
  absl::Status DecodeT(const EncodedView& in, absl::Span<T> out) const {
    FT_RETURN_IF_ERROR(CheckEnvelope(*this, in, out.size()));
    return DecodeCodes(in, [&](size_t j0, size_t n, const uint32_t* code) {
      for (size_t i = 0; i < n; ++i) out[j0 + i] = Value<T>(code[i]);
    });
  }

  // Validates the message and calls sink(first index, count, codes) block by block.
  template <typename Sink>
  absl::Status DecodeCodes(const EncodedView& in, Sink sink) const {
    Header h;
    FT_RETURN_IF_ERROR(ReadHeader(in.bytes, &h));
    FT_RETURN_IF_ERROR(
        CheckQuantHeader(*this, h, kKindRqm, kF32, d_, static_cast<uint32_t>(grid_.m()), 0));
    const size_t bits = static_cast<size_t>(bits_) * d_;
    FT_RETURN_IF_ERROR(CheckLength(*this, in.bytes.size(), kHeaderBytes + (bits + 7) / 8));
    const char* codes = in.bytes.data() + kHeaderBytes;
    if (!PaddingIsZero(codes, bits))
      return absl::InvalidArgumentError("rqm/1: non-zero padding bits");
    const uint32_t m = static_cast<uint32_t>(grid_.m());
    uint32_t code[kPhiloxBlock];
    for (size_t blk = 0; blk * kPhiloxBlock < d_; ++blk) {
      const size_t j0 = blk * kPhiloxBlock;
      const size_t n = std::min(kPhiloxBlock, d_ - j0);
      UnpackBits(codes + blk * (kPhiloxBlock / 8) * static_cast<size_t>(bits_), n, bits_, code);
      uint32_t bad = 0;
      for (size_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>(code[i] >= m);
      if (bad != 0)
        for (size_t i = 0; i < n; ++i)
          if (code[i] >= m)
            return absl::InvalidArgumentError(absl::StrCat(
                "rqm/1: index ", code[i], " at coordinate ", j0 + i, " is not below m = ", m));
      sink(j0, n, code);
    }
    return absl::OkStatus();
  }

 private:
  static constexpr int64_t kSmall = kRqmSmall;
  // Philox block numbers of the low parts (far above any high-word block 3b + 2, b < 2^32).
  static constexpr uint64_t kLowBlocks = uint64_t{1} << 40;

  template <typename T>
  T Value(uint32_t z) const {
    if constexpr (std::is_same_v<T, float>) {
      return levels_f_[z];
    } else {
      return static_cast<T>(levels_[z]);
    }
  }

  RqmGrid grid_;
  size_t d_;
  int bits_ = 1;
  std::vector<double> levels_;
  std::vector<float> levels_f_;
  std::vector<uint64_t> thresholds_;
  std::vector<uint32_t> th_hi_;
  std::vector<double> inv_gap_;
};

}  // namespace
}  // namespace compression_internal

absl::StatusOr<std::unique_ptr<Compressor>> MakeRqmCompressor(const RqmOptions& o, size_t dim) {
  FT_RETURN_IF_ERROR(ValidateRqmOptions(o));
  if (dim > UINT32_MAX)
    return absl::InvalidArgumentError(
        absl::StrCat("rqm takes vectors of at most 2^32-1 values, not ", dim));
  return std::unique_ptr<Compressor>(new compression_internal::RqmCompressor(o, dim));
}

namespace rqm_internal {

absl::StatusOr<uint32_t> SampleIndexForTest(const Compressor& rqm, double x, uint64_t nl,
                                            uint64_t nr, uint64_t nz, bool fast) {
  const auto* c = dynamic_cast<const compression_internal::RqmCompressor*>(&rqm);
  if (c == nullptr) return absl::InvalidArgumentError("not an rqm/1 compressor");
  if (!fast) return c->SampleReference(x, nl, nr, nz);
  const uint64_t n[3] = {nl, nr, nz};
  return c->SampleOne(x, static_cast<uint32_t>(nl >> 21), static_cast<uint32_t>(nr >> 21),
                      static_cast<uint32_t>(nz >> 21),
                      [&](int s) { return n[s] & 0x1fffff; });
}

std::vector<uint64_t> WalkThresholdsForTest(const Compressor& rqm) {
  const auto* c = dynamic_cast<const compression_internal::RqmCompressor*>(&rqm);
  if (c == nullptr) return {};
  return c->thresholds();
}

}  // namespace rqm_internal

absl::Status RqmDecodeIndices(const Compressor& rqm, const EncodedView& in,
                              std::vector<uint32_t>* out) {
  const auto* c = dynamic_cast<const compression_internal::RqmCompressor*>(&rqm);
  if (c == nullptr)
    return absl::InvalidArgumentError(
        absl::StrCat("RqmDecodeIndices: compressor '", rqm.codec(), "' is not rqm/1"));
  FT_RETURN_IF_ERROR(compression_internal::CheckEnvelope(*c, in, c->dim()));
  out->resize(c->dim());
  return c->DecodeCodes(in, [&](size_t j0, size_t n, const uint32_t* code) {
    std::copy(code, code + n, out->begin() + static_cast<std::ptrdiff_t>(j0));
  });
}

}  // namespace fedtrain
