// Tests of the run folder's guards (issue 18): the exclusive lock on a ".partial" folder, an
// exception escaping the run (std::bad_alloc, say) still leaving error.txt and coming back as
// a Status, and the memory check that refuses a model that cannot fit before it is built.
#include "runtime/run_folder.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

namespace fs = std::filesystem;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::TempDir;
using ::testing::HasSubstr;

// A tiny synthetic run into `out`.
v1::ExperimentConfig TinyConfig(const std::string& out) {
  absl::StatusOr<v1::ExperimentConfig> c = ParseConfig(
      R"({"name": "tiny", "data": {"dataset": "synthetic", "synthetic": {"num_devices": 4}},
          "model": {"type": "softmax"}, "partition": {"method": "natural"},
          "federation": {"num_clients": 4, "clients_per_round": 2}, "rounds": 2,
          "threads": 1, "output": {"progress": "none"}})",
      "json", "test");
  EXPECT_TRUE(c.ok()) << c.status();
  c->mutable_output()->set_dir(out);
  return *c;
}

TEST(RunFolderLockTest, ASecondLockFailsNamingTheFolderAndThePidUntilTheFirstIsReleased) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<RunFolderLock>> first = RunFolderLock::Acquire(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  // flock locks belong to the open file description, so a second open in the same process
  // conflicts just as another process's would.
  EXPECT_THAT(RunFolderLock::Acquire(dir.path()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("run folder ", dir.path(), " is in use by another "
                                              "fedtrain process (pid ", ::getpid(), ")"))));
  first->reset();
  FT_EXPECT_OK(RunFolderLock::Acquire(dir.path()).status());
}

// Transport factories that throw, as code running out of memory or failing in a library
// does.
TransportFactory ThrowingBadAlloc() {
  return [](const TransportContext&) -> absl::StatusOr<std::shared_ptr<ServerTransport>> {
    throw std::bad_alloc();
  };
}
TransportFactory ThrowingRuntimeError(std::string what) {
  return [what](const TransportContext&) -> absl::StatusOr<std::shared_ptr<ServerTransport>> {
    throw std::runtime_error(what);
  };
}

// Both used to escape RunExperiment: the process aborted and the .partial folder had no
// error.txt.
TEST(RunExperimentTest, AnExceptionDuringTheRunLeavesErrorTxtAndAStatus) {
  AlgorithmRegistry registry;
  RegisterBuiltinAlgorithms(&registry);
  {
    TempDir dir;
    absl::StatusOr<ExperimentOutcome> out = RunExperiment(
        TinyConfig(dir.path()), registry, nullptr, ThrowingBadAlloc());
    EXPECT_THAT(out, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("out of memory")));
    EXPECT_THAT(ReadFileBytes(dir.File("tiny.partial/error.txt")), HasSubstr("out of memory"));
  }
  {
    TempDir dir;
    absl::StatusOr<ExperimentOutcome> out = RunExperiment(
        TinyConfig(dir.path()), registry, nullptr, ThrowingRuntimeError("boom"));
    EXPECT_THAT(out, StatusIs(absl::StatusCode::kInternal, HasSubstr("exception: boom")));
    EXPECT_THAT(ReadFileBytes(dir.File("tiny.partial/error.txt")), HasSubstr("boom"));
  }
}

TEST(RunExperimentTest, AModelThatCannotFitIsRefusedBeforeItIsBuilt) {
  TempDir dir;
  v1::ExperimentConfig cfg = TinyConfig(dir.path());
  ExperimentData data;
  data.train.num_features = 60;
  data.train.num_classes = 10;
  // 60 features -> 1000 hidden -> 10 classes: 61*1000 + 1001*10 = 71,010 parameters; with
  // 2 + clients_per_round (2) vectors of 4 bytes that is 1,136,160 bytes.
  cfg.set_threads(1);
  cfg.mutable_model()->set_type("mlp");
  cfg.mutable_model()->add_hidden(1000);
  EXPECT_EQ(ConfigModelParams(cfg, data), 71010.0);
  FT_EXPECT_OK(CheckModelFitsMemory(cfg, data, /*available_bytes=*/1136160));
  EXPECT_THAT(CheckModelFitsMemory(cfg, data, /*available_bytes=*/1136159),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("model.hidden [1000]")));
  // model.hidden = 1e9 must not overflow the count, whatever the machine.
  cfg.mutable_model()->set_hidden(0, 1000000000);
  EXPECT_THAT(CheckModelFitsMemory(cfg, data, /*available_bytes=*/1e12),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("lower model.hidden")));
}

}  // namespace
}  // namespace fedtrain
