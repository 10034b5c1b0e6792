// The attack harness: exact definitions (sign flip, ALIE with z = 0, IPM), ALIE's z table,
// partial drop, determinism of random attacks, crash_omit, and config checks.
#include "attacks/attack.h"

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

}  // namespace
}  // namespace fedtrain
