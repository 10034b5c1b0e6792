// Inputs that used to abort the process or let a hopeless run exit 0 (issue 18 item 7), run
// through the real `fedtrain simulate`: out-of-range threads, momentum and rates and a model
// too big for memory are refused at load with a message naming the field (exit 1, no run
// folder); a folder given as --config is "a directory"; a run whose updates are all rejected
// round after round (a learning rate that is valid but diverges) fails after
// federation.max_rejected_rounds rounds with the reasons, in error.txt too.
// Every child is waited for by pid; a watchdog kills one that hangs.
#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

namespace fs = std::filesystem;
using ::fedtrain::testing::Child;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::Spawn;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::Wait;
using ::fedtrain::testing::Watchdog;
using ::testing::HasSubstr;

constexpr const char* kRunName = ::fedtrain::testing::kSyntheticRunName;

struct Outcome {
  int rc = -1;
  std::string err;
};

// `fedtrain simulate` of the synthetic example into <dir>/out with `sets`.
Outcome Simulate(const TempDir& dir, const std::vector<std::string>& sets,
                 const std::string& config = ::fedtrain::testing::SyntheticConfig()) {
  std::vector<std::string> args = {"simulate", "--config", config, "--out", dir.File("out"),
                                   "--set", "output.progress=none"};
  for (const std::string& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  Watchdog dog(absl::Seconds(60));
  Child c = Spawn(args, dir.File("err"), false);
  dog.Add(c.pid);
  Outcome o;
  o.rc = Wait(c.pid);
  o.err = ReadFileBytes(dir.File("err"));
  return o;
}

bool NoRunFolder(const TempDir& dir) {
  return !fs::exists(dir.File(absl::StrCat("out/", kRunName))) &&
         !fs::exists(dir.File(absl::StrCat("out/", kRunName, ".partial")));
}

// Each used to end otherwise: threads=100000 in an uncaught std::system_error (SIGABRT after
// ~20 s); momentum 5, lr 1e308 and lr_decay 1e300 in a run that rejected every update and
// exited 0; model.hidden=1e9 in std::bad_alloc, leaving a .partial folder without error.txt.
TEST(BadInputTest, OutOfRangeSettingsAreRefusedAtLoadNamingTheField) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"threads=100000"}, "threads must be at most 1024"},
      {{"local.momentum=5"}, "local.momentum"},
      {{"local.lr=1e308"}, "local.lr must be at most"},
      {{"local.lr_decay=1e300"}, "local.lr_decay"},
      {{"model.type=mlp", "model.hidden=1000000000"}, "model.hidden"},
      {{"model.type=mlp", "model.hidden=100000,100000"}, "lower model.hidden"},
  };
  for (const auto& [sets, want] : cases) {
    TempDir dir;
    const Outcome o = Simulate(dir, sets);
    EXPECT_EQ(o.rc, 1) << sets[0] << ": " << o.err;
    EXPECT_THAT(o.err, HasSubstr(want)) << sets.back();
    EXPECT_TRUE(NoRunFolder(dir)) << sets.back() << ": refused before any folder is made";
  }
}

TEST(BadInputTest, AFolderAsConfigIsADirectory) {
  TempDir dir;
  fs::create_directories(dir.File("cfg.json"));
  const Outcome o = Simulate(dir, {}, dir.File("cfg.json"));
  EXPECT_EQ(o.rc, 1);
  EXPECT_THAT(o.err, HasSubstr("is a directory"));
  EXPECT_THAT(o.err, ::testing::Not(HasSubstr("Unexpected end of string")));
}

// local.lr = 3e38 is within float32, so it passes the load checks, but every local step
// overflows and every update is non-finite: every round rejects all of them.
TEST(BadInputTest, AllUpdatesRejectedForKRoundsFailsTheRunWithTheReason) {
  TempDir dir;
  const Outcome o = Simulate(dir, {"local.lr=3e38", "rounds=50", "federation.max_rejected_rounds=3"});
  EXPECT_EQ(o.rc, 1) << o.err;
  EXPECT_THAT(o.err, HasSubstr("rounds 1 to 3 accepted no update: every reply was rejected in 3"));
  EXPECT_THAT(o.err, HasSubstr("federation.max_rejected_rounds = 3"));
  EXPECT_THAT(o.err, HasSubstr("non-finite"));  // the reason itself
  const std::string error_txt =
      ReadFileBytes(dir.File(absl::StrCat("out/", kRunName, ".partial/error.txt")));
  EXPECT_THAT(error_txt, HasSubstr("every reply was rejected"));
  // Three rounds ran, each with its metrics row; the failing third is not written.
  const std::string csv =
      ReadFileBytes(dir.File(absl::StrCat("out/", kRunName, ".partial/metrics.csv")));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;  // header + rounds 0, 1
}

TEST(BadInputTest, MaxRejectedRoundsZeroLetsSuchARunGoOn) {
  TempDir dir;
  const Outcome o = Simulate(dir, {"local.lr=3e38", "rounds=8", "federation.max_rejected_rounds=0"});
  EXPECT_EQ(o.rc, 0) << o.err;
  EXPECT_TRUE(fs::exists(dir.File(absl::StrCat("out/", kRunName, "/summary.json"))));
}

}  // namespace
}  // namespace fedtrain
