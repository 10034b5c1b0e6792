// Tests for TopKIndices (docs/compression.md §1.2): exact agreement with a brute-force
// reference (full sort on (|x_j|, j)), edge cases of k and nnz, NaN/Inf rejection, and the U2
// properties (every kept |x_j| >= every dropped one; equal magnitudes keep the smaller index).
#include "compression/topk_select.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "core/rng.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Brute force: every non-zero index sorted by (|x| descending, index ascending). The first
// min(k, nnz) of them, sorted ascending, are the expected output. Obviously correct.
template <typename T>
std::vector<uint32_t> RankOrder(const std::vector<T>& x) {
  std::vector<uint32_t> idx;
  for (size_t j = 0; j < x.size(); ++j)
    if (x[j] != 0) idx.push_back(static_cast<uint32_t>(j));
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
    const T fa = std::abs(x[a]), fb = std::abs(x[b]);
    return fa > fb || (fa == fb && a < b);
  });
  return idx;
}

std::vector<uint32_t> FirstK(const std::vector<uint32_t>& order, size_t k) {
  std::vector<uint32_t> idx(order.begin(), order.begin() + std::min(k, order.size()));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Values drawn from a few magnitudes, both signs, and zeros: many exact ties.
template <typename T>
std::vector<T> TiedData(uint64_t seed, size_t d, int magnitudes, double zero_fraction) {
  RngStream rng = RngStream::For(seed, 0, 0, Purpose::kTest);
  std::vector<T> x(d);
  for (T& v : x) {
    if (rng.Uniform() < zero_fraction) {
      v = rng.Uniform() < 0.5 ? T(0) : -T(0);
      continue;
    }
    const T m = static_cast<T>(0.25 * static_cast<double>(1 + rng.UniformInt(magnitudes)));
    v = rng.Uniform() < 0.5 ? m : -m;
  }
  return x;
}

template <typename T>
std::vector<T> NormalData(uint64_t seed, size_t d, double scale = 1.0) {
  RngStream rng = RngStream::For(seed, 0, 0, Purpose::kTest);
  std::vector<T> x(d);
  for (T& v : x) v = static_cast<T>(scale * rng.Normal());
  return x;
}

template <typename T>
std::vector<uint32_t> Run(const std::vector<T>& x, size_t k) {
  std::vector<uint32_t> out = {12345};  // must be overwritten
  const absl::Status s = TopKIndices(absl::Span<const T>(x), k, &out);
  EXPECT_THAT(s, IsOk());
  return out;
}

// Checks U2 directly, independent of the reference: ascending output of the right size, all
// non-zero, every kept magnitude >= every dropped non-zero one, and on equal magnitudes a
// dropped index is never smaller than a kept one.
template <typename T>
void ExpectU2(const std::vector<T>& x, size_t k, const std::vector<uint32_t>& got) {
  size_t nnz = 0;
  for (T v : x) nnz += v != 0;
  ASSERT_EQ(got.size(), std::min(k, nnz));
  ASSERT_TRUE(std::is_sorted(got.begin(), got.end()));
  ASSERT_TRUE(std::adjacent_find(got.begin(), got.end()) == got.end());
  std::vector<char> kept(x.size(), 0);
  T min_kept = std::numeric_limits<T>::infinity();
  uint32_t max_index_at_min = 0;
  for (uint32_t j : got) {
    ASSERT_LT(j, x.size());
    ASSERT_NE(x[j], 0) << j;
    kept[j] = 1;
    const T a = std::abs(x[j]);
    if (a < min_kept) {
      min_kept = a;
      max_index_at_min = j;
    } else if (a == min_kept) {
      max_index_at_min = std::max(max_index_at_min, j);
    }
  }
  for (size_t j = 0; j < x.size(); ++j) {
    if (kept[j] || x[j] == 0) continue;
    const T a = std::abs(x[j]);
    ASSERT_LE(a, min_kept) << "dropped index " << j << " is larger than a kept one";
    if (a == min_kept) {
      ASSERT_GT(j, max_index_at_min) << "tie not broken to the smaller index";
    }
  }
}

template <typename T>
class TopKSelectTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(TopKSelectTest, Types);

TYPED_TEST(TopKSelectTest, SmallExample) {
  using T = TypeParam;
  const std::vector<T> x = {T(0.5), T(-2), T(0), T(2), T(-0.5), T(1), T(0.5)};
  EXPECT_THAT(Run(x, 1), ElementsAre(1u));
  EXPECT_THAT(Run(x, 2), ElementsAre(1u, 3u));
  EXPECT_THAT(Run(x, 3), ElementsAre(1u, 3u, 5u));
  EXPECT_THAT(Run(x, 4), ElementsAre(0u, 1u, 3u, 5u));  // three ties at 0.5: smallest index
  EXPECT_THAT(Run(x, 5), ElementsAre(0u, 1u, 3u, 4u, 5u));
  EXPECT_THAT(Run(x, 6), ElementsAre(0u, 1u, 3u, 4u, 5u, 6u));
  EXPECT_THAT(Run(x, 7), ElementsAre(0u, 1u, 3u, 4u, 5u, 6u));  // k > nnz: the non-zeros
  EXPECT_THAT(Run(x, 100), ElementsAre(0u, 1u, 3u, 4u, 5u, 6u));
}

TYPED_TEST(TopKSelectTest, KZeroAndEmptyInput) {
  using T = TypeParam;
  EXPECT_THAT(Run(NormalData<T>(1, 1000), 0), IsEmpty());
  EXPECT_THAT(Run(std::vector<T>{}, 0), IsEmpty());
  EXPECT_THAT(Run(std::vector<T>{}, 5), IsEmpty());
}

TYPED_TEST(TopKSelectTest, AllZeroInputKeepsNothing) {
  using T = TypeParam;
  std::vector<T> x(100000, T(0));
  for (size_t j = 0; j < x.size(); j += 3) x[j] = -T(0);  // negative zero is zero too
  EXPECT_THAT(Run(x, 1), IsEmpty());
  EXPECT_THAT(Run(x, 1000), IsEmpty());
  EXPECT_THAT(Run(x, x.size()), IsEmpty());
}

TYPED_TEST(TopKSelectTest, RejectsNonFiniteNamingTheFirstIndex) {
  using T = TypeParam;
  std::vector<T> x = NormalData<T>(2, 5000);
  x[4321] = std::numeric_limits<T>::quiet_NaN();
  x[4400] = std::numeric_limits<T>::infinity();
  std::vector<uint32_t> out;
  EXPECT_THAT(TopKIndices(absl::Span<const T>(x), 10, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 4321")));
  x[17] = -std::numeric_limits<T>::infinity();
  EXPECT_THAT(TopKIndices(absl::Span<const T>(x), 10, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 17")));
  // Also when k = 0 or the NaN is the last entry of a long vector (no early exit skips it).
  std::vector<T> y(300000, T(1));
  y.back() = std::numeric_limits<T>::quiet_NaN();
  EXPECT_THAT(TopKIndices(absl::Span<const T>(y), 0, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 299999")));
  EXPECT_THAT(TopKIndices(absl::Span<const T>(y), 3, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 299999")));
}

TYPED_TEST(TopKSelectTest, MatchesReferenceOnTiedDataForManyK) {
  using T = TypeParam;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    for (size_t d : {1, 2, 7, 100, 1000, 4097}) {
      for (int mags : {1, 2, 5}) {
        const std::vector<T> x = TiedData<T>(seed, d, mags, seed % 3 == 0 ? 0.0 : 0.3);
        size_t nnz = 0;
        for (T v : x) nnz += v != 0;
        const std::vector<uint32_t> order = RankOrder(x);
        const size_t nnz_less_one = nnz == 0 ? 0 : nnz - 1;
        for (size_t k : {size_t{0}, size_t{1}, size_t{2}, d / 100, d / 10, d / 2, nnz_less_one,
                         nnz, nnz + 1, d, d + 5}) {
          SCOPED_TRACE(::testing::Message() << "seed " << seed << " d " << d << " mags " << mags
                                            << " k " << k);
          const std::vector<uint32_t> got = Run(x, k);
          ASSERT_EQ(got, FirstK(order, k));
          ExpectU2(x, k, got);
        }
      }
    }
  }
}

// Large inputs with k << d: the sampled-threshold fast path and its fallbacks.
TYPED_TEST(TopKSelectTest, MatchesReferenceOnLargeInputs) {
  using T = TypeParam;
  const size_t d = 300000;
  struct Case {
    const char* name;
    std::vector<T> x;
  };
  std::vector<Case> cases;
  cases.push_back({"normal", NormalData<T>(10, d)});
  cases.push_back({"tied 3 magnitudes", TiedData<T>(11, d, 3, 0.2)});
  cases.push_back({"tied 50 magnitudes", TiedData<T>(12, d, 50, 0.5)});
  cases.push_back({"all equal", std::vector<T>(d, T(-3))});
  {  // mostly zeros: fewer non-zeros than many of the k below
    std::vector<T> x(d, T(0));
    RngStream rng = RngStream::For(13, 0, 0, Purpose::kTest);
    for (int i = 0; i < 700; ++i) x[rng.UniformInt(d)] = static_cast<T>(rng.Normal());
    cases.push_back({"sparse", x});
  }
  {  // a few huge outliers that a sample is likely to miss, on a normal background
    std::vector<T> x = NormalData<T>(14, d);
    for (size_t j = 5; j < d; j += 9973) x[j] = T(1e6) + static_cast<T>(j % 7);
    cases.push_back({"outliers", x});
  }
  {  // a sorted ramp (ascending and descending magnitudes)
    std::vector<T> x(d);
    for (size_t j = 0; j < d; ++j) x[j] = static_cast<T>((j % 2 ? -1.0 : 1.0) * double(j));
    cases.push_back({"ramp up", x});
    std::reverse(x.begin(), x.end());
    cases.push_back({"ramp down", x});
  }
  {  // heavy tails and tiny values (subnormals) mixed
    std::vector<T> x = NormalData<T>(15, d);
    for (size_t j = 0; j < d; ++j) {
      if (j % 3 == 0) x[j] *= std::numeric_limits<T>::denorm_min() * T(4);
      if (j % 1001 == 0) x[j] = static_cast<T>(std::ldexp(1.0, int(j % 60)));
    }
    cases.push_back({"mixed scales", x});
  }
  {  // ties exactly at the k-th magnitude: a band of equal values among distinct ones
    std::vector<T> x = NormalData<T>(16, d, 0.1);
    for (size_t j = 0; j < d; j += 37) x[j] = T(5);
    for (size_t j = 3; j < d; j += 401) x[j] = T(-9);
    cases.push_back({"tie band", x});
  }
  for (const Case& c : cases) {
    const std::vector<uint32_t> order = RankOrder(c.x);
    for (size_t k : {size_t{1}, size_t{3}, size_t{30}, size_t{300}, size_t{751}, size_t{3000},
                     size_t{8109}, size_t{30000}, d / 2, d - 1}) {
      SCOPED_TRACE(::testing::Message() << c.name << " k " << k);
      const std::vector<uint32_t> got = Run(c.x, k);
      ASSERT_EQ(got, FirstK(order, k));
      if (k == 751) ExpectU2(c.x, k, got);
    }
  }
}

TYPED_TEST(TopKSelectTest, KEqualsDKeepsEveryNonZero) {
  using T = TypeParam;
  const std::vector<T> x = TiedData<T>(20, 5000, 4, 0.25);
  std::vector<uint32_t> nz;
  for (size_t j = 0; j < x.size(); ++j)
    if (x[j] != 0) nz.push_back(static_cast<uint32_t>(j));
  EXPECT_EQ(Run(x, x.size()), nz);
  EXPECT_EQ(Run(x, x.size() * 3), nz);
}

TYPED_TEST(TopKSelectTest, ScaleInvariantAndSignBlind) {
  using T = TypeParam;
  const std::vector<T> x = NormalData<T>(21, 20000);
  std::vector<T> y(x.size());
  for (size_t j = 0; j < x.size(); ++j) y[j] = -T(4) * x[j];  // exact in binary floating point
  for (size_t k : {1, 20, 200, 2000}) EXPECT_EQ(Run(x, k), Run(y, k)) << k;
}

}  // namespace
}  // namespace fedtrain
