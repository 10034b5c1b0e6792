// Integration tests of `fedtrain ef-validate` (cli/ef_validate.h): the command function that
// the binary's dispatch calls, run on a tiny config (exit code, printed table, table.txt,
// table.csv and results.json), on bad configs (exit 2, the message names the field), and on
// every example config in examples/ef/ (each must parse and plan; running them is minutes).
#include "cli/ef_validate.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedtrain/v1/ef_validation.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "sim/ef_validation.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::WriteFileBytes;
using ::testing::HasSubstr;

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

std::string ReadAll(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

CommandResult RunCommand(const std::vector<std::string>& args) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  CommandResult r;
  r.exit_code = EfValidateCommand(args, out, err);
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

constexpr char kTinyConfig[] = R"({
  "name": "tiny",
  "experiments": [
    {"name": "three", "problem": {"kind": "three_workers"}, "rounds": 200, "gamma": [0.01],
     "methods": [{"method": "naive"}, {"method": "ef14"}, {"method": "ef21"}, {"method": "gd"}],
     "report_rounds": [100]},
    {"name": "quad", "problem": {"kind": "quadratics", "num_workers": 4, "dim": 8, "zeta": 1,
     "sigma": 0.1}, "compression": {"compressor": "topk", "k": 2}, "rounds": 100,
     "gamma_factor": [1],
     "methods": [{"method": "ef21w", "step_mean": "am"}, {"method": "econtrol", "eta": [0.1]}]}
  ]
})";

TEST(EfValidateCommandTest, TinyConfigWritesTables) {
  TempDir dir;
  WriteFileBytes(dir.File("tiny.json"), kTinyConfig);
  const std::string out_dir = dir.File("out");
  CommandResult r = RunCommand({"--config", dir.File("tiny.json"), "--out", out_dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("== three: three_workers"));
  EXPECT_THAT(r.out, HasSubstr("econtrol eta=0.1"));
  EXPECT_THAT(r.err, HasSubstr("[6/6] quad"));
  EXPECT_EQ(ReadFileBytes(out_dir + "/table.txt").substr(0, 10), r.out.substr(0, 10));
  const std::vector<std::string> csv =
      absl::StrSplit(ReadFileBytes(out_dir + "/table.csv"), '\n', absl::SkipEmpty());
  ASSERT_EQ(csv.size(), 7u);  // header + 6 runs
  EXPECT_THAT(csv[0], HasSubstr("experiment,problem,method,label,gamma"));
  EXPECT_THAT(csv[0], HasSubstr("grad2_r100"));
  EXPECT_THAT(csv[1], HasSubstr("three,three_workers,naive,naive,0.01"));
  const std::string json = ReadFileBytes(out_dir + "/results.json");
  EXPECT_THAT(json, HasSubstr("\"name\": \"tiny\""));
  EXPECT_THAT(json, HasSubstr("\"method\": \"ef21w\""));
  EXPECT_THAT(json, HasSubstr("\"step_mean\": \"am\""));
}

TEST(EfValidateCommandTest, BadConfigsExitTwoNamingTheField) {
  TempDir dir;
  struct Case {
    std::string json, message;
  } cases[] = {
      {R"({"experiments": [{"problem": {"kind": "quadratics"}, "rounds": 10, "gamma": [0.1],
          "methods": [{"method": "econtrol", "eta": [1.5]}]}]})",
       "experiments[0].methods[0].eta[0]: must be in [0, 1), got 1.5"},
      {R"({"experiments": [{"problem": {"kind": "quadratics"}, "rounds": 10, "gamma": [0.1],
          "methods": [{"method": "gd"}], "colour": "red"}]})",
       "colour"},
      {R"({"experiments": [{"problem": {"kind": "quadratics"}, "rounds": "ten"}]})", "rounds"},
      {R"({"experiments": []})", "experiments"},
  };
  for (const Case& c : cases) {
    WriteFileBytes(dir.File("bad.json"), c.json);
    CommandResult r = RunCommand({"--config", dir.File("bad.json"), "--out", dir.File("o")});
    EXPECT_EQ(r.exit_code, 2) << c.json;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.json;
    EXPECT_FALSE(std::filesystem::exists(dir.File("o")));
  }
  // Usage errors.
  EXPECT_EQ(RunCommand({}).exit_code, 2);
  EXPECT_EQ(RunCommand({"--config"}).exit_code, 2);
  EXPECT_EQ(RunCommand({"--config", dir.File("x.json"), "--bogus"}).exit_code, 2);
  CommandResult missing = RunCommand({"--config", dir.File("missing.json")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("missing.json"));
  CommandResult help = RunCommand({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("usage: fedtrain ef-validate --config FILE"));
  // A missing data file is a run failure (1), not a config error.
  WriteFileBytes(dir.File("csv.json"), R"({"breast_cancer_csv": "/nonexistent/bc.csv",
      "experiments": [{"problem": {"kind": "logreg"}, "rounds": 10, "gamma": [0.1],
      "methods": [{"method": "ef21"}]}]})");
  CommandResult nocsv = RunCommand({"--config", dir.File("csv.json")});
  EXPECT_EQ(nocsv.exit_code, 1);
  EXPECT_THAT(nocsv.err, HasSubstr("/nonexistent/bc.csv"));
}

std::string SourceDir() {
  const char* env = std::getenv("FEDTRAIN_SOURCE_DIR");
  return env && *env ? env : FEDTRAIN_TEST_DEFAULT_SOURCE_DIR;
}

TEST(EfValidateCommandTest, ExampleConfigsPlan) {
  const std::string dir = SourceDir() + "/examples/ef";
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++seen;
    SCOPED_TRACE(entry.path().string());
    v1::EfValidationConfig cfg;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(ReadFileBytes(entry.path()), &cfg).ok());
    absl::StatusOr<EfValidationPlan> plan = PlanEfValidation(cfg);
    if (absl::IsNotFound(plan.status())) continue;  // breast_cancer.csv not installed
    EXPECT_THAT(plan, ::fedtrain::testing::IsOk());
  }
  EXPECT_GE(seen, 4);
}

}  // namespace
}  // namespace fedtrain
