// The Gaussian uplink mechanism (compression/gaussian_mechanism.h): clipping, the noise's
// moments, the wire format, determinism and bad options.
#include "compression/gaussian_mechanism.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<Compressor> Make(const std::string& placement, double clip, double sigma,
                                 size_t d) {
  GaussianMechanismOptions o;
  o.placement = placement;
  o.clip = clip;
  o.sigma = sigma;
  auto c = MakeGaussianMechanism(o, d);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(c).value();
}

// Local: noise = output - clip(x) has mean 0 and variance σ² (n = 10^6: the standard error of
// the sample variance is σ² sqrt(2/n) = 0.14% of σ²; 1% is 7 of them; the mean within 5
// standard errors σ / sqrt(n)).
TEST(GaussianMechanismTest, LocalClipsAndAddsNoiseOfTheRightSize) {
  const size_t n = 1000000;
  const double c = 0.5, sigma = 0.3;
  auto g = Make("local", c, sigma, n);
  std::vector<double> x(n), out(n), back(n);
  for (size_t j = 0; j < n; ++j) x[j] = std::sin(static_cast<double>(j)) * 1.5;
  RngStream rng = RngStream::For(4, 0, 0, Purpose::kCompression);
  Encoded e;
  FT_ASSERT_OK(g->Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(out)));
  EXPECT_EQ(e.codec, "gaussian/1");
  EXPECT_EQ(e.bytes.size(), 16 + 4 * n);
  FT_ASSERT_OK(g->Decode(e, absl::MakeSpan(back)));
  EXPECT_EQ(out, back);
  double mean = 0, var = 0;
  for (size_t j = 0; j < n; ++j) mean += out[j] - std::min(c, std::max(-c, x[j]));
  mean /= n;
  for (size_t j = 0; j < n; ++j) {
    const double e2 = out[j] - std::min(c, std::max(-c, x[j])) - mean;
    var += e2 * e2;
  }
  var /= n - 1;
  EXPECT_NEAR(mean, 0.0, 5 * sigma / std::sqrt(static_cast<double>(n)));
  EXPECT_NEAR(var, sigma * sigma, 0.01 * sigma * sigma);
}

// Distributed: without noise the output is the l2-clipped vector (to float32 rounding of each
// value: 2^-24 relative); below the clip the vector is unchanged.
TEST(GaussianMechanismTest, DistributedClipsTheNorm) {
  const size_t d = 100;
  std::vector<double> x(d), out(d);
  for (size_t j = 0; j < d; ++j) x[j] = static_cast<double>(j) - 40;  // norm ~ 349
  double norm = 0;
  for (double v : x) norm += v * v;
  norm = std::sqrt(norm);
  for (double s : {1.0, 1000.0}) {
    auto g = Make("distributed", s, 0.0, d);
    RngStream rng = RngStream::For(4, 0, 0, Purpose::kCompression);
    Encoded e;
    FT_ASSERT_OK(g->Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(out)));
    const double scale = std::min(1.0, s / norm);
    for (size_t j = 0; j < d; ++j)
      EXPECT_NEAR(out[j], x[j] * scale, 1e-7 * std::fabs(x[j] * scale) + 1e-30) << j;
  }
}

TEST(GaussianMechanismTest, DeterministicAndChecked) {
  auto g = Make("local", 1.0, 1.0, 50);
  std::vector<float> x(50, 0.25f), out(50);
  Encoded a, b;
  RngStream r1 = RngStream::For(1, 2, 3, Purpose::kCompression);
  RngStream r2 = RngStream::For(1, 2, 3, Purpose::kCompression);
  FT_ASSERT_OK(g->Encode(x, r1, &a, {}));
  FT_ASSERT_OK(g->Encode(x, r2, &b, {}));
  EXPECT_EQ(a.bytes, b.bytes);
  Encoded bad = a;
  bad.bytes.pop_back();
  EXPECT_THAT(g->Decode(bad, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
  auto dist = Make("distributed", 1.0, 1.0, 50);  // another header
  EXPECT_THAT(dist->Decode(a, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("header")));
  GaussianMechanismOptions o;
  o.placement = "central";
  EXPECT_THAT(MakeGaussianMechanism(o, 10).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.placement")));
  o.placement = "local";
  o.clip = 0;
  EXPECT_THAT(MakeGaussianMechanism(o, 10).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.clip")));
}

}  // namespace
}  // namespace fedtrain
