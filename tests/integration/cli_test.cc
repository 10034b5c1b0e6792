// Integration tests of the `fedtrain` command-line binary: each test starts the real binary
// (FEDTRAIN_BIN, set by CTest) as a child process and checks its exit code, what it prints
// and what it leaves on disk. Covered: usage errors and --help (exit 2 / 0), config and data
// errors (exit 1, stderr names the problem, no run folder is left), a tiny synthetic run and
// the files of its run folder, run-name de-duplication, `fedtrain plot` on that run,
// determinism across --threads, and --print-config.
//
// Runs use the synthetic data set and 3 rounds so the whole binary takes a few seconds; the
// Fashion-MNIST cases fail while loading the data, before any training.
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/config_io.h"
#include "aggregators/flag_reducer.h"
#include "aggregators/krum_reducer.h"
#include "core/rng.h"
#include "runtime/model_file.h"
#include "runtime/npy.h"
#include "runtime/tensorboard.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

namespace fs = std::filesystem;
using ::fedtrain::testing::ListDir;
using ::fedtrain::testing::MetricsColumn;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::WriteFileBytes;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// A child that runs longer than this is killed: every command here finishes in seconds, so
// reaching it means the binary hangs, and the test reports that instead of hanging CTest.
constexpr absl::Duration kChildTimeout = absl::Seconds(120);

// The run name in examples/synthetic_logreg.json.
constexpr char kSyntheticRunName[] = "synthetic_1_1_logreg";

// What the main usage text, and the simulate and plot help texts, start with.
constexpr char kMainUsage[] = "usage: fedtrain <command>";
constexpr char kSimulateUsage[] = "usage: fedtrain simulate --config FILE";
constexpr char kPlotUsage[] = "usage: fedtrain plot RUN_DIR";

struct ChildResult {
  int exit_code = -1;  // -1 when the child did not exit normally (killed by a signal)
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string EnvOrEmpty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// CTest sets FEDTRAIN_BIN and FEDTRAIN_SOURCE_DIR (fedtrain_test in the top CMakeLists.txt);
// the compiled-in paths of this build serve when the binary is run by hand.
std::string FedtrainBin() {
  const std::string env = EnvOrEmpty("FEDTRAIN_BIN");
  return env.empty() ? FEDTRAIN_TEST_DEFAULT_BIN : env;
}

std::string SourceDir() {
  const std::string env = EnvOrEmpty("FEDTRAIN_SOURCE_DIR");
  return env.empty() ? FEDTRAIN_TEST_DEFAULT_SOURCE_DIR : env;
}

std::string Example(const std::string& file) {
  return absl::StrCat(SourceDir(), "/examples/", file);
}

// Runs FEDTRAIN_BIN with `args` (no shell: each argument reaches argv unchanged) in the
// working directory `cwd`, stdin from /dev/null, stdout and stderr captured in files of a
// private temporary folder. Waits for the child, killing it (SIGKILL, by pid) after
// kChildTimeout.
ChildResult RunFedtrain(const std::vector<std::string>& args, const std::string& cwd) {
  ChildResult result;
  TempDir io;
  const std::string bin = FedtrainBin();
  const std::string out_path = io.File("stdout");
  const std::string err_path = io.File("stderr");
  std::vector<std::string> argv_storage;
  argv_storage.push_back(bin);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return result;
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
        dup2(err, 2) < 0 || chdir(cwd.c_str()) != 0)
      _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }

  // The watchdog kills the child at the deadline unless told that it exited. The parent
  // waits with WNOWAIT, which leaves the child unreaped (its pid cannot be reused) until the
  // watchdog has been stopped, so the kill can only ever reach our own child.
  absl::Notification exited;
  bool killed = false;
  std::thread watchdog([&] {
    if (!exited.WaitForNotificationWithTimeout(kChildTimeout)) {
      killed = true;
      kill(pid, SIGKILL);
    }
  });
  siginfo_t info;
  int rc;
  do {
    rc = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
  } while (rc != 0 && errno == EINTR);
  exited.Notify();
  watchdog.join();
  int status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(pid, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  result.timed_out = killed;
  if (reaped == pid && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = ReadFileBytes(out_path);
  result.err = ReadFileBytes(err_path);
  return result;
}

// Everything a failed expectation should show about a child.
std::string Describe(const ChildResult& r) {
  return absl::StrCat("exit code ", r.exit_code, r.timed_out ? " (killed: timed out)" : "",
                      "\n--- stdout ---\n", r.out, "--- stderr ---\n", r.err);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(FedtrainBin())) << "no fedtrain binary at " << FedtrainBin();
    ASSERT_TRUE(fs::exists(Example("synthetic_logreg.json")))
        << "wrong source folder: " << Example("synthetic_logreg.json");
    ASSERT_FALSE(tmp_.path().empty());
    fs::create_directory(cwd_);
  }

  // Runs the binary in cwd_, an empty folder, so that a stray relative path ("runs",
  // "plot.png") would show up there.
  ChildResult RunCli(const std::vector<std::string>& args) {
    ChildResult r = RunFedtrain(args, cwd_);
    EXPECT_FALSE(r.timed_out) << Describe(r);
    return r;
  }

  // `fedtrain simulate --config <config> --out <out_dir> <extra...>`.
  ChildResult Simulate(const std::string& config, const std::vector<std::string>& extra,
                       const std::string& out_dir) {
    std::vector<std::string> args = {"simulate", "--config", config, "--out", out_dir};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  }
  // The same with examples/synthetic_logreg.json and out_.
  ChildResult SimulateSynthetic(const std::vector<std::string>& extra) {
    return Simulate(Example("synthetic_logreg.json"), extra, out_);
  }

  // For errors found before training: nothing at all may be written, neither under the
  // --out folder nor (through a default relative output.dir) in the working directory.
  void ExpectNothingWritten() {
    EXPECT_THAT(ListDir(out_), IsEmpty()) << "under " << out_;
    EXPECT_THAT(ListDir(cwd_), IsEmpty()) << "in the working directory " << cwd_;
  }

  TempDir tmp_;
  const std::string cwd_ = tmp_.File("cwd");
  const std::string out_ = tmp_.File("runs");
};

// CTest runs every fedtrain_test with FEDTRAIN_BIN and FEDTRAIN_SOURCE_DIR in the
// environment; this test is skipped when neither is set (the binary run by hand).
// KNOWN BUG (top-level CMakeLists.txt, fedtrain_test): the two settings are passed as
// `ENVIRONMENT "FEDTRAIN_BIN=...;FEDTRAIN_SOURCE_DIR=..."` through gtest_discover_tests,
// which splits the list, so CTest sets only FEDTRAIN_BIN and takes FEDTRAIN_SOURCE_DIR=...
// for a property name. This test fails until that is fixed.
TEST(CliEnvironmentTest, CTestSetsBinaryAndSourceDir) {
  if (EnvOrEmpty("FEDTRAIN_BIN").empty() && EnvOrEmpty("FEDTRAIN_SOURCE_DIR").empty())
    GTEST_SKIP() << "not run by CTest";
  EXPECT_EQ(EnvOrEmpty("FEDTRAIN_BIN"), FEDTRAIN_TEST_DEFAULT_BIN);
  EXPECT_EQ(EnvOrEmpty("FEDTRAIN_SOURCE_DIR"), FEDTRAIN_TEST_DEFAULT_SOURCE_DIR);
}

// ---------------------------------------------------------------------------------------
// Usage errors: exit code 2 and the usage text on stderr.

TEST_F(CliTest, NoCommandIsUsageError) {
  ChildResult r = RunCli({});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("no command"), HasSubstr(kMainUsage)));
  ExpectNothingWritten();
}

TEST_F(CliTest, UnknownCommandIsUsageError) {
  ChildResult r = RunCli({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("unknown command 'frobnicate'"), HasSubstr(kMainUsage)));
  ExpectNothingWritten();
}

TEST_F(CliTest, SimulateWithoutConfigIsUsageError) {
  ChildResult r = RunCli({"simulate", "--out", out_});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("--config"), HasSubstr(kSimulateUsage)));
  ExpectNothingWritten();
}

TEST_F(CliTest, SimulateConfigWithoutValueIsUsageError) {
  ChildResult r = RunCli({"simulate", "--config"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("--config needs a file"), HasSubstr(kSimulateUsage)));
  ExpectNothingWritten();
}

TEST_F(CliTest, SimulateUnknownOptionIsUsageError) {
  ChildResult r = SimulateSynthetic({"--bogus"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("unknown option '--bogus'"), HasSubstr(kSimulateUsage)));
  ExpectNothingWritten();
}

TEST_F(CliTest, PlotUnknownOptionIsUsageError) {
  ChildResult r = RunCli({"plot", "--bogus", tmp_.path()});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("unknown option '--bogus'"), HasSubstr(kPlotUsage)));
  ExpectNothingWritten();
}

TEST_F(CliTest, PlotWithoutRunsIsUsageError) {
  ChildResult r = RunCli({"plot"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("at least one run folder"), HasSubstr(kPlotUsage)));
  ExpectNothingWritten();
}

// ---------------------------------------------------------------------------------------
// --help on every command: exit 0, the usage text on stdout, nothing on stderr.

struct HelpCase {
  const char* name;  // of the test
  std::vector<std::string> args;
  const char* usage;
};

std::string HelpCaseName(const ::testing::TestParamInfo<HelpCase>& info) {
  return info.param.name;
}

void PrintTo(const HelpCase& c, std::ostream* os) { *os << absl::StrJoin(c.args, " "); }

class CliHelpTest : public CliTest, public ::testing::WithParamInterface<HelpCase> {};

TEST_P(CliHelpTest, PrintsUsageAndSucceeds) {
  ChildResult r = RunCli(GetParam().args);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr(GetParam().usage));
  EXPECT_THAT(r.err, IsEmpty());
  ExpectNothingWritten();
}

INSTANTIATE_TEST_SUITE_P(
    AllCommands, CliHelpTest,
    ::testing::Values(HelpCase{"DashDashHelp", {"--help"}, kMainUsage},
                      HelpCase{"DashH", {"-h"}, kMainUsage},
                      HelpCase{"Help", {"help"}, kMainUsage},
                      HelpCase{"SimulateDashDashHelp", {"simulate", "--help"}, kSimulateUsage},
                      HelpCase{"SimulateDashH", {"simulate", "-h"}, kSimulateUsage},
                      HelpCase{"HelpSimulate", {"help", "simulate"}, kSimulateUsage},
                      HelpCase{"PlotDashDashHelp", {"plot", "--help"}, kPlotUsage},
                      HelpCase{"HelpPlot", {"help", "plot"}, kPlotUsage}),
    HelpCaseName);

// ---------------------------------------------------------------------------------------
// Config errors: exit 1, stderr names the field, nothing written.

TEST_F(CliTest, MissingConfigFileIsNamed) {
  const std::string missing = tmp_.File("no_such_config.json");
  ChildResult r = Simulate(missing, {}, out_);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr(missing), HasSubstr("cannot open")));
  ExpectNothingWritten();
}

TEST_F(CliTest, UnknownAlgorithmListsRegisteredOnes) {
  ChildResult r = SimulateSynthetic({"--set", "algorithm.name=nope"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr("unknown algorithm 'nope'"), HasSubstr("fedavg")));
  ExpectNothingWritten();
}

TEST_F(CliTest, UnknownFieldInConfigFileIsNamed) {
  const std::string config = tmp_.File("roundz.json");
  WriteFileBytes(config, R"({"name": "typo", "data": {"dataset": "synthetic"}, "roundz": 3})");
  ChildResult r = Simulate(config, {}, out_);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr(config), HasSubstr("roundz")));
  ExpectNothingWritten();
}

TEST_F(CliTest, UnknownFieldInOverrideIsNamed) {
  ChildResult r = SimulateSynthetic({"--set", "local.lrr=1"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("unknown config field 'local.lrr'"));
  ExpectNothingWritten();
}

struct BadValueCase {
  const char* name;                   // of the test
  std::vector<std::string> sets;      // "--set" arguments
  std::vector<std::string> expected;  // substrings of stderr
};

std::string BadValueCaseName(const ::testing::TestParamInfo<BadValueCase>& info) {
  return info.param.name;
}

void PrintTo(const BadValueCase& c, std::ostream* os) {
  *os << "--set " << absl::StrJoin(c.sets, " --set ");
}

class CliBadValueTest : public CliTest, public ::testing::WithParamInterface<BadValueCase> {};

TEST_P(CliBadValueTest, IsRefusedBeforeAnyFolderExists) {
  std::vector<std::string> extra;
  for (const std::string& s : GetParam().sets) extra.insert(extra.end(), {"--set", s});
  ChildResult r = SimulateSynthetic(extra);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  for (const std::string& e : GetParam().expected) EXPECT_THAT(r.err, HasSubstr(e));
  ExpectNothingWritten();
}

// The synthetic example has 30 clients and samples 10 per round.
INSTANTIATE_TEST_SUITE_P(
    ClientCounts, CliBadValueTest,
    ::testing::Values(
        BadValueCase{"ZeroClients",
                     {"federation.num_clients=0"},
                     {"federation.num_clients must be > 0"}},
        BadValueCase{"NegativeClients",
                     {"federation.num_clients=-5"},
                     {"federation.num_clients must be > 0", "-5"}},
        BadValueCase{"ZeroClientsPerRound",
                     {"federation.clients_per_round=0"},
                     {"federation.clients_per_round must be > 0"}},
        BadValueCase{"MoreSampledThanExist",
                     {"federation.clients_per_round=31"},
                     {"federation.clients_per_round (31)", "federation.num_clients (30)"}},
        BadValueCase{"MoreSampledThanFewerClients",
                     {"federation.num_clients=5", "federation.clients_per_round=6"},
                     {"federation.clients_per_round (6)", "federation.num_clients (5)"}}),
    BadValueCaseName);

// Compression settings (docs/compression.md §1): names, ranges, and k against the model
// size (softmax regression on Synthetic: d = 60 * 10 + 10 = 610), all before any folder.
INSTANTIATE_TEST_SUITE_P(
    Compression, CliBadValueTest,
    ::testing::Values(
        BadValueCase{"UnknownCompressor",
                     {"compression.compressor=zip"},
                     {"compression.compressor must be one of", "'zip'"}},
        BadValueCase{"UnknownFeedback",
                     {"compression.feedback=ef15"},
                     {"compression.feedback must be one of", "'ef15'"}},
        BadValueCase{"KAboveDimension",
                     {"compression.compressor=topk", "compression.k=611"},
                     {"compression.k", "611"}},
        BadValueCase{"KFractionAboveOne",
                     {"compression.compressor=topk", "compression.k_fraction=1.5"},
                     {"compression.k_fraction"}},
        BadValueCase{"TopKWithoutK",
                     {"compression.compressor=topk"},
                     {"compression.k"}},
        BadValueCase{"QsgdZeroLevels",
                     {"compression.compressor=qsgd", "compression.levels=0"},
                     {"compression.levels"}},
        BadValueCase{"SeedIndicesForTopK",
                     {"compression.compressor=topk", "compression.k=5",
                      "compression.index_encoding=seed"},
                     {"compression.index_encoding"}},
        BadValueCase{"EControlWithoutEta",
                     {"compression.compressor=topk", "compression.k=5",
                      "compression.feedback=econtrol", "algorithm.weighting=uniform"},
                     {"compression.eta"}}),
    BadValueCaseName);

// ---------------------------------------------------------------------------------------
// Data errors (Fashion-MNIST): found while loading, before any folder exists.

// The four IDX files LoadFashionMnist reads from a folder.
std::vector<std::string> FashionMnistFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    files.push_back(absl::StrCat(dir, "/", f));
  return files;
}

// Matches text that contains at least one of `paths`.
::testing::Matcher<std::string> NamesOneOf(const std::vector<std::string>& paths) {
  std::vector<::testing::Matcher<std::string>> m;
  for (const std::string& p : paths) m.push_back(HasSubstr(p));
  return ::testing::AnyOfArray(m);
}

TEST_F(CliTest, MissingDataFileIsNamed) {
  const std::string data = tmp_.File("empty_data");
  fs::create_directory(data);
  ChildResult r = Simulate(Example("fmnist_mlp_fedavg.json"), {"--set", "data.path=" + data},
                           out_);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, NamesOneOf(FashionMnistFiles(data)));
  EXPECT_THAT(r.err, HasSubstr("no such file"));
  ExpectNothingWritten();
}

TEST_F(CliTest, CorruptDataFileIsNamed) {
  const std::string data = tmp_.File("corrupt_data");
  fs::create_directory(data);
  // Not gzip (zlib then reads the bytes as they are) and not an IDX magic.
  for (const std::string& f : FashionMnistFiles(data))
    WriteFileBytes(f, "this is not an IDX file, just some garbage bytes\n");
  ChildResult r = Simulate(Example("fmnist_mlp_fedavg.json"), {"--set", "data.path=" + data},
                           out_);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, NamesOneOf(FashionMnistFiles(data)));
  ExpectNothingWritten();
}

// ---------------------------------------------------------------------------------------
// --print-config: the resolved config as JSON, and no folder.

TEST_F(CliTest, PrintConfigFillsDefaultsAndWritesNothing) {
  ChildResult r = SimulateSynthetic({"--print-config", "--set", "rounds=7"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ParseConfig(r.out, "json", "stdout"));
  EXPECT_EQ(cfg.rounds(), 7);                    // the override
  EXPECT_EQ(cfg.output().dir(), out_);           // --out
  EXPECT_EQ(cfg.local().epochs(), 20);           // from the file
  // Defaults the file does not mention are printed explicitly.
  EXPECT_TRUE(cfg.local().has_momentum());
  EXPECT_TRUE(cfg.algorithm().has_server_lr());
  EXPECT_EQ(cfg.federation().sampling(), "uniform_fixed");
  EXPECT_TRUE(cfg.output().save_model());
  // Integers are JSON numbers.
  EXPECT_THAT(r.out, HasSubstr("\"rounds\": 7,"));
  // Derived values are resolved as a run would resolve them.
  EXPECT_EQ(cfg.output().run_name(), kSyntheticRunName);
  EXPECT_EQ(cfg.sampling_seed(), cfg.seed());
  EXPECT_GT(cfg.threads(), 0);
  ExpectNothingWritten();
}

// The algorithm's parameter defaults are recorded (fedprox's mu), and a plug-in path is
// made absolute.
TEST_F(CliTest, PrintConfigShowsAlgorithmParameterDefaults) {
  ChildResult r = SimulateSynthetic({"--print-config", "--set", "algorithm.name=fedprox"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ParseConfig(r.out, "json", "stdout"));
  ASSERT_EQ(cfg.algorithm().params().fields().count("mu"), 1u) << r.out;
  EXPECT_EQ(cfg.algorithm().params().fields().at("mu").number_value(), 0.01);
  EXPECT_THAT(r.out, HasSubstr("\"mu\":0.01"));
  // fedavg_m's gamma has no fixed default (eta * K of the round): it stays absent.
  ChildResult m = SimulateSynthetic({"--print-config", "--set", "algorithm.name=fedavg_m"});
  ASSERT_EQ(m.exit_code, 0) << Describe(m);
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig mc, ParseConfig(m.out, "json", "stdout"));
  EXPECT_EQ(mc.algorithm().params().fields().count("beta"), 1u);
  EXPECT_EQ(mc.algorithm().params().fields().count("gamma"), 0u);
  ExpectNothingWritten();
}

// ---------------------------------------------------------------------------------------
// A complete run and what it leaves behind.

// The 3-round synthetic run every success test uses: evaluation after every round.
std::vector<std::string> TinyRun() { return {"--set", "rounds=3", "--set", "eval_every=1"}; }

std::vector<std::string> NonEmptyLines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// output.tensorboard: an event file whose records parse back (TFRecord checksums, TbEvent)
// into one event per round, step = the 1-based round, holding the round's metrics.
TEST_F(CliTest, TensorBoardEventFileHoldsTheMetrics) {
  std::vector<std::string> args = TinyRun();
  args.insert(args.end(), {"--set", "output.tensorboard=true"});
  ChildResult r = SimulateSynthetic(args);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string run = absl::StrCat(out_, "/", kSyntheticRunName);
  std::vector<std::string> files = ListDir(run + "/tensorboard");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_THAT(files[0], StartsWith("events.out.tfevents."));
  FT_ASSERT_OK_AND_ASSIGN(std::vector<std::string> recs,
                          ReadTfRecords(ReadFileBytes(run + "/tensorboard/" + files[0])));
  ASSERT_EQ(recs.size(), 4u);  // the file version, then rounds 1..3
  const std::vector<std::string> rows = NonEmptyLines(ReadFileBytes(run + "/metrics.jsonl"));
  ASSERT_EQ(rows.size(), 3u);
  auto json_number = [](const std::string& row, const std::string& key) {
    const size_t at = row.find("\"" + key + "\":");
    double v = std::nan("");
    if (at != std::string::npos) {
      const size_t start = at + key.size() + 3;
      (void)absl::SimpleAtod(row.substr(start, row.find_first_of(",}", start) - start), &v);
    }
    return v;
  };
  for (int i = 1; i <= 3; ++i) {
    v1::TbEvent e;
    ASSERT_TRUE(e.ParseFromString(recs[i]));
    EXPECT_EQ(e.step(), i);
    std::map<std::string, float> got;
    for (const v1::TbSummaryValue& v : e.summary().value()) got[v.tag()] = v.simple_value();
    const std::string& row = rows[i - 1];
    EXPECT_EQ(json_number(row, "round"), i);
    // Exact: the event holds the float nearest to the metric (float is TensorBoard's type).
    EXPECT_EQ(got.at("test/accuracy"), static_cast<float>(json_number(row, "test_accuracy")));
    EXPECT_EQ(got.at("train/loss"), static_cast<float>(json_number(row, "train_loss")));
    EXPECT_EQ(got.at("bytes/uplink_total"), static_cast<float>(json_number(row, "cum_bytes_up")));
  }
}

TEST_F(CliTest, TinyRunWritesCompleteFolderAndNeverOverwrites) {
  ChildResult r = SimulateSynthetic(TinyRun());
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string run = absl::StrCat(out_, "/", kSyntheticRunName);
  EXPECT_THAT(r.out, HasSubstr("run folder: " + run));
  EXPECT_THAT(ListDir(out_), ElementsAre(kSyntheticRunName)) << "no .partial may remain";
  EXPECT_THAT(ListDir(run),
              ElementsAre("config.json", "metrics.csv", "metrics.jsonl", "model.ftw",
                          "partition_histogram.csv", "summary.json"));

  const std::vector<std::string> csv = NonEmptyLines(ReadFileBytes(run + "/metrics.csv"));
  ASSERT_EQ(csv.size(), 4u) << "a header and one row per round";
  EXPECT_THAT(csv[0], AllOf(StartsWith("round"), HasSubstr("test_accuracy")));
  EXPECT_EQ(NonEmptyLines(ReadFileBytes(run + "/metrics.jsonl")).size(), 3u);

  // 1-based rounds: 1, 2, 3; the model file's round is the last one.
  EXPECT_THAT(MetricsColumn(run + "/metrics.csv", "round"), ElementsAre(1, 2, 3));

  // config.json is the resolved config, readable as a config again: integers as numbers,
  // numbers in their shortest exact form, the algorithm's parameter defaults, and no section
  // that does not apply (no attack, no privacy mechanism).
  const std::string config_json = ReadFileBytes(run + "/config.json");
  EXPECT_THAT(config_json, HasSubstr("\"rounds\": 3,"));
  EXPECT_THAT(config_json, Not(HasSubstr("\"attack\"")));
  EXPECT_THAT(config_json, Not(HasSubstr("\"privacy\"")));
  EXPECT_THAT(config_json, Not(HasSubstr("00000000000")));  // no float noise
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg,
                          ParseConfig(config_json, "json", run + "/config.json"));
  EXPECT_EQ(cfg.rounds(), 3);
  EXPECT_EQ(cfg.eval_every(), 1);
  EXPECT_EQ(cfg.output().run_name(), kSyntheticRunName);

  const std::string summary = ReadFileBytes(run + "/summary.json");
  EXPECT_THAT(summary, AllOf(StartsWith("{"), HasSubstr("\"format_version\":2"),
                             HasSubstr("\"test_accuracy\""), HasSubstr("\"rounds\":3"),
                             HasSubstr("\"best_test_accuracy\":"), HasSubstr("\"best_round\":"),
                             HasSubstr("\"start_time\":\"20"), HasSubstr("\"end_time\":\"20"),
                             HasSubstr("\"git_commit\":"), HasSubstr("\"build_type\":")));
  // The weights hash is the model file's, in the same 16 hex digits.
  FT_ASSERT_OK_AND_ASSIGN(SavedModel saved, LoadModel(run + "/model.ftw"));
  {
    const std::string bytes = ReadFileBytes(run + "/model.ftw");
    const size_t at = bytes.find("\"fnv1a64\":\"");
    ASSERT_NE(at, std::string::npos);
    EXPECT_THAT(summary, HasSubstr("\"weights_fnv1a64\":\"" + bytes.substr(at + 11, 16) + "\""));
  }
  // The best accuracy is the largest test_accuracy in metrics.csv, at the first round with it.
  {
    const std::vector<std::string> rows = NonEmptyLines(ReadFileBytes(run + "/metrics.csv"));
    const std::vector<std::string> head = absl::StrSplit(rows[0], ',');
    const size_t acc = std::find(head.begin(), head.end(), "test_accuracy") - head.begin();
    double best = -1;
    int best_round = 0;
    for (size_t i = 1; i < rows.size(); ++i) {
      const std::vector<std::string> f = absl::StrSplit(rows[i], ',');
      double a = 0;
      ASSERT_TRUE(absl::SimpleAtod(f[acc], &a));
      if (a > best) {
        best = a;
        best_round = static_cast<int>(i);
      }
    }
    EXPECT_THAT(summary, HasSubstr(absl::StrCat("\"best_round\":", best_round, ",")));
  }
  // 30 devices: a header and one histogram row per client, each starting with its id.
  const std::vector<std::string> hist =
      NonEmptyLines(ReadFileBytes(run + "/partition_histogram.csv"));
  ASSERT_EQ(hist.size(), 31u);
  EXPECT_THAT(hist[0], StartsWith("client,class_0,class_1,"));
  for (size_t i = 1; i < hist.size(); ++i) EXPECT_THAT(hist[i], StartsWith(absl::StrCat(i - 1, ",")));

  FT_ASSERT_OK_AND_ASSIGN(SavedModel model, LoadModel(run + "/model.ftw"));
  EXPECT_EQ(model.round, 3u);
  EXPECT_FALSE(model.model.empty());
  EXPECT_FALSE(model.weights.empty());

  // The same command again goes to "<name>-2" and leaves the first run alone.
  WriteFileBytes(run + "/marker", "first run");
  const std::string first_model = ReadFileBytes(run + "/model.ftw");
  ChildResult again = SimulateSynthetic(TinyRun());
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  const std::string second = run + "-2";
  EXPECT_THAT(again.out, HasSubstr("run folder: " + second));
  EXPECT_THAT(ListDir(out_),
              ElementsAre(kSyntheticRunName, absl::StrCat(kSyntheticRunName, "-2")));
  EXPECT_EQ(ReadFileBytes(run + "/marker"), "first run");
  EXPECT_EQ(ReadFileBytes(run + "/model.ftw"), first_model);
  EXPECT_TRUE(fs::exists(second + "/model.ftw"));
  EXPECT_THAT(ListDir(cwd_), IsEmpty());

  // `fedtrain plot` draws the run.
  const std::string png = tmp_.File("p.png");
  ChildResult plot = RunCli({"plot", run, "-o", png});
  ASSERT_EQ(plot.exit_code, 0) << Describe(plot);
  EXPECT_THAT(ReadFileBytes(png), StartsWith("\x89PNG\r\n\x1a\n"));
  EXPECT_THAT(ListDir(cwd_), IsEmpty());
}

TEST_F(CliTest, PlotOfMissingRunNamesMetricsCsv) {
  ChildResult r = RunCli({"plot", tmp_.File("nonexistent")});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.exit_code, -1) << "must exit, not crash: " << Describe(r);
  EXPECT_THAT(r.err, AllOf(HasSubstr(tmp_.File("nonexistent")), HasSubstr("metrics.csv")));
  // No figure (default output plot.png) is written for a failed plot.
  EXPECT_THAT(ListDir(cwd_), IsEmpty());
}

// docs/maintainers.md §5: the same config gives bit-identical weights for any thread count.
TEST_F(CliTest, WeightsDoNotDependOnThreadCount) {
  const std::string out1 = tmp_.File("threads1");
  const std::string out2 = tmp_.File("threads2");
  std::vector<std::string> args1 = TinyRun(), args2 = TinyRun();
  args1.insert(args1.end(), {"--threads", "1"});
  args2.insert(args2.end(), {"--threads", "2"});
  ChildResult r1 = Simulate(Example("synthetic_logreg.json"), args1, out1);
  ASSERT_EQ(r1.exit_code, 0) << Describe(r1);
  ChildResult r2 = Simulate(Example("synthetic_logreg.json"), args2, out2);
  ASSERT_EQ(r2.exit_code, 0) << Describe(r2);
  const std::string model1 = ReadFileBytes(absl::StrCat(out1, "/", kSyntheticRunName, "/model.ftw"));
  const std::string model2 = ReadFileBytes(absl::StrCat(out2, "/", kSyntheticRunName, "/model.ftw"));
  ASSERT_FALSE(model1.empty());
  EXPECT_TRUE(model1 == model2) << "model.ftw differs between --threads 1 and --threads 2";
  // The threads really differed (the resolved configs record them).
  EXPECT_THAT(ReadFileBytes(absl::StrCat(out1, "/", kSyntheticRunName, "/config.json")),
              HasSubstr("\"threads\": 1,"));
  EXPECT_THAT(ReadFileBytes(absl::StrCat(out2, "/", kSyntheticRunName, "/config.json")),
              HasSubstr("\"threads\": 2,"));
}

// `fedtrain aggregate` gives the bits of the in-process reducer, prints its diagnostics as
// JSON, and refuses bad files (exit 1, message naming the problem) and bad usage (exit 2).
TEST_F(CliTest, AggregateMatchesTheInProcessReducerBitForBit) {
  TempDir dir;
  const size_t p = 15, n = 1000;
  RngStream rng = RngStream::For(3, 0, 0, Purpose::kTest);
  std::vector<std::vector<float>> rows(p, std::vector<float>(n));
  for (auto& r : rows)
    for (float& v : r) v = static_cast<float>(rng.Normal());
  WriteFileBytes(dir.File("in.npy"), NpyMatrixBytes(rows));
  std::vector<ConstVec> in(rows.begin(), rows.end());
  const std::vector<double> w(p, 1.0 / p);

  ChildResult r = RunFedtrain({"aggregate", "--rule", "flag", "--f", "3", "--set", "m=8",
                               dir.File("in.npy"), dir.File("flag.npy")},
                              dir.path());
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("\"rule\":\"flag\",\"f\":3,\"p\":15,\"n\":1000"));
  EXPECT_THAT(r.out, HasSubstr("\"ratio_min\""));
  FlagOptions fo;
  fo.common.f = 3;
  fo.m = 8;
  std::vector<float> want(n);
  FT_ASSERT_OK(FlagReducer(fo).Reduce(in, w, absl::MakeSpan(want), nullptr));
  EXPECT_EQ(ReadFileBytes(dir.File("flag.npy")), NpyVectorBytes(want));

  r = RunFedtrain({"aggregate", "--rule", "multi_krum", "--f", "3", "--set",
                   "garfield_compat=true", dir.File("in.npy"), dir.File("mk.npy")},
                  dir.path());
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  KrumOptions ko;
  ko.common.f = 3;
  ko.multi = true;
  ko.garfield_compat = true;
  FT_ASSERT_OK(KrumReducer(ko).Reduce(in, w, absl::MakeSpan(want), nullptr));
  EXPECT_EQ(ReadFileBytes(dir.File("mk.npy")), NpyVectorBytes(want));
  EXPECT_THAT(r.out, HasSubstr("\"chosen\":["));

  // Bad files: exit 1 and a message saying what is wrong.
  const std::string good = NpyMatrixBytes(rows);
  std::string wrong_dtype = good;
  wrong_dtype.replace(wrong_dtype.find("<f4"), 3, "<i4");
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  for (const auto& [bytes, message] : std::vector<std::pair<std::string, std::string>>{
           {"PK\x03\x04 not numpy", "magic string"},
           {wrong_dtype, "dtype '<i4' is not supported"},
           {fortran, "Fortran order"},
           {NpyVectorBytes(rows[0]), "is not 2-D"},
           {good.substr(0, good.size() - 7), "truncated"},
           {good + "xx", "bytes after the"}}) {
    WriteFileBytes(dir.File("bad.npy"), bytes);
    r = RunFedtrain({"aggregate", "--rule", "median", dir.File("bad.npy"), dir.File("o.npy")},
                    dir.path());
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr(message)) << Describe(r);
  }
  // A rule whose requirement the file does not meet: exit 1 naming the numbers.
  r = RunFedtrain({"aggregate", "--rule", "bulyan", "--f", "4", dir.File("in.npy"),
                   dir.File("o.npy")},
                  dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("reducer bulyan needs p >= 4f+3 = 19 updates (f = 4)"));
  // Usage errors: exit 2.
  r = RunFedtrain({"aggregate", "--rule", "flag", dir.File("in.npy")}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  r = RunFedtrain({"aggregate", "--rule", "flagg", dir.File("in.npy"), dir.File("o.npy")},
                  dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("algorithm.reducer.name must be one of"));
}

// Bring your own data: a CSV of two well-separated classes with a client column trains to
// near-perfect accuracy with its own federated split (partition.method natural); a typo in
// the label column is an error naming the column and listing the file's columns.
TEST_F(CliTest, SimulateOnACsvWithItsOwnClientSplit) {
  std::string csv = "x1,x2,label,user\n";
  for (int i = 0; i < 240; ++i) {
    const int y = i % 2;
    const double a = 0.3 * ((i * 7) % 11) / 11.0, b = 0.3 * ((i * 5) % 13) / 13.0;
    absl::StrAppend(&csv, y ? 2.0 + a : -2.0 - a, ",", y ? 1.0 + b : -1.0 - b, ",", y, ",",
                    i % 4, "\n");
  }
  const std::string path = tmp_.File("data.csv");
  std::ofstream(path) << csv;
  const std::string cfg = tmp_.File("csv.json");
  std::ofstream(cfg) << R"({"name": "csv", "data": {"dataset": "files", "files": {"format": "csv",
      "train": ")" << path << R"(", "client_column": "user", "test_fraction": 0.25}},
      "model": {"type": "softmax"}, "partition": {"method": "natural"},
      "federation": {"num_clients": 4, "clients_per_round": 4},
      "local": {"lr": 0.1, "epochs": 1, "batch_size": 10}, "rounds": 5, "eval_every": 5,
      "output": {"progress": "none"}})";
  ChildResult r = Simulate(cfg, {}, out_);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("final test accuracy 100.00%"));
  r = Simulate(cfg, {"--set", "data.files.label_column=lable"}, out_);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("no column 'lable' (data.files.label_column); the columns are: "
                               "x1, x2, label, user"));
}

}  // namespace
}  // namespace fedtrain
