// The attack harness: exact definitions (sign flip, ALIE with z = 0, IPM), ALIE's z table,
// partial drop, determinism of random attacks, crash_omit, config checks and placements, the
// server and worker placements' shared vector maths, and the Lotka-Volterra warp's map
// against the flow's closed forms on the centre row and column.
#include "attacks/attack.h"
#include "attacks/augment.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

struct Round {
  std::vector<std::vector<float>> data;
  std::vector<ClientUpdate> updates;
  std::vector<std::vector<float>> storage;
};

// Clients 0..p-1, one part of n values each.
void Make(Round* r, size_t p, size_t n) {
  r->data.assign(p, std::vector<float>(n));
  for (size_t i = 0; i < p; ++i)
    for (size_t k = 0; k < n; ++k) r->data[i][k] = static_cast<float>(0.25 * i - 0.5 * k + 1.0);
  r->updates.clear();
  for (size_t i = 0; i < p; ++i) {
    ClientUpdate u;
    u.id = i;
    u.parts.push_back(r->data[i]);
    r->updates.push_back(u);
  }
}

AttackOptions Opts(const std::string& name) {
  AttackOptions o;
  o.name = name;
  o.clients = {0, 2};
  o.seed = 5;
  return o;
}

std::vector<float> Part(const Round& r, size_t i) {
  return std::vector<float>(r.updates[i].parts[0].begin(), r.updates[i].parts[0].end());
}

TEST(AttackTest, SignFlipOwnIsExactlyMinusG) {
  Round r;
  Make(&r, 5, 7);
  AttackOptions o = Opts("sign_flip");
  o.omniscient = false;
  FT_ASSERT_OK_AND_ASSIGN(int64_t n, ApplyAttack(o, 0, &r.updates, &r.storage));
  EXPECT_EQ(n, 2);
  for (size_t k = 0; k < 7; ++k) {
    EXPECT_EQ(r.updates[0].parts[0][k], -r.data[0][k]);
    EXPECT_EQ(r.updates[2].parts[0][k], -r.data[2][k]);
    EXPECT_EQ(r.updates[1].parts[0][k], r.data[1][k]);  // honest untouched
  }
}

TEST(AttackTest, AlieWithZeroZIsTheHonestMeanAndIpmIsMinusEpsMean) {
  Round r;
  Make(&r, 5, 3);
  AttackOptions o = Opts("alie");
  o.z = 0.0;
  FT_ASSERT_OK(ApplyAttack(o, 0, &r.updates, &r.storage).status());
  for (size_t k = 0; k < 3; ++k) {
    const double mean = (double(r.data[1][k]) + r.data[3][k] + r.data[4][k]) / 3;
    EXPECT_EQ(r.updates[0].parts[0][k], static_cast<float>(mean));
    EXPECT_EQ(r.updates[2].parts[0][k], static_cast<float>(mean));  // colluding: same vector
  }
  Make(&r, 5, 3);
  o = Opts("ipm");
  o.eps = 0.5;
  FT_ASSERT_OK(ApplyAttack(o, 0, &r.updates, &r.storage).status());
  for (size_t k = 0; k < 3; ++k) {
    const double mean = (double(r.data[1][k]) + r.data[3][k] + r.data[4][k]) / 3;
    EXPECT_EQ(r.updates[0].parts[0][k], static_cast<float>(-0.5 * mean));
  }
}

// The sign convention: in gradient space (the default) ALIE sends mean + z std of the updates
// (the spec's mean_g - z std_g of the gradients g = -update) and random_uniform sends -U; in
// update space mean - z std and +U.
TEST(AttackTest, GradientSpaceMirrorsAlieAndRandomUniform) {
  for (bool grad : {true, false}) {
    Round r;
    Make(&r, 5, 3);
    AttackOptions o = Opts("alie");
    o.z = 0.5;
    o.gradient_space = grad;
    FT_ASSERT_OK(ApplyAttack(o, 0, &r.updates, &r.storage).status());
    for (size_t k = 0; k < 3; ++k) {
      const double v[3] = {r.data[1][k], r.data[3][k], r.data[4][k]};
      const double mean = (v[0] + v[1] + v[2]) / 3;
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      const double sd = std::sqrt(ss / 2);
      EXPECT_FLOAT_EQ(r.updates[0].parts[0][k], static_cast<float>(grad ? mean + 0.5 * sd
                                                                         : mean - 0.5 * sd));
    }
    Make(&r, 5, 64);
    o = Opts("random_uniform");
    o.gradient_space = grad;
    FT_ASSERT_OK(ApplyAttack(o, 0, &r.updates, &r.storage).status());
    for (float x : Part(r, 0)) {
      if (grad) {
        EXPECT_TRUE(x <= 0.0f && x > -1.0f) << x;
      } else {
        EXPECT_TRUE(x >= 0.0f && x < 1.0f) << x;
      }
    }
  }
}

TEST(AttackTest, AlieZTable) {
  // The table of z_max for (p, f); 1e-4 is the table's rounding.
  EXPECT_NEAR(AlieZ(15, 1), 0.0837, 1e-4);
  EXPECT_NEAR(AlieZ(15, 2), 0.2533, 1e-4);
  EXPECT_NEAR(AlieZ(15, 3), 0.4307, 1e-4);
  EXPECT_NEAR(AlieZ(20, 4), 0.3853, 1e-4);
  EXPECT_NEAR(AlieZ(26, 5), 0.3957, 1e-4);
  EXPECT_NEAR(AlieZ(10, 2), 0.2533, 1e-4);
}

TEST(AttackTest, PartialDropZeroesAboutTheFractionAndKeepsTheRest) {
  Round r;
  Make(&r, 3, 20000);
  AttackOptions o = Opts("partial_drop");
  o.clients = {1};
  FT_ASSERT_OK(ApplyAttack(o, 3, &r.updates, &r.storage).status());
  size_t zeros = 0;
  for (size_t k = 0; k < 20000; ++k) {
    const float v = r.updates[1].parts[0][k];
    if (v == 0.0f && r.data[1][k] != 0.0f) ++zeros;
    else EXPECT_EQ(v, r.data[1][k]);
  }
  // 2000 expected; 5 binomial standard deviations (~212) of slack.
  EXPECT_NEAR(static_cast<double>(zeros), 2000.0, 212.0);
}

TEST(AttackTest, RandomAttacksAreDeterministicPerSeedRoundAndClient) {
  for (const char* name : {"random_uniform", "gaussian"}) {
    Round a, b, c;
    Make(&a, 4, 50);
    Make(&b, 4, 50);
    Make(&c, 4, 50);
    FT_ASSERT_OK(ApplyAttack(Opts(name), 7, &a.updates, &a.storage).status());
    FT_ASSERT_OK(ApplyAttack(Opts(name), 7, &b.updates, &b.storage).status());
    FT_ASSERT_OK(ApplyAttack(Opts(name), 8, &c.updates, &c.storage).status());
    EXPECT_EQ(Part(a, 0), Part(b, 0)) << name;
    EXPECT_NE(Part(a, 0), Part(c, 0)) << name;
    EXPECT_NE(Part(a, 0), Part(a, 2)) << name;  // per client
  }
}

TEST(AttackTest, CrashOmitRemovesAndOthersReplace) {
  Round r;
  Make(&r, 5, 4);
  FT_ASSERT_OK_AND_ASSIGN(int64_t n, ApplyAttack(Opts("crash_omit"), 0, &r.updates, &r.storage));
  EXPECT_EQ(n, 2);
  ASSERT_EQ(r.updates.size(), 3u);
  EXPECT_EQ(r.updates[0].id, 1u);
  Make(&r, 5, 4);
  FT_ASSERT_OK(ApplyAttack(Opts("crash_zero"), 0, &r.updates, &r.storage).status());
  EXPECT_EQ(Part(r, 2), std::vector<float>(4, 0.0f));
  Make(&r, 5, 4);
  FT_ASSERT_OK(ApplyAttack(Opts("nan"), 0, &r.updates, &r.storage).status());
  EXPECT_TRUE(std::isnan(r.updates[0].parts[0][1]));
  // Faulty clients that were not sampled: nothing happens.
  Make(&r, 5, 4);
  AttackOptions o = Opts("gaussian");
  o.clients = {17};
  FT_ASSERT_OK_AND_ASSIGN(n, ApplyAttack(o, 0, &r.updates, &r.storage));
  EXPECT_EQ(n, 0);
}

TEST(AttackTest, ValidateNamesTheField) {
  EXPECT_THAT(ValidateAttack(Opts("alie_typo")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.name must be one of")));
  AttackOptions o = Opts("gaussian");
  o.sigma = 0;
  EXPECT_THAT(ValidateAttack(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.sigma")));
  o = Opts("partial_drop");
  o.drop_prob = 1.5;
  EXPECT_THAT(ValidateAttack(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.drop_prob")));
}

TEST(AttackTest, PlacementsAreCheckedAndDefaulted) {
  EXPECT_EQ(DefaultAttackAt("label_flip"), AttackAt::kWorker);
  EXPECT_EQ(DefaultAttackAt("augmented"), AttackAt::kWorker);
  EXPECT_EQ(DefaultAttackAt("stale"), AttackAt::kWorker);
  EXPECT_EQ(DefaultAttackAt("alie"), AttackAt::kServer);
  FT_ASSERT_OK_AND_ASSIGN(AttackAt at, ParseAttackAt("", "stale"));
  EXPECT_EQ(at, AttackAt::kWorker);
  EXPECT_THAT(ParseAttackAt("client", "alie").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.at")));
  AttackOptions o = Opts("label_flip");
  o.at = AttackAt::kServer;
  EXPECT_THAT(ValidateAttack(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("attack.at must be \"worker\"")));
  o = Opts("crash_omit");
  o.at = AttackAt::kWorker;
  EXPECT_THAT(ValidateAttack(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("crash_omit")));
  o = Opts("stale");
  o.at = AttackAt::kWorker;
  o.stale_rounds = 0;
  EXPECT_THAT(ValidateAttack(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.stale_rounds")));
  o = Opts("augmented");
  o.at = AttackAt::kWorker;
  o.rho = 0;
  EXPECT_THAT(ValidateAttack(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.rho")));
  // The server placement leaves worker-placed attacks to the workers.
  Round r;
  Make(&r, 5, 4);
  o = Opts("gaussian");
  o.at = AttackAt::kWorker;
  FT_ASSERT_OK_AND_ASSIGN(int64_t n, ApplyAttack(o, 0, &r.updates, &r.storage));
  EXPECT_EQ(n, 0);
  EXPECT_EQ(Part(r, 0), r.data[0]);
}

// The worker placement computes each faulty vector with AttackVector from statistics of the
// vectors it recomputed; given the same vectors it must reproduce the server's bits.
TEST(AttackTest, AttackVectorReproducesTheServerPlacement) {
  for (const char* name : {"alie", "ipm", "sign_flip", "gaussian", "partial_drop", "random_uniform"})
    for (bool omniscient : {true, false}) {
      Round r;
      Make(&r, 6, 9);
      AttackOptions o = Opts(name);
      o.omniscient = omniscient;
      FT_ASSERT_OK(ApplyAttack(o, 3, &r.updates, &r.storage).status());
      std::vector<ConstVec> ref;
      for (size_t i = 0; i < 6; ++i)
        if (o.clients.count(i) != static_cast<size_t>(omniscient)) ref.push_back(r.data[i]);
      const ReferenceStats st = ComputeReferenceStats(o, ref);
      for (ClientId id : o.clients) {
        std::vector<float> v;
        FT_ASSERT_OK_AND_ASSIGN(const double z, RoundZ(o, 6, 2));
        FT_ASSERT_OK(AttackVector(o, 3, id, z, st, r.data[id], &v));
        EXPECT_EQ(v, Part(r, id)) << name << " omniscient=" << omniscient;
      }
    }
}

// With a faulty majority ALIE's z is infinite: the round fails loudly instead of sending NaN.
TEST(AttackTest, AlieWithAFaultyMajorityFailsTheRound) {
  Round r;
  Make(&r, 4, 3);
  AttackOptions o = Opts("alie");
  o.clients = {0, 1, 2};
  EXPECT_THAT(ApplyAttack(o, 0, &r.updates, &r.storage).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("f = 3 faulty of p = 4")));
  o.z = 1.5;  // a given z is used as it is
  Make(&r, 4, 3);
  FT_EXPECT_OK(ApplyAttack(o, 0, &r.updates, &r.storage).status());
}

TEST(AugmentTest, WarpLengthZeroIsTheIdentityAndTheMapIsInRange) {
  const std::vector<int32_t> id = LotkaVolterraMap(28, 28, 0.0);
  for (int32_t p = 0; p < 28 * 28; ++p) ASSERT_EQ(id[p], p);
  for (int k = 0; k < kNumWarps; ++k) {
    const std::vector<int32_t> m = LotkaVolterraMap(28, 28, WarpTime(k));
    ASSERT_EQ(m.size(), 784u);
    int moved = 0;
    for (int32_t p = 0; p < 784; ++p) {
      ASSERT_GE(m[p], -1);
      ASSERT_LT(m[p], 784);
      moved += m[p] != p;
    }
    EXPECT_GT(moved, 0) << "T = " << WarpTime(k);  // the flow moves some pixel
  }
  EXPECT_DOUBLE_EQ(WarpTime(0), 0.001);
  EXPECT_DOUBLE_EQ(WarpTime(9), 0.010);
}

// On the lines x = 0 and y = 0 the Lotka-Volterra system decouples: with x = 0, y' = -g y, so
// y(T) = y0 exp(-T); with y = 0, x' = a x, so x(T) = x0 exp(2T/3). Pixels there must read the
// source the closed form gives (RK4's error, ~1e-15 here, is far from the integer steps the
// truncation sees; the test skips a pixel whose exact source lies within 1e-9 of one).
TEST(AugmentTest, CentreRowAndColumnFollowTheClosedForms) {
  const int h = 28, w = 28;
  const double xm = w / 2.0, ym = h / 2.0;
  for (double t : {0.004, 0.01, 0.5}) {
    const std::vector<int32_t> m = LotkaVolterraMap(h, w, t);
    const int r0 = 14;  // x0 = xm - r0 = 0
    for (int c = 0; c < w; ++c) {
      const double sc = ym - (ym - c) * std::exp(-t);
      if (std::fabs(sc - std::round(sc)) < 1e-9) continue;
      const int expect_c = static_cast<int>(std::trunc(sc));
      EXPECT_EQ(m[r0 * w + c], r0 * w + expect_c) << "t=" << t << " c=" << c;
    }
    const int c0 = 14;  // y0 = ym - c0 = 0
    for (int r = 0; r < h; ++r) {
      const double sr = xm - (xm - r) * std::exp(2.0 * t / 3.0);
      if (std::fabs(sr - std::round(sr)) < 1e-9) continue;
      const double tr = std::trunc(sr);
      const int32_t expect = tr >= 0 && tr < h ? static_cast<int32_t>(tr) * w + c0 : -1;
      EXPECT_EQ(m[r * w + c0], expect) << "t=" << t << " r=" << r;
    }
  }
}

TEST(AugmentTest, ApplyWarpGathersAndFills) {
  const std::vector<int32_t> map = {2, -1, 0};
  const float in[3] = {1.f, 2.f, 3.f};
  float out[3];
  ApplyWarp(map, -0.5f, in, out);
  EXPECT_EQ(out[0], 3.f);
  EXPECT_EQ(out[1], -0.5f);
  EXPECT_EQ(out[2], 1.f);
}

}  // namespace
}  // namespace fedtrain
