#include "sim/simulate.h"

#include <memory>
#include <utility>
#include <vector>

#include "client/worker.h"
#include "comm/inproc.h"
#include "core/status_macros.h"
#include "runtime/worker_factory.h"

namespace fedtrain {
namespace {

// The simulation's transport: one Worker per pool thread behind an InProcHub.
class SimTransport final : public ServerTransport {
 public:
  static absl::StatusOr<std::shared_ptr<ServerTransport>> Create(const TransportContext& c) {
    auto t = std::shared_ptr<SimTransport>(new SimTransport());
    FT_ASSIGN_OR_RETURN(t->factory_,
                        WorkerFactory::Create(c.cfg, c.registry, c.data, c.model, c.store));
    for (int i = 0; i < c.pool->size(); ++i) t->workers_.push_back(t->factory_->NewWorker());
    SimTransport* self = t.get();
    t->hub_ = std::make_unique<InProcHub>(c.pool, [self](int tid, const Task& task) {
      return self->workers_[tid]->Handle(task);
    });
    return std::shared_ptr<ServerTransport>(std::move(t));
  }
  ~SimTransport() override { hub_.reset(); }  // waits for tasks still running

  absl::Status SendTask(Task task) override { return hub_->SendTask(std::move(task)); }
  absl::StatusOr<ReceivedUpdate> ReceiveUpdate(absl::Time deadline) override {
    return hub_->ReceiveUpdate(deadline);
  }

 private:
  SimTransport() = default;
  std::unique_ptr<WorkerFactory> factory_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<InProcHub> hub_;
};

}  // namespace

TransportFactory InProcTransport() { return &SimTransport::Create; }

absl::StatusOr<RunResult> RunSimulation(const v1::ExperimentConfig& cfg,
                                        const AlgorithmRegistry& registry,
                                        const ExperimentData& data, MetricsSink* sink,
                                        const std::function<void(const RoundSummary&)>& on_round,
                                        const Trainer* model) {
  return RunFederation(cfg, registry, data, sink, on_round, model, InProcTransport());
}

absl::StatusOr<ExperimentOutcome> SimulateExperiment(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round, const ServerRunOptions& server) {
  return RunExperiment(cfg, registry, on_round, InProcTransport(), server);
}

}  // namespace fedtrain
