// End-to-end simulation properties: bit-identical weights for any thread count
// (docs/architecture.md "Determinism"), a golden hash of a tiny run, U6 (one client = local SGD),
// U3 (seeds), and config errors surfacing before any training.
#include "sim/simulate.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <memory>

#include "absl/strings/str_format.h"
#include "client/file_client_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/local_sgd.h"
#include "models/mlp.h"
#include "data/normalize.h"
#include "proto/config_io.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

// Synthetic(1,1), 12 devices, softmax regression, 4 sampled per round, 5 rounds.
v1::ExperimentConfig TinyConfig() {
  v1::ExperimentConfig c;
  for (const char* o : {"data.dataset=synthetic", "data.synthetic.num_devices=12",
                        "partition.method=natural", "federation.num_clients=12",
                        "federation.clients_per_round=4", "model.type=softmax", "local.lr=0.05",
                        "local.epochs=1", "local.batch_size=10", "rounds=5", "eval_every=1",
                        "seed=7"})
    EXPECT_TRUE(ApplyOverride(o, &c).ok()) << o;
  return c;
}

struct Ran {
  RunResult result;
  uint64_t hash = 0;
};

absl::StatusOr<Ran> RunTiny(v1::ExperimentConfig c, int threads) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  c.set_threads(threads);
  absl::StatusOr<v1::ExperimentConfig> cfg = ResolveConfig(c, reg);
  if (!cfg.ok()) return cfg.status();
  absl::StatusOr<ExperimentData> data = LoadExperimentData(*cfg);
  if (!data.ok()) return data.status();
  absl::StatusOr<RunResult> r = RunSimulation(*cfg, reg, *data, nullptr, nullptr);
  if (!r.ok()) return r.status();
  Ran out{std::move(r).value(), 0};
  out.hash = HashFloats(out.result.model);
  return out;
}

// TinyConfig with the overrides `sets`, run on `threads` threads.
absl::StatusOr<Ran> RunTinyWith(const std::vector<std::string>& sets, int threads) {
  v1::ExperimentConfig c = TinyConfig();
  for (const std::string& o : sets) EXPECT_TRUE(ApplyOverride(o, &c).ok()) << o;
  return RunTiny(c, threads);
}


TEST(SimulateTest, BitIdenticalWeightsForAnyThreadCount) {
  for (const char* algo : {"fedavg", "fedavgm"}) {
    v1::ExperimentConfig c = TinyConfig();
    c.mutable_algorithm()->set_name(algo);
    FT_ASSERT_OK_AND_ASSIGN(Ran one, RunTiny(c, 1));
    FT_ASSERT_OK_AND_ASSIGN(Ran two, RunTiny(c, 2));
    FT_ASSERT_OK_AND_ASSIGN(Ran three, RunTiny(c, 3));
    EXPECT_EQ(one.result.model, two.result.model) << algo;
    EXPECT_EQ(one.result.model, three.result.model) << algo;
  }
}

TEST(SimulateTest, MetricsAreThreadInvariantExceptWallTime) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  std::vector<MemoryMetricsSink> sinks(2);
  for (int t : {1, 2}) {
    v1::ExperimentConfig c = TinyConfig();
    c.set_threads(t);
    FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
    FT_ASSERT_OK_AND_ASSIGN(ExperimentData data, LoadExperimentData(cfg));
    FT_ASSERT_OK(RunSimulation(cfg, reg, data, &sinks[t - 1], nullptr).status());
  }
  ASSERT_EQ(sinks[0].rows.size(), 5u);
  ASSERT_EQ(sinks[1].rows.size(), 5u);
  for (size_t r = 0; r < 5; ++r) {
    for (const auto& [key, value] : sinks[0].rows[r].items()) {
      if (key == "wall_s") continue;
      const MetricsRow::Value* other = sinks[1].rows[r].Get(key);
      ASSERT_NE(other, nullptr) << key;
      EXPECT_TRUE(*other == value) << "round " << r << " column " << key;  // bitwise
    }
  }
}

TEST(SimulateTest, MlpOnFashionShapedDataIsThreadInvariantToo) {
  v1::ExperimentConfig c = TinyConfig();
  ASSERT_TRUE(ApplyOverride("model.type=mlp", &c).ok());
  ASSERT_TRUE(ApplyOverride("model.hidden=16,8", &c).ok());
  ASSERT_TRUE(ApplyOverride("local.momentum=0.9", &c).ok());
  ASSERT_TRUE(ApplyOverride("local.weight_decay=0.001", &c).ok());
  FT_ASSERT_OK_AND_ASSIGN(Ran one, RunTiny(c, 1));
  FT_ASSERT_OK_AND_ASSIGN(Ran two, RunTiny(c, 2));
  EXPECT_EQ(one.hash, two.hash);
}

// The golden hash pins the numerics of the whole pipeline (RNG streams, partition, local SGD,
// reduction, codec) on the project's toolchain (Debian 12: g++ 12, Eigen 3.4, x86-64). A change
// here means saved runs no longer reproduce: update it only for an intended change, and say so
// in the commit.
TEST(SimulateTest, GoldenHashOfTinyRun) {
  FT_ASSERT_OK_AND_ASSIGN(Ran r, RunTiny(TinyConfig(), 2));
  EXPECT_EQ(absl::StrFormat("%016x", r.hash), "a6e7d85fd3f36723");
  ASSERT_TRUE(r.result.final_test.has_value());
  EXPECT_EQ(r.result.rounds, 5);
}

TEST(SimulateTest, U3SamplingSeedOnlyChangesTheSampledClients) {
  FT_ASSERT_OK_AND_ASSIGN(Ran a, RunTiny(TinyConfig(), 1));
  FT_ASSERT_OK_AND_ASSIGN(Ran b, RunTiny(TinyConfig(), 1));
  EXPECT_EQ(a.hash, b.hash);
  v1::ExperimentConfig c = TinyConfig();
  c.set_sampling_seed(99);
  FT_ASSERT_OK_AND_ASSIGN(Ran d, RunTiny(c, 1));
  EXPECT_NE(a.hash, d.hash);
}

TEST(SimulateTest, U6OneClientOneRoundEqualsLocalSgd) {
  v1::ExperimentConfig c = TinyConfig();
  for (const char* o : {"data.synthetic.num_devices=1", "federation.num_clients=1",
                        "federation.clients_per_round=1", "rounds=1", "local.steps=7"})
    ASSERT_TRUE(ApplyOverride(o, &c).ok());
  FT_ASSERT_OK_AND_ASSIGN(Ran fed, RunTiny(c, 1));

  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData data, LoadExperimentData(cfg));
  FT_ASSERT_OK_AND_ASSIGN(auto trainer, MakeMlpTrainer({data.train.num_features, {},
                                                        static_cast<size_t>(data.train.num_classes)}));
  std::vector<float> x(trainer->dim());
  RngStream init = RngStream::For(cfg.seed(), 0, 0, Purpose::kModelInit);
  trainer->InitParams(init, absl::MakeSpan(x));
  std::vector<float> y = x;
  LocalSgdOptions o;
  o.lr = cfg.local().lr();
  o.steps = 7;
  o.batch_size = cfg.local().batch_size();
  RngStream rng = RngStream::For(cfg.seed(), 0, 0, Purpose::kMinibatch);
  FT_ASSERT_OK(RunLocalSgd(*trainer, DataView::Of(data.train, data.partition.clients[0]), o,
                           rng, absl::MakeSpan(y))
                   .status());
  ASSERT_EQ(fed.result.model.size(), y.size());
  for (size_t j = 0; j < y.size(); ++j) {
    // FedAvg forms x + (y - x) in float: at most two roundings, each below ulp(max(|x|,|y|)).
    const float m = std::max(std::fabs(x[j]), std::fabs(y[j]));
    const float tol = 2.0f * (std::nextafter(m, INFINITY) - m);
    EXPECT_NEAR(fed.result.model[j], y[j], tol) << j;
  }
}

// A user's own Trainer (here: one that wraps softmax regression and counts gradient calls)
// plugs into the simulation without touching the config's model section.
class CountingTrainer final : public Trainer {
 public:
  CountingTrainer(std::unique_ptr<Trainer> inner, std::shared_ptr<std::atomic<int>> calls)
      : inner_(std::move(inner)), calls_(std::move(calls)) {}
  size_t dim() const override { return inner_->dim(); }
  const ParamLayout& layout() const override { return inner_->layout(); }
  std::string description() const override { return "counting:" + inner_->description(); }
  void InitParams(RngStream& rng, Vec w) const override { inner_->InitParams(rng, w); }
  absl::StatusOr<double> Gradient(ConstVec w, const Batch& b, Vec grad) override {
    calls_->fetch_add(1);
    return inner_->Gradient(w, b, grad);
  }
  absl::StatusOr<EvalMetrics> Evaluate(ConstVec w, const DataView& d) override {
    return inner_->Evaluate(w, d);
  }
  std::unique_ptr<Trainer> Clone() const override {
    return std::make_unique<CountingTrainer>(inner_->Clone(), calls_);
  }

 private:
  std::unique_ptr<Trainer> inner_;
  std::shared_ptr<std::atomic<int>> calls_;
};

TEST(SimulateTest, UserTrainerReplacesTheConfigModel) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c = TinyConfig();
  c.set_threads(2);
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData data, LoadExperimentData(cfg));
  FT_ASSERT_OK_AND_ASSIGN(auto softmax, MakeMlpTrainer({data.train.num_features, {},
                                                        static_cast<size_t>(data.train.num_classes)}));
  auto calls = std::make_shared<std::atomic<int>>(0);
  CountingTrainer user(std::move(softmax), calls);
  FT_ASSERT_OK_AND_ASSIGN(RunResult r,
                          RunSimulation(cfg, reg, data, nullptr, nullptr, &user));
  EXPECT_GT(calls->load(), 0);
  EXPECT_EQ(r.model_description, "counting:softmax:60-10");
  // Same maths as the config's own softmax model: the same weights.
  FT_ASSERT_OK_AND_ASSIGN(Ran builtin, RunTiny(TinyConfig(), 2));
  EXPECT_EQ(r.model, builtin.result.model);
}

TEST(SimulateTest, ConfigErrorsComeBeforeTraining) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c = TinyConfig();
  c.mutable_algorithm()->set_name("nope");
  EXPECT_THAT(ResolveConfig(c, reg), StatusIs(absl::StatusCode::kNotFound,
                                              ::testing::AllOf(HasSubstr("registered: "), HasSubstr("fedavgm"))));
  c = TinyConfig();
  c.mutable_federation()->set_clients_per_round(13);
  EXPECT_THAT(ResolveConfig(c, reg), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("federation.clients_per_round")));
}

TEST(SimulateTest, MissingDataFileIsNamed) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c;
  c.mutable_data()->set_path("/nonexistent/fmnist");
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
  EXPECT_THAT(LoadExperimentData(cfg), StatusIs(absl::StatusCode::kNotFound,
                                                HasSubstr("/nonexistent/fmnist")));
}

// The uplink pipeline (compressor -> codec, with and without error feedback) keeps the
// thread-count invariance and really shrinks the uplink.
TEST(SimulateTest, CompressedRunsAreThreadInvariantAndSendFewerBytes) {
  FT_ASSERT_OK_AND_ASSIGN(Ran plain, RunTiny(TinyConfig(), 1));
  const std::vector<std::vector<std::string>> variants = {
      {"compression.compressor=topk", "compression.k_fraction=0.1"},
      {"compression.compressor=topk", "compression.k_fraction=0.1", "compression.feedback=ef14"},
      {"compression.compressor=topk", "compression.k_fraction=0.1",
       "compression.feedback=econtrol", "compression.eta=0.05", "algorithm.weighting=uniform"},
      {"compression.compressor=topk", "compression.k_fraction=0.1", "compression.feedback=ef21",
       "algorithm.weighting=uniform", "compression.tracker_init=compressed"},
      {"compression.compressor=randk", "compression.k_fraction=0.1",
       "compression.index_encoding=seed", "compression.feedback=ef14"},
      {"compression.compressor=qsgd", "compression.levels=3", "compression.bucket=64"},
      {"compression.compressor=sign", "compression.feedback=ef14"},
      {"compression.compressor=natural", "compression.clip_norm=1"},
  };
  for (const auto& v : variants) {
    v1::ExperimentConfig c = TinyConfig();
    std::string name;
    for (const std::string& o : v) {
      ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
      name += o + " ";
    }
    FT_ASSERT_OK_AND_ASSIGN(Ran one, RunTiny(c, 1));
    FT_ASSERT_OK_AND_ASSIGN(Ran two, RunTiny(c, 2));
    EXPECT_EQ(one.result.model, two.result.model) << name;
    EXPECT_LT(one.result.cum_bytes_up, plain.result.cum_bytes_up) << name;
    EXPECT_NE(one.hash, plain.hash) << name;  // compression changed the trajectory
    ASSERT_TRUE(one.result.final_test.has_value()) << name;
    EXPECT_TRUE(std::isfinite(one.result.final_test->loss)) << name;
  }
}

// SCALLION (docs/federated.md §5) end to end: one rand-k (d/k) vector through the Worker's
// pipeline and CommitSent; thread-count invariant, and fewer uplink bytes than SCAFFOLD's two
// uncompressed vectors. SCAFCOM with top-k likewise runs.
TEST(SimulateTest, ScallionWithRandKRunsThreadInvariantAndSendsLessThanScaffold) {
  v1::ExperimentConfig scaffold = TinyConfig();
  scaffold.mutable_algorithm()->set_name("scaffold");
  FT_ASSERT_OK_AND_ASSIGN(Ran plain, RunTiny(scaffold, 1));
  for (const std::vector<std::string>& v : std::vector<std::vector<std::string>>{
           {"algorithm.name=scallion", "compression.compressor=randk_scaled",
            "compression.k_fraction=0.1"},
           {"algorithm.name=scafcom", "compression.compressor=topk",
            "compression.k_fraction=0.1"}}) {
    v1::ExperimentConfig c = TinyConfig();
    for (const std::string& o : v) ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    FT_ASSERT_OK_AND_ASSIGN(Ran one, RunTiny(c, 1));
    FT_ASSERT_OK_AND_ASSIGN(Ran two, RunTiny(c, 2));
    EXPECT_EQ(one.result.model, two.result.model) << v[0];
    EXPECT_LT(one.result.cum_bytes_up, plain.result.cum_bytes_up) << v[0];
    ASSERT_TRUE(one.result.final_test.has_value()) << v[0];
    EXPECT_TRUE(std::isfinite(one.result.final_test->loss)) << v[0];
  }
}

// dsgd with the identity codec, everyone every round and full local batches is distributed
// gradient descent: x <- x - lr * mean_i grad f_i(x).
TEST(SimulateTest, DsgdIsDistributedGradientDescent) {
  v1::ExperimentConfig c = TinyConfig();
  for (const char* o : {"algorithm.name=dsgd", "algorithm.weighting=uniform",
                        "federation.clients_per_round=12", "local.batch_size=100000",
                        "rounds=3"})
    ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  c.set_threads(2);
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData data, LoadExperimentData(cfg));
  FT_ASSERT_OK_AND_ASSIGN(RunResult r, RunSimulation(cfg, reg, data, nullptr, nullptr));

  MlpSpec spec;
  spec.inputs = data.train.num_features;
  spec.classes = static_cast<size_t>(data.train.num_classes);
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> t, MakeMlpTrainer(spec));
  std::vector<float> x(t->dim()), g(t->dim());
  RngStream init = RngStream::For(cfg.seed(), 0, 0, Purpose::kModelInit);
  t->InitParams(init, absl::MakeSpan(x));
  for (int round = 0; round < 3; ++round) {
    std::vector<double> mean(t->dim(), 0.0);
    for (size_t i = 0; i < data.partition.clients.size(); ++i) {
      const auto& idx = data.partition.clients[i];
      const Batch b{&data.train, absl::MakeConstSpan(idx)};
      FT_ASSERT_OK(t->Gradient(x, b, absl::MakeSpan(g)).status());
      for (size_t j = 0; j < g.size(); ++j) mean[j] += g[j] / 12.0;
    }
    for (size_t j = 0; j < x.size(); ++j) x[j] -= static_cast<float>(0.05 * mean[j]);
  }
  // 1e-5 relative: the pipeline rounds each client's -lr*g_i to float32 before averaging.
  for (size_t j = 0; j < x.size(); ++j)
    EXPECT_NEAR(r.model[j], x[j], 1e-5 * (1.0 + std::fabs(x[j]))) << j;
}

TEST(SimulateTest, CompressionConfigErrorsNameTheField) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  for (const auto& [o, field] : std::vector<std::pair<std::string, std::string>>{
           {"compression.k=100000", "compression.k"},
           {"compression.k_fraction=1.5", "compression.k_fraction"},
           {"compression.levels=0", "compression.levels"}}) {
    v1::ExperimentConfig c = TinyConfig();
    ASSERT_TRUE(ApplyOverride(o.rfind("compression.levels", 0) == 0
                                  ? "compression.compressor=qsgd"
                                  : "compression.compressor=topk",
                              &c)
                    .ok());
    ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
    FT_ASSERT_OK_AND_ASSIGN(ExperimentData data, LoadExperimentData(cfg));
    EXPECT_THAT(RunSimulation(cfg, reg, data, nullptr, nullptr).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << o;
  }
}

// ---- Client data on demand, client state stores (federation.state_store, eval_clients) ----

// Runs a config with the given client-data mode and metrics sink.
absl::StatusOr<Ran> RunWith(v1::ExperimentConfig c, int threads, ClientDataMode mode,
                            MetricsSink* sink = nullptr) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  c.set_threads(threads);
  absl::StatusOr<v1::ExperimentConfig> cfg = ResolveConfig(c, reg);
  if (!cfg.ok()) return cfg.status();
  absl::StatusOr<ExperimentData> data = LoadExperimentData(*cfg, mode);
  if (!data.ok()) return data.status();
  if ((mode == ClientDataMode::kOnDemand) != (data->population != nullptr))
    return absl::InternalError("LoadExperimentData ignored the client-data mode");
  absl::StatusOr<RunResult> r = RunSimulation(*cfg, reg, *data, sink, nullptr);
  if (!r.ok()) return r.status();
  Ran out{std::move(r).value(), 0};
  out.hash = HashFloats(out.result.model);
  return out;
}

// Generating a client's data when it is sampled gives the very run that pooling does: the
// golden hash, and every metric of every round (test set included), for any thread count.
TEST(SimulateTest, OnDemandClientDataGiveTheGoldenRun) {
  MemoryMetricsSink pooled_rows, on_demand_rows;
  FT_ASSERT_OK_AND_ASSIGN(Ran pooled, RunWith(TinyConfig(), 2, ClientDataMode::kPooled,
                                              &pooled_rows));
  FT_ASSERT_OK_AND_ASSIGN(Ran on_demand, RunWith(TinyConfig(), 2, ClientDataMode::kOnDemand,
                                                 &on_demand_rows));
  EXPECT_EQ(absl::StrFormat("%016x", on_demand.hash), "a6e7d85fd3f36723");
  EXPECT_EQ(on_demand.result.model, pooled.result.model);
  ASSERT_EQ(on_demand_rows.rows.size(), pooled_rows.rows.size());
  for (size_t r = 0; r < pooled_rows.rows.size(); ++r) {
    for (const auto& [key, value] : pooled_rows.rows[r].items()) {
      if (key == "wall_s") continue;
      const MetricsRow::Value* other = on_demand_rows.rows[r].Get(key);
      ASSERT_NE(other, nullptr) << key;
      EXPECT_TRUE(*other == value) << "round " << r << " column " << key;
    }
  }
  FT_ASSERT_OK_AND_ASSIGN(Ran one, RunWith(TinyConfig(), 1, ClientDataMode::kOnDemand));
  EXPECT_EQ(one.result.model, on_demand.result.model);
}

// federation.eval_clients: the test set is the first clients' held-out data, the same in
// both modes, and smaller than the whole population's.
TEST(SimulateTest, EvalClientsBoundsTheTestSet) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c = TinyConfig();
  ASSERT_TRUE(ApplyOverride("federation.eval_clients=5", &c).ok());
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData pooled, LoadExperimentData(cfg, ClientDataMode::kPooled));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData lazy, LoadExperimentData(cfg, ClientDataMode::kOnDemand));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData all, LoadExperimentData(*ResolveConfig(TinyConfig(), reg)));
  EXPECT_EQ(pooled.test.labels, lazy.test.labels);
  EXPECT_EQ(pooled.test.features, lazy.test.features);
  EXPECT_LT(pooled.test.size(), all.test.size());
  EXPECT_TRUE(std::equal(pooled.test.features.begin(), pooled.test.features.end(),
                         all.test.features.begin()));
  EXPECT_EQ(lazy.num_clients(), 12u);
  EXPECT_EQ(lazy.train.size(), 0u);  // nothing pooled
}

// A million registered clients: the population is never materialized (kAuto picks on-demand
// generation), and a round touches only the sampled clients.
TEST(SimulateTest, MillionClientPopulationRuns) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c = TinyConfig();
  for (const char* o : {"data.synthetic.num_devices=1000000", "federation.num_clients=1000000",
                        "federation.clients_per_round=20", "federation.eval_clients=50",
                        "rounds=2", "local.steps=1", "threads=2"})
    ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig cfg, ResolveConfig(c, reg));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData data, LoadExperimentData(cfg));
  ASSERT_NE(data.population, nullptr);
  EXPECT_TRUE(data.partition.clients.empty());
  EXPECT_EQ(data.num_clients(), 1000000u);
  MemoryMetricsSink rows;
  FT_ASSERT_OK_AND_ASSIGN(RunResult r, RunSimulation(cfg, reg, data, &rows, nullptr));
  EXPECT_EQ(r.rounds, 2);
  ASSERT_TRUE(r.final_test.has_value());
  EXPECT_TRUE(std::isfinite(r.final_test->loss));
  // Without eval_clients the whole population's test data would be needed: refused early.
  c.mutable_federation()->set_eval_clients(0);
  FT_ASSERT_OK_AND_ASSIGN(cfg, ResolveConfig(c, reg));
  EXPECT_THAT(LoadExperimentData(cfg), StatusIs(absl::StatusCode::kResourceExhausted,
                                                HasSubstr("federation.eval_clients")));
}

// Stateful algorithms and error feedback keep the same per-client state in the file store as
// in memory: the same run, and a state that survived the rounds each client sat out.
TEST(SimulateTest, FileStateStoreGivesTheSameRunAsMemory) {
  std::vector<std::vector<std::string>> variants = {
      {"compression.compressor=topk", "compression.k_fraction=0.1",
       "compression.feedback=ef14"}};  // ClientState::wide (EF error in double)
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  for (const char* algo : {"scaffold", "feddyn"})  // ClientState::vectors
    if (reg.Find(algo).ok())
      variants.push_back({std::string("algorithm.name=") + algo, "algorithm.weighting=uniform"});
  for (const auto& v : variants) {
    testing::TempDir tmp;
    v1::ExperimentConfig c = TinyConfig();
    std::string name;
    for (const std::string& o : v) {
      ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
      name += o + " ";
    }
    FT_ASSERT_OK_AND_ASSIGN(Ran memory, RunWith(c, 2, ClientDataMode::kAuto));
    ASSERT_TRUE(ApplyOverride("federation.state_store=file", &c).ok());
    c.mutable_federation()->set_state_dir(tmp.File("state"));
    FT_ASSERT_OK_AND_ASSIGN(Ran file, RunWith(c, 2, ClientDataMode::kAuto));
    EXPECT_EQ(file.result.model, memory.result.model) << name;
    EXPECT_GT(file.result.state_bytes_written, 0u) << name;
    EXPECT_GT(file.result.state_bytes_read, 0u) << name;  // some client came back
    // The folder is kept, and a second run refuses to start from its states.
    EXPECT_THAT(RunWith(c, 2, ClientDataMode::kAuto),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         ::testing::AllOf(HasSubstr("federation.state_dir"),
                                          HasSubstr("already holds"))))
        << name;
  }
}

TEST(SimulateTest, FileStateStoreRefusesAFolderOfAnotherModelOrAlgorithm) {
  testing::TempDir tmp;
  v1::ExperimentConfig c = TinyConfig();
  ASSERT_TRUE(ApplyOverride("federation.state_store=file", &c).ok());
  c.mutable_federation()->set_state_dir(tmp.File("state"));
  {  // A folder made for a 610-parameter "feddyn" model.
    FileStateStoreOptions o;
    o.dir = tmp.File("state");
    o.dim = 610;
    o.algorithm = "feddyn";
    o.state_version = 1;
    FT_ASSERT_OK(FileClientStateStore::Open(o).status());
  }
  EXPECT_THAT(RunWith(c, 1, ClientDataMode::kAuto),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("federation.state_dir"),
                                        HasSubstr("\"feddyn\""), HasSubstr("\"fedavg\""))));
  ASSERT_TRUE(ApplyOverride("data.synthetic.dim=30", &c).ok());
  ASSERT_TRUE(ApplyOverride("algorithm.name=feddyn", &c).ok());
  ASSERT_TRUE(ApplyOverride("algorithm.weighting=uniform", &c).ok());
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  if (reg.Find("feddyn").ok()) {  // same algorithm, other model size (d = 310)
    EXPECT_THAT(RunWith(c, 1, ClientDataMode::kAuto),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         ::testing::AllOf(HasSubstr("d = 610"), HasSubstr("d = 310"))));
  }
}

TEST(SimulateTest, StateStoreConfigErrorsNameTheField) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  for (const auto& [overrides, field] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"federation.state_store=disk"}, "federation.state_store"},
           {{"federation.state_dir=/tmp/x"}, "federation.state_dir"},
           {{"federation.eval_clients=13"}, "federation.eval_clients"},
           {{"federation.eval_clients=-1"}, "federation.eval_clients"},
           {{"partition.method=iid", "federation.eval_clients=3"}, "federation.eval_clients"}}) {
    v1::ExperimentConfig c = TinyConfig();
    for (const std::string& o : overrides) ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    EXPECT_THAT(ResolveConfig(c, reg),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << overrides.back();
  }
  // "file" without a folder is caught when the simulation starts.
  v1::ExperimentConfig c = TinyConfig();
  ASSERT_TRUE(ApplyOverride("federation.state_store=file", &c).ok());
  EXPECT_THAT(RunWith(c, 1, ClientDataMode::kAuto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("federation.state_dir")));
}

// RunExperiment gives a "file" store without a folder a scratch one in the run folder and
// removes it when the run ends.
TEST(SimulateTest, ExperimentUsesAndRemovesAScratchStateFolder) {
  testing::TempDir tmp;
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c = TinyConfig();
  for (const char* o : {"federation.state_store=file", "compression.compressor=topk",
                        "compression.k_fraction=0.1", "compression.feedback=ef14",
                        "output.save_model=false", "threads=2"})
    ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
  c.mutable_output()->set_dir(tmp.path());
  FT_ASSERT_OK_AND_ASSIGN(ExperimentOutcome out, SimulateExperiment(c, reg, nullptr));
  EXPECT_GT(out.result.state_bytes_written, 0u);
  EXPECT_TRUE(std::filesystem::exists(out.run_dir + "/summary.json"));
  EXPECT_FALSE(std::filesystem::exists(out.run_dir + "/client_state"));
  EXPECT_FALSE(std::filesystem::exists(out.run_dir + ".partial"));
}

// Stateful algorithms through a compressed uplink with error feedback. The combinations that
// make sense run, keep thread-count invariance and end with a finite model; the rest are
// refused when the config is resolved, naming both fields (aggregators/tracker_server.h
// CheckFeedback): a tracker method (econtrol) needs a FedAvg-type server half, and an
// algorithm whose client half uses CommitSent (scaffold, scaffold_m) needs feedback none.
TEST(SimulateTest, StatefulAlgorithmsWithErrorFeedbackAreThreadInvariantOrRefused) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  for (const char* algo : {"scaffold", "feddyn", "fedspeed", "scaffold_m"}) {
    for (const char* fb : {"ef14", "econtrol"}) {
      v1::ExperimentConfig c = TinyConfig();
      for (const std::string& o :
           {std::string("algorithm.name=") + algo, std::string("compression.feedback=") + fb,
            std::string("compression.compressor=topk"), std::string("compression.k_fraction=0.2"),
            std::string("compression.eta=0.05"), std::string("algorithm.weighting=uniform")})
        ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
      const bool commit_sent = std::string(algo) == "scaffold" || std::string(algo) == "scaffold_m";
      const bool tracker = std::string(fb) == "econtrol";
      if (commit_sent || tracker) {
        EXPECT_THAT(ResolveConfig(c, reg),
                    StatusIs(absl::StatusCode::kInvalidArgument,
                             ::testing::AllOf(HasSubstr("compression.feedback"),
                                              HasSubstr(commit_sent ? "algorithm.name" : algo))))
            << algo << " " << fb;
        continue;
      }
      FT_ASSERT_OK_AND_ASSIGN(Ran one, RunTiny(c, 1));
      FT_ASSERT_OK_AND_ASSIGN(Ran two, RunTiny(c, 2));
      EXPECT_EQ(one.result.model, two.result.model) << algo << " " << fb;
      for (float v : one.result.model) ASSERT_TRUE(std::isfinite(v)) << algo << " " << fb;
    }
  }
  // The tracker's other conditions: uniform weighting and server_lr 1, each named.
  for (const auto& [override_, field] : std::vector<std::pair<std::string, std::string>>{
           {"algorithm.weighting=samples", "algorithm.weighting"},
           {"algorithm.server_lr=0.5", "algorithm.server_lr"}}) {
    v1::ExperimentConfig c = TinyConfig();
    for (const std::string& o : {std::string("compression.feedback=ef21"),
                                 std::string("compression.compressor=topk"),
                                 std::string("compression.k_fraction=0.2"),
                                 std::string("algorithm.weighting=uniform"), override_})
      ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    EXPECT_THAT(ResolveConfig(c, reg),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(HasSubstr("compression.feedback"), HasSubstr(field))))
        << override_;
  }
}

// data.normalize (docs/federated.md §7.9). A Synthetic split (iid partition) whose training and
// test features have different statistics, so that a map fitted on the wrong split shows.
v1::ExperimentConfig NormalizeConfig(const char* normalize) {
  v1::ExperimentConfig c = TinyConfig();
  for (const std::string& o :
       {std::string("partition.method=iid"), std::string("data.normalize=") + normalize})
    EXPECT_TRUE(ApplyOverride(o, &c).ok()) << o;
  return c;
}

absl::StatusOr<ExperimentData> LoadResolved(const v1::ExperimentConfig& c) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  absl::StatusOr<v1::ExperimentConfig> cfg = ResolveConfig(c, reg);
  if (!cfg.ok()) return cfg.status();
  return LoadExperimentData(*cfg);
}

void ExpectAffine(const Dataset& got, const Dataset& raw, const FeatureStats& s) {
  ASSERT_EQ(got.features.size(), raw.features.size());
  for (size_t i = 0; i < raw.features.size(); ++i)
    ASSERT_EQ(got.features[i],
              static_cast<float>((static_cast<double>(raw.features[i]) - s.mean) / s.std))
        << i;
  EXPECT_EQ(got.labels, raw.labels);
}

TEST(NormalizeTest, StandardizeFitsTheTrainingSplitOnlyAndMapsBothSplits) {
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData raw, LoadResolved(NormalizeConfig("scale")));
  EXPECT_FALSE(raw.standardization.has_value());
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData st, LoadResolved(NormalizeConfig("standardize")));
  FT_ASSERT_OK_AND_ASSIGN(FeatureStats train, GlobalFeatureStats(raw.train));
  FT_ASSERT_OK_AND_ASSIGN(FeatureStats test_own, GlobalFeatureStats(raw.test));
  // The test split's own statistics differ, so using them would change every test value.
  ASSERT_GT(std::fabs(test_own.mean - train.mean) + std::fabs(test_own.std - train.std), 1e-3);
  ASSERT_TRUE(st.standardization.has_value());
  EXPECT_EQ(st.standardization->mean, train.mean);  // same two double passes: exact
  EXPECT_EQ(st.standardization->std, train.std);
  ExpectAffine(st.train, raw.train, train);
  ExpectAffine(st.test, raw.test, train);  // the training statistics, not its own
  EXPECT_EQ(st.partition.clients, raw.partition.clients);
}

TEST(NormalizeTest, GivenStatisticsAreUsedAsGiven) {
  v1::ExperimentConfig c = NormalizeConfig("standardize");
  ASSERT_TRUE(ApplyOverride("data.mean=0.25", &c).ok());
  ASSERT_TRUE(ApplyOverride("data.std=2", &c).ok());
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData raw, LoadResolved(NormalizeConfig("scale")));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData st, LoadResolved(c));
  ExpectAffine(st.train, raw.train, {0.25, 2.0});
  ExpectAffine(st.test, raw.test, {0.25, 2.0});
}

// A Fashion-MNIST-shaped folder: the four files, uncompressed (the reader takes plain files
// under the .gz names too), 2 training and 1 test image of 2x2 pixels.
void WriteIdxFolder(const std::string& dir) {
  auto u32 = [](std::string* b, uint32_t v) {
    for (int sh = 24; sh >= 0; sh -= 8) b->push_back(static_cast<char>((v >> sh) & 0xff));
  };
  auto write = [&](const std::string& split, const std::vector<uint8_t>& px,
                   const std::vector<uint8_t>& labels) {
    std::string img, lbl;
    for (uint32_t v : {0x803u, static_cast<uint32_t>(labels.size()), 2u, 2u}) u32(&img, v);
    img.append(px.begin(), px.end());
    for (uint32_t v : {0x801u, static_cast<uint32_t>(labels.size())}) u32(&lbl, v);
    lbl.append(labels.begin(), labels.end());
    testing::WriteFileBytes(dir + "/" + split + "-images-idx3-ubyte.gz", img);
    testing::WriteFileBytes(dir + "/" + split + "-labels-idx1-ubyte.gz", lbl);
  };
  write("train", {0, 51, 255, 3, 128, 7, 200, 9}, {1, 4});
  write("t10k", {255, 255, 0, 100}, {2});
}

TEST(NormalizeTest, PixelsScaleAsBeforeStayRawOrStandardizeInScaledUnits) {
  testing::TempDir tmp;
  WriteIdxFolder(tmp.path());
  const std::vector<uint8_t> train_px = {0, 51, 255, 3, 128, 7, 200, 9};
  const std::vector<uint8_t> test_px = {255, 255, 0, 100};
  auto config = [&](const char* normalize) {
    v1::ExperimentConfig c;
    for (const std::string& o :
         {std::string("data.path=") + tmp.path(), std::string("data.normalize=") + normalize,
          std::string("federation.num_clients=2"), std::string("federation.clients_per_round=1"),
          std::string("partition.method=iid")})
      EXPECT_TRUE(ApplyOverride(o, &c).ok()) << o;
    return c;
  };
  // scale (the default): exactly the reader's float(p) / 255.0f, as every earlier build.
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData scaled, LoadResolved(config("scale")));
  for (size_t i = 0; i < train_px.size(); ++i)
    EXPECT_EQ(scaled.train.features[i], static_cast<float>(train_px[i]) / 255.0f) << i;
  for (size_t i = 0; i < test_px.size(); ++i)
    EXPECT_EQ(scaled.test.features[i], static_cast<float>(test_px[i]) / 255.0f) << i;
  v1::ExperimentConfig plain = config("scale");
  plain.mutable_data()->clear_normalize();  // the default is scale
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData dflt, LoadResolved(plain));
  EXPECT_EQ(dflt.train.features, scaled.train.features);
  EXPECT_EQ(dflt.test.features, scaled.test.features);
  // none: the pixel values themselves.
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData none, LoadResolved(config("none")));
  for (size_t i = 0; i < train_px.size(); ++i)
    EXPECT_EQ(none.train.features[i], static_cast<float>(train_px[i])) << i;
  for (size_t i = 0; i < test_px.size(); ++i)
    EXPECT_EQ(none.test.features[i], static_cast<float>(test_px[i])) << i;
  // standardize: statistics of the scaled training pixels (so given values are in the units
  // of torchvision's Normalize after ToTensor), applied to both splits.
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData st, LoadResolved(config("standardize")));
  FT_ASSERT_OK_AND_ASSIGN(FeatureStats s, GlobalFeatureStats(scaled.train));
  ASSERT_TRUE(st.standardization.has_value());
  EXPECT_EQ(st.standardization->mean, s.mean);
  EXPECT_EQ(st.standardization->std, s.std);
  ExpectAffine(st.train, scaled.train, s);
  ExpectAffine(st.test, scaled.test, s);
}

TEST(NormalizeTest, ConfigJsonRecordsTheStatisticsAndRepeatsTheRun) {
  testing::TempDir tmp;
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c = NormalizeConfig("standardize");
  c.mutable_output()->set_dir(tmp.path());
  c.mutable_output()->set_progress("none");
  FT_ASSERT_OK_AND_ASSIGN(ExperimentOutcome first, SimulateExperiment(c, reg, nullptr));
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig saved,
                          LoadConfigFile(first.run_dir + "/config.json"));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData raw, LoadResolved(NormalizeConfig("scale")));
  FT_ASSERT_OK_AND_ASSIGN(FeatureStats train, GlobalFeatureStats(raw.train));
  EXPECT_EQ(saved.data().normalize(), "standardize");
  EXPECT_EQ(saved.data().mean(), train.mean);  // JSON keeps doubles exactly
  EXPECT_EQ(saved.data().std(), train.std);
  FT_ASSERT_OK_AND_ASSIGN(ExperimentOutcome again, SimulateExperiment(saved, reg, nullptr));
  EXPECT_EQ(again.result.model, first.result.model);
}

TEST(NormalizeTest, ConfigErrorsNameTheField) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  auto resolve = [&](v1::ExperimentConfig c, std::vector<std::string> sets) {
    for (const std::string& o : sets) EXPECT_TRUE(ApplyOverride(o, &c).ok()) << o;
    return ResolveConfig(c, reg).status();
  };
  EXPECT_THAT(resolve(NormalizeConfig("scale"), {"data.normalize=zscore"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.normalize")));
  EXPECT_THAT(resolve(NormalizeConfig("scale"), {"data.std=2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("standardize only")));
  EXPECT_THAT(resolve(NormalizeConfig("standardize"), {"data.mean=0.5"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("without data.std")));
  EXPECT_THAT(resolve(NormalizeConfig("standardize"), {"data.std=-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.std")));
  EXPECT_THAT(resolve(TinyConfig(), {"data.normalize=standardize"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("partition.method natural")));
}

// Robust reducers in a whole run: thread-count invariant, finite, the diagnostics column in
// the metrics; tracker feedback around a reducer that is not the exact mean is refused naming
// both fields; a round with too few updates for the declared f fails naming the rule.
TEST(SimulateTest, RobustReducersRunThreadInvariantAndAreCheckedAtLoad) {
  for (const std::vector<std::string>& sets : std::vector<std::vector<std::string>>{
           {"algorithm.reducer.name=flag", "algorithm.reducer.params.m=2"},
           {"algorithm.reducer.name=multi_krum", "algorithm.reducer.f=0"},
           {"algorithm.reducer.name=centered_clipping", "algorithm.reducer.params.tau=0.5",
            "algorithm.name=scaffold_m"},
           {"algorithm.reducer.name=geometric_median", "algorithm.name=fedadam"}}) {
    v1::ExperimentConfig c = TinyConfig();
    for (const std::string& o : sets) ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    FT_ASSERT_OK_AND_ASSIGN(Ran one, RunTiny(c, 1));
    FT_ASSERT_OK_AND_ASSIGN(Ran two, RunTiny(c, 3));
    EXPECT_EQ(one.result.model, two.result.model) << sets[0];
    for (float v : one.result.model) ASSERT_TRUE(std::isfinite(v)) << sets[0];
  }
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  v1::ExperimentConfig c = TinyConfig();
  for (const char* o : {"compression.feedback=ef21", "compression.compressor=topk",
                        "compression.k_fraction=0.2", "algorithm.weighting=uniform",
                        "algorithm.reducer.name=flag"})
    ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
  EXPECT_THAT(ResolveConfig(c, reg),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("compression.feedback"),
                                        HasSubstr("algorithm.reducer.name"))));
  c = TinyConfig();
  for (const char* o : {"algorithm.reducer.name=krum", "algorithm.reducer.f=1"})
    ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;  // 4 clients per round < 2f+3 = 5
  EXPECT_THAT(RunTiny(c, 1).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("reducer krum needs p >= 2f+3 = 5")));
}

// The attack harness in a whole run: the same bits for any thread count, the attack moves
// the model, a robust reducer keeps a Gaussian attack out, and bad settings name the field.
TEST(SimulateTest, AttacksAreReproducibleAndFilteredByRobustReducers) {
  const auto& run = RunTinyWith;
  auto norm = [](const std::vector<float>& v) {
    double s = 0;
    for (float e : v) s += double(e) * e;
    return std::sqrt(s);
  };
  const std::vector<std::string> attack = {"attack.name=gaussian", "attack.clients=0,1,2,3,4,5"};
  FT_ASSERT_OK_AND_ASSIGN(Ran clean, run({}, 1));
  FT_ASSERT_OK_AND_ASSIGN(Ran one, run(attack, 1));
  FT_ASSERT_OK_AND_ASSIGN(Ran three, run(attack, 3));
  EXPECT_EQ(one.result.model, three.result.model);
  EXPECT_GT(norm(one.result.model), 10 * norm(clean.result.model));  // sigma = 200 gets through
  std::vector<std::string> robust = attack;
  robust.push_back("algorithm.reducer.name=median");
  robust.push_back("attack.clients=0");  // at most one faulty among the 4 sampled per round
  FT_ASSERT_OK_AND_ASSIGN(Ran med, run(robust, 2));
  EXPECT_LT(norm(med.result.model), 2 * norm(clean.result.model) + 1);
  for (const char* name : {"alie", "ipm", "sign_flip", "crash_omit", "crash_zero",
                           "partial_drop", "random_uniform"}) {
    FT_ASSERT_OK_AND_ASSIGN(Ran r, run({std::string("attack.name=") + name, "attack.clients=3",
                                        "algorithm.reducer.name=trimmed_mean",
                                        "algorithm.reducer.f=1"}, 2));
    for (float v : r.result.model) ASSERT_TRUE(std::isfinite(v)) << name;
  }
  EXPECT_THAT(run({"attack.name=gaussian", "attack.clients=12"}, 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.clients holds 12")));
  EXPECT_THAT(run({"attack.name=gausian", "attack.clients=1"}, 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.name must be one of")));
}

// The two placements of the vector attacks give the same bits: at the worker, the faulty
// client recomputes the round's honest updates (omniscient) or the faulty ones' (own) and
// sends its vector through the identity uplink; at the server, the Coordinator computes it
// from the decoded updates. Every sampled client answers here, so p and f agree.
TEST(SimulateTest, WorkerPlacedAttacksEqualServerPlacedOnes) {
  const auto& run = RunTinyWith;
  FT_ASSERT_OK_AND_ASSIGN(Ran clean, run({}, 1));
  for (const char* name : {"alie", "ipm", "sign_flip", "gaussian", "partial_drop",
                           "random_uniform", "crash_zero"})
    for (const char* omni : {"true", "false"}) {
      const std::vector<std::string> base = {
          // At most 2 faulty among the 4 sampled: ALIE's z stays finite.
          std::string("attack.name=") + name, "attack.clients=0,1",
          std::string("attack.omniscient=") + omni, "algorithm.reducer.name=trimmed_mean",
          "algorithm.reducer.f=1"};
      std::vector<std::string> server = base, worker = base;
      server.push_back("attack.at=server");
      worker.push_back("attack.at=worker");
      FT_ASSERT_OK_AND_ASSIGN(Ran s, run(server, 2));
      FT_ASSERT_OK_AND_ASSIGN(Ran w, run(worker, 3));
      EXPECT_EQ(s.result.model, w.result.model) << name << " omniscient=" << omni;
      EXPECT_NE(s.result.model, clean.result.model) << name;
    }
  // Recomputing other clients' updates needs a client half without state.
  EXPECT_THAT(run({"attack.name=alie", "attack.clients=0,1,2", "attack.at=worker",
                   "algorithm.name=scaffold"}, 1).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("keeps a state")));
  // ... which the server placement does not.
  FT_EXPECT_OK(run({"attack.name=alie", "attack.clients=0,1,2", "algorithm.name=scaffold"}, 1)
                   .status());
}

// The attacks only a worker can make: label flipping and stale updates change the model,
// reproducibly for any thread count; the placements that cannot work are refused by name.
TEST(SimulateTest, LabelFlipAndStaleAttacksRunOnTheWorker) {
  const auto& run = RunTinyWith;
  FT_ASSERT_OK_AND_ASSIGN(Ran clean, run({}, 1));
  for (const std::vector<std::string>& sets :
       std::vector<std::vector<std::string>>{{"attack.name=label_flip", "attack.clients=0,1,2,3"},
                                             {"attack.name=stale", "attack.clients=0,1,2,3"},
                                             {"attack.name=stale", "attack.clients=0,1,2,3",
                                              "attack.stale_rounds=3"}}) {
    FT_ASSERT_OK_AND_ASSIGN(Ran one, run(sets, 1));
    FT_ASSERT_OK_AND_ASSIGN(Ran three, run(sets, 3));
    EXPECT_EQ(one.result.model, three.result.model) << sets[0];
    EXPECT_NE(one.result.model, clean.result.model) << sets[0];
  }
  // stale with 1 and 3 rounds of delay are different attacks.
  FT_ASSERT_OK_AND_ASSIGN(Ran s1, run({"attack.name=stale", "attack.clients=0,1,2,3"}, 1));
  FT_ASSERT_OK_AND_ASSIGN(Ran s3, run({"attack.name=stale", "attack.clients=0,1,2,3",
                                       "attack.stale_rounds=3"}, 1));
  EXPECT_NE(s1.result.model, s3.result.model);
  EXPECT_THAT(run({"attack.name=label_flip", "attack.clients=1", "attack.at=server"}, 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.at must be")));
  EXPECT_THAT(run({"attack.name=augmented", "attack.clients=1"}, 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.dataset")));
  EXPECT_THAT(run({"attack.name=alie", "attack.clients=1", "attack.at=everywhere"}, 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("attack.at")));
}

}  // namespace
}  // namespace fedtrain
