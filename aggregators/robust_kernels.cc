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

// The Gram's arithmetic (what fixes the bits): coordinates are taken in blocks of kGramBlock,
// widened to float64 once per block (exact). Within a block every entry K_ij sums in eight
// float64 lanes, lane u taking the coordinates t with t % 8 == u in increasing t from 0.0;
// the lanes are combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), and the block
// sums are added to K in block order. A product of two float32 values is exact in float64
// (24 + 24 significant bits <= 53), so a fused multiply-add rounds exactly like the product
// followed by the add: the FMA build and the baseline build of the same lane structure give
// the same bits. How the entries are tiled, and whether lanes 0-3 and 4-7 are summed in the
// same loop or one after the other, changes which registers hold the lanes, not the order
// of any lane's additions.
typedef double V4 __attribute__((vector_size(32)));
inline constexpr size_t kGramAhead = 1;        // blocks
inline constexpr size_t kPrefetchPerTile = 12;  // cache lines

// Vectors pass by pointer or reference only: a by-value V4 would change the calling
// convention between the baseline and the AVX2 build (clang's -Wpsabi).
inline __attribute__((always_inline)) void Load4(V4* v, const double* p) {
  std::memcpy(v, p, sizeof *v);
}

inline __attribute__((always_inline)) double Lanes(const V4& lo, const V4& hi) {
  return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
}

inline __attribute__((always_inline)) void Store4(double* p, const V4& v) {
  std::memcpy(p, &v, sizeof v);
}

// (Lanes(lo[0], hi[0]), ..., Lanes(lo[3], hi[3])) with the same additions as Lanes, four
// entries at a time: pairs (0,1) and (2,3) of each lo/hi vector, then their sums.
inline __attribute__((always_inline)) void Lanes4(const V4* lo, const V4* hi, V4* out) {
  V4 half[2];
  for (int h = 0; h < 2; ++h) {
    const V4* v = h ? hi : lo;
    // a = (v0[0]+v0[1], v1[0]+v1[1], v0[2]+v0[3], v1[2]+v1[3]), b likewise for v2, v3.
    const V4 a = __builtin_shufflevector(v[0], v[1], 0, 4, 2, 6) +
                 __builtin_shufflevector(v[0], v[1], 1, 5, 3, 7);
    const V4 b = __builtin_shufflevector(v[2], v[3], 0, 4, 2, 6) +
                 __builtin_shufflevector(v[2], v[3], 1, 5, 3, 7);
    half[h] = __builtin_shufflevector(a, b, 0, 1, 4, 5) + __builtin_shufflevector(a, b, 2, 3, 6, 7);
  }
  *out = half[0] + half[1];
}

// The entries of rows [i0, i0 + R) x columns [j0, j0 + C) of one block (rows[i] points at
// row i's kGramBlock widened values). Register blocking: each step loads R + C vectors for
// R * C multiply-adds. Lanes 0-3 (h = 0) are summed first, then lanes 4-7 (h = 1), so R * C
// accumulators are live at a time (2 x 4 fits the 16 AVX2 registers with the loads).
// kPinLoads keeps each loaded column vector in a register (an empty asm that claims to
// change it), so it serves the R products from one load rather than R memory operands; only
// for builds with 256-bit registers, and GCC only (clang refuses a 256-bit asm operand in a
// file compiled for the baseline target, even inside an AVX2 function).
template <int R, int C, bool kPinLoads>
inline __attribute__((always_inline)) void GramTile(const double* const* rows, size_t i0,
                                                   size_t j0, size_t p, double* K) {
  V4 half[2][R][C];
  for (int h = 0; h < 2; ++h) {
    V4 acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = V4{0.0, 0.0, 0.0, 0.0};
    const double* a[R];
    const double* b[C];
    for (int r = 0; r < R; ++r) a[r] = rows[i0 + r] + 4 * h;
    for (int c = 0; c < C; ++c) b[c] = rows[j0 + c] + 4 * h;
    for (size_t t = 0; t < kGramBlock; t += 8) {
      V4 av[R];
      for (int r = 0; r < R; ++r) Load4(&av[r], a[r] + t);
      for (int c = 0; c < C; ++c) {
        V4 bv;
        Load4(&bv, b[c] + t);
#if !defined(__clang__)  // clang checks the operand against the file's baseline target
        if constexpr (kPinLoads) asm("" : "+x"(bv));
#endif
        for (int r = 0; r < R; ++r) acc[r][c] += av[r] * bv;
      }
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) half[h][r][c] = acc[r][c];
  }
  // Entries below the diagonal that a tile covers (row i0 + 1, column i0) are written too;
  // Gram() overwrites the lower triangle from the upper one at the end.
  for (int r = 0; r < R; ++r) {
    double* k = K + (i0 + r) * p + j0;
    if constexpr (C == 4) {
      V4 sum, cur;
      Lanes4(half[0][r], half[1][r], &sum);
      Load4(&cur, k);
      cur += sum;
      Store4(k, cur);
    } else {
      for (int c = 0; c < C; ++c) k[c] += Lanes(half[0][r][c], half[1][r][c]);
    }
  }
}

// Rows [i0, i0 + R), columns [i0, p) in tiles of R x 4 and one narrower tile at the end.
// Before each tile, a share of the prefetches for a later block (see GramBody).
template <int R, bool kPinLoads>
inline __attribute__((always_inline)) void GramRows(const double* const* rows, size_t i0,
                                                   size_t p, double* K, const char* const* ahead,
                                                   size_t* next_line, size_t lines) {
  const size_t total = p * lines;
  auto prefetch_some = [&](size_t count) {
    for (size_t c = 0; c < count && ahead && *next_line < total; ++c, ++*next_line)
      __builtin_prefetch(ahead[*next_line / lines] + 64 * (*next_line % lines));
  };
  size_t j = i0;
  for (; j + 4 <= p; j += 4) {
    prefetch_some(kPrefetchPerTile);
    GramTile<R, 4, kPinLoads>(rows, i0, j, p, K);
  }
  prefetch_some(kPrefetchPerTile);
  switch (p - j) {
    case 3: GramTile<R, 3, kPinLoads>(rows, i0, j, p, K); break;
    case 2: GramTile<R, 2, kPinLoads>(rows, i0, j, p, K); break;
    case 1: GramTile<R, 1, kPinLoads>(rows, i0, j, p, K); break;
    default: break;
  }
}

// K[i*p + j] += the sums over one block, for every i <= j (and a few i = j + 1).
template <bool kPinLoads>
inline __attribute__((always_inline)) void GramBlockBody(const double* const* rows, size_t p,
                                                        double* K, const char* const* ahead,
                                                        size_t lines) {
  size_t next_line = 0;
  size_t i = 0;
  for (; i + 2 <= p; i += 2) GramRows<2, kPinLoads>(rows, i, p, K, ahead, &next_line, lines);
  if (i < p) GramRows<1, kPinLoads>(rows, i, p, K, ahead, &next_line, lines);
  // Whatever the tiles did not cover (small p).
  for (; ahead && next_line < p * lines; ++next_line)
    __builtin_prefetch(ahead[next_line / lines] + 64 * (next_line % lines));
}

// The whole Gram: widen each block once (exact), then the block's entries. Inlined into
// each build below, so the widening also uses the wider instructions. The p inputs are p
// interleaved streams, more than the hardware prefetcher follows well: the block
// kGramAhead blocks ahead is prefetched, a few cache lines before each tile, so the
// requests spread over the block's compute instead of queueing up at once.
template <bool kPinLoads>
inline __attribute__((always_inline)) void GramBody(absl::Span<const ConstVec> x, double* K,
                                                   double* buf, const double** rows,
                                                   const char** ahead) {
  const size_t p = x.size(), n = p ? x[0].size() : 0;
  constexpr size_t kLines = kGramBlock * sizeof(float) / 64;
  for (size_t i = 0; i < p; ++i) rows[i] = buf + i * kGramBlock;
  for (size_t k0 = 0; k0 < n; k0 += kGramBlock) {
    const size_t len = std::min(kGramBlock, n - k0);
    for (size_t i = 0; i < p; ++i) {
      const float* src = x[i].data() + k0;
      double* dst = buf + i * kGramBlock;
      if (len == kGramBlock) {
        for (size_t t = 0; t < kGramBlock; ++t) dst[t] = src[t];
      } else {
        for (size_t t = 0; t < len; ++t) dst[t] = src[t];
        for (size_t t = len; t < kGramBlock; ++t) dst[t] = 0.0;  // tail block: zero padding
      }
    }
    const bool pf = k0 + (kGramAhead + 1) * kGramBlock <= n;
    if (pf)
      for (size_t i = 0; i < p; ++i)
        ahead[i] = reinterpret_cast<const char*>(x[i].data() + k0 + kGramAhead * kGramBlock);
    GramBlockBody<kPinLoads>(rows, p, K, pf ? ahead : nullptr, kLines);
  }
}

void GramBaseline(absl::Span<const ConstVec> x, double* K, double* buf, const double** rows,
                  const char** ahead) {
  GramBody<false>(x, K, buf, rows, ahead);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void GramAvx2Fma(absl::Span<const ConstVec> x, double* K,
                                                     double* buf, const double** rows,
                                                     const char** ahead) {
  GramBody<true>(x, K, buf, rows, ahead);
}
#endif

bool HaveAvx2Fma() {
#if defined(__x86_64__)
  static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
#else
  return false;
#endif
}

// The output pass of Flag (and any sum_i c_i x_i): 16 coordinates at a time in four float64
// accumulators that stay in registers while the p inputs are added in order; each product
// rounds before its add, as in the scalar loop (no FMA here: c_i x_i is not exact). The
// inputs are read as p interleaved streams, so each is prefetched kCombineAhead floats ahead.
typedef float F4 __attribute__((vector_size(16)));
inline constexpr size_t kCombineAhead = 512;

inline __attribute__((always_inline)) void CombineBody(absl::Span<const ConstVec> x,
                                                      const double* c, float* out_float,
                                                      double* out_double) {
  const size_t p = x.size(), n = p ? x[0].size() : 0;
  size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    V4 acc[4];
    for (int q = 0; q < 4; ++q) acc[q] = V4{0.0, 0.0, 0.0, 0.0};
    for (size_t i = 0; i < p; ++i) {
      const float* xi = x[i].data() + k;
      if (k + kCombineAhead < n) __builtin_prefetch(xi + kCombineAhead);
      const V4 ci = {c[i], c[i], c[i], c[i]};
      for (int q = 0; q < 4; ++q) {
        F4 f;
        std::memcpy(&f, xi + 4 * q, sizeof f);
        acc[q] += ci * __builtin_convertvector(f, V4);
      }
    }
    for (int q = 0; q < 4; ++q) {
      if (out_float) {
        const F4 f = __builtin_convertvector(acc[q], F4);
        std::memcpy(out_float + k + 4 * q, &f, sizeof f);
      } else {
        Store4(out_double + k + 4 * q, acc[q]);
      }
    }
  }
  for (; k < n; ++k) {
    double s = 0.0;
    for (size_t i = 0; i < p; ++i) s += c[i] * static_cast<double>(x[i][k]);
    if (out_float) out_float[k] = static_cast<float>(s);
    else out_double[k] = s;
  }
}

void CombineBaseline(absl::Span<const ConstVec> x, const double* c, float* of, double* od) {
  CombineBody(x, c, of, od);
}

#if defined(__x86_64__)
// AVX2 without FMA, so the products cannot be fused into the adds.
__attribute__((target("avx2"))) void CombineAvx2(absl::Span<const ConstVec> x, const double* c,
                                                 float* of, double* od) {
  CombineBody(x, c, of, od);
}
#endif

}  // namespace

bool KernelPathAvailable(KernelPath path) { return path != KernelPath::kAvx2 || HaveAvx2Fma(); }

void Gram(absl::Span<const ConstVec> x, std::vector<double>* K, KernelPath path) {
  FT_CHECK(KernelPathAvailable(path));
  const size_t p = x.size();
  K->assign(p * p, 0.0);
  std::vector<double> buf(p * kGramBlock);
  std::vector<const double*> rows(p);
  std::vector<const char*> ahead(p);
#if defined(__x86_64__)
  if (path != KernelPath::kBaseline && HaveAvx2Fma())
    GramAvx2Fma(x, K->data(), buf.data(), rows.data(), ahead.data());
  else
#endif
    GramBaseline(x, K->data(), buf.data(), rows.data(), ahead.data());
  for (size_t i = 0; i < p; ++i)
    for (size_t j = 0; j < i; ++j) (*K)[i * p + j] = (*K)[j * p + i];
}

void LinearCombination(absl::Span<const ConstVec> x, absl::Span<const double> c,
                       float* out_float, double* out_double, KernelPath path) {
  FT_CHECK(KernelPathAvailable(path));
  FT_CHECK(c.size() == x.size() && (out_float == nullptr) != (out_double == nullptr));
#if defined(__x86_64__)
  if (path != KernelPath::kBaseline && HaveAvx2Fma()) {
    CombineAvx2(x, c.data(), out_float, out_double);
    return;
  }
#endif
  CombineBaseline(x, c.data(), out_float, out_double);
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
