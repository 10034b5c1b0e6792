// Simulation: the in-process transport (one Worker per pool thread behind an InProcHub) and
// the runs over it. No algorithm code lives here, and no setup either: the experiment setup,
// the round driver and the run folder are the runtime's (runtime/), shared with the deployed
// server and worker; a simulation only supplies its transport (docs/maintainers.md §6).
#ifndef FEDTRAIN_SIM_SIMULATE_H_
#define FEDTRAIN_SIM_SIMULATE_H_

#include <functional>

#include "absl/status/statusor.h"
#include "aggregators/registry.h"
#include "core/metrics.h"
#include "fedtrain/v1/config.pb.h"
#include "models/trainer.h"
#include "runtime/experiment.h"
#include "runtime/federation.h"
#include "runtime/run_folder.h"
#include "server/coordinator.h"

namespace fedtrain {

// The simulation's transport: Workers built by runtime/worker_factory.h, one per thread of the
// run's pool, answering tasks in process.
TransportFactory InProcTransport();

// RunFederation over InProcTransport() (`model` as there; may be null).
absl::StatusOr<RunResult> RunSimulation(const v1::ExperimentConfig& cfg,
                                        const AlgorithmRegistry& registry,
                                        const ExperimentData& data, MetricsSink* sink,
                                        const std::function<void(const RoundSummary&)>& on_round,
                                        const Trainer* model = nullptr);

// RunExperiment over InProcTransport(): `fedtrain simulate`.
absl::StatusOr<ExperimentOutcome> SimulateExperiment(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round,
    const ServerRunOptions& server = {});

}  // namespace fedtrain

#endif  // FEDTRAIN_SIM_SIMULATE_H_
