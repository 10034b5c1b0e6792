#include "runtime/worker_setup.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "aggregators/registry.h"
#include "client/file_client_state_store.h"
#include "core/status_macros.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "runtime/plugins.h"
#include "runtime/worker_factory.h"

namespace fedtrain {
namespace {

// Everything the Workers borrow. Members are destroyed in reverse order: the factory and the
// store before the model and data they refer to, the scratch folder last.
struct Owned {
  struct Scratch {
    std::string dir;
    ~Scratch() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } scratch;
  AlgorithmRegistry registry;
  v1::ExperimentConfig cfg;
  ExperimentData data;
  std::unique_ptr<Trainer> model;
  std::unique_ptr<ClientStateStore> store;
  std::unique_ptr<WorkerFactory> factory;
};

}  // namespace

absl::StatusOr<v1::ExperimentConfig> WithWorkerAttack(const v1::ExperimentConfig& cfg,
                                                       const std::vector<std::string>& attack) {
  if (attack.empty()) return cfg;
  v1::ExperimentConfig out = cfg;
  out.clear_attack();
  for (const std::string& kv : attack)
    FT_RETURN_IF_ERROR(ApplyOverride(absl::StrCat("attack.", kv), &out));
  out.mutable_attack()->set_at("worker");
  FillDefaults(out.mutable_attack());
  if (absl::Status st = CheckAttackConfig(out); !st.ok())
    return absl::Status(st.code(), absl::StrCat("--attack: ", st.message()));
  return out;
}

absl::StatusOr<RemoteWorkerSet> SetUpRemoteWorkers(const v1::ExperimentConfig& sent,
                                                   const WorkerSetupOptions& o) {
  FT_ASSIGN_OR_RETURN(const v1::ExperimentConfig cfg, WithWorkerAttack(sent, o.attack));
  auto own = std::make_shared<Owned>();
  FT_RETURN_IF_ERROR(RegisterAlgorithms(cfg, &own->registry));
  own->cfg = cfg;
  if (o.state_dir.empty() && cfg.federation().state_store() == "file") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fedtrain-worker-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr)
      return absl::InternalError("cannot create a scratch folder for the client states");
    own->scratch.dir = tmpl;
    own->cfg.mutable_federation()->set_state_dir(tmpl);
  }
  FT_ASSIGN_OR_RETURN(own->data, LoadExperimentData(own->cfg));
  FT_ASSIGN_OR_RETURN(own->model, MakeConfigModel(own->cfg, own->data));
  if (!o.state_dir.empty()) {
    FT_ASSIGN_OR_RETURN(const AlgorithmFactory* factory,
                        own->registry.Find(cfg.algorithm().name()));
    FileStateStoreOptions so;
    so.dir = o.state_dir;
    so.dim = own->model->dim();
    so.algorithm = factory->name();
    so.state_version = factory->state_version();
    so.sync = true;  // a saved state survives a crash of the host too
    absl::StatusOr<std::unique_ptr<FileClientStateStore>> fs = FileClientStateStore::Open(so);
    if (!fs.ok())
      return absl::Status(fs.status().code(),
                          absl::StrCat("--state-dir: ", fs.status().message()));
    own->store = std::move(fs).value();
  } else {
    FT_ASSIGN_OR_RETURN(own->store,
                        MakeClientStateStore(own->cfg, own->model->dim(), own->registry));
  }
  FT_ASSIGN_OR_RETURN(own->factory, WorkerFactory::Create(own->cfg, own->registry, own->data,
                                                          *own->model, own->store.get()));
  // The server says with each task which of the client's updates it accepted; the Worker
  // keeps the matching state version (client/worker.h).
  own->factory->SetVersionedState(true);
  RemoteWorkerSet set;
  for (int t = 0; t < o.threads; ++t) set.workers.push_back(own->factory->NewWorker());
  set.keep_alive = std::move(own);
  return set;
}

}  // namespace fedtrain
