#include "core/vec.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParamLayoutTest, OffsetsAndSlices) {
  ParamLayout l;
  EXPECT_EQ(l.Add("fc0.weight", {3, 4}), 0u);
  EXPECT_EQ(l.Add("fc0.bias", {3}), 12u);
  EXPECT_EQ(l.dim(), 15u);
  std::vector<float> w(15);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  FT_ASSERT_OK_AND_ASSIGN(const Segment* b, l.Find("fc0.bias"));
  Vec s = l.Slice(absl::MakeSpan(w), *b);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], 12.0f);
  EXPECT_THAT(l.Find("nope"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
  EXPECT_EQ(l.ToJson(),
            "[{\"name\":\"fc0.weight\",\"shape\":[3,4],\"offset\":0},"
            "{\"name\":\"fc0.bias\",\"shape\":[3],\"offset\":12}]");
}

TEST(HashTest, Fnv1aKnownValue) {
  // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (published test vector).
  EXPECT_EQ(Fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
}

}  // namespace
}  // namespace fedtrain
