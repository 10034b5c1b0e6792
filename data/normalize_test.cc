// Global feature standardisation: the statistics in closed form on small sets, the map applied
// exactly as documented, and the refusals.
#include "data/normalize.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

Dataset Rows(size_t features, std::vector<float> values) {
  Dataset d;
  d.num_features = features;
  d.num_classes = 2;
  d.features = std::move(values);
  d.labels.assign(d.features.size() / features, 0);
  return d;
}

TEST(NormalizeTest, StatisticsPoolEveryFeatureOfEveryRow) {
  // Two rows of two features: values 1, 2, 3, 4. Mean 2.5; population variance
  // (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25. Every step is exact in double but the square root.
  FT_ASSERT_OK_AND_ASSIGN(FeatureStats s, GlobalFeatureStats(Rows(2, {1, 2, 3, 4})));
  EXPECT_EQ(s.mean, 2.5);
  EXPECT_EQ(s.std, std::sqrt(1.25));
}

TEST(NormalizeTest, StandardizeIsTheDocumentedAffineMap) {
  Dataset d = Rows(3, {0.0f, 0.25f, 1.0f, 0.5f, 0.75f, 0.125f});
  const std::vector<float> before = d.features;
  const FeatureStats s{0.3, 0.7};
  FT_ASSERT_OK(StandardizeFeatures(s, &d));
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_EQ(d.features[i], static_cast<float>((static_cast<double>(before[i]) - 0.3) / 0.7)) << i;
}

TEST(NormalizeTest, OwnStatisticsGiveZeroMeanUnitSpread) {
  Dataset d = ::fedtrain::testing::RandomDataset(5, 200, 7, 3);
  for (float& v : d.features) v = 3.0f * v + 10.0f;  // mean ~10, std ~3
  FT_ASSERT_OK_AND_ASSIGN(FeatureStats s, GlobalFeatureStats(d));
  EXPECT_NEAR(s.mean, 10.0, 0.5);
  EXPECT_NEAR(s.std, 3.0, 0.5);
  FT_ASSERT_OK(StandardizeFeatures(s, &d));
  FT_ASSERT_OK_AND_ASSIGN(FeatureStats after, GlobalFeatureStats(d));
  // Each standardised value is rounded to float once (relative 2^-24 of |z| <~ 4): the mean
  // moves by at most ~2.4e-7 and the std by a relative ~6e-8. 1e-6 covers both.
  EXPECT_NEAR(after.mean, 0.0, 1e-6);
  EXPECT_NEAR(after.std, 1.0, 1e-6);
}

TEST(NormalizeTest, RefusesSetsWithoutSpreadAndBadStatistics) {
  EXPECT_THAT(GlobalFeatureStats(Rows(2, {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no feature values")));
  EXPECT_THAT(GlobalFeatureStats(Rows(2, {0.5f, 0.5f, 0.5f, 0.5f})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-zero spread")));
  Dataset d = Rows(1, {1.0f});
  EXPECT_THAT(StandardizeFeatures({0.0, 0.0}, &d),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("std > 0")));
  EXPECT_THAT(StandardizeFeatures({NAN, 1.0}, &d),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("finite")));
  EXPECT_EQ(d.features, std::vector<float>{1.0f});  // refused: untouched
}

}  // namespace
}  // namespace fedtrain
