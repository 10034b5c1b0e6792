// Exact Top-K selection (docs/compression.md §1.2). See topk_select.h.
//
// Order: entry j precedes entry i when |x_j| > |x_i|, or |x_j| == |x_i| and j < i. This is a
// strict total order, so the first k entries are unique and every path below returns exactly
// them, sorted ascending.
//
// Magnitudes are compared as the IEEE bit patterns with the sign bit cleared: for finite
// values that order is the numeric order of |x| (subnormals included, +0 == -0), so the
// selection works on unsigned integers. Given t = the k-th largest magnitude and
// gt = #{j : |x_j| > t} (< k), the answer is every j with |x_j| > t plus the first k - gt
// indices with |x_j| == t in index order; scanning in index order yields it already sorted.
//
// Two ways to find t:
//  * exact: radix select (KthLargest) over the magnitudes of all d entries (O(d), a copy of
//    d integers);
//  * sampled (d large, k <= d/16): a deterministic, stratified sample of |x| gives a threshold
//    u a little below the k-th largest magnitude; one linear, vectorised pass collects the
//    indices with |x_j| >= u (expected a small multiple of k; the same pass checks that every
//    value is finite), and t is found among those candidates only. If fewer than k candidates
//    come back (u was too high) or far too many (heavy ties at u), the exact way runs instead;
//    the answer does not depend on which way ran.
// Single-threaded; the only allocations are the output and O(candidates) scratch.
#include "compression/topk_select.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fedtrain {
namespace {

template <typename T>
struct Bits;
template <>
struct Bits<float> {
  using U = uint32_t;
  static constexpr U kAbsMask = 0x7fffffffu;
};
template <>
struct Bits<double> {
  using U = uint64_t;
  static constexpr U kAbsMask = 0x7fffffffffffffffull;
};

// |v| as its bit pattern; increasing in |v| for finite v.
template <typename T>
inline typename Bits<T>::U AbsBits(T v) {
  typename Bits<T>::U u;
  std::memcpy(&u, &v, sizeof u);
  return u & Bits<T>::kAbsMask;
}

template <typename T>
absl::Status NonFiniteError(absl::Span<const T> x) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]))
      return absl::InvalidArgumentError(
          absl::StrCat("Top-K input has a non-finite value (", x[i], ") at index ", i,
                       " of ", x.size(), "; selection needs an order"));
  }
  return absl::OkStatus();
}

// Given the magnitudes `mags` of a set that holds every entry of the answer, and
// 1 <= k <= mags.size(): t = the k-th largest and need = how many entries equal to t the
// answer takes (k minus the number strictly above t). Radix select: a histogram of the top
// 16 bits finds the bin holding the k-th largest, and nth_element runs on that bin alone.
// `mags` is not modified.
template <typename U>
void KthLargest(absl::Span<const U> mags, size_t k, U* t, size_t* need) {
  if (mags.size() < (size_t{1} << 15)) {  // small: nth_element on a copy
    std::vector<U> copy(mags.begin(), mags.end());
    std::nth_element(copy.begin(), copy.begin() + (k - 1), copy.end(), std::greater<U>());
    *t = copy[k - 1];
    size_t gt = 0;
    for (size_t i = 0; i + 1 < k; ++i) gt += copy[i] > *t;
    *need = k - gt;
    return;
  }
  constexpr int kShift = static_cast<int>(sizeof(U) * 8) - 16;
  std::vector<uint32_t> hist(size_t{1} << 16, 0);
  for (U a : mags) ++hist[static_cast<size_t>(a >> kShift)];
  size_t above = 0;  // entries in bins above `bin`
  size_t bin = hist.size() - 1;
  while (above + hist[bin] < k) above += hist[bin--];  // terminates: the bins sum to >= k
  std::vector<U> sub;
  sub.reserve(hist[bin]);
  for (U a : mags)
    if (static_cast<size_t>(a >> kShift) == bin) sub.push_back(a);
  const size_t r = k - above;  // 1-based rank inside the bin
  std::nth_element(sub.begin(), sub.begin() + (r - 1), sub.end(), std::greater<U>());
  *t = sub[r - 1];
  size_t gt = above;
  for (size_t i = 0; i + 1 < r; ++i) gt += sub[i] > *t;
  *need = k - gt;
}

// The exact way: O(d) with a copy of every magnitude (4 or 8 bytes per entry).
template <typename T>
absl::Status ExactTopK(absl::Span<const T> x, size_t k, std::vector<uint32_t>* out) {
  using U = typename Bits<T>::U;
  if (auto s = NonFiniteError(x); !s.ok()) return s;
  std::vector<U> mags(x.size());
  size_t nnz = 0;
  for (size_t j = 0; j < x.size(); ++j) {
    mags[j] = AbsBits(x[j]);
    nnz += mags[j] != 0;
  }
  out->clear();
  if (k >= nnz) {  // every non-zero
    out->reserve(nnz);
    for (size_t j = 0; j < x.size(); ++j)
      if (mags[j] != 0) out->push_back(static_cast<uint32_t>(j));
    return absl::OkStatus();
  }
  U t;
  size_t need;
  KthLargest(absl::Span<const U>(mags), k, &t, &need);  // t > 0 since k < nnz
  out->reserve(k);
  for (size_t j = 0; j < x.size(); ++j) {
    const U a = mags[j];
    if (a > t) {
      out->push_back(static_cast<uint32_t>(j));
    } else if (a == t && need > 0) {
      out->push_back(static_cast<uint32_t>(j));
      --need;
    }
  }
  return absl::OkStatus();
}

// Deterministic counter-based generator for the sample positions (splitmix64 finaliser).
inline uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr size_t kMinSampledDim = 1 << 16;  // below: the exact way (cheap anyway)
constexpr size_t kChunks = 1024;            // sample: kChunks runs of kChunkLen entries,
constexpr size_t kChunkLen = 16;            // one per stratum of d / kChunks
constexpr size_t kBlock = 4096;             // candidate-buffer check interval

// Appends to buf[n...] the indices j in [begin, end) with |x_j| >= u; ORs into *bad whether
// a non-finite value was seen. buf must have room for end - begin more entries.
template <typename T>
size_t CollectScalar(const T* x, size_t begin, size_t end, T u, uint32_t* buf, size_t n,
                     bool* bad) {
  bool b = false;
  for (size_t j = begin; j < end; ++j) {
    const T a = std::abs(x[j]);
    buf[n] = static_cast<uint32_t>(j);
    n += a >= u;
    b |= !(a <= std::numeric_limits<T>::max());
  }
  *bad |= b;
  return n;
}

#if defined(__SSE2__)
// kPack[m] lists the set lanes of the 4-bit mask m first (the rest are don't-care), so one
// 4-lane store of base + kPack[m] followed by n += popcount(m) appends the candidates of 4
// lanes without a branch.
alignas(16) constexpr uint32_t kPack[16][4] = {
    {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {2, 0, 0, 0}, {0, 2, 0, 0},
    {1, 2, 0, 0}, {0, 1, 2, 0}, {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0},
    {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3}};
constexpr uint8_t kPop[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};

inline size_t Pack4(uint32_t* buf, size_t n, __m128i base, int m) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(buf + n),
                   _mm_add_epi32(base, _mm_load_si128(reinterpret_cast<const __m128i*>(kPack[m]))));
  return n + kPop[m];
}

// 16 floats at a time; a group appends its candidates without branches (writing up to 3
// entries past the new end, within the caller's slack). When candidates are sparse
// (!dense), groups without one are skipped by a branch that is then well predicted; when
// they are not (about 1 group in 5 has one at 1.4% density), the skip branch would be
// mispredicted often and costs more than always appending, so every group appends.
size_t Collect(const float* x, size_t begin, size_t end, float u, bool dense, uint32_t* buf,
               size_t n, bool* bad) {
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  const __m128 vu = _mm_set1_ps(u);
  const __m128 vmax = _mm_set1_ps(std::numeric_limits<float>::max());
  __m128 nonfinite = _mm_setzero_ps();
  size_t j = begin;
  for (; j + 16 <= end; j += 16) {
    const __m128 a0 = _mm_and_ps(_mm_loadu_ps(x + j), abs_mask);
    const __m128 a1 = _mm_and_ps(_mm_loadu_ps(x + j + 4), abs_mask);
    const __m128 a2 = _mm_and_ps(_mm_loadu_ps(x + j + 8), abs_mask);
    const __m128 a3 = _mm_and_ps(_mm_loadu_ps(x + j + 12), abs_mask);
    // !(a <= max) is true for infinities and NaN.
    nonfinite = _mm_or_ps(nonfinite, _mm_or_ps(_mm_or_ps(_mm_cmpnle_ps(a0, vmax),
                                                         _mm_cmpnle_ps(a1, vmax)),
                                               _mm_or_ps(_mm_cmpnle_ps(a2, vmax),
                                                         _mm_cmpnle_ps(a3, vmax))));
    const __m128 c0 = _mm_cmpge_ps(a0, vu), c1 = _mm_cmpge_ps(a1, vu);
    const __m128 c2 = _mm_cmpge_ps(a2, vu), c3 = _mm_cmpge_ps(a3, vu);
    if (dense || _mm_movemask_ps(_mm_or_ps(_mm_or_ps(c0, c1), _mm_or_ps(c2, c3))) != 0) {
      const __m128i base = _mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(j)));
      n = Pack4(buf, n, base, _mm_movemask_ps(c0));
      n = Pack4(buf, n, _mm_add_epi32(base, _mm_set1_epi32(4)), _mm_movemask_ps(c1));
      n = Pack4(buf, n, _mm_add_epi32(base, _mm_set1_epi32(8)), _mm_movemask_ps(c2));
      n = Pack4(buf, n, _mm_add_epi32(base, _mm_set1_epi32(12)), _mm_movemask_ps(c3));
    }
  }
  if (_mm_movemask_ps(nonfinite) != 0) *bad = true;
  return CollectScalar(x, j, end, u, buf, n, bad);
}

size_t Collect(const double* x, size_t begin, size_t end, double u, bool /*dense*/,
               uint32_t* buf, size_t n, bool* bad) {
  const __m128d abs_mask = _mm_castsi128_pd(_mm_set1_epi64x(0x7fffffffffffffffll));
  const __m128d vu = _mm_set1_pd(u);
  const __m128d vmax = _mm_set1_pd(std::numeric_limits<double>::max());
  __m128d nonfinite = _mm_setzero_pd();
  size_t j = begin;
  for (; j + 8 <= end; j += 8) {
    const __m128d a0 = _mm_and_pd(_mm_loadu_pd(x + j), abs_mask);
    const __m128d a1 = _mm_and_pd(_mm_loadu_pd(x + j + 2), abs_mask);
    const __m128d a2 = _mm_and_pd(_mm_loadu_pd(x + j + 4), abs_mask);
    const __m128d a3 = _mm_and_pd(_mm_loadu_pd(x + j + 6), abs_mask);
    nonfinite = _mm_or_pd(nonfinite, _mm_or_pd(_mm_or_pd(_mm_cmpnle_pd(a0, vmax),
                                                         _mm_cmpnle_pd(a1, vmax)),
                                               _mm_or_pd(_mm_cmpnle_pd(a2, vmax),
                                                         _mm_cmpnle_pd(a3, vmax))));
    unsigned m = static_cast<unsigned>(_mm_movemask_pd(_mm_cmpge_pd(a0, vu))) |
                 static_cast<unsigned>(_mm_movemask_pd(_mm_cmpge_pd(a1, vu))) << 2 |
                 static_cast<unsigned>(_mm_movemask_pd(_mm_cmpge_pd(a2, vu))) << 4 |
                 static_cast<unsigned>(_mm_movemask_pd(_mm_cmpge_pd(a3, vu))) << 6;
    while (m != 0) {
      buf[n++] = static_cast<uint32_t>(j + static_cast<size_t>(__builtin_ctz(m)));
      m &= m - 1;
    }
  }
  if (_mm_movemask_pd(nonfinite) != 0) *bad = true;
  return CollectScalar(x, j, end, u, buf, n, bad);
}
#else
template <typename T>
size_t Collect(const T* x, size_t begin, size_t end, T u, bool /*dense*/, uint32_t* buf,
               size_t n, bool* bad) {
  return CollectScalar(x, begin, end, u, buf, n, bad);
}
#endif

// The sampled way. Returns false (out unspecified) when the exact way must run instead.
template <typename T>
bool SampledTopK(absl::Span<const T> x, size_t k, std::vector<uint32_t>* out) {
  using U = typename Bits<T>::U;
  const size_t d = x.size();
  // Stratified sample: chunk c starts at a fixed pseudo-random offset inside [c*w, (c+1)*w).
  const size_t w = d / kChunks;
  std::vector<U> sample;
  sample.reserve(kChunks * kChunkLen);
  for (size_t c = 0; c < kChunks; ++c) {
    const size_t start = c * w + static_cast<size_t>(Mix(c) % (w - kChunkLen + 1));
    for (size_t i = 0; i < kChunkLen; ++i) sample.push_back(AbsBits(x[start + i]));
  }
  // Rank r in the sample: the expected count above the true threshold (q s) plus a margin
  // of about 4 standard deviations, so that fewer than k candidates is rare.
  const double s = static_cast<double>(sample.size());
  const double qs = static_cast<double>(k) / static_cast<double>(d) * s;
  const size_t r = static_cast<size_t>(std::ceil(qs + 4.0 * std::sqrt(qs) + 4.0));
  if (r > sample.size() / 4) return false;
  std::nth_element(sample.begin(), sample.begin() + (r - 1), sample.end(), std::greater<U>());
  T u;
  std::memcpy(&u, &sample[r - 1], sizeof u);
  if (!std::isfinite(u)) return false;  // NaN or infinity in the sample: the exact way names it
  // At least the smallest normal value: candidates are non-zero, and the compares below agree
  // with the bit order even where subnormals are flushed to zero.
  u = std::max(u, std::numeric_limits<T>::min());

  // Expected candidates d r / s; allow 2x plus slack before giving up.
  const size_t cap = std::min(d, 2 * static_cast<size_t>(static_cast<double>(d) * r / s) +
                                     8 * kBlock);
  out->resize(cap + kBlock + 4);  // room for one more block past the check, + 3 slack
  uint32_t* buf = out->data();
  // The candidates' magnitudes, read right after each block while it is still in cache.
  std::unique_ptr<U[]> mags(new U[cap + kBlock]);
  size_t n = 0;
  bool bad = false;
  const bool dense = r > sample.size() / 200;  // expected candidate density above 0.5%
  for (size_t b = 0; b < d; b += kBlock) {
    const size_t n0 = n;
    n = Collect(x.data(), b, std::min(d, b + kBlock), u, dense, buf, n, &bad);
    for (size_t i = n0; i < n; ++i) mags[i] = AbsBits(x[buf[i]]);
    if (n > cap) return false;
  }
  if (bad || n < k) return false;  // the exact way names the bad index / needs all of x

  // t among the candidates, then filter them in place (already in index order).
  U t;
  size_t need;
  KthLargest(absl::Span<const U>(mags.get(), n), k, &t, &need);
  size_t m = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t j = buf[i];
    const U a = mags[i];
    if (a > t) {
      buf[m++] = j;
    } else if (a == t && need > 0) {
      buf[m++] = j;
      --need;
    }
  }
  out->resize(m);  // m == k
  return true;
}

template <typename T>
absl::Status TopKImpl(absl::Span<const T> x, size_t k, std::vector<uint32_t>* out) {
  if (x.size() > 0xffffffffull)
    return absl::InvalidArgumentError(
        absl::StrCat("Top-K input of ", x.size(), " values; at most 2^32 - 1 are supported"));
  if (k == 0) {
    out->clear();
    return NonFiniteError(x);
  }
  if (x.size() >= kMinSampledDim && k <= x.size() / 16 && SampledTopK(x, k, out))
    return absl::OkStatus();
  return ExactTopK(x, k, out);
}

}  // namespace

absl::Status TopKIndices(absl::Span<const float> x, size_t k, std::vector<uint32_t>* out) {
  return TopKImpl(x, k, out);
}
absl::Status TopKIndices(absl::Span<const double> x, size_t k, std::vector<uint32_t>* out) {
  return TopKImpl(x, k, out);
}

}  // namespace fedtrain
