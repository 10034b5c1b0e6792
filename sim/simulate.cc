#include "sim/simulate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "client/client_state_store.h"
#include "client/file_client_state_store.h"
#include "client/uplink.h"
#include "client/worker.h"
#include "comm/inproc.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"
#include "core/clock.h"
#include "core/status_macros.h"
#include "core/thread_pool.h"
#include "data/idx.h"
#include "data/synthetic.h"
#include "models/mlp.h"
#include "proto/config_io.h"
#include "server/checkpoint.h"
#include "server/tracker_server.h"
#include "sim/model_file.h"

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
  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* f, registry.Find(cfg.algorithm().name()));
  FT_RETURN_IF_ERROR(f->Validate(cfg.algorithm()));
  return cfg;
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

}  // namespace

absl::StatusOr<ExperimentData> LoadExperimentData(const v1::ExperimentConfig& cfg,
                                                  ClientDataMode mode) {
  ExperimentData d;
  const uint64_t seed = cfg.data().seed();
  const int n_clients = static_cast<int>(cfg.federation().num_clients());
  if (cfg.data().dataset() == "fashion_mnist") {
    FT_ASSIGN_OR_RETURN(d.train, LoadFashionMnist(cfg.data().path(), /*train=*/true));
    FT_ASSIGN_OR_RETURN(d.test, LoadFashionMnist(cfg.data().path(), /*train=*/false));
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

// The uplink pipeline of compression.*: compressor, the tracker's dense codec, feedback.
struct Uplink {
  std::unique_ptr<Compressor> compressor;
  std::unique_ptr<Compressor> dense;  // only for tracker feedback (ef21, econtrol)
  UplinkOptions options;
};

absl::StatusOr<Uplink> MakeUplink(const v1::CompressionConfig& cc, size_t dim) {
  Uplink up;
  CompressorOptions o;
  o.compressor = cc.compressor();
  o.k_fraction = cc.k_fraction();
  o.k = cc.k();
  o.levels = cc.levels();
  o.bucket = cc.bucket();
  o.index_encoding = cc.index_encoding();
  o.value_type = cc.value_type();
  FT_ASSIGN_OR_RETURN(up.compressor, MakeCompressor(o, dim));
  FT_ASSIGN_OR_RETURN(up.options.feedback.method, ParseFeedback(cc.feedback()));
  up.options.feedback.eta = std::max(0.0, cc.eta());  // -1 = unset; validated for econtrol
  up.options.feedback.init =
      cc.tracker_init() == "compressed" ? TrackerInit::kCompressed : TrackerInit::kDense;
  up.options.clip_norm = cc.clip_norm();
  FT_RETURN_IF_ERROR(ValidateFeedbackOptions(up.options.feedback));
  if (HasTracker(up.options.feedback.method)) {
    CompressorOptions dense;
    dense.value_type = cc.value_type();
    FT_ASSIGN_OR_RETURN(up.dense, MakeCompressor(dense, dim));
  }
  return up;
}

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

// One worker's view of the client data. On demand, each worker owns the buffer its clients'
// data are generated into: the view it returns stays valid until that worker's next task
// (a Worker runs one task at a time).
ClientDataFn ClientData(const ExperimentData& data) {
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

}  // namespace

absl::StatusOr<std::unique_ptr<ClientStateStore>> MakeClientStateStore(
    const v1::ExperimentConfig& cfg, size_t dim, const AlgorithmRegistry& registry) {
  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* factory, registry.Find(cfg.algorithm().name()));
  return MakeStateStore(cfg.federation(), dim, *factory);
}

struct WorkerFactory::Parts {
  const ExperimentData* data;
  const Trainer* model;
  ClientStateStore* store;
  std::unique_ptr<ClientAlgorithm> client;
  Uplink up;
  std::unique_ptr<UplinkEncoder> uplink;
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
  FT_ASSIGN_OR_RETURN(p->up, MakeUplink(cfg.compression(), model.dim()));
  p->uplink = std::make_unique<UplinkEncoder>(p->up.options, p->up.compressor.get(),
                                              p->up.dense.get());
  const auto& l = cfg.local();
  p->wopts.sgd.lr = l.lr();
  p->wopts.sgd.steps = l.steps();
  p->wopts.sgd.epochs = l.epochs();
  p->wopts.sgd.batch_size = l.batch_size();
  p->wopts.sgd.momentum = l.momentum();
  p->wopts.sgd.weight_decay = l.weight_decay();
  p->wopts.sgd.clip_norm = l.clip_norm();
  p->wopts.num_up_parts = server->num_up_parts();
  return std::unique_ptr<WorkerFactory>(new WorkerFactory(std::move(p)));
}

void WorkerFactory::SetVersionedState(bool on) { p_->wopts.versioned_state = on; }

std::unique_ptr<Worker> WorkerFactory::NewWorker() const {
  return std::make_unique<Worker>(p_->wopts, p_->client.get(), p_->model->Clone(),
                                  ClientData(*p_->data), p_->store, p_->uplink.get());
}

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
    t->hub_ = std::make_unique<InProcHub>(c.pool, [self](int tid, const v1::TaskMsg& task) {
      return self->workers_[tid]->Handle(task);
    });
    return std::shared_ptr<ServerTransport>(std::move(t));
  }
  ~SimTransport() override { hub_.reset(); }  // waits for tasks still running

  absl::Status SendTask(v1::TaskMsg task) override { return hub_->SendTask(std::move(task)); }
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

absl::StatusOr<SimulationResult> RunSimulation(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const ExperimentData& data, MetricsSink* sink,
    const std::function<void(const RoundSummary&)>& on_round, const Trainer* model,
    const TransportFactory& transport_factory, const ServerRunOptions& server_opts) {
  if (data.num_clients() != static_cast<uint64_t>(cfg.federation().num_clients()))
    return absl::InvalidArgumentError(absl::StrCat(
        "partition has ", data.num_clients(), " clients; federation.num_clients is ",
        cfg.federation().num_clients()));
  std::unique_ptr<Trainer> proto_trainer;
  if (model != nullptr) {
    proto_trainer = model->Clone();
  } else {
    FT_ASSIGN_OR_RETURN(proto_trainer, MakeConfigModel(cfg, data));
  }

  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* factory, registry.Find(cfg.algorithm().name()));
  FT_ASSIGN_OR_RETURN(std::unique_ptr<ServerAlgorithm> server, factory->MakeServer(cfg.algorithm()));
  FT_ASSIGN_OR_RETURN(Uplink up, MakeUplink(cfg.compression(), proto_trainer->dim()));
  if (HasTracker(up.options.feedback.method))
    server = std::make_unique<TrackerServer>(std::move(server), up.options.feedback,
                                             static_cast<uint64_t>(cfg.federation().num_clients()));

  std::vector<float> x0(proto_trainer->dim());
  RngStream init_rng = RngStream::For(cfg.seed(), 0, 0, Purpose::kModelInit);
  proto_trainer->InitParams(init_rng, absl::MakeSpan(x0));

  const auto& l = cfg.local();
  FT_ASSIGN_OR_RETURN(std::unique_ptr<ClientStateStore> store,
                      MakeStateStore(cfg.federation(), proto_trainer->dim(), *factory));
  const int threads = static_cast<int>(cfg.threads());
  ThreadPool pool(threads);
  const TransportContext ctx{cfg, registry, data, *proto_trainer, &pool, store.get()};
  FT_ASSIGN_OR_RETURN(std::shared_ptr<ServerTransport> hub,
                      transport_factory ? transport_factory(ctx) : SimTransport::Create(ctx));

  std::unique_ptr<Trainer> eval_trainer = proto_trainer->Clone();
  Evaluator evaluator = [&](ConstVec w) {
    return eval_trainer->Evaluate(w, DataView::All(data.test));
  };
  CoordinatorOptions copts;
  copts.num_clients = cfg.federation().num_clients();
  copts.clients_per_round = cfg.federation().clients_per_round();
  copts.rounds = cfg.rounds();
  copts.seed = cfg.seed();
  copts.sampling_seed = cfg.sampling_seed();
  copts.lr = l.lr();
  copts.lr_decay = l.lr_decay();
  copts.eval_every = cfg.eval_every();
  copts.round_timeout = absl::Seconds(cfg.federation().round_timeout_s());
  copts.over_selection = cfg.federation().over_selection();
  copts.min_updates = cfg.federation().min_updates();
  copts.track_accepted = server_opts.track_accepted;
  RealClock clock;
  Coordinator coord(copts, server.get(), hub.get(), up.compressor.get(), evaluator, sink, &clock,
                    &pool);
  coord.SetDenseCodec(up.dense.get());
  FT_RETURN_IF_ERROR(coord.Init(x0));
  SimulationResult result;
  if (server_opts.resume) {
    FT_RETURN_IF_ERROR(coord.Restore(*server_opts.resume));
    result.cum_bytes_up = server_opts.resume->cum_bytes_up;
    result.cum_bytes_down = server_opts.resume->cum_bytes_down;
    result.wall_s = server_opts.resume->wall_s;
  }
  const CheckpointIdentity identity{cfg.algorithm().name(), ConfigFingerprint(cfg)};
  const int64_t every = cfg.checkpoint().every();
  absl::Status checkpoint_status;
  FT_RETURN_IF_ERROR(coord.Run([&](const RoundSummary& s) {
    if (s.test) result.final_test = s.test;
    result.wall_s = s.wall_s;
    result.cum_bytes_up = s.cum_bytes_up;
    result.cum_bytes_down = s.cum_bytes_down;
    const int64_t done = static_cast<int64_t>(s.round) + 1;
    if (!server_opts.checkpoint_path.empty() && every > 0 && checkpoint_status.ok() &&
        (done % every == 0 || done == cfg.rounds())) {
      absl::StatusOr<CoordinatorSnapshot> snap = coord.Snapshot();
      checkpoint_status = snap.ok()
                              ? SaveCheckpoint(server_opts.checkpoint_path, *snap, identity)
                              : snap.status();
    }
    if (on_round) on_round(s);
  }, [&]() { return checkpoint_status; }));
  // Resumed from a checkpoint taken after the last round: evaluate the final model once more.
  if (!result.final_test && coord.rounds_done() == cfg.rounds() && server_opts.resume) {
    FT_ASSIGN_OR_RETURN(EvalMetrics e, evaluator(coord.model()));
    result.final_test = e;
  }
  if (const auto* file = dynamic_cast<const FileClientStateStore*>(store.get())) {
    result.state_bytes_read = file->stats().bytes_read;
    result.state_bytes_written = file->stats().bytes_written;
  }
  result.model.assign(coord.model().begin(), coord.model().end());
  result.layout = proto_trainer->layout();
  result.model_description = proto_trainer->description();
  result.rounds = coord.rounds_done();
  return result;
}

namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// "<dir>/<name>", or "<dir>/<name>-2", "-3", ... when taken (finished or partial).
std::string FreeRunDir(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  std::string base = absl::StrCat(dir, "/", name);
  std::string cand = base;
  for (int i = 2; fs::exists(cand) || fs::exists(cand + ".partial"); ++i)
    cand = absl::StrCat(base, "-", i);
  return cand;
}

}  // namespace

std::string ConfigFingerprint(const v1::ExperimentConfig& resolved) {
  v1::ExperimentConfig c = resolved;
  c.clear_threads();
  c.clear_output();
  c.clear_checkpoint();
  return ConfigToJson(c);
}

absl::StatusOr<ExperimentOutcome> RunExperiment(
    const v1::ExperimentConfig& raw, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round,
    const TransportFactory& transport, const ServerRunOptions& server_opts) {
  namespace fs = std::filesystem;
  // Everything that can be checked before training is checked before any folder exists.
  FT_ASSIGN_OR_RETURN(v1::ExperimentConfig cfg, ResolveConfig(raw, registry));
  FT_ASSIGN_OR_RETURN(ExperimentData data, LoadExperimentData(cfg));
  {
    // Settings that need the model size (compression.k against d) are checked here too.
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> model, MakeConfigModel(cfg, data));
    FT_RETURN_IF_ERROR(MakeUplink(cfg.compression(), model->dim()).status());
  }

  std::error_code ec;
  fs::create_directories(cfg.output().dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create output.dir ", cfg.output().dir(),
                                                  ": ", ec.message()));
  const bool resuming = !server_opts.resume_dir.empty();
  std::string final_dir, partial;
  ServerRunOptions run_opts = server_opts;
  if (resuming) {
    partial = server_opts.resume_dir;
    while (partial.size() > 1 && partial.back() == '/') partial.pop_back();
    if (!absl::EndsWith(partial, ".partial") || !fs::is_directory(partial))
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot resume ", partial, ": not an unfinished run folder (<name>.partial)"));
    final_dir = partial.substr(0, partial.size() - std::string(".partial").size());
    if (fs::exists(final_dir))
      return absl::FailedPreconditionError(
          absl::StrCat("cannot resume ", partial, ": ", final_dir, " exists already"));
    run_opts.checkpoint_path = partial + "/checkpoint.ftc";
    FT_ASSIGN_OR_RETURN(CoordinatorSnapshot snap,
                        LoadCheckpoint(run_opts.checkpoint_path,
                                       {cfg.algorithm().name(), ConfigFingerprint(cfg)}));
    run_opts.resume = std::make_shared<const CoordinatorSnapshot>(std::move(snap));
  } else {
    final_dir = FreeRunDir(cfg.output().dir(), cfg.output().run_name());
    partial = final_dir + ".partial";
    fs::create_directories(partial, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", partial, ": ", ec.message()));
    if (cfg.checkpoint().every() > 0) run_opts.checkpoint_path = partial + "/checkpoint.ftc";
  }

  // A "file" state store without a folder of its own gets a scratch one in the run folder,
  // removed when the run ends (client states are a simulation's working memory).
  v1::ExperimentConfig run_cfg = cfg;
  std::string scratch_state;
  if (cfg.federation().state_store() == "file" && cfg.federation().state_dir().empty()) {
    scratch_state = partial + "/client_state";
    run_cfg.mutable_federation()->set_state_dir(scratch_state);
  }
  auto run = [&]() -> absl::StatusOr<SimulationResult> {
    if (!resuming)
      FT_RETURN_IF_ERROR(WriteText(partial + "/config.json", ConfigToJson(cfg) + "\n"));
    // The per-client class histogram of the split (docs/federated.md §7.2: always log the split).
    // Not for on-demand client data: it would generate every client of the population.
    if (!data.population && !resuming) {
      std::string hist;
      for (const auto& row : ClassHistogram(data.train, data.partition))
        absl::StrAppend(&hist, absl::StrJoin(row, ","), "\n");
      FT_RETURN_IF_ERROR(WriteText(partial + "/partition_histogram.csv", hist));
    }
    std::unique_ptr<FileMetricsSink> sink;
    if (resuming) {
      FT_ASSIGN_OR_RETURN(sink, FileMetricsSink::Resume(partial + "/metrics",
                                                        static_cast<int64_t>(run_opts.resume->state.round)));
      fs::remove(partial + "/error.txt", ec);
    } else {
      FT_ASSIGN_OR_RETURN(sink, FileMetricsSink::Open(partial + "/metrics"));
    }
    FT_ASSIGN_OR_RETURN(SimulationResult r,
                        RunSimulation(run_cfg, registry, data, sink.get(), on_round,
                                      /*model=*/nullptr, transport, run_opts));
    if (cfg.output().save_model())
      FT_RETURN_IF_ERROR(SaveModel(partial + "/model.ftw", r.model_description, r.layout,
                                   static_cast<uint64_t>(r.rounds), r.model));
    MetricsRow summary;
    summary.Set("name", cfg.name())
        .Set("model", r.model_description)
        .Set("rounds", r.rounds)
        .Set("test_accuracy", r.final_test ? r.final_test->accuracy : std::nan(""))
        .Set("test_loss", r.final_test ? r.final_test->loss : std::nan(""))
        .Set("wall_s", r.wall_s)
        .Set("threads", static_cast<int64_t>(cfg.threads()))
        .Set("cum_bytes_up", static_cast<int64_t>(r.cum_bytes_up))
        .Set("cum_bytes_down", static_cast<int64_t>(r.cum_bytes_down))
        .Set("state_bytes_read", static_cast<int64_t>(r.state_bytes_read))
        .Set("state_bytes_written", static_cast<int64_t>(r.state_bytes_written))
        .Set("weights_fnv1a64", absl::StrCat(HashFloats(r.model)));
    FT_RETURN_IF_ERROR(WriteText(partial + "/summary.json", summary.ToJson() + "\n"));
    return r;
  };
  absl::StatusOr<SimulationResult> r = run();
  if (!scratch_state.empty()) fs::remove_all(scratch_state, ec);
  if (!r.ok()) {
    (void)WriteText(partial + "/error.txt", r.status().ToString() + "\n");
    return absl::Status(r.status().code(),
                        absl::StrCat(r.status().message(), " (incomplete run left in ", partial, ")"));
  }
  fs::rename(partial, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", partial, ": ", ec.message()));
  return ExperimentOutcome{final_dir, std::move(r).value()};
}

}  // namespace fedtrain
