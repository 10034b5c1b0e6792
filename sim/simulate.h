// Simulation: one Coordinator and one Worker per pool thread over the in-process hub
// (STYLE.md §6). No algorithm code lives here: only wiring from the config.
// RunExperiment adds the run folder: config.json, metrics.{jsonl,csv}, model.ftw,
// summary.json, written under "<dir>/<name>.partial" and renamed to "<dir>/<name>" only when
// the run finished, so an incomplete run is never presented as complete.
#ifndef FEDTRAIN_SIM_SIMULATE_H_
#define FEDTRAIN_SIM_SIMULATE_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/registry.h"
#include "core/metrics.h"
#include "data/dataset.h"
#include "data/partition.h"
#include "fedtrain/v1/config.pb.h"
#include "server/coordinator.h"

namespace fedtrain {

struct ExperimentData {
  Dataset train;
  Dataset test;
  Partition partition;
};

// Fills defaults, derives seeds (data.seed and sampling_seed default to seed), validates the
// config and the algorithm's fields. Errors name the field.
absl::StatusOr<v1::ExperimentConfig> ResolveConfig(v1::ExperimentConfig cfg,
                                                   const AlgorithmRegistry& registry);

// Loads or generates the data set and partitions it. NotFound / DataLoss name the file.
absl::StatusOr<ExperimentData> LoadExperimentData(const v1::ExperimentConfig& cfg);

struct SimulationResult {
  std::vector<float> model;
  ParamLayout layout;
  std::string model_description;
  std::optional<EvalMetrics> final_test;
  int64_t rounds = 0;
  double wall_s = 0.0;
  uint64_t cum_bytes_up = 0, cum_bytes_down = 0;
};

// Runs a resolved config. `sink` and `on_round` may be null. `model`, when given, replaces the
// config's model section: a user's own Trainer, cloned once per worker thread and once for
// evaluation (it must accept the data set's features and labels).
absl::StatusOr<SimulationResult> RunSimulation(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const ExperimentData& data, MetricsSink* sink,
    const std::function<void(const RoundSummary&)>& on_round, const Trainer* model = nullptr);

struct ExperimentOutcome {
  std::string run_dir;
  SimulationResult result;
};

// Resolve, load, run, and write the run folder. On error the ".partial" folder (if created)
// is left with an error.txt and the error is returned.
absl::StatusOr<ExperimentOutcome> RunExperiment(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round);

}  // namespace fedtrain

#endif  // FEDTRAIN_SIM_SIMULATE_H_
