// `fedtrain simulate` interrupted by a real signal, and `fedtrain simulate --resume`:
//  - SIGINT mid-run leaves the .partial folder consistent: error.txt says interrupted and after
//    which round, metrics.csv holds exactly the rounds 1..K done (1-based, none twice), and
//    checkpoint.ftc holds round K although checkpoint.every would not have written it there;
//    the exit status is 128 + SIGINT. `simulate --resume DIR` then finishes the run with the
//    final weights (model.ftw bytes and summary hash) of an uninterrupted run, and metrics
//    rows 1..N once each.
//  - SIGTERM on a run whose clients keep their own state in the process (SCAFFOLD) says it
//    cannot be resumed and leaves no checkpoint to resume from wrongly.
// The signal is sent once the progress log shows round 2, so the run is under way; a run long
// enough (rounds below) that it cannot end before the signal arrives. No fixed sleeps.
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

namespace fs = std::filesystem;
using ::fedtrain::testing::Child;
using ::fedtrain::testing::MetricsColumn;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::Spawn;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::Wait;
using ::fedtrain::testing::WaitForText;
using ::fedtrain::testing::Watchdog;
using ::testing::HasSubstr;

constexpr const char* kRunName = ::fedtrain::testing::kSyntheticRunName;
// Enough rounds of the tiny synthetic example, made cheap (one local epoch, 5 clients a round:
// well under a millisecond a round in the release build, a few tens of milliseconds under
// the sanitizers), that the signal, sent when round 2 is logged, always lands well before the
// end.
constexpr int kRounds = 600;

std::vector<std::string> Args(const std::string& out, const std::vector<std::string>& sets) {
  std::vector<std::string> a = {"simulate", "--config", ::fedtrain::testing::SyntheticConfig(),
                                "--out", out, "--set", absl::StrCat("rounds=", kRounds),
                                "--set", "eval_every=1", "--set", "output.progress=lines",
                                "--set", "local.epochs=1", "--set", "federation.clients_per_round=5",
                                "--threads=2"};
  for (const std::string& s : sets) a.insert(a.end(), {"--set", s});
  return a;
}

// "... after round K of N ..." in `text`; -1 when absent.
int64_t RoundAfter(const std::string& text) {
  const size_t at = text.find("after round ");
  if (at == std::string::npos) return -1;
  const size_t start = at + 12, end = text.find(' ', start);
  int64_t k = -1;
  if (!absl::SimpleAtoi(text.substr(start, end - start), &k)) return -1;
  return k;
}

std::string SummaryHash(const std::string& run) {
  const std::string s = ReadFileBytes(run + "/summary.json");
  const size_t at = s.find("\"weights_fnv1a64\":\"");
  return at == std::string::npos ? "" : s.substr(at + 19, 16);
}

TEST(SimulateInterruptTest, SigintLeavesAConsistentFolderAndResumeIsBitIdentical) {
  TempDir dir;
  Watchdog dog(absl::Seconds(600));  // sanitizer builds are slow
  const std::vector<std::string> sets = {"checkpoint.every=1000"};
  // The uninterrupted reference.
  Child ref = Spawn(Args(dir.File("ref"), sets), dir.File("ref.err"), false);
  dog.Add(ref.pid);
  ASSERT_EQ(Wait(ref.pid), 0) << ReadFileBytes(dir.File("ref.err"));
  const std::string ref_run = dir.File("ref") + "/" + kRunName;

  Child c = Spawn(Args(dir.File("out"), sets), dir.File("run.err"), false);
  dog.Add(c.pid);
  ASSERT_TRUE(WaitForText(dir.File("run.err"), absl::StrCat("round 2/", kRounds)));
  ASSERT_EQ(kill(c.pid, SIGINT), 0);
  EXPECT_EQ(Wait(c.pid), 128 + SIGINT) << ReadFileBytes(dir.File("run.err"));

  const std::string partial = dir.File("out") + "/" + kRunName + ".partial";
  ASSERT_TRUE(fs::is_directory(partial)) << ReadFileBytes(dir.File("run.err"));
  const std::string error = ReadFileBytes(partial + "/error.txt");
  EXPECT_THAT(error, HasSubstr("interrupted (signal 2)"));
  const int64_t k = RoundAfter(error);
  ASSERT_GE(k, 2) << error;
  ASSERT_LT(k, kRounds) << error;
  EXPECT_THAT(error, HasSubstr(absl::StrCat("checkpoint.ftc holds round ", k)));
  // Every round done is in the metrics, numbered 1..K, and nothing after it.
  const std::vector<int64_t> rounds = MetricsColumn(partial + "/metrics.csv", "round");
  ASSERT_EQ(rounds.size(), static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) EXPECT_EQ(rounds[i], i + 1);
  EXPECT_TRUE(fs::exists(partial + "/checkpoint.ftc"));
  EXPECT_FALSE(fs::exists(partial + "/summary.json"));

  // Resume by the folder alone: the config comes from its config.json.
  Child r = Spawn({"simulate", "--resume", partial, "--threads", "1"}, dir.File("resume.err"),
                  false);
  dog.Add(r.pid);
  ASSERT_EQ(Wait(r.pid), 0) << ReadFileBytes(dir.File("resume.err"));
  const std::string run = dir.File("out") + "/" + kRunName;
  ASSERT_TRUE(fs::exists(run + "/summary.json"));
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_FALSE(fs::exists(run + "/error.txt"));
  EXPECT_EQ(ReadFileBytes(run + "/model.ftw"), ReadFileBytes(ref_run + "/model.ftw"));
  EXPECT_EQ(SummaryHash(run), SummaryHash(ref_run));
  EXPECT_EQ(SummaryHash(run).size(), 16u);
  const std::vector<int64_t> all = MetricsColumn(run + "/metrics.csv", "round");
  ASSERT_EQ(all.size(), static_cast<size_t>(kRounds));
  for (int64_t i = 0; i < kRounds; ++i) ASSERT_EQ(all[i], i + 1);
}

TEST(SimulateInterruptTest, SigtermOnARunWithClientStateSaysItCannotBeResumed) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  Child c = Spawn(Args(dir.File("out"), {"algorithm.name=scaffold", "checkpoint.every=1"}),
                  dir.File("run.err"), false);
  dog.Add(c.pid);
  ASSERT_TRUE(WaitForText(dir.File("run.err"), absl::StrCat("round 2/", kRounds)));
  ASSERT_EQ(kill(c.pid, SIGTERM), 0);
  EXPECT_EQ(Wait(c.pid), 128 + SIGTERM) << ReadFileBytes(dir.File("run.err"));
  const std::string partial = dir.File("out") + "/" + kRunName + ".partial";
  const std::string error = ReadFileBytes(partial + "/error.txt");
  EXPECT_THAT(error, HasSubstr("interrupted (signal 15)"));
  EXPECT_THAT(error, HasSubstr("cannot be resumed"));
  EXPECT_FALSE(fs::exists(partial + "/checkpoint.ftc"));
  const int64_t k = RoundAfter(error);
  EXPECT_EQ(MetricsColumn(partial + "/metrics.csv", "round").size(), static_cast<size_t>(k));
  // A resume is refused with the reason (no checkpoint), exit 1.
  Child r = Spawn({"simulate", "--resume", partial}, dir.File("resume.err"), false);
  dog.Add(r.pid);
  EXPECT_EQ(Wait(r.pid), 1);
  EXPECT_THAT(ReadFileBytes(dir.File("resume.err")), HasSubstr("checkpoint"));
}

}  // namespace
}  // namespace fedtrain
