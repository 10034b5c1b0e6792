#include "compression/compressor.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

TEST(IdentityCompressorTest, RoundTripIsExact) {
  IdentityCompressor c;
  std::vector<float> x = {1.5f, -2.25f, 0.0f, 3e-38f};
  RngStream rng = RngStream::For(0, 0, 0, Purpose::kTest);
  Encoded e;
  std::vector<float> decoded(4), back(4);
  FT_ASSERT_OK(c.Encode(x, rng, &e, absl::MakeSpan(decoded)));
  EXPECT_EQ(e.codec, "identity/1");
  EXPECT_EQ(e.dim, 4u);
  EXPECT_EQ(e.bytes.size(), 16u);
  FT_ASSERT_OK(c.Decode(e, absl::MakeSpan(back)));
  EXPECT_EQ(back, x);
  EXPECT_EQ(decoded, x);
}

TEST(IdentityCompressorTest, DecodeRejectsBadInput) {
  IdentityCompressor c;
  RngStream rng = RngStream::For(0, 0, 0, Purpose::kTest);
  std::vector<float> x = {1, 2, 3};
  Encoded e;
  FT_ASSERT_OK(c.Encode(x, rng, &e, {}));
  std::vector<float> out(3), small(2);
  Encoded wrong = e;
  wrong.codec = "qsgd/1";
  EXPECT_THAT(c.Decode(wrong, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("qsgd/1")));
  EXPECT_THAT(c.Decode(e, absl::MakeSpan(small)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("3 floats; model has 2")));
  Encoded cut = e;
  cut.bytes.resize(7);
  EXPECT_THAT(c.Decode(cut, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("7 bytes")));
  std::vector<float> bad = {1, NAN, 3};
  FT_ASSERT_OK(c.Encode(bad, rng, &e, {}));
  EXPECT_THAT(c.Decode(e, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 1")));
}

TEST(CompressorFactoryTest, UnknownNameListsKnown) {
  CompressorOptions o;
  o.compressor = "zip";
  EXPECT_THAT(MakeCompressor(o, 10),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("known: identity")));
  o.compressor = "identity";
  FT_EXPECT_OK(MakeCompressor(o, 10));
}

}  // namespace
}  // namespace fedtrain
