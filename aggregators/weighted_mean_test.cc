// Tests for aggregators/weighted_mean.h: exact sums, bitwise equality with the plain double
// loop for any pool and thread count, the caller-owned accumulator, and argument errors.
// Single-threaded apart from the pools the tests create.
#include "aggregators/weighted_mean.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "core/vec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Updates = std::vector<std::vector<float>>;

std::vector<ConstVec> Views(const Updates& u) {
  return std::vector<ConstVec>(u.begin(), u.end());
}

// The definition in weighted_mean.h, one coordinate at a time. The product passes through a
// volatile so that no build flag can fuse it with the add into an FMA: the kernel never
// fuses, and the comparison below is bitwise.
std::vector<float> PlainWeightedSum(const Updates& in, const std::vector<double>& w) {
  const size_t dim = in.empty() ? 0 : in[0].size();
  std::vector<float> out(dim);
  for (size_t j = 0; j < dim; ++j) {
    double acc = 0.0;
    for (size_t k = 0; k < in.size(); ++k) {
      volatile double term = w[k] * static_cast<double>(in[k][j]);
      acc += term;
    }
    out[j] = static_cast<float>(acc);
  }
  return out;
}

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// Bitwise equality (so +0.0 vs -0.0 and NaN payloads count), naming the first difference.
::testing::AssertionResult BitIdentical(const std::vector<float>& got,
                                        const std::vector<float>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "sizes " << got.size() << " vs " << want.size();
  }
  for (size_t j = 0; j < got.size(); ++j) {
    if (Bits(got[j]) != Bits(want[j])) {
      return ::testing::AssertionFailure()
             << "coordinate " << j << ": got " << got[j] << " (0x" << std::hex << Bits(got[j])
             << "), want " << want[j] << " (0x" << Bits(want[j]) << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Deterministic values over a wide range of magnitudes, so that a change in the order of the
// additions would change the rounded result (a test of the order, not only of the sum).
Updates MakeUpdates(size_t num, size_t dim, uint64_t seed) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  auto next = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;  // 64-bit LCG (Knuth MMIX)
    return s >> 11;
  };
  Updates u(num, std::vector<float>(dim));
  for (auto& v : u) {
    for (float& x : v) {
      const double unit = static_cast<double>(next() & 0xffffff) / (1 << 24) - 0.5;
      const int exponent = static_cast<int>(next() % 24) - 12;
      x = static_cast<float>(std::ldexp(unit, exponent));
    }
  }
  return u;
}

std::vector<double> MakeWeights(size_t num) {
  std::vector<double> w(num);
  for (size_t k = 0; k < num; ++k) w[k] = 1.0 / (3.0 + static_cast<double>(k));  // inexact
  return w;
}

TEST(WeightedMeanTest, ExactOnSmallInput) {
  const Updates in = {{1, 2, 3}, {4, 5, 6}};
  const std::vector<double> w = {0.25, 0.75};
  std::vector<float> out(3);
  FT_ASSERT_OK(WeightedMean(Views(in), w, absl::MakeSpan(out)));
  EXPECT_THAT(out, ElementsAre(3.25f, 4.25f, 5.25f));
}

TEST(WeightedMeanTest, WeightsNeedNotSumToOne) {
  const Updates in = {{1, -2}, {0.5f, 8}, {3, 0}};
  const std::vector<double> w = {2.0, 4.0, -1.0};
  std::vector<float> out(2);
  FT_ASSERT_OK(WeightedMean(Views(in), w, absl::MakeSpan(out)));
  EXPECT_THAT(out, ElementsAre(1.0f, 28.0f));
}

TEST(WeightedMeanTest, SingleUpdateIsScaled) {
  const Updates in = {{1.5f, -3.0f, 0.0f}};
  std::vector<float> out(3);
  FT_ASSERT_OK(WeightedMean(Views(in), std::vector<double>{2.0}, absl::MakeSpan(out)));
  EXPECT_THAT(out, ElementsAre(3.0f, -6.0f, 0.0f));
}

// The sum starts at +0.0, like the plain loop: a column of -0.0 terms gives +0.0.
TEST(WeightedMeanTest, ZeroSumIsPositiveZero) {
  const Updates in = {{-0.0f}, {-0.0f}};
  std::vector<float> out = {-1.0f};
  FT_ASSERT_OK(WeightedMean(Views(in), std::vector<double>{1.0, 1.0}, absl::MakeSpan(out)));
  EXPECT_EQ(Bits(out[0]), Bits(0.0f));
}

// Small d: one partial block, every count of updates around the four-at-a-time unrolling.
TEST(WeightedMeanTest, MatchesPlainLoopBitwiseForEveryUpdateCount) {
  for (size_t num : {1, 2, 3, 4, 5, 7, 8, 9, 13}) {
    SCOPED_TRACE(::testing::Message() << num << " updates");
    const Updates in = MakeUpdates(num, 37, num);
    const std::vector<double> w = MakeWeights(num);
    std::vector<float> out(37);
    FT_ASSERT_OK(WeightedMean(Views(in), w, absl::MakeSpan(out)));
    EXPECT_TRUE(BitIdentical(out, PlainWeightedSum(in, w)));
  }
}

// d spans several full blocks and a partial one: no pool, a 1-thread pool and 2- and
// 3-thread pools must all give the plain loop's bits.
TEST(WeightedMeanTest, BitIdenticalForAnyPool) {
  const size_t dim = 3 * kWeightedMeanBlock + 123;
  for (size_t num : {6, 11}) {
    SCOPED_TRACE(::testing::Message() << num << " updates");
    const Updates in = MakeUpdates(num, dim, 100 + num);
    const std::vector<double> w = MakeWeights(num);
    const std::vector<float> want = PlainWeightedSum(in, w);

    std::vector<float> serial(dim);
    FT_ASSERT_OK(WeightedMean(Views(in), w, absl::MakeSpan(serial), nullptr));
    EXPECT_TRUE(BitIdentical(serial, want));
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << threads << " threads");
      ThreadPool pool(threads);
      std::vector<float> out(dim, NAN);
      FT_ASSERT_OK(WeightedMean(Views(in), w, absl::MakeSpan(out), &pool));
      EXPECT_TRUE(BitIdentical(out, want));
    }
  }
}

// The order over k matters in floating point; the kernel must keep the caller's order.
TEST(WeightedMeanTest, KeepsCallerOrder) {
  // Near 1e16 doubles are 2 apart, so 1e16 + 1 rounds back to 1e16 (ties to even): the
  // order (1e16, 1, -1e16) sums to 0 and the order (1e16, -1e16, 1) to 1.
  const Updates in = {{1e16f}, {1.0f}, {-1e16f}};
  std::vector<float> out(1);
  FT_ASSERT_OK(WeightedMean(Views(in), std::vector<double>{1, 1, 1}, absl::MakeSpan(out)));
  EXPECT_EQ(out[0], 0.0f);
  const Updates swapped = {{1e16f}, {-1e16f}, {1.0f}};
  FT_ASSERT_OK(
      WeightedMean(Views(swapped), std::vector<double>{1, 1, 1}, absl::MakeSpan(out)));
  EXPECT_EQ(out[0], 1.0f);
}

TEST(WeightedMeanTest, ZeroLengthVectorsAreOk) {
  const Updates in = {{}, {}};
  std::vector<float> out;
  FT_EXPECT_OK(WeightedMean(Views(in), std::vector<double>{1, 1}, absl::MakeSpan(out)));
}

TEST(WeightedMeanTest, RejectsEmptyInput) {
  std::vector<float> out(4, 7.0f);
  EXPECT_THAT(WeightedMean({}, {}, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no updates")));
  EXPECT_THAT(out, ElementsAre(7.0f, 7.0f, 7.0f, 7.0f));
}

TEST(WeightedMeanTest, RejectsWeightCountMismatch) {
  const Updates in = {{1, 2}, {3, 4}};
  std::vector<float> out(2, 7.0f);
  EXPECT_THAT(WeightedMean(Views(in), std::vector<double>{1.0}, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("2 updates but 1 weights")));
  EXPECT_THAT(out, ElementsAre(7.0f, 7.0f));
}

TEST(WeightedMeanTest, RejectsWrongUpdateSizeNamingIt) {
  Updates in(5, std::vector<float>(12, 1.0f));
  in[3].resize(10);
  std::vector<float> out(12, 7.0f);
  EXPECT_THAT(WeightedMean(Views(in), MakeWeights(5), absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("update 3 has 10 floats; expected 12")));
  EXPECT_EQ(out, std::vector<float>(12, 7.0f));
}

// The double accumulator shows the order of the additions, which rounding to float mostly
// hides (a reordered double sum changes the float result only in rare coordinates): it must
// equal the plain loop bit for bit, for every unrolling remainder and any pool.
TEST(WeightedAccumulateTest, MatchesPlainDoubleLoopBitwise) {
  const size_t dim = 2 * kWeightedMeanBlock + 77;
  for (size_t num : {1, 3, 4, 6, 9}) {
    const Updates in = MakeUpdates(num, dim, 300 + num);
    const std::vector<double> w = MakeWeights(num);
    std::vector<double> want(dim, 0.25);  // a non-zero start: acc is added to, not replaced
    for (size_t j = 0; j < dim; ++j) {
      for (size_t k = 0; k < num; ++k) {
        volatile double term = w[k] * static_cast<double>(in[k][j]);
        want[j] += term;
      }
    }
    for (int threads : {0, 1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << num << " updates, " << threads << " threads");
      std::unique_ptr<ThreadPool> pool;
      if (threads > 0) pool = std::make_unique<ThreadPool>(threads);
      std::vector<double> acc(dim, 0.25);
      FT_ASSERT_OK(WeightedAccumulate(Views(in), w, absl::MakeSpan(acc), pool.get()));
      size_t wrong = 0;
      for (size_t j = 0; j < dim; ++j) {
        if (std::memcmp(&acc[j], &want[j], sizeof(double)) != 0) ++wrong;
      }
      EXPECT_EQ(wrong, 0u) << "coordinates differing from the plain double loop";
    }
  }
}

// Folding updates in as they arrive, in order, then rounding once, equals one WeightedMean.
TEST(WeightedAccumulateTest, ChunkedFoldEqualsWeightedMean) {
  const size_t dim = 2 * kWeightedMeanBlock + 5, num = 10;
  const Updates in = MakeUpdates(num, dim, 7);
  const std::vector<double> w = MakeWeights(num);
  const std::vector<ConstVec> views = Views(in);
  std::vector<float> want(dim);
  FT_ASSERT_OK(WeightedMean(views, w, absl::MakeSpan(want)));

  ThreadPool pool(2);
  std::vector<double> acc(dim, 0.0);
  const absl::Span<const ConstVec> all(views);
  const absl::Span<const double> all_w(w);
  FT_ASSERT_OK(WeightedAccumulate(all.subspan(0, 3), all_w.subspan(0, 3), absl::MakeSpan(acc)));
  FT_ASSERT_OK(
      WeightedAccumulate(all.subspan(3, 6), all_w.subspan(3, 6), absl::MakeSpan(acc), &pool));
  FT_ASSERT_OK(WeightedAccumulate(all.subspan(9), all_w.subspan(9), absl::MakeSpan(acc)));
  std::vector<float> got(dim);
  for (size_t j = 0; j < dim; ++j) got[j] = static_cast<float>(acc[j]);
  EXPECT_TRUE(BitIdentical(got, want));
}

TEST(WeightedAccumulateTest, EmptyInputAddsNothing) {
  std::vector<double> acc = {1.5, -2.0};
  FT_ASSERT_OK(WeightedAccumulate({}, {}, absl::MakeSpan(acc)));
  EXPECT_THAT(acc, ElementsAre(1.5, -2.0));
}

TEST(WeightedAccumulateTest, RejectsShapeErrors) {
  const Updates in = {{1, 2, 3}};
  std::vector<double> acc(2, 0.0);
  EXPECT_THAT(WeightedAccumulate(Views(in), std::vector<double>{1.0}, absl::MakeSpan(acc)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("update 0 has 3 floats; expected 2")));
  std::vector<double> acc3(3, 0.0);
  EXPECT_THAT(WeightedAccumulate(Views(in), std::vector<double>{}, absl::MakeSpan(acc3)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("1 updates but 0 weights")));
  EXPECT_THAT(acc3, ElementsAre(0.0, 0.0, 0.0));
}

}  // namespace
}  // namespace fedtrain
