// Differential privacy end to end through the real `fedtrain` binary (docs/privacy.md):
// a simulated run with RQM reports (epsilon, delta) every round in metrics.csv/jsonl and in
// summary.json, equal to the accountant's numbers; privacy.budget_epsilon stops training
// cleanly (exit 0, model and metrics written, the reason in summary.json); bad privacy
// configs exit 1 naming the field; `fedtrain privacy` answers by flags and for a config.
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "compression/privacy_accountant.h"
#include "tests/testing/process.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::Child;
using ::fedtrain::testing::ReadAll;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::Spawn;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::Wait;
using ::fedtrain::testing::Watchdog;
using ::testing::HasSubstr;

constexpr const char* kRunName = ::fedtrain::testing::kSyntheticRunName;
// examples/synthetic_logreg.json: softmax on 60 features and 10 classes.
constexpr uint64_t kDim = 610;

struct Result {
  int rc = -1;
  std::string out, err;
};

Result RunBin(const TempDir& dir, const std::vector<std::string>& args) {
  Watchdog dog;
  Child c = Spawn(args, dir.File("err.txt"), true);
  dog.Add(c.pid);
  Result r;
  r.out = ReadAll(c.pipe_fd);
  r.rc = Wait(c.pid);
  r.err = ReadFileBytes(dir.File("err.txt"));
  return r;
}

std::vector<std::string> SimArgs(const std::string& out, const std::vector<std::string>& sets) {
  std::vector<std::string> a = {"simulate", "--config", ::fedtrain::testing::SyntheticConfig(),
                                "--out", out, "--set", "output.progress=none"};
  for (const std::string& s : sets) {
    a.push_back("--set");
    a.push_back(s);
  }
  return a;
}

// A double column of metrics.csv by header name.
std::vector<double> Column(const std::string& csv_path, const std::string& name) {
  const std::string text = ReadFileBytes(csv_path);
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  std::vector<double> out;
  if (lines.empty()) return out;
  const std::vector<std::string> head = absl::StrSplit(lines[0], ',');
  size_t col = head.size();
  for (size_t i = 0; i < head.size(); ++i)
    if (head[i] == name) col = i;
  if (col == head.size()) return out;
  for (size_t l = 1; l < lines.size(); ++l) {
    const std::vector<std::string> f = absl::StrSplit(lines[l], ',');
    double v = std::nan("");
    if (col < f.size()) (void)absl::SimpleAtod(f[col], &v);
    out.push_back(v);
  }
  return out;
}

// The number after "key": in a flat JSON object.
double JsonNumber(const std::string& json, const std::string& key) {
  const std::string k = absl::StrCat("\"", key, "\":");
  const size_t at = json.find(k);
  if (at == std::string::npos) return std::nan("");
  size_t p = at + k.size();
  while (p < json.size() && json[p] == ' ') ++p;
  size_t e = p;
  while (e < json.size() && std::string("0123456789+-.eE").find(json[e]) != std::string::npos) ++e;
  double v = std::nan("");
  (void)absl::SimpleAtod(json.substr(p, e - p), &v);
  return v;
}

const std::vector<std::string> kRqm = {"privacy.mechanism=rqm", "privacy.clip=0.05",
                                       "privacy.range_extension=0.1", "privacy.levels=8",
                                       "privacy.keep_prob=0.5", "rounds=4"};

AccountantOptions RqmAccountant() {
  AccountantOptions o;
  o.rqm.clip = 0.05;
  o.rqm.delta = 0.1;
  o.rqm.levels = 8;
  o.rqm.keep = 0.5;
  o.dim = kDim;
  o.rate = 10.0 / 30.0;
  return o;
}

TEST(PrivacyRunTest, EpsilonEveryRoundMatchesTheAccountant) {
  TempDir dir;
  Result r = RunBin(dir, SimArgs(dir.File("runs"), kRqm));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("privacy: epsilon"));
  EXPECT_THAT(r.out, HasSubstr("untrusted_server"));
  const std::string run = dir.File(absl::StrCat("runs/", kRunName));
  const std::vector<double> eps = Column(run + "/metrics.csv", "epsilon");
  const std::vector<double> delta = Column(run + "/metrics.csv", "delta");
  ASSERT_EQ(eps.size(), 4u);
  ASSERT_EQ(delta.size(), 4u);
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(RqmAccountant()));
  // The most-used client of rounds 0..t has sent between 1 and t + 1 messages; epsilon is the
  // accountant's for one of those counts, and never decreases.
  for (size_t t = 0; t < eps.size(); ++t) {
    EXPECT_EQ(delta[t], 1e-5);
    bool matches = false;
    for (uint64_t k = 1; k <= t + 1; ++k)
      // metrics.csv prints 9 significant digits: 1e-8 relative.
      matches |= std::fabs(acc.After(t + 1, k).epsilon - eps[t]) <= 1e-8 * eps[t];
    EXPECT_TRUE(matches) << "round " << t << " epsilon " << eps[t];
    if (t > 0) {
      EXPECT_GE(eps[t], eps[t - 1]);
    }
  }
  const std::string summary = ReadFileBytes(run + "/summary.json");
  EXPECT_NEAR(JsonNumber(summary, "epsilon"), eps.back(), 1e-8 * eps.back());
  EXPECT_THAT(summary, HasSubstr("\"privacy_guarantee\":\"untrusted_server\""));
  EXPECT_THAT(ReadFileBytes(run + "/metrics.jsonl"), HasSubstr("\"epsilon\""));
}

TEST(PrivacyRunTest, BudgetStopsTrainingCleanly) {
  TempDir dir;
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(RqmAccountant()));
  // Between one and two messages' worth: the run stops once some client would send twice.
  const double budget = 0.5 * (acc.After(1, 1).epsilon + acc.After(2, 2).epsilon);
  std::vector<std::string> sets = kRqm;
  sets.back() = "rounds=30";
  sets.push_back(absl::StrCat("privacy.budget_epsilon=", budget));
  Result r = RunBin(dir, SimArgs(dir.File("runs"), sets));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("stopped early: privacy budget"));
  const std::string run = dir.File(absl::StrCat("runs/", kRunName));
  const std::vector<double> eps = Column(run + "/metrics.csv", "epsilon");
  ASSERT_GE(eps.size(), 1u);
  EXPECT_LT(eps.size(), 30u);
  for (double e : eps) EXPECT_LE(e, budget);
  const std::string summary = ReadFileBytes(run + "/summary.json");
  EXPECT_THAT(summary, HasSubstr("\"stop_reason\":\"privacy budget"));
  EXPECT_EQ(JsonNumber(summary, "rounds"), static_cast<double>(eps.size()));
  EXPECT_FALSE(ReadFileBytes(run + "/model.ftw").empty());
  EXPECT_FALSE(std::isnan(JsonNumber(summary, "test_accuracy")));
}

TEST(PrivacyRunTest, BadConfigsAreRefusedNamingTheField) {
  const struct {
    std::vector<std::string> sets;
    std::string field;
  } cases[] = {
      {{"privacy.keep_prob=1"}, "privacy.keep_prob"},
      {{"privacy.range_extension=0"}, "privacy.range_extension"},
      {{"privacy.clip=0"}, "privacy.clip"},
      {{"privacy.clip=-1"}, "privacy.clip"},
      {{"privacy.levels=1"}, "privacy.levels"},
      {{"privacy.budget_epsilon=0.001"}, "privacy.budget_epsilon"},
      {{"privacy.guarantee=trusted_aggregator", "privacy.amplification=true"},
       "privacy.secret_sampling"},
      {{"privacy.amplification=true"}, "privacy.amplification"},
      {{"compression.compressor=topk", "compression.k_fraction=0.1"}, "compression.compressor"},
      {{"algorithm.name=scaffold"}, "privacy.mechanism"},
  };
  for (const auto& c : cases) {
    TempDir dir;
    std::vector<std::string> sets = kRqm;
    sets.insert(sets.end(), c.sets.begin(), c.sets.end());
    Result r = RunBin(dir, SimArgs(dir.File("runs"), sets));
    EXPECT_EQ(r.rc, 1) << c.field << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.field));
  }
}

// The Gaussian baseline: local noise calibrated to a target, epsilon per round from the
// accountant; distributed noise needs the trusted aggregator and uniform weighting.
TEST(PrivacyRunTest, GaussianLocalAndDistributed) {
  TempDir dir;
  Result r = RunBin(dir, SimArgs(dir.File("runs"),
                                 {"privacy.mechanism=gaussian", "privacy.placement=local",
                                  "privacy.clip=0.05", "privacy.target_epsilon=20000",
                                  "rounds=4"}));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("noise_multiplier"));
  const std::string run = dir.File(absl::StrCat("runs/", kRunName));
  const std::vector<double> eps = Column(run + "/metrics.csv", "epsilon");
  ASSERT_EQ(eps.size(), 4u);
  const std::string summary = ReadFileBytes(run + "/summary.json");
  AccountantOptions o;
  o.mechanism = "gaussian";
  o.placement = "local";
  o.dim = kDim;
  o.rate = 10.0 / 30.0;
  o.noise_multiplier = JsonNumber(summary, "noise_multiplier");
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(o));
  // Calibrated for 4 messages: at most 20000 after the run (which may send fewer).
  EXPECT_LE(eps.back(), 20000.0 * (1 + 1e-8));
  for (size_t t = 0; t < eps.size(); ++t) {
    bool matches = false;
    for (uint64_t k = 1; k <= t + 1; ++k)  // 9 significant digits in metrics.csv
      matches |= std::fabs(acc.After(t + 1, k).epsilon - eps[t]) <= 1e-8 * eps[t];
    EXPECT_TRUE(matches) << "round " << t << " epsilon " << eps[t];
  }
  TempDir d2;
  Result bad = RunBin(d2, SimArgs(d2.File("runs"), {"privacy.mechanism=gaussian",
                                                    "privacy.placement=distributed",
                                                    "privacy.noise_multiplier=1"}));
  EXPECT_EQ(bad.rc, 1);
  EXPECT_THAT(bad.err, HasSubstr("privacy.guarantee"));
  TempDir d3;
  Result bad2 = RunBin(d3, SimArgs(d3.File("runs"), {"privacy.mechanism=gaussian",
                                                     "privacy.placement=distributed",
                                                     "privacy.guarantee=trusted_aggregator",
                                                     "privacy.noise_multiplier=1"}));
  EXPECT_EQ(bad2.rc, 1);
  EXPECT_THAT(bad2.err, HasSubstr("algorithm.weighting"));
  TempDir d4;
  Result good = RunBin(d4, SimArgs(d4.File("runs"), {"privacy.mechanism=gaussian",
                                                     "privacy.placement=distributed",
                                                     "privacy.guarantee=trusted_aggregator",
                                                     "algorithm.weighting=uniform",
                                                     "privacy.clip=1", "privacy.noise_multiplier=1",
                                                     "rounds=3"}));
  ASSERT_EQ(good.rc, 0) << good.err;
  EXPECT_THAT(good.out, HasSubstr("trusted_aggregator"));
  // Central: the server adds the noise; the same accountant, hence the same epsilon column,
  // and other weights (other noise draws).
  TempDir d5;
  Result central = RunBin(d5, SimArgs(d5.File("runs"), {"privacy.mechanism=gaussian",
                                                        "privacy.placement=central",
                                                        "privacy.guarantee=trusted_aggregator",
                                                        "algorithm.weighting=uniform",
                                                        "privacy.clip=1", "privacy.noise_multiplier=1",
                                                        "rounds=3"}));
  ASSERT_EQ(central.rc, 0) << central.err;
  const std::string r4 = d4.File(absl::StrCat("runs/", kRunName));
  const std::string r5 = d5.File(absl::StrCat("runs/", kRunName));
  EXPECT_EQ(Column(r5 + "/metrics.csv", "epsilon"), Column(r4 + "/metrics.csv", "epsilon"));
  EXPECT_NE(ReadFileBytes(r5 + "/model.ftw"), ReadFileBytes(r4 + "/model.ftw"));
  EXPECT_THAT(ReadFileBytes(r5 + "/summary.json"), HasSubstr("\"placement\":\"central\""));
}

TEST(PrivacyCommandTest, FlagsAnswerEqualsTheAccountant) {
  TempDir dir;
  Result r = RunBin(dir, {"privacy", "--mechanism", "gaussian", "--sampling", "poisson", "--rate",
                       "0.01", "--noise-multiplier", "1.1", "--rounds", "1000", "--delta",
                       "1e-5"});
  ASSERT_EQ(r.rc, 0) << r.err;
  AccountantOptions o;
  o.mechanism = "gaussian";
  o.guarantee = PrivacyGuarantee::kTrustedAggregator;
  o.sampling = "poisson";
  o.rate = 0.01;
  o.amplification = o.secret_sampling = true;
  o.noise_multiplier = 1.1;
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(o));
  const double want = acc.After(1000, 1000).epsilon;
  // The JSON prints 17 significant digits.
  EXPECT_NEAR(JsonNumber(r.out, "epsilon"), want, 1e-12 * want) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\"guarantee\":\"trusted_aggregator\""));
  // Calibration: the noise multiplier for that epsilon is about 1.1 again.
  Result c = RunBin(dir, {"privacy", "--mechanism", "gaussian", "--sampling", "poisson", "--rate",
                       "0.01", "--rounds", "1000", "--target-epsilon", absl::StrCat(want)});
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_NEAR(JsonNumber(c.out, "calibrated"), 1.1, 1e-6) << c.out;
  // No answer: exit 1 with the reason.
  Result bad = RunBin(dir, {"privacy", "--mechanism", "rqm", "--range-extension", "0"});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_THAT(bad.err, HasSubstr("privacy.range_extension"));
  Result usage = RunBin(dir, {"privacy"});
  EXPECT_EQ(usage.rc, 2);
}

TEST(PrivacyCommandTest, ConfigWithTargetIsCalibrated) {
  TempDir dir;
  std::vector<std::string> args = {"privacy", "--config", ::fedtrain::testing::SyntheticConfig()};
  for (const char* s : {"privacy.mechanism=rqm", "privacy.clip=0.05", "privacy.target_epsilon=5000",
                        "rounds=10"}) {
    args.push_back("--set");
    args.push_back(s);
  }
  Result r = RunBin(dir, args);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(JsonNumber(r.out, "dim"), static_cast<double>(kDim)) << r.out;
  const double eps = JsonNumber(r.out, "epsilon");
  EXPECT_LE(eps, 5000.0);
  EXPECT_NEAR(eps, 5000.0, 1e-6 * 5000) << r.out;
  EXPECT_GT(JsonNumber(r.out, "range_extension"), 0.0);
}

}  // namespace
}  // namespace fedtrain
