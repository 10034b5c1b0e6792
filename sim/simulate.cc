#include "sim/simulate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/client_state_store.h"
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

absl::StatusOr<ExperimentData> LoadExperimentData(const v1::ExperimentConfig& cfg) {
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
    FT_ASSIGN_OR_RETURN(FederatedData fd, GenerateSynthetic(o));
    d.train = std::move(fd.train);
    d.test = std::move(fd.test);
    if (cfg.partition().method() == "natural") {
      d.partition.clients = std::move(fd.client_train);
      return d;
    }
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

namespace {

// The config's model (MLP or softmax regression) for the data set's shape.
absl::StatusOr<std::unique_ptr<Trainer>> ConfigModel(const v1::ExperimentConfig& cfg,
                                                     const ExperimentData& data) {
  MlpSpec spec;
  spec.inputs = data.train.num_features;
  spec.classes = static_cast<size_t>(data.train.num_classes);
  if (cfg.model().type() == "mlp")
    for (int64_t h : cfg.model().hidden()) spec.hidden.push_back(static_cast<size_t>(h));
  return MakeMlpTrainer(spec);
}

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

}  // namespace

absl::StatusOr<SimulationResult> RunSimulation(
    const v1::ExperimentConfig& cfg, const AlgorithmRegistry& registry,
    const ExperimentData& data, MetricsSink* sink,
    const std::function<void(const RoundSummary&)>& on_round, const Trainer* model) {
  if (data.partition.num_clients() != cfg.federation().num_clients())
    return absl::InvalidArgumentError(absl::StrCat(
        "partition has ", data.partition.num_clients(), " clients; federation.num_clients is ",
        cfg.federation().num_clients()));
  std::unique_ptr<Trainer> proto_trainer;
  if (model != nullptr) {
    proto_trainer = model->Clone();
  } else {
    FT_ASSIGN_OR_RETURN(proto_trainer, ConfigModel(cfg, data));
  }

  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* factory, registry.Find(cfg.algorithm().name()));
  FT_ASSIGN_OR_RETURN(std::unique_ptr<ServerAlgorithm> server, factory->MakeServer(cfg.algorithm()));
  FT_ASSIGN_OR_RETURN(std::unique_ptr<ClientAlgorithm> client, factory->MakeClient(cfg.algorithm()));
  FT_ASSIGN_OR_RETURN(Uplink up, MakeUplink(cfg.compression(), proto_trainer->dim()));
  if (HasTracker(up.options.feedback.method))
    server = std::make_unique<TrackerServer>(std::move(server), up.options.feedback,
                                             static_cast<uint64_t>(cfg.federation().num_clients()));
  UplinkEncoder uplink(up.options, up.compressor.get(), up.dense.get());

  std::vector<float> x0(proto_trainer->dim());
  RngStream init_rng = RngStream::For(cfg.seed(), 0, 0, Purpose::kModelInit);
  proto_trainer->InitParams(init_rng, absl::MakeSpan(x0));

  const auto& l = cfg.local();
  WorkerOptions wopts;
  wopts.sgd.lr = l.lr();
  wopts.sgd.steps = l.steps();
  wopts.sgd.epochs = l.epochs();
  wopts.sgd.batch_size = l.batch_size();
  wopts.sgd.momentum = l.momentum();
  wopts.sgd.weight_decay = l.weight_decay();
  wopts.sgd.clip_norm = l.clip_norm();
  wopts.num_up_parts = server->num_up_parts();

  MemoryClientStateStore store;
  ClientDataFn data_fn = [&data](ClientId id) -> absl::StatusOr<DataView> {
    if (id >= data.partition.clients.size())
      return absl::NotFoundError(absl::StrCat("no data for client ", id));
    return DataView::Of(data.train, data.partition.clients[id]);
  };
  const int threads = static_cast<int>(cfg.threads());
  ThreadPool pool(threads);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t)
    workers.push_back(std::make_unique<Worker>(wopts, client.get(), proto_trainer->Clone(),
                                               data_fn, &store, &uplink));
  InProcHub hub(&pool, [&workers](int tid, const v1::TaskMsg& task) {
    return workers[tid]->Handle(task);
  });

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
  RealClock clock;
  Coordinator coord(copts, server.get(), &hub, up.compressor.get(), evaluator, sink, &clock,
                    &pool);
  coord.SetDenseCodec(up.dense.get());
  FT_RETURN_IF_ERROR(coord.Init(x0));

  SimulationResult result;
  FT_RETURN_IF_ERROR(coord.Run([&](const RoundSummary& s) {
    if (s.test) result.final_test = s.test;
    result.wall_s = s.wall_s;
    result.cum_bytes_up = s.cum_bytes_up;
    result.cum_bytes_down = s.cum_bytes_down;
    if (on_round) on_round(s);
  }));
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

absl::StatusOr<ExperimentOutcome> RunExperiment(
    const v1::ExperimentConfig& raw, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round) {
  namespace fs = std::filesystem;
  // Everything that can be checked before training is checked before any folder exists.
  FT_ASSIGN_OR_RETURN(v1::ExperimentConfig cfg, ResolveConfig(raw, registry));
  FT_ASSIGN_OR_RETURN(ExperimentData data, LoadExperimentData(cfg));
  {
    // Settings that need the model size (compression.k against d) are checked here too.
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> model, ConfigModel(cfg, data));
    FT_RETURN_IF_ERROR(MakeUplink(cfg.compression(), model->dim()).status());
  }

  std::error_code ec;
  fs::create_directories(cfg.output().dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create output.dir ", cfg.output().dir(),
                                                  ": ", ec.message()));
  const std::string final_dir = FreeRunDir(cfg.output().dir(), cfg.output().run_name());
  const std::string partial = final_dir + ".partial";
  fs::create_directories(partial, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", partial, ": ", ec.message()));

  auto run = [&]() -> absl::StatusOr<SimulationResult> {
    FT_RETURN_IF_ERROR(WriteText(partial + "/config.json", ConfigToJson(cfg) + "\n"));
    // The per-client class histogram of the split (specs §7.2: always log the split).
    std::string hist;
    for (const auto& row : ClassHistogram(data.train, data.partition))
      absl::StrAppend(&hist, absl::StrJoin(row, ","), "\n");
    FT_RETURN_IF_ERROR(WriteText(partial + "/partition_histogram.csv", hist));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<FileMetricsSink> sink,
                        FileMetricsSink::Open(partial + "/metrics"));
    FT_ASSIGN_OR_RETURN(SimulationResult r,
                        RunSimulation(cfg, registry, data, sink.get(), on_round));
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
        .Set("weights_fnv1a64", absl::StrCat(HashFloats(r.model)));
    FT_RETURN_IF_ERROR(WriteText(partial + "/summary.json", summary.ToJson() + "\n"));
    return r;
  };
  absl::StatusOr<SimulationResult> r = run();
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
