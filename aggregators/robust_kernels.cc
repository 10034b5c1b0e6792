#include "aggregators/robust_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedtrain {

absl::Status CheckReduceShapes(absl::Span<const ConstVec> in, absl::Span<const double> w,
                               Vec out, const std::string& rule) {
  if (in.empty())
    return absl::InvalidArgumentError(absl::StrCat("reducer ", rule, ": no input vectors"));
  if (!w.empty() && w.size() != in.size())
    return absl::InvalidArgumentError(absl::StrCat("reducer ", rule, ": ", in.size(),
                                                   " inputs but ", w.size(), " weights"));
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].size() != out.size())
      return absl::InvalidArgumentError(absl::StrCat("reducer ", rule, ": input ", i, " has ",
                                                     in[i].size(), " values, output ",
                                                     out.size()));
  return absl::OkStatus();
}

absl::Status RequireInputs(const std::string& rule, size_t p, int64_t f, int64_t need,
                           const std::string& formula) {
  if (static_cast<int64_t>(p) >= need) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "reducer ", rule, " needs p >= ", formula, " = ", need, " updates (f = ", f,
      "), this round has p = ", p, ": lower algorithm.reducer.f or receive more updates"));
}

absl::Status CleanNonFinite(absl::Span<const ConstVec> in, const RobustCommon& c,
                            const ReduceContext& ctx, const std::string& rule,
                            CleanInputs* out) {
  out->views.assign(in.begin(), in.end());
  out->bad.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    // Branch-free scan of the exponent bits (an OR reduction, which vectorises): adding one
    // to a saturated exponent (NaN, Inf) carries into bit 31; any other exponent does not.
    uint32_t acc = 0;
    const float* v = in[i].data();
    for (size_t k = 0; k < in[i].size(); ++k) {
      uint32_t b;
      std::memcpy(&b, v + k, sizeof b);
      acc |= (b & 0x7f800000u) + 0x00800000u;
    }
    if (!(acc & 0x80000000u)) continue;
    if (!c.zero_nonfinite)
      return absl::InvalidArgumentError(absl::StrCat(
          "reducer ", rule, ": input from client ",
          ctx.ids.empty() ? static_cast<uint64_t>(i) : ctx.ids[i],
          " holds NaN or Inf (algorithm.reducer.nonfinite is error)"));
    out->bad.push_back(i);
  }
  if (!out->bad.empty()) {
    out->zeros.assign(in[0].size(), 0.0f);
    for (size_t i : out->bad) out->views[i] = ConstVec(out->zeros);
  }
  return absl::OkStatus();
}

namespace {

// K[i*p + j] += block sums for one coordinate block held in float64 (rows of kGramBlock).
// Every entry sums in eight lanes (lane u takes coordinates t with t % 8 == u) combined in a
// fixed order; rows j are taken four at a time so each load of row i serves four products.
// The lane structure, not the tiling or the vector width, fixes the rounding, so the AVX2 and
// the baseline builds of this body give the same bits (no FMA: products round before the add).
typedef double V4 __attribute__((vector_size(32)));

// Vectors pass by pointer or reference only: a by-value V4 would change the calling
// convention between the baseline and the AVX2 build (clang's -Wpsabi).
inline __attribute__((always_inline)) void Load4(V4* v, const double* p) {
  std::memcpy(v, p, sizeof *v);
}

inline __attribute__((always_inline)) double Lanes(const V4& lo, const V4& hi) {
  return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
}

// K[i*p + j] += the sums over one block of kGramBlock coordinates (rows[i] points at row i's
// block). Every entry sums in eight float64 lanes (lane u takes the coordinates t with
// t % 8 == u) combined in a fixed order; rows j are taken four at a time so each load of
// row i serves four products. The lane structure, not the tiling or the vector width, fixes
// the rounding, so the AVX2 and the baseline builds of this body give the same bits (no FMA:
// each product rounds before the add).
template <int kUnused>
inline __attribute__((always_inline)) void GramBlockBody(const double* const* rows, size_t p,
                                                        double* K) {
  for (size_t i = 0; i < p; ++i) {
    const double* a = rows[i];
    size_t j = i;
    for (; j + 4 <= p; j += 4) {
      const double* b[4] = {rows[j], rows[j + 1], rows[j + 2], rows[j + 3]};
      V4 lo[4] = {}, hi[4] = {};
      for (size_t t = 0; t < kGramBlock; t += 8) {
        V4 al, ah, bl, bh;
        Load4(&al, a + t);
        Load4(&ah, a + t + 4);
        for (int q = 0; q < 4; ++q) {
          Load4(&bl, b[q] + t);
          Load4(&bh, b[q] + t + 4);
          lo[q] += al * bl;
          hi[q] += ah * bh;
        }
      }
      for (int q = 0; q < 4; ++q) K[i * p + j + q] += Lanes(lo[q], hi[q]);
    }
    for (; j < p; ++j) {
      const double* b = rows[j];
      V4 lo = {}, hi = {};
      for (size_t t = 0; t < kGramBlock; t += 8) {
        V4 al, ah, bl, bh;
        Load4(&al, a + t);
        Load4(&ah, a + t + 4);
        Load4(&bl, b + t);
        Load4(&bh, b + t + 4);
        lo += al * bl;
        hi += ah * bh;
      }
      K[i * p + j] += Lanes(lo, hi);
    }
  }
}

void GramBlockBaseline(const double* const* rows, size_t p, double* K) {
  GramBlockBody<0>(rows, p, K);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void GramBlockAvx2(const double* const* rows, size_t p,
                                                   double* K) {
  GramBlockBody<1>(rows, p, K);
}
#endif

using GramBlockFn = void (*)(const double* const*, size_t, double*);
GramBlockFn PickGramBlock() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return GramBlockAvx2;
#endif
  return GramBlockBaseline;
}

}  // namespace

void Gram(absl::Span<const ConstVec> x, std::vector<double>* K) {
  const size_t p = x.size(), n = p ? x[0].size() : 0;
  K->assign(p * p, 0.0);
  const GramBlockFn block = PickGramBlock();
  // Each block is widened to float64 once (exact), then every product reads it from L1.
  std::vector<double> buf(p * kGramBlock);
  std::vector<const double*> rows(p);
  for (size_t i = 0; i < p; ++i) rows[i] = buf.data() + i * kGramBlock;
  for (size_t k0 = 0; k0 < n; k0 += kGramBlock) {
    const size_t len = std::min(kGramBlock, n - k0);
    for (size_t i = 0; i < p; ++i) {
      const float* src = x[i].data() + k0;
      double* dst = buf.data() + i * kGramBlock;
      for (size_t t = 0; t < len; ++t) dst[t] = src[t];
      for (size_t t = len; t < kGramBlock; ++t) dst[t] = 0.0;  // tail block: zero padding
      // The next block of this row, while this one is computed: p interleaved streams are
      // more than the hardware prefetcher follows well.
      if (k0 + 2 * kGramBlock <= n)
        for (size_t c = 0; c < kGramBlock * sizeof(float); c += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(src + kGramBlock) + c);
    }
    block(rows.data(), p, K->data());
  }
  for (size_t i = 0; i < p; ++i)
    for (size_t j = 0; j < i; ++j) (*K)[i * p + j] = (*K)[j * p + i];
}

std::vector<double> SquaredDistances(const std::vector<double>& K, size_t p) {
  std::vector<double> D(p * p, 0.0);
  for (size_t i = 0; i < p; ++i)
    for (size_t j = 0; j < p; ++j)
      if (i != j) D[i * p + j] = std::max(0.0, K[i * p + i] + K[j * p + j] - 2.0 * K[i * p + j]);
  return D;
}

std::vector<std::pair<int, int>> SortingNetwork(size_t p) {
  std::vector<std::pair<int, int>> net;
  size_t P = 1;
  while (P < p) P <<= 1;
  for (size_t q = 1; q < P; q <<= 1)
    for (size_t k = q; k >= 1; k >>= 1) {
      for (size_t j = k % q; j + k < P; j += 2 * k)
        for (size_t i = 0; i < std::min(k, P - j - k); ++i)
          if ((i + j) / (2 * q) == (i + j + k) / (2 * q)) {
            const size_t a = i + j, b = i + j + k;
            if (b < p) net.emplace_back(static_cast<int>(a), static_cast<int>(b));
          }
      if (k == 1) break;
    }
  return net;
}

// One comparator applied to `len` coordinates: x gets the minima, y the maxima. The rows
// never overlap (restrict), so this vectorises to minps/maxps over coordinates.
static void CompareExchange(float* __restrict x, float* __restrict y, size_t len) {
  for (size_t t = 0; t < len; ++t) {
    const float u = x[t], v = y[t];
    x[t] = std::min(u, v);
    y[t] = std::max(u, v);
  }
}

void SortBlock(absl::Span<const ConstVec> in, size_t k0, size_t len,
               const std::vector<std::pair<int, int>>& net, float* buf) {
  for (size_t r = 0; r < in.size(); ++r)
    std::copy(in[r].data() + k0, in[r].data() + k0 + len, buf + r * kSortBlock);
  for (const auto& [a, b] : net) CompareExchange(buf + a * kSortBlock, buf + b * kSortBlock, len);
}

double MeanOfClosest(const float* v, size_t stride, size_t q, double center, size_t keep) {
  // Grow a window outwards from the value nearest the centre.
  size_t lo = 0;  // first index with v >= center
  while (lo < q && v[lo * stride] < center) ++lo;
  size_t begin = lo, end = lo;  // window [begin, end)
  while (end - begin < keep) {
    if (begin == 0) {
      ++end;
    } else if (end == q) {
      --begin;
    } else {
      const double dl = center - v[(begin - 1) * stride], dr = v[end * stride] - center;
      if (dl <= dr) --begin; else ++end;
    }
  }
  double s = 0.0;
  for (size_t r = begin; r < end; ++r) s += v[r * stride];
  return s / static_cast<double>(keep);
}

std::string IdList(const ReduceContext& ctx, const std::vector<size_t>& idx) {
  std::vector<uint64_t> ids;
  for (size_t i : idx) ids.push_back(ctx.ids.empty() ? i : ctx.ids[i]);
  return absl::StrCat("[", absl::StrJoin(ids, ","), "]");
}

void MeanOf(absl::Span<const ConstVec> in, const std::vector<size_t>& idx, Vec out) {
  const size_t n = out.size();
  const double inv = 1.0 / static_cast<double>(idx.size());
  for (size_t k = 0; k < n; ++k) {
    double s = 0.0;
    for (size_t i : idx) s += in[i][k];
    out[k] = static_cast<float>(s * inv);
  }
}

absl::StatusOr<RobustCommon> ReadCommon(const ReducerCfg& c) {
  RobustCommon r;
  if (c.f() < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.reducer.f must be >= 0, got ", c.f()));
  if (c.nonfinite() != "zero" && c.nonfinite() != "error")
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.reducer.nonfinite must be zero or error, got '", c.nonfinite(), "'"));
  r.f = c.f();
  r.zero_nonfinite = c.nonfinite() == "zero";
  return r;
}

}  // namespace fedtrain
