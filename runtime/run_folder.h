// The run folder: RunExperiment resolves a config, loads its data, runs it (RunFederation) and
// writes config.json, partition_histogram.csv, metrics.{jsonl,csv}, model.ftw and
// summary.json under "<dir>/<name>.partial", renamed to "<dir>/<name>" only when the run
// finished, so an incomplete run is never presented as complete. A run with checkpoints can
// be resumed from its ".partial" folder. While a process runs (or resumes) a ".partial" folder
// it holds an exclusive lock on the file "lock" in it (flock, released by the kernel when the
// process ends, however it ends), so a second process never writes into the same folder.
// Not thread-safe: one thread runs an experiment.
#ifndef FEDTRAIN_RUNTIME_RUN_FOLDER_H_
#define FEDTRAIN_RUNTIME_RUN_FOLDER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "aggregators/registry.h"
#include "fedtrain/v1/config.pb.h"
#include "runtime/federation.h"
#include "server/coordinator.h"

namespace fedtrain {

struct ExperimentOutcome {
  std::string run_dir;
  RunResult result;
};

// Resolve, load, run, and write the run folder. On error (including an exception such as
// std::bad_alloc escaping the run) the ".partial" folder (if created) is left with an
// error.txt and the error is returned. A resume (server.resume_dir) locks the folder first,
// rewrites config.json from the resolved config that the checkpoint was verified against
// (the file may have been deleted or damaged meanwhile) and removes temporary files left by
// an interrupted write ("*.tmp", "*.tmp.*"); none of these reach the finished folder. `transport` (required) as in
// RunFederation: the only difference between a simulation and a deployed run.
absl::StatusOr<ExperimentOutcome> RunExperiment(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round, const TransportFactory& transport,
    const ServerRunOptions& server = {});

// The exclusive lock on a ".partial" run folder: the file "<dir>/lock" (holding the holder's
// pid, for the error message of the next one), locked with flock for the object's life.
// Owns the descriptor. Not thread-safe.
class RunFolderLock {
 public:
  // FailedPrecondition naming the folder (and the holder's pid when the lock file names
  // one) when another open lock holds it, in this process or another.
  static absl::StatusOr<std::unique_ptr<RunFolderLock>> Acquire(const std::string& dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;
  // The lock file's name inside a run folder.
  static constexpr char kFileName[] = "lock";

 private:
  explicit RunFolderLock(int fd) : fd_(fd) {}
  int fd_;
};

// The one "<output.dir>/<run name>[-K].partial" folder of a resolved config that holds a
// checkpoint (what `fedtrain server --resume` continues). NotFound when there is none,
// FailedPrecondition naming them when there are several.
absl::StatusOr<std::string> FindUnfinishedRun(const v1::ExperimentConfig& cfg);

// A finished run of the same experiment: a folder "<output.dir>/<run name>[-K]" (no
// ".partial") that holds summary.json and a config.json whose ConfigFingerprint equals the
// resolved config's (the same experiment apart from threads, output and checkpoint
// settings). What `fedtrain server --resume-if-any` looks for before starting a new run.
// NotFound when there is none.
absl::StatusOr<std::string> FindFinishedRun(const v1::ExperimentConfig& cfg);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_RUN_FOLDER_H_
