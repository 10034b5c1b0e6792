#include "runtime/experiment.h"

#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "aggregators/params.h"
#include "aggregators/tracker_server.h"
#include "client/file_client_state_store.h"
#include "core/status_macros.h"
#include "data/idx.h"
#include "models/mlp.h"
#include "proto/config_io.h"
#include "runtime/attack_data.h"
#include "runtime/file_data.h"

namespace fedtrain {

absl::StatusOr<v1::ExperimentConfig> ResolveConfig(v1::ExperimentConfig cfg,
                                                   const AlgorithmRegistry& registry) {
  FillDefaults(&cfg);
  if (cfg.data().seed() == 0) cfg.mutable_data()->set_seed(cfg.seed());
  if (cfg.sampling_seed() == 0) cfg.set_sampling_seed(cfg.seed());
  if (cfg.threads() == 0)
    cfg.set_threads(std::max(1u, std::thread::hardware_concurrency()));
  if (cfg.output().run_name().empty()) cfg.mutable_output()->set_run_name(cfg.name());
  FT_RETURN_IF_ERROR(ValidateConfig(cfg));
  if (!cfg.plugins().empty()) {
    // Absolute, so that the saved config loads the same libraries from any folder.
    for (std::string& p : *cfg.mutable_plugins()) {
      std::error_code ec;
      const std::filesystem::path abs = std::filesystem::absolute(p, ec);
      if (!ec) p = abs.lexically_normal().string();
    }
  }
  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* f, registry.Find(cfg.algorithm().name()));
  {
    // The values the algorithm's (and its reducer's) parameters resolve to, defaults
    // included, go into the resolved config.
    ParamRecorder recorder;
    FT_RETURN_IF_ERROR(f->Validate(cfg.algorithm()));
    for (const auto& [prefix, values] : recorder.recorded()) {
      google::protobuf::Struct* target =
          prefix == "algorithm.params"           ? cfg.mutable_algorithm()->mutable_params()
          : prefix == "algorithm.reducer.params" ? cfg.mutable_algorithm()->mutable_reducer()->mutable_params()
                                                 : nullptr;
      if (target == nullptr) continue;
      for (const auto& [key, value] : values.fields()) (*target->mutable_fields())[key] = value;
    }
  }
  FT_RETURN_IF_ERROR(CheckFeedback(cfg, f->traits(cfg.algorithm())));
  FT_RETURN_IF_ERROR(CheckAttackConfig(cfg));
  return cfg;
}

absl::Status CheckAttackConfig(const v1::ExperimentConfig& cfg) {
  FT_RETURN_IF_ERROR(ParseAttackAt(cfg.attack().at(), cfg.attack().name()).status());
  if (cfg.attack().space() != "gradient" && cfg.attack().space() != "update")
    return absl::InvalidArgumentError(absl::StrCat(
        "attack.space must be \"gradient\" or \"update\", got '", cfg.attack().space(), "'"));
  FT_RETURN_IF_ERROR(ValidateAttack(AttackFromConfig(cfg)));
  FT_RETURN_IF_ERROR(CheckDataAttack(cfg));
  for (int64_t id : cfg.attack().clients())
    if (id < 0 || id >= cfg.federation().num_clients())
      return absl::InvalidArgumentError(absl::StrCat(
          "attack.clients holds ", id, ", not a client id in [0, federation.num_clients = ",
          cfg.federation().num_clients(), ")"));
  return absl::OkStatus();
}

AttackOptions AttackFromConfig(const v1::ExperimentConfig& cfg) {
  const v1::AttackConfig& a = cfg.attack();
  AttackOptions o;
  o.name = a.name();
  for (int64_t id : a.clients()) o.clients.insert(static_cast<ClientId>(id));
  o.seed = a.seed() != 0 ? a.seed() : cfg.seed();
  o.sigma = a.sigma();
  o.scale = a.scale();
  o.omniscient = a.omniscient();
  o.z = a.z();
  o.eps = a.eps();
  o.drop_prob = a.drop_prob();
  o.stale_rounds = a.stale_rounds();
  o.rho = a.rho();
  o.gradient_space = a.space() != "update";
  // An unknown attack.at is refused by ResolveConfig; here it reads as the default.
  o.at = ParseAttackAt(a.at(), a.name()).value_or(DefaultAttackAt(a.name()));
  return o;
}

namespace {

// Test rows of a natural split: devices [0, eval_clients) (0 = all) of the population.
uint64_t EvalDevices(const v1::ExperimentConfig& cfg, uint64_t num_devices) {
  const int64_t e = cfg.federation().eval_clients();
  return e > 0 ? std::min<uint64_t>(static_cast<uint64_t>(e), num_devices) : num_devices;
}

// Synthetic with partition.method natural: pooled (GenerateSynthetic) or on demand.
absl::Status LoadNaturalSynthetic(const v1::ExperimentConfig& cfg, const SyntheticOptions& o,
                                  ClientDataMode mode, ExperimentData* d) {
  FT_ASSIGN_OR_RETURN(SyntheticPopulation pop, SyntheticPopulation::Create(o));
  const uint64_t n_dev = pop.num_devices();
  const uint64_t eval_n = EvalDevices(cfg, n_dev);
  const uint64_t row_bytes = static_cast<uint64_t>(o.dim) * sizeof(float) + sizeof(int32_t);
  bool on_demand = mode == ClientDataMode::kOnDemand;
  if (mode == ClientDataMode::kAuto) {
    // Pooled: the samples, plus a uint32 index per train sample and a vector per client.
    uint64_t total = 0;
    for (uint64_t k = 0; k < n_dev; ++k) total += pop.DeviceSize(k);
    const uint64_t pooled = total * (row_bytes + sizeof(uint32_t)) +
                            n_dev * sizeof(std::vector<uint32_t>);
    on_demand = total > std::numeric_limits<uint32_t>::max() || pooled > kMaxPooledBytes;
  }
  if (!on_demand) {
    FT_ASSIGN_OR_RETURN(FederatedData fd, GenerateSynthetic(o));
    d->train = std::move(fd.train);
    d->test = std::move(fd.test);
    d->partition.clients = std::move(fd.client_train);
    if (eval_n < n_dev) {  // test rows are pooled in device order: keep the first devices'
      uint64_t rows = 0;
      for (uint64_t k = 0; k < eval_n; ++k) {
        const uint64_t n = pop.DeviceSize(k);
        rows += n - SyntheticPopulation::TrainSize(n);
      }
      d->test.features.resize(rows * d->test.num_features);
      d->test.labels.resize(rows);
      d->test.features.shrink_to_fit();
      d->test.labels.shrink_to_fit();
    }
    return absl::OkStatus();
  }

  uint64_t test_rows = 0;
  for (uint64_t k = 0; k < eval_n; ++k) {
    const uint64_t n = pop.DeviceSize(k);
    test_rows += n - SyntheticPopulation::TrainSize(n);
  }
  if (test_rows * row_bytes > kMaxPooledBytes)
    return absl::ResourceExhaustedError(absl::StrCat(
        "the test data of ", eval_n, " clients take ", test_rows * row_bytes >> 20,
        " MiB; set federation.eval_clients to evaluate on the first clients' test data "
        "(at most ", kMaxPooledBytes >> 20, " MiB)"));
  for (Dataset* ds : {&d->train, &d->test}) {
    ds->num_features = static_cast<size_t>(o.dim);
    ds->num_classes = o.classes;
  }
  d->test.features.reserve(test_rows * o.dim);
  d->test.labels.reserve(test_rows);
  SyntheticDevice dev;
  for (uint64_t k = 0; k < eval_n; ++k) {
    pop.GenerateDevice(k, &dev);
    d->test.features.insert(d->test.features.end(), dev.test.features.begin(),
                            dev.test.features.end());
    d->test.labels.insert(d->test.labels.end(), dev.test.labels.begin(), dev.test.labels.end());
  }
  d->population = std::make_shared<const SyntheticPopulation>(std::move(pop));
  return absl::OkStatus();
}

// data.normalize standardize: one affine map, its statistics given or fitted on the training
// split alone, applied to both splits (the test split never contributes to them).
absl::Status Standardize(const v1::DataConfig& c, ExperimentData* d) {
  if (c.normalize() != "standardize") return absl::OkStatus();
  FeatureStats s{c.mean(), c.std()};
  if (c.std() == 0) {
    absl::StatusOr<FeatureStats> fitted = GlobalFeatureStats(d->train);
    if (!fitted.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("data.normalize: ", fitted.status().message()));
    s = *fitted;
  }
  FT_RETURN_IF_ERROR(StandardizeFeatures(s, &d->train));
  FT_RETURN_IF_ERROR(StandardizeFeatures(s, &d->test));
  d->standardization = s;
  return absl::OkStatus();
}

}  // namespace

void RecordDataStatistics(const ExperimentData& data, v1::ExperimentConfig* cfg) {
  if (cfg->data().normalize() != "standardize" || !data.standardization) return;
  cfg->mutable_data()->set_mean(data.standardization->mean);
  cfg->mutable_data()->set_std(data.standardization->std);
}

absl::StatusOr<ExperimentData> LoadExperimentData(const v1::ExperimentConfig& cfg,
                                                  ClientDataMode mode) {
  ExperimentData d;
  const uint64_t seed = cfg.data().seed();
  const int n_clients = static_cast<int>(cfg.federation().num_clients());
  if (cfg.data().dataset() == "fashion_mnist") {
    const bool scale = cfg.data().normalize() != "none";
    FT_ASSIGN_OR_RETURN(d.train, LoadFashionMnist(cfg.data().path(), /*train=*/true, scale));
    FT_ASSIGN_OR_RETURN(d.test, LoadFashionMnist(cfg.data().path(), /*train=*/false, scale));
  } else if (cfg.data().dataset() == "files") {
    FT_ASSIGN_OR_RETURN(FileData f, LoadFileData(cfg.data(), seed));
    d.train = std::move(f.train);
    d.test = std::move(f.test);
    if (cfg.partition().method() == "natural") {
      // The file's own split: client k holds the rows whose client column is k.
      d.partition.clients.resize(n_clients);
      for (size_t i = 0; i < f.train_clients.size(); ++i) {
        const int64_t c = f.train_clients[i];
        if (c >= n_clients)
          return absl::InvalidArgumentError(absl::StrCat(
              cfg.data().files().train(), ": row ", i, " has client id ", c, " in column '",
              cfg.data().files().client_column(), "', not below federation.num_clients = ",
              n_clients));
        d.partition.clients[c].push_back(static_cast<uint32_t>(i));
      }
      for (int c = 0; c < n_clients; ++c)
        if (d.partition.clients[c].empty())
          return absl::InvalidArgumentError(absl::StrCat(
              cfg.data().files().train(), ": client ", c, " has no training rows (column '",
              cfg.data().files().client_column(), "'); federation.num_clients = ", n_clients,
              " needs ids 0..", n_clients - 1));
      FT_RETURN_IF_ERROR(Standardize(cfg.data(), &d));
      return d;
    }
  } else {
    const auto& s = cfg.data().synthetic();
    SyntheticOptions o;
    o.alpha = s.alpha();
    o.beta = s.beta();
    o.num_devices = static_cast<int>(s.num_devices());
    o.dim = static_cast<int>(s.dim());
    o.classes = static_cast<int>(s.classes());
    o.iid = s.iid();
    o.seed = seed;
    if (cfg.partition().method() == "natural") {
      FT_RETURN_IF_ERROR(LoadNaturalSynthetic(cfg, o, mode, &d));
      return d;
    }
    FT_ASSIGN_OR_RETURN(FederatedData fd, GenerateSynthetic(o));
    d.train = std::move(fd.train);
    d.test = std::move(fd.test);
  }
  FT_RETURN_IF_ERROR(Standardize(cfg.data(), &d));
  const auto& p = cfg.partition();
  if (p.method() == "iid") {
    FT_ASSIGN_OR_RETURN(d.partition, PartitionIid(d.train, n_clients, seed));
  } else if (p.method() == "dirichlet") {
    FT_ASSIGN_OR_RETURN(d.partition, PartitionDirichlet(d.train, n_clients, p.alpha(), seed,
                                                        static_cast<size_t>(p.min_size())));
  } else if (p.method() == "shards") {
    FT_ASSIGN_OR_RETURN(d.partition, PartitionShards(d.train, n_clients,
                                                     static_cast<int>(p.classes_per_client()), seed));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("partition.method ", p.method(), " is not available for ", cfg.data().dataset()));
  }
  return d;
}

double ConfigModelParams(const v1::ExperimentConfig& cfg, const ExperimentData& data) {
  double in = static_cast<double>(data.train.num_features), params = 0;
  if (cfg.model().type() == "mlp") {
    for (int64_t h : cfg.model().hidden()) {
      params += (in + 1) * static_cast<double>(h);
      in = static_cast<double>(h);
    }
  }
  return params + (in + 1) * static_cast<double>(data.train.num_classes);
}

namespace {

// The first number in the file at `path`; 0 when it cannot be read or holds none ("max").
double ReadNumber(const char* path) {
  std::ifstream in(path);
  double v = 0;
  return (in >> v) ? v : 0;
}

// Bytes this process may still allocate: MemAvailable, the cgroup's memory.max less its
// memory.current (a container's limit, cgroup v2), and the soft RLIMIT_AS less what is mapped
// already, whichever is smallest; 0 when none can be read.
double AvailableBytes() {
  double avail = 0;
  if (const double max = ReadNumber("/sys/fs/cgroup/memory.max"); max > 0)
    avail = std::max(0.0, max - ReadNumber("/sys/fs/cgroup/memory.current"));
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      avail = avail > 0 ? std::min(avail, kib * 1024) : kib * 1024;
      break;
    }
  }
  struct rlimit lim;
  if (::getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    double mapped = 0;  // VmSize of this process
    std::ifstream status("/proc/self/status");
    while (status >> key >> kib) {
      std::getline(status, unit);
      if (key == "VmSize:") {
        mapped = kib * 1024;
        break;
      }
    }
    const double left = std::max(0.0, static_cast<double>(lim.rlim_cur) - mapped);
    avail = avail > 0 ? std::min(avail, left) : left;
  }
  return avail;
}

}  // namespace

absl::Status CheckModelFitsMemory(const v1::ExperimentConfig& cfg, const ExperimentData& data,
                                  double available_bytes) {
  const double params = ConfigModelParams(cfg, data);
  // The global model and at least one vector of server state (the algorithm's own, or the
  // evaluation's copy), and each of the round's decoded updates.
  const double vectors = 2 + static_cast<double>(cfg.federation().clients_per_round());
  const double need = params * vectors * sizeof(float);
  const double avail = available_bytes > 0 ? available_bytes : AvailableBytes();
  if (avail <= 0 || need <= avail) return absl::OkStatus();
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the model has %.4g parameters (model.hidden [%s]); the run needs at least %.3g GiB (the "
      "global model, the server state and federation.clients_per_round = %d decoded updates, 4 "
      "bytes per parameter each) but this process can allocate only %.3g GiB (MemAvailable, "
      "cgroup memory.max, RLIMIT_AS): lower model.hidden or federation.clients_per_round",
      params, absl::StrJoin(cfg.model().hidden(), ","), need / kGiB,
      static_cast<int>(cfg.federation().clients_per_round()), avail / kGiB));
}

absl::StatusOr<std::unique_ptr<Trainer>> MakeConfigModel(const v1::ExperimentConfig& cfg,
                                                         const ExperimentData& data) {
  MlpSpec spec;
  spec.inputs = data.train.num_features;
  spec.classes = static_cast<size_t>(data.train.num_classes);
  if (cfg.model().type() == "mlp")
    for (int64_t h : cfg.model().hidden()) spec.hidden.push_back(static_cast<size_t>(h));
  return MakeMlpTrainer(spec);
}

namespace {

// federation.state_store: where client state lives between a client's rounds.
absl::StatusOr<std::unique_ptr<ClientStateStore>> MakeStateStore(
    const v1::FederationConfig& fed, size_t dim, const AlgorithmFactory& factory) {
  if (fed.state_store() == "memory") return std::make_unique<MemoryClientStateStore>();
  if (fed.state_store() != "file")
    return absl::InvalidArgumentError(
        absl::StrCat("federation.state_store must be memory or file; got ", fed.state_store()));
  if (fed.state_dir().empty())
    return absl::InvalidArgumentError(
        "federation.state_dir must name a folder for federation.state_store file");
  FileStateStoreOptions o;
  o.dir = fed.state_dir();
  o.dim = dim;
  o.algorithm = factory.name();
  o.state_version = factory.state_version();
  // A simulation is re-run rather than recovered after a power loss: rename still makes
  // every record atomic, fsync would only cost time.
  o.sync = false;
  absl::StatusOr<std::unique_ptr<FileClientStateStore>> store = FileClientStateStore::Open(o);
  if (!store.ok())
    return absl::Status(store.status().code(),
                        absl::StrCat("federation.state_dir: ", store.status().message()));
  FT_ASSIGN_OR_RETURN(bool used, (*store)->HasRecords());
  if (used)
    return absl::FailedPreconditionError(absl::StrCat(
        "federation.state_dir ", fed.state_dir(),
        " already holds client states, from an earlier run; a simulation starts every client "
        "from an empty state: remove the folder or name another one"));
  return std::unique_ptr<ClientStateStore>(std::move(store).value());
}

}  // namespace

// One worker's view of the client data. On demand, each worker owns the buffer its clients'
// data are generated into: the view it returns stays valid until that worker's next task
// (a Worker runs one task at a time).
ClientDataFn ClientDataOf(const ExperimentData& data) {
  if (data.population) {
    const SyntheticPopulation* pop = data.population.get();
    auto device = std::make_shared<SyntheticDevice>();
    return [pop, device](ClientId id) -> absl::StatusOr<DataView> {
      if (id >= pop->num_devices())
        return absl::NotFoundError(absl::StrCat("no data for client ", id));
      pop->GenerateDevice(id, device.get(), /*with_test=*/false);
      return DataView::All(device->train);
    };
  }
  return [&data](ClientId id) -> absl::StatusOr<DataView> {
    if (id >= data.partition.clients.size())
      return absl::NotFoundError(absl::StrCat("no data for client ", id));
    return DataView::Of(data.train, data.partition.clients[id]);
  };
}


std::function<uint64_t(ClientId)> ClientSamplesOf(const ExperimentData& data) {
  if (data.population) {
    const SyntheticPopulation* pop = data.population.get();
    return [pop](ClientId id) -> uint64_t {
      return id < pop->num_devices() ? SyntheticPopulation::TrainSize(pop->DeviceSize(id)) : 0;
    };
  }
  return [&data](ClientId id) -> uint64_t {
    return id < data.partition.clients.size() ? data.partition.clients[id].size() : 0;
  };
}

absl::StatusOr<std::unique_ptr<ClientStateStore>> MakeClientStateStore(
    const v1::ExperimentConfig& cfg, size_t dim, const AlgorithmRegistry& registry) {
  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* factory, registry.Find(cfg.algorithm().name()));
  return MakeStateStore(cfg.federation(), dim, *factory);
}

std::string ConfigFingerprint(const v1::ExperimentConfig& resolved) {
  v1::ExperimentConfig c = resolved;
  c.clear_threads();
  c.clear_output();
  c.clear_checkpoint();
  return ConfigToJson(c);
}

}  // namespace fedtrain
