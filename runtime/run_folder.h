// The run folder: RunExperiment resolves a config, loads its data, runs it (RunFederation) and
// writes config.json, partition_histogram.csv, metrics.{jsonl,csv}, model.ftw and
// summary.json under "<dir>/<name>.partial", renamed to "<dir>/<name>" only when the run
// finished, so an incomplete run is never presented as complete. A run with checkpoints can
// be resumed from its ".partial" folder. Not thread-safe: one thread runs an experiment.
#ifndef FEDTRAIN_RUNTIME_RUN_FOLDER_H_
#define FEDTRAIN_RUNTIME_RUN_FOLDER_H_

#include <functional>
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

// Resolve, load, run, and write the run folder. On error the ".partial" folder (if created)
// is left with an error.txt and the error is returned. `transport` (required) as in
// RunFederation: the only difference between a simulation and a deployed run.
absl::StatusOr<ExperimentOutcome> RunExperiment(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round, const TransportFactory& transport,
    const ServerRunOptions& server = {});

// The one "<output.dir>/<run name>[-K].partial" folder of a resolved config that holds a
// checkpoint (what `fedtrain server --resume` continues). NotFound when there is none,
// FailedPrecondition naming them when there are several.
absl::StatusOr<std::string> FindUnfinishedRun(const v1::ExperimentConfig& cfg);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_RUN_FOLDER_H_
