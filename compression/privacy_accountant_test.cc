// The accountant (compression/privacy_accountant.h): RQM's per-coordinate RDP against the
// reference table and brute force (U20), the Gaussian accountant against its closed forms
// (U22), the subsampling bound, composition, conversion and calibration round trips.
#include "compression/privacy_accountant.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

RqmOptions Opts(double c, double delta, int64_t m, double q) {
  RqmOptions o;
  o.clip = c;
  o.delta = delta;
  o.levels = m;
  o.keep = q;
  return o;
}

double Eps1(double c, double delta, int64_t m, double q, double alpha) {
  const double a[] = {alpha};
  return RqmCoordinateRdp(RqmGrid(Opts(c, delta, m, q)), a)[0];
}

// The output pmf by enumerating the 2^(m-2) keep patterns (the mechanism's definition).
std::vector<double> BruteForcePmf(const RqmGrid& g, double x) {
  const int64_t m = g.m();
  const double q = g.options().keep;
  std::vector<double> p(static_cast<size_t>(m), 0.0);
  for (uint64_t mask = 0; mask < (uint64_t{1} << (m - 2)); ++mask) {
    double prob = 1.0;
    int64_t l = 0, r = m - 1;
    for (int64_t i = 1; i <= m - 2; ++i) {
      const bool k = (mask >> (i - 1)) & 1;
      prob *= k ? q : 1.0 - q;
      if (k && g.Level(i) <= x) l = i;
    }
    for (int64_t i = m - 2; i >= 1; --i)
      if (((mask >> (i - 1)) & 1) && g.Level(i) > x) r = i;
    const double up = (x - g.Level(l)) / (g.Level(r) - g.Level(l));
    p[static_cast<size_t>(r)] += prob * up;
    p[static_cast<size_t>(l)] += prob * (1.0 - up);
  }
  return p;
}

// V-RQM-1: the reference values of docs/privacy.md §2.1 (independent float64 computation),
// printed with 4 decimals, so to 1e-4 (half a unit of the last printed digit).
TEST(RqmAccountantTest, ReferenceTable) {
  const struct {
    double delta, q, want;
  } m8[] = {{1, 0.1, 1.3516}, {1, 0.3, 2.1709}, {1, 0.5, 3.3782}, {1, 0.7, 5.3005},
            {1, 0.9, 9.5832}, {0.25, 0.5, 5.7045}, {0.5, 0.5, 4.7149}, {2, 0.5, 2.3609},
            {4, 0.5, 1.3545}};
  for (const auto& r : m8)
    EXPECT_NEAR(Eps1(1, r.delta, 8, r.q, 8), r.want, 1e-4) << r.delta << " " << r.q;
  EXPECT_NEAR(Eps1(1, 1, 6, 0.5, 2), 2.3966, 1e-4);
  EXPECT_NEAR(Eps1(1, 1, 6, 0.5, 8), 2.7038, 1e-4);
  EXPECT_NEAR(Eps1(1, 1, 6, 0.5, 32), 2.7859, 1e-4);
  EXPECT_NEAR(Eps1(1, 1, 8, 0.5, kInf), 3.5483, 1e-4);
  EXPECT_NEAR(Eps1(1, 1, 2, 0.5, kInf), std::log(3.0), 1e-12);
}

// U20 (part): m = 2 pure DP is log((2c + Δ)/Δ) (to 1e-12: one log of a ratio); ε depends on
// Δ/c only; ε decreases in Δ/c and increases in q; q = 1 gives ∞.
TEST(RqmAccountantTest, ClosedFormScalingMonotonicity) {
  for (double c : {0.5, 1.0, 3.0})
    for (double delta : {0.1, 1.0, 7.0})
      EXPECT_NEAR(Eps1(c, delta, 2, 0.5, kInf), std::log((2 * c + delta) / delta), 1e-12);
  for (double alpha : {1.5, 2.0, 8.0, 64.0}) {
    const double base = Eps1(1.0, 0.8, 8, 0.4, alpha);
    // (c, Δ) -> (a c, a Δ): the pmfs are the same up to rounding of the levels (1e-12).
    EXPECT_NEAR(Eps1(3.7, 3.7 * 0.8, 8, 0.4, alpha), base, 1e-12 * (1 + base));
    EXPECT_NEAR(Eps1(0.01, 0.008, 8, 0.4, alpha), base, 1e-12 * (1 + base));
    EXPECT_GT(Eps1(1.0, 0.4, 8, 0.4, alpha), base);
    EXPECT_LT(Eps1(1.0, 1.6, 8, 0.4, alpha), base);
    EXPECT_LT(Eps1(1.0, 0.8, 8, 0.2, alpha), base);
    EXPECT_GT(Eps1(1.0, 0.8, 8, 0.6, alpha), base);
  }
  EXPECT_EQ(Eps1(1.0, 1.0, 8, 1.0, 8), kInf);
}

// U20: over a 201 x 201 grid of [-c, c]², D_α never exceeds ε_1(α) from the finite set G
// (+1e-9: the rounding of the divergences), and ε_1 is attained at (±c, ∓c). The RQM
// accountant also equals the same maximum computed from brute-force pmfs (small m), to 1e-12.
TEST(RqmAccountantTest, WorstCaseOnGMatchesBruteForce) {
  for (int64_t m : {3, 4, 6, 8}) {
    const RqmGrid g(Opts(1.0, 0.7, m, 0.45));
    const std::vector<double> orders = {1.5, 2, 8, 32, kInf};
    const std::vector<double> eps = RqmCoordinateRdp(g, orders);
    std::vector<std::vector<double>> pmf(201);
    for (int i = 0; i <= 200; ++i) pmf[i] = BruteForcePmf(g, -1.0 + i / 100.0);
    for (size_t k = 0; k < orders.size(); ++k) {
      double worst = 0;
      for (int a = 0; a <= 200; ++a)
        for (int b = 0; b <= 200; ++b)
          worst = std::max(worst, RenyiDivergence(pmf[a], pmf[b], orders[k]));
      EXPECT_LE(worst, eps[k] + 1e-9) << "m " << m << " alpha " << orders[k];
      const double corners = std::max(RenyiDivergence(pmf[0], pmf[200], orders[k]),
                                      RenyiDivergence(pmf[200], pmf[0], orders[k]));
      EXPECT_NEAR(corners, eps[k], 1e-12 * (1 + eps[k])) << "m " << m;
      EXPECT_NEAR(worst, eps[k], 1e-12 * (1 + eps[k])) << "m " << m;
    }
  }
}

TEST(RenyiDivergenceTest, LogSumExpHandlesLargeOrders) {
  // Two Bernoulli laws: closed form log(p^α q^(1-α) + (1-p)^α (1-q)^(1-α)) / (α-1),
  // evaluated in log space directly for α = 256 where p^α underflows the direct formula.
  const double p = 0.9, q = 0.1, a = 256;
  const double t1 = a * std::log(p) + (1 - a) * std::log(q);
  const double t2 = a * std::log(1 - p) + (1 - a) * std::log(1 - q);
  const double want = (std::max(t1, t2) + std::log1p(std::exp(std::min(t1, t2) - std::max(t1, t2)))) / (a - 1);
  const std::vector<double> P = {p, 1 - p}, Q = {q, 1 - q};
  EXPECT_NEAR(RenyiDivergence(P, Q, a), want, 1e-12 * want);
  EXPECT_TRUE(std::isfinite(RenyiDivergence(P, Q, a)));
  EXPECT_EQ(RenyiDivergence(P, P, 8), 0.0);
  EXPECT_EQ(RenyiDivergence(std::vector<double>{0.5, 0.5}, std::vector<double>{1.0, 0.0}, 2), kInf);
}

// U22: Gaussian closed forms (1e-12 relative: a few lgamma/exp/log evaluations).
TEST(GaussianAccountantTest, ClosedForms) {
  for (double z : {0.5, 1.1, 4.0}) {
    for (double a : {1.5, 2.0, 8.0, 256.0})
      EXPECT_NEAR(SampledGaussianRdp(1.0, z, a), a / (2 * z * z), 1e-12 * a / (z * z));
    for (double p : {0.001, 0.01, 0.3, 0.99}) {
      const double want = std::log1p(p * p * std::expm1(1.0 / (z * z)));
      EXPECT_NEAR(SampledGaussianRdp(p, z, 2.0), want, 1e-12 * want + 1e-300);
      // Sampling never hurts, and larger orders cost more.
      EXPECT_LE(SampledGaussianRdp(p, z, 8.0), GaussianRdp(z, 8.0));
      EXPECT_LE(SampledGaussianRdp(p, z, 4.0), SampledGaussianRdp(p, z, 8.0));
    }
  }
  EXPECT_EQ(SampledGaussianRdp(0.5, 1.0, 2.5), kInf);  // non-integer orders: no bound here
}

// U22: composition adds; the conversion decreases in δ; the tight conversion never exceeds
// the simple one.
TEST(GaussianAccountantTest, CompositionAndConversion) {
  AccountantOptions o;
  o.mechanism = "gaussian";
  o.guarantee = PrivacyGuarantee::kTrustedAggregator;
  o.sampling = "poisson";
  o.rate = 0.01;
  o.amplification = true;
  o.secret_sampling = true;
  o.noise_multiplier = 1.1;
  o.delta = 1e-5;
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(o));
  const std::vector<double>& per = acc.round_rdp();
  for (uint64_t t : {1u, 10u, 1000u}) {
    std::vector<double> total;
    for (double r : per) total.push_back(static_cast<double>(t) * r);
    const DpGuarantee g = acc.After(t, 0);
    EXPECT_EQ(g.epsilon, RdpToDp(o.orders, total, o.delta).epsilon);
  }
  EXPECT_LT(acc.After(1000, 0).epsilon, acc.After(2000, 0).epsilon);
  for (double a : {1.25, 2.0, 32.0}) {
    double prev = kInf;
    for (double delta : {1e-9, 1e-7, 1e-5, 1e-3}) {
      const double s = RdpToDpSimple(0.3, a, delta), t = RdpToDpTight(0.3, a, delta);
      EXPECT_LE(t, s);
      EXPECT_LT(s, prev);
      prev = s;
    }
  }
  // The well-known DP-SGD setting (q = 0.01, σ = 1.1, 1000 steps... here rounds, δ = 1e-5)
  // lands at ε ≈ 1 (between 0.5 and 2; the exact figure depends on the order grid).
  const double eps = acc.After(1000, 0).epsilon;
  EXPECT_GT(eps, 0.5);
  EXPECT_LT(eps, 2.0);
}

// SubRDP: γ = 1 is the mechanism itself; α = 2 is log(1 + γ² min{4(e^ε(2) - 1), 2 e^ε(2)});
// it increases with γ.
TEST(SubsampledRdpTest, ClosedFormsAndMonotonicity) {
  auto eps = [](int j) { return 0.1 * j; };
  EXPECT_EQ(SubsampledRdp(1.0, 8.0, eps), 0.8);
  for (double g : {0.01, 0.1, 0.5}) {
    const double e2 = 0.2;
    const double want = std::log1p(g * g * std::min(4 * std::expm1(e2), 2 * std::exp(e2)));
    EXPECT_NEAR(SubsampledRdp(g, 2.0, eps), want, 1e-12 * want);
    EXPECT_LT(SubsampledRdp(g, 8.0, eps), SubsampledRdp(std::min(1.0, 2 * g), 8.0, eps));
  }
  EXPECT_EQ(SubsampledRdp(0.1, 2.5, eps), kInf);
}

TEST(AccountantTest, RefusesCombinationsWithoutAValidBound) {
  AccountantOptions o;
  o.mechanism = "rqm";
  o.amplification = true;  // untrusted server
  EXPECT_THAT(PrivacyAccountant::Create(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.guarantee")));
  o.guarantee = PrivacyGuarantee::kTrustedAggregator;  // but sampling not secret
  EXPECT_THAT(PrivacyAccountant::Create(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.secret_sampling")));
  o.amplification = false;
  o.rqm.keep = 1.0;
  EXPECT_THAT(PrivacyAccountant::Create(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.keep_prob")));
  AccountantOptions g;
  g.mechanism = "gaussian";
  g.placement = "central";  // untrusted server sees un-noised updates
  EXPECT_THAT(PrivacyAccountant::Create(g).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.placement")));
  g.placement = "local";
  g.noise_multiplier = 0;
  EXPECT_THAT(PrivacyAccountant::Create(g).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.noise_multiplier")));
  g.noise_multiplier = 1;
  g.delta = 0;
  EXPECT_THAT(PrivacyAccountant::Create(g).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.delta")));
}

// RQM composition: d coordinates, then rounds (untrusted: the client's own messages).
TEST(AccountantTest, RqmComposesOverCoordinatesAndMessages) {
  AccountantOptions o;
  o.rqm = Opts(1.0, 2.0, 8, 0.5);
  o.dim = 1000;
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(o));
  const std::vector<double> one = RqmCoordinateRdp(RqmGrid(o.rqm), o.orders);
  for (size_t k = 0; k < one.size(); ++k)
    EXPECT_NEAR(acc.message_rdp()[k], 1000 * one[k], 1e-12 * 1000 * one[k]);
  std::vector<double> three;
  for (double r : acc.message_rdp()) three.push_back(3 * r);
  EXPECT_EQ(acc.After(50, 3).epsilon, RdpToDp(o.orders, three, o.delta).epsilon);
  EXPECT_EQ(acc.After(50, 0).epsilon, 0.0);
  // Amplified (trusted aggregator, secret K-of-N sampling) is cheaper per round.
  o.guarantee = PrivacyGuarantee::kTrustedAggregator;
  o.amplification = true;
  o.secret_sampling = true;
  o.rate = 0.01;
  o.dim = 1;
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant amp, PrivacyAccountant::Create(o));
  for (size_t k = 0; k < o.orders.size(); ++k) {
    const double a = o.orders[k];
    if (a == std::floor(a)) {
      EXPECT_LT(amp.round_rdp()[k], amp.message_rdp()[k]) << a;
    } else {  // the SubRDP bound is for integer orders; the others are left out (∞)
      EXPECT_EQ(amp.round_rdp()[k], kInf) << a;
    }
  }
}

// Calibration round trips: the calibrated parameter meets the target and is tight (1e-6
// relative: the bisection stops at a relative width of 1e-12 in the parameter, and ε is
// continuous in it).
TEST(CalibrationTest, RoundTrips) {
  AccountantOptions o;
  o.rqm = Opts(0.5, 1.0, 8, 0.5);
  o.dim = 10;
  for (double target : {5.0, 20.0, 100.0}) {
    FT_ASSERT_OK_AND_ASSIGN(const double delta, CalibrateRqmDelta(o, 10, target));
    AccountantOptions at = o;
    at.rqm.delta = delta;
    FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(at));
    const double e = acc.After(10, 10).epsilon;
    EXPECT_LE(e, target);
    EXPECT_NEAR(e, target, 1e-6 * target);
  }
  EXPECT_THAT(CalibrateRqmDelta(o, 10, 1e-6).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("privacy.target_epsilon")));
  AccountantOptions g;
  g.mechanism = "gaussian";
  g.guarantee = PrivacyGuarantee::kTrustedAggregator;
  g.sampling = "poisson";
  g.rate = 0.01;
  g.amplification = g.secret_sampling = true;
  for (double target : {0.5, 1.0, 8.0}) {
    FT_ASSERT_OK_AND_ASSIGN(const double z, CalibrateNoiseMultiplier(g, 1000, target));
    g.noise_multiplier = z;
    FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(g));
    const double e = acc.After(1000, 0).epsilon;
    EXPECT_LE(e, target);
    EXPECT_NEAR(e, target, 1e-6 * target);
  }
}

}  // namespace
}  // namespace fedtrain
