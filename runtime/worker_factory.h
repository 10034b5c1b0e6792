// The client half of an experiment: Workers for a resolved config, the same in the
// simulation and in a `fedtrain worker` process. Thread-compatible: NewWorker may be called
// from any thread once Create returned; each Worker is then used by one thread.
#ifndef FEDTRAIN_RUNTIME_WORKER_FACTORY_H_
#define FEDTRAIN_RUNTIME_WORKER_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "aggregators/registry.h"
#include "client/client_state_store.h"
#include "client/worker.h"
#include "fedtrain/v1/config.pb.h"
#include "models/trainer.h"
#include "runtime/experiment.h"

namespace fedtrain {

// Builds Workers (one per thread) for a resolved config. Borrows `data`, `model` (cloned per
// Worker) and `store`, which must outlive it and its Workers.
class WorkerFactory {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerFactory>> Create(
      const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
      const ExperimentData& data, const Trainer& model, ClientStateStore* store);
  ~WorkerFactory();
  std::unique_ptr<Worker> NewWorker() const;
  // WorkerOptions::versioned_state for the Workers made after this call (deployed workers).
  void SetVersionedState(bool on);

 private:
  struct Parts;
  explicit WorkerFactory(std::unique_ptr<Parts> p);
  std::unique_ptr<Parts> p_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_WORKER_FACTORY_H_
