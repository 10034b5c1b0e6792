// RQM (compression/rqm.h): the unit-test properties U16-U19 and U21 of docs/privacy.md §5,
// the wire format and the checks on bad input.
#include "compression/rqm.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "compression/bit_io.h"
#include "compression/compressor.h"
#include "compression/compressor_internal.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

RqmOptions Opts(double c, double delta, int64_t m, double q) {
  RqmOptions o;
  o.clip = c;
  o.delta = delta;
  o.levels = m;
  o.keep = q;
  return o;
}

std::unique_ptr<Compressor> Make(const RqmOptions& o, size_t d) {
  auto c = MakeRqmCompressor(o, d);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(c).value();
}

// The output pmf by enumerating all 2^(m-2) keep patterns of the interior levels (the
// definition of the mechanism, docs/privacy.md §1.2), independent of RqmGrid::Pmf's formula.
std::vector<double> BruteForcePmf(const RqmGrid& g, double x) {
  const int64_t m = g.m();
  const double q = g.options().keep;
  std::vector<double> p(static_cast<size_t>(m), 0.0);
  for (uint64_t mask = 0; mask < (uint64_t{1} << (m - 2)); ++mask) {
    double prob = 1.0;
    std::vector<bool> kept(static_cast<size_t>(m), true);
    for (int64_t i = 1; i <= m - 2; ++i) {
      const bool k = (mask >> (i - 1)) & 1;
      kept[static_cast<size_t>(i)] = k;
      prob *= k ? q : 1.0 - q;
    }
    int64_t l = 0, r = m - 1;
    for (int64_t i = 0; i < m; ++i)
      if (kept[static_cast<size_t>(i)] && g.Level(i) <= x) l = i;
    for (int64_t i = m - 1; i >= 0; --i)
      if (kept[static_cast<size_t>(i)] && g.Level(i) > x) r = i;
    const double up = (x - g.Level(l)) / (g.Level(r) - g.Level(l));
    p[static_cast<size_t>(r)] += prob * up;
    p[static_cast<size_t>(l)] += prob * (1.0 - up);
  }
  return p;
}

TEST(RqmTest, OptionsAreValidatedNamingTheField) {
  EXPECT_THAT(ValidateRqmOptions(Opts(0, 1, 8, 0.5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.clip")));
  EXPECT_THAT(ValidateRqmOptions(Opts(-1, 1, 8, 0.5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.clip")));
  EXPECT_THAT(ValidateRqmOptions(Opts(1, 0, 8, 0.5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.range_extension")));
  EXPECT_THAT(ValidateRqmOptions(Opts(1, 1, 1, 0.5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.levels")));
  EXPECT_THAT(ValidateRqmOptions(Opts(1, 1, 8, 1.0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.keep_prob")));
  EXPECT_THAT(ValidateRqmOptions(Opts(1, 1, 8, 0.0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.keep_prob")));
  FT_EXPECT_OK(ValidateRqmOptions(Opts(1, 1, 2, 0.5)));
  // Through the compressor factory too.
  CompressorOptions co;
  co.compressor = "rqm";
  co.rqm_keep = 1.0;
  EXPECT_THAT(MakeCompressor(co, 10).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.keep_prob")));
}

// U16 and the wire format: indices in [0, m-1] packed in ceil(log2 m) bits; decoded values
// exactly B(z) (double path) and float(B(z)) (float path); `decoded` equals Decode().
TEST(RqmTest, IndicesOnTheGridAndWireSize) {
  for (int64_t m : {2, 3, 5, 8, 16, 17, 64, 256}) {
    const RqmOptions o = Opts(0.5, 0.7, m, 0.4);
    const RqmGrid g(o);
    const size_t d = 1000;
    auto c = Make(o, d);
    EXPECT_EQ(c->codec(), "rqm/1");
    EXPECT_EQ(c->PayloadBits(), d * static_cast<uint64_t>(CeilLog2(static_cast<uint64_t>(m))));
    std::vector<double> x(d), dec(d), back(d);
    for (size_t j = 0; j < d; ++j) x[j] = -0.8 + 1.6 * static_cast<double>(j) / (d - 1);
    RngStream rng = RngStream::For(7, 1, 2, Purpose::kTest);
    Encoded e;
    FT_ASSERT_OK(c->Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(dec)));
    EXPECT_EQ(e.bytes.size(), 16 + (c->PayloadBits() + 7) / 8) << "m = " << m;
    FT_ASSERT_OK(c->Decode(e, absl::MakeSpan(back)));
    EXPECT_EQ(dec, back);
    std::vector<uint32_t> z;
    FT_ASSERT_OK(RqmDecodeIndices(*c, e, &z));
    ASSERT_EQ(z.size(), d);
    for (size_t j = 0; j < d; ++j) {
      ASSERT_LT(z[j], static_cast<uint32_t>(m));
      EXPECT_EQ(back[j], g.Level(z[j]));  // exactly the grid value
    }
    std::vector<float> fback(d);
    FT_ASSERT_OK(c->Decode(e, absl::MakeSpan(fback)));
    for (size_t j = 0; j < d; ++j) EXPECT_EQ(fback[j], static_cast<float>(g.Level(z[j])));
  }
}

TEST(RqmTest, SameStreamSameBytesClippingIsDeterministic) {
  const RqmOptions o = Opts(1.0, 1.0, 8, 0.5);
  auto c = Make(o, 300);
  std::vector<float> x(300), clipped(300);
  for (size_t j = 0; j < x.size(); ++j) {
    x[j] = static_cast<float>((static_cast<double>(j) - 150) / 30);  // from -5 to 5
    clipped[j] = std::min(1.0f, std::max(-1.0f, x[j]));
  }
  Encoded a, b, cl, other;
  RngStream r1 = RngStream::For(3, 4, 5, Purpose::kCompression);
  RngStream r2 = RngStream::For(3, 4, 5, Purpose::kCompression);
  RngStream r3 = RngStream::For(3, 4, 5, Purpose::kCompression);
  RngStream r4 = RngStream::For(3, 4, 6, Purpose::kCompression);
  FT_ASSERT_OK(c->Encode(x, r1, &a, {}));
  FT_ASSERT_OK(c->Encode(x, r2, &b, {}));
  FT_ASSERT_OK(c->Encode(clipped, r3, &cl, {}));
  FT_ASSERT_OK(c->Encode(x, r4, &other, {}));
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.bytes, cl.bytes);  // l-infinity clipping happens before any draw
  EXPECT_NE(a.bytes, other.bytes);
}

TEST(RqmTest, BadInputIsRefused) {
  const RqmOptions o = Opts(1.0, 1.0, 5, 0.5);  // 3 bits: codes 5, 6, 7 are invalid
  auto c = Make(o, 10);
  std::vector<float> x(10, 0.25f), out(10);
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  Encoded e;
  FT_ASSERT_OK(c->Encode(x, rng, &e, {}));
  Encoded bad = e;
  bad.bytes[16] = static_cast<char>(bad.bytes[16] | 0x07);  // first index = 7 (or more)
  EXPECT_THAT(c->Decode(bad, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not below m = 5")));
  bad = e;
  bad.bytes.back() = static_cast<char>(bad.bytes.back() | 0x80);  // 30 bits: 2 padding bits
  EXPECT_THAT(c->Decode(bad, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("padding")));
  bad = e;
  bad.bytes.pop_back();
  EXPECT_THAT(c->Decode(bad, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
  auto c8 = Make(Opts(1.0, 1.0, 8, 0.5), 10);  // another m in the header
  EXPECT_THAT(c8->Decode(e, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("header")));
  x[3] = NAN;
  EXPECT_THAT(c->Encode(x, rng, &e, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 3")));
}

// The block kernel runs in an AVX-512 build and a baseline build of the same C++ (chosen at
// run time); the general per-coordinate path serves m > 16 and the rare ties. All give the
// same bytes: here the AVX-512 and baseline kernels for every padded size (m = 3, 8, 16), on
// inputs that include clipped values and values exactly on levels.
TEST(RqmTest, KernelsGiveTheSameBytes) {
  for (int64_t m : {3, 8, 16}) {
    const RqmOptions o = Opts(1.0, 0.5, m, 0.3);
    const RqmGrid g(o);
    const size_t d = 5000;
    auto c = Make(o, d);
    std::vector<float> x(d);
    RngStream data = RngStream::For(2, 0, 0, Purpose::kTest);
    for (size_t j = 0; j < d; ++j)
      x[j] = j % 7 == 0 ? static_cast<float>(g.Level(static_cast<int64_t>(j % m)))
                        : static_cast<float>(3 * data.Uniform() - 1.5);
    Encoded fast, base;
    RngStream r1 = RngStream::For(9, 1, 1, Purpose::kCompression);
    RngStream r2 = RngStream::For(9, 1, 1, Purpose::kCompression);
    FT_ASSERT_OK(c->Encode(x, r1, &fast, {}));
    compression_internal::UseBaselineQuantizerKernels(true);
    const absl::Status st = c->Encode(x, r2, &base, {});
    compression_internal::UseBaselineQuantizerKernels(false);
    FT_ASSERT_OK(st);
    EXPECT_EQ(fast.bytes, base.bytes) << "m = " << m;
  }
}

// The encoder compares the high 32 bits of each 53-bit uniform first and draws the low 21
// bits only when the high word ties the threshold's (probability 2^-32 per comparison, so
// random inputs never reach that path). Here uniforms are placed at and around every
// threshold, high-word ties included, and the encoder's path must pick the same index as the
// direct 53-bit comparisons.
TEST(RqmTest, HighWordTiesAreSettledWithAllBits) {
  for (int64_t m : {3, 8, 16, 40}) {
    for (double q : {0.3, 0.5}) {
      const RqmOptions o = Opts(1.0, 0.7, m, q);
      auto c = Make(o, 4);
      const std::vector<uint64_t> th = rqm_internal::WalkThresholdsForTest(*c);
      std::vector<uint64_t> near = {0, (uint64_t{1} << 53) - 1};
      for (uint64_t t : th) {
        if (t == 0) continue;
        const uint64_t base = (t >> 21) << 21;  // same high word as t
        for (uint64_t v : {t - 1, t, t + 1, base, base | 0x1fffff, base + 0x100000}) near.push_back(v);
      }
      // The first four thresholds' neighbourhoods and the extremes (keeps the test short
      // under the sanitizers; the walk stops at a tie whichever threshold it is).
      if (near.size() > 26) near.resize(26);
      size_t checked = 0;
      for (double x : {-1.0, -0.61, -0.2, 0.0, 0.33, 0.9, 1.0}) {
        for (uint64_t nl : near) {
          for (uint64_t nr : near) {
            // The rounding threshold for this (x, nl, nr): the smallest nz giving the left
            // index, found by bisection on the reference (index is r iff nz < T).
            FT_ASSERT_OK_AND_ASSIGN(const uint32_t up, rqm_internal::SampleIndexForTest(*c, x, nl, nr, 0, false));
            FT_ASSERT_OK_AND_ASSIGN(const uint32_t down, rqm_internal::SampleIndexForTest(*c, x, nl, nr, (uint64_t{1} << 53) - 1, false));
            uint64_t lo = 0, hi = uint64_t{1} << 53;  // T in [lo, hi]
            while (lo < hi) {
              const uint64_t mid = lo + (hi - lo) / 2;
              FT_ASSERT_OK_AND_ASSIGN(const uint32_t z, rqm_internal::SampleIndexForTest(*c, x, nl, nr, mid, false));
              if (z == up && up != down) lo = mid + 1; else hi = mid;
            }
            const uint64_t tz = lo, zb = (tz >> 21) << 21;
            for (uint64_t nz : {uint64_t{0}, tz - (tz > 0), tz, tz + 1, zb, zb | 0x1fffff}) {
              nz = std::min(nz, (uint64_t{1} << 53) - 1);
              FT_ASSERT_OK_AND_ASSIGN(const uint32_t want, rqm_internal::SampleIndexForTest(*c, x, nl, nr, nz, false));
              FT_ASSERT_OK_AND_ASSIGN(const uint32_t got, rqm_internal::SampleIndexForTest(*c, x, nl, nr, nz, true));
              ASSERT_EQ(got, want) << "m " << m << " q " << q << " x " << x << " nl " << nl
                                   << " nr " << nr << " nz " << nz;
              ++checked;
            }
          }
        }
      }
      EXPECT_GT(checked, 1000u);
    }
  }
}

// U17: the §1.3 pmf sums to 1, equals brute-force enumeration (m <= 12) to 1e-12 and is
// unbiased: Σ_z P_x(z) B(z) = x to 1e-12 on a fine grid of [-c, c]. (1e-12: sums of at most
// m² products of numbers <= 1 in double; the observed error is ~1e-15.)
TEST(RqmTest, PmfMatchesEnumerationAndIsUnbiased) {
  for (int64_t m : {2, 3, 4, 7, 8, 12}) {
    for (double q : {0.1, 0.5, 0.9}) {
      const RqmGrid g(Opts(1.0, 0.6, m, q));
      for (int k = 0; k <= 400; ++k) {
        const double x = -1.0 + 2.0 * k / 400.0;
        std::vector<double> p;
        g.Pmf(x, &p);
        const std::vector<double> brute = BruteForcePmf(g, x);
        double sum = 0, mean = 0;
        for (int64_t z = 0; z < m; ++z) {
          EXPECT_NEAR(p[static_cast<size_t>(z)], brute[static_cast<size_t>(z)], 1e-12)
              << "m " << m << " q " << q << " x " << x << " z " << z;
          EXPECT_GT(p[static_cast<size_t>(z)], 0.0) << "every level is possible (q < 1, Δ > 0)";
          sum += p[static_cast<size_t>(z)];
          mean += p[static_cast<size_t>(z)] * g.Level(z);
        }
        EXPECT_NEAR(sum, 1.0, 1e-12);
        EXPECT_NEAR(mean, x, 1e-12);
      }
    }
  }
}

// U19: P_x is continuous at every level: the pmfs at B(j) - 1e-12 and at B(j) agree within
// 1e-10 (the pmf is affine between levels with slopes of order 1/w, so a step of 1e-12
// moves it by ~1e-12).
TEST(RqmTest, PmfIsContinuousAtLevels) {
  const RqmGrid g(Opts(1.0, 0.3, 10, 0.35));
  for (int64_t j = 1; j < g.m() - 1; ++j) {
    const double b = g.Level(j);
    if (b - 1e-12 < -1.0 || b > 1.0) continue;
    std::vector<double> at, below;
    g.Pmf(b, &at);
    g.Pmf(b - 1e-12, &below);
    for (size_t z = 0; z < at.size(); ++z) EXPECT_NEAR(at[z], below[z], 1e-10) << j << " " << z;
  }
}

// The 0.999 quantile of chi-square with k degrees of freedom (Wilson-Hilferty; within 1% of
// the exact quantile for k >= 1 at this level, far less than the margin a wrong sampler
// exceeds it by).
double ChiSquare999(int k) {
  const double z = 3.090232306;  // standard normal 0.999 quantile
  const double a = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - a + z * std::sqrt(a), 3);
}

// U18: frequencies of 10^6 draws match the pmf (chi-square, p > 1e-3), and the mean of the
// decoded values is within 5 standard errors of x. Both the branch-free walk (m <= 16) and
// the loop (m > 16) are exercised.
TEST(RqmTest, SamplerMatchesPmf) {
  struct Case {
    int64_t m;
    double q, delta, x;
  };
  for (const Case& k : {Case{8, 0.5, 1.0, 0.3}, Case{8, 0.1, 0.5, -0.77}, Case{2, 0.5, 1.0, 0.9},
                        Case{5, 0.9, 2.0, -1.0}, Case{16, 0.3, 0.25, 0.0},
                        Case{40, 0.2, 0.5, 0.61}}) {
    const RqmOptions o = Opts(1.0, k.delta, k.m, k.q);
    const RqmGrid g(o);
    const size_t n = 1000000;
    auto c = Make(o, n);
    std::vector<double> x(n, k.x), dec(n);
    RngStream rng = RngStream::For(11, static_cast<uint64_t>(k.m), 0, Purpose::kTest);
    Encoded e;
    FT_ASSERT_OK(c->Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(dec)));
    std::vector<uint32_t> z;
    FT_ASSERT_OK(RqmDecodeIndices(*c, e, &z));
    std::vector<double> count(static_cast<size_t>(k.m), 0.0), p;
    for (uint32_t v : z) count[v] += 1;
    g.Pmf(k.x, &p);
    // Bins with an expected count below 5 are pooled (the chi-square approximation needs it).
    double chi = 0, pool_obs = 0, pool_exp = 0;
    int bins = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      const double ex = p[i] * n;
      if (ex < 5) {
        pool_obs += count[i];
        pool_exp += ex;
        continue;
      }
      chi += (count[i] - ex) * (count[i] - ex) / ex;
      ++bins;
    }
    if (pool_exp > 0) {
      chi += (pool_obs - pool_exp) * (pool_obs - pool_exp) / std::max(pool_exp, 1e-300);
      ++bins;
    }
    ASSERT_GT(bins, 1);
    EXPECT_LT(chi, ChiSquare999(bins - 1)) << "m " << k.m << " q " << k.q;
    double mean = 0, var = 0;
    for (double v : dec) mean += v;
    mean /= n;
    for (size_t i = 0; i < p.size(); ++i) {
      const double b = g.Level(static_cast<int64_t>(i));
      var += p[i] * b * b;
    }
    var -= k.x * k.x;
    EXPECT_NEAR(mean, k.x, 5 * std::sqrt(var / n) + 1e-15) << "m " << k.m;
    // §1.3's worst-case variance bound.
    EXPECT_LE(var, g.X() * g.X() - k.x * k.x + 1e-12);
  }
}

// U21: the mean from the integer sum of indices (what secure aggregation reveals) equals the
// mean of the per-client decodes (to 1e-12 relative: two orders of double rounding).
TEST(RqmTest, DecodeFromIndexSumEqualsMeanOfDecodes) {
  const RqmOptions o = Opts(2.0, 1.5, 8, 0.5);
  const RqmGrid g(o);
  const size_t d = 200, clients = 37;
  auto c = Make(o, d);
  std::vector<uint64_t> zsum(d, 0);
  std::vector<double> mean(d, 0.0);
  for (size_t i = 0; i < clients; ++i) {
    std::vector<double> x(d), dec(d);
    for (size_t j = 0; j < d; ++j) x[j] = std::sin(static_cast<double>(i * d + j)) * 2.5;
    RngStream rng = RngStream::For(5, 0, i, Purpose::kCompression);
    Encoded e;
    FT_ASSERT_OK(c->Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(dec)));
    std::vector<uint32_t> z;
    FT_ASSERT_OK(RqmDecodeIndices(*c, e, &z));
    for (size_t j = 0; j < d; ++j) {
      zsum[j] += z[j];
      mean[j] += dec[j] / clients;
    }
  }
  for (size_t j = 0; j < d; ++j)
    EXPECT_NEAR(g.DecodeSum(zsum[j], clients), mean[j], 1e-12 * g.X()) << j;
}

}  // namespace
}  // namespace fedtrain
