#include "runtime/worker_factory.h"

#include <utility>

#include "aggregators/client_algorithm.h"
#include "compression/uplink_codec.h"
#include "core/status_macros.h"
#include "runtime/attack_data.h"
#include "runtime/uplink_setup.h"
#include "server/coordinator.h"

namespace fedtrain {

struct WorkerFactory::Parts {
  const ExperimentData* data;
  const Trainer* model;
  ClientStateStore* store;
  std::unique_ptr<ClientAlgorithm> client;
  std::unique_ptr<UplinkCodec> uplink;
  WorkerOptions wopts;
};

WorkerFactory::WorkerFactory(std::unique_ptr<Parts> p) : p_(std::move(p)) {}
WorkerFactory::~WorkerFactory() = default;

absl::StatusOr<std::unique_ptr<WorkerFactory>> WorkerFactory::Create(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const ExperimentData& data, const Trainer& model, ClientStateStore* store) {
  auto p = std::make_unique<Parts>();
  p->data = &data;
  p->model = &model;
  p->store = store;
  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* factory, registry.Find(cfg.algorithm().name()));
  // The server half only says how many parts an update has (a tracker wrapper keeps it).
  FT_ASSIGN_OR_RETURN(std::unique_ptr<ServerAlgorithm> server, factory->MakeServer(cfg.algorithm()));
  FT_ASSIGN_OR_RETURN(p->client, factory->MakeClient(cfg.algorithm()));
  FT_ASSIGN_OR_RETURN(p->uplink, MakeUplinkCodec(cfg, model.dim()));
  const auto& l = cfg.local();
  p->wopts.sgd.lr = l.lr();
  p->wopts.sgd.steps = l.steps();
  p->wopts.sgd.epochs = l.epochs();
  p->wopts.sgd.batch_size = l.batch_size();
  p->wopts.sgd.momentum = l.momentum();
  p->wopts.sgd.weight_decay = l.weight_decay();
  p->wopts.sgd.clip_norm = l.clip_norm();
  p->wopts.num_up_parts = server->num_up_parts();
  p->wopts.commit_sent = factory->traits(cfg.algorithm()).commit_sent;
  p->wopts.attack = AttackFromConfig(cfg);
  const uint64_t seed = cfg.sampling_seed();
  const int64_t n = cfg.federation().num_clients();
  const int64_t m = SampleSize(n, cfg.federation().clients_per_round(),
                               cfg.federation().over_selection());
  p->wopts.round_clients = [seed, n, m](uint64_t round) { return SampleClients(seed, round, n, m); };
  return std::unique_ptr<WorkerFactory>(new WorkerFactory(std::move(p)));
}

void WorkerFactory::SetVersionedState(bool on) { p_->wopts.versioned_state = on; }

std::unique_ptr<Worker> WorkerFactory::NewWorker() const {
  return std::make_unique<Worker>(p_->wopts, p_->client.get(), p_->model->Clone(),
                                  WithDataAttack(ClientDataOf(*p_->data), p_->wopts.attack, *p_->data),
                                  p_->store, p_->uplink.get());
}

}  // namespace fedtrain
