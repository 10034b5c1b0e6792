// One federated run from a resolved config, the same for the simulation and a deployed server:
// makes the model, the server half (with the error-feedback tracker when the feedback needs
// one), the uplink codecs, the client-state store and the transport, then runs the rounds
// (server/server_loop.h). Only the transport differs between the modes.
// Not thread-safe: one thread calls RunFederation; it starts the run's thread pool.
#ifndef FEDTRAIN_RUNTIME_FEDERATION_H_
#define FEDTRAIN_RUNTIME_FEDERATION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/registry.h"
#include "client/client_state_store.h"
#include "comm/transport.h"
#include "core/metrics.h"
#include "core/thread_pool.h"
#include "core/vec.h"
#include "fedtrain/v1/config.pb.h"
#include "models/trainer.h"
#include "runtime/experiment.h"
#include "server/coordinator.h"

namespace fedtrain {

// What a transport factory gets: the resolved config the run uses, its data, the prototype
// model, the run's thread pool and client-state store (all outlive the transport).
struct TransportContext {
  const v1::ExperimentConfig& cfg;
  const AlgorithmRegistry& registry;
  const ExperimentData& data;
  const Trainer& model;
  ThreadPool* pool;
  ClientStateStore* store;
};
// Returns the transport the Coordinator talks to (sim/simulate.h InProcTransport() for a
// simulation, comm/grpc_server.h for a deployed server).
using TransportFactory =
    std::function<absl::StatusOr<std::shared_ptr<ServerTransport>>(const TransportContext&)>;

// Options of a deployed run (`fedtrain server`); a simulation leaves them at their defaults.
struct ServerRunOptions {
  bool track_accepted = false;  // CoordinatorOptions::track_accepted
  // RunExperiment: continue this "<name>.partial" run folder from its checkpoint.ftc instead
  // of starting a new run folder (metrics after the checkpoint's round are dropped and done
  // again). NotFound when it holds no checkpoint.
  std::string resume_dir;
  // RunFederation (RunExperiment sets both): write checkpoints here every checkpoint.every
  // rounds and after the last, and start from `resume` when it is set.
  std::string checkpoint_path;
  std::shared_ptr<const CoordinatorSnapshot> resume;
  // ServerLoopOptions::interrupt: stop after the round in progress once it is non-zero.
  // When the run's own client-state store (a simulation's) holds states, the interrupted
  // run removes its checkpoint, which could not repeat them: such a run cannot be resumed.
  const std::atomic<int>* interrupt = nullptr;
};

// What a run produced (simulated or deployed alike).
struct RunResult {
  std::vector<float> model;
  ParamLayout layout;
  std::string model_description;
  std::optional<EvalMetrics> final_test;
  int64_t rounds = 0;
  double wall_s = 0.0;
  uint64_t cum_bytes_up = 0, cum_bytes_down = 0;
  // Traffic of the "file" client state store (zero for "memory").
  uint64_t state_bytes_read = 0, state_bytes_written = 0;
  // Privacy runs: the guarantee after the last round, against whom it holds, the mechanism's
  // range extension (calibrated or given), and why training stopped early ("" if it did not).
  std::optional<DpGuarantee> privacy;
  std::string privacy_guarantee;
  double privacy_range_extension = 0.0;  // rqm
  double privacy_noise_multiplier = 0.0;  // gaussian
  std::string stop_reason;
};

// Runs a resolved config over the transport `transport` makes (required). `sink` and
// `on_round` may be null. Per-client state goes to the store federation.state_store names,
// opened for (d, algorithm name, state version); with "file", federation.state_dir must be
// set here (RunExperiment supplies a scratch folder) and must not already hold client states
// (FailedPrecondition: a run starts every client from an empty state). `model`, when given,
// replaces the config's model section: a user's own Trainer, cloned once per worker thread and
// once for evaluation (it must accept the data set's features and labels).
absl::StatusOr<RunResult> RunFederation(const v1::ExperimentConfig& cfg,
                                        const AlgorithmRegistry& registry,
                                        const ExperimentData& data, MetricsSink* sink,
                                        const std::function<void(const RoundSummary&)>& on_round,
                                        const Trainer* model, const TransportFactory& transport,
                                        const ServerRunOptions& server = {});

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_FEDERATION_H_
