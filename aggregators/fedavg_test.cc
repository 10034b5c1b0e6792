// FedAvg / FedAvgM server and client halves against docs/federated.md §1.1, §1.2 and the
// properties U1, U7, U8, U9 of §9 (U2, U6 are checked end to end in sim/simulate_test.cc).
#include "aggregators/fedavg.h"

#include <cmath>
#include <numeric>
#include <vector>

#include "aggregators/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/mlp.h"
#include "tests/testing/quadratic.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

ClientUpdate Upd(ClientId id, uint64_t n, const std::vector<float>& delta) {
  ClientUpdate u;
  u.id = id;
  u.num_samples = n;
  u.steps = 1;
  u.parts.push_back(delta);
  return u;
}

TEST(AggregationWeightsTest, U1SumToOneAndSamplesEqualsUniformForEqualSizes) {
  std::vector<float> d(2, 0.0f);
  std::vector<ClientUpdate> ups = {Upd(0, 10, d), Upd(3, 30, d), Upd(7, 60, d)};
  std::vector<double> w;
  FT_ASSERT_OK(AggregationWeights(ups, "samples", &w));
  EXPECT_EQ(w, (std::vector<double>{0.1, 0.3, 0.6}));
  EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1.0, 1e-12);  // U1 tolerance
  std::vector<ClientUpdate> equal = {Upd(0, 20, d), Upd(1, 20, d), Upd(2, 20, d)};
  std::vector<double> ws, wu;
  FT_ASSERT_OK(AggregationWeights(equal, "samples", &ws));
  FT_ASSERT_OK(AggregationWeights(equal, "uniform", &wu));
  EXPECT_EQ(ws, wu);
  EXPECT_THAT(AggregationWeights(ups, "median", &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("median")));
}

TEST(FedAvgServerTest, StepIsWeightedMeanOfDeltasInDouble) {
  FedAvgServer s({.server_lr = 0.5, .weighting = "samples"});
  ServerState st;
  std::vector<float> x0 = {1.0f, -2.0f, 0.25f};
  FT_ASSERT_OK(s.Init(x0, &st));
  std::vector<float> d1 = {0.1f, 0.2f, -0.3f}, d2 = {1.0f, -1.0f, 0.5f};
  std::vector<ClientUpdate> ups = {Upd(2, 1, d1), Upd(5, 3, d2)};
  FT_ASSERT_OK(s.Update(ups, RoundInfo{}, &st));
  for (size_t j = 0; j < 3; ++j) {
    const float mean = static_cast<float>(0.25 * d1[j] + 0.75 * d2[j]);
    EXPECT_EQ(st.x[j], x0[j] + 0.5f * mean) << j;  // same operations: exact
  }
  Payload down;
  FT_ASSERT_OK(s.DownPayload(st, &down));
  ASSERT_EQ(down.parts.size(), 1u);
  EXPECT_EQ(down.parts[0], st.x);
}

TEST(FedAvgServerTest, NoUpdatesLeavesTheModel) {
  FedAvgServer s({});
  ServerState st;
  std::vector<float> x0 = {1.0f, 2.0f};
  FT_ASSERT_OK(s.Init(x0, &st));
  FT_ASSERT_OK(s.Update({}, RoundInfo{}, &st));
  EXPECT_EQ(st.x, x0);
}

TEST(FedAvgServerTest, U9FedAvgMWithZeroBetaEqualsFedAvg) {
  FedAvgServer avg({.server_lr = 0.7});
  FedAvgServer avgm({.server_lr = 0.7, .server_momentum = true, .beta = 0.0});
  ServerState a, b;
  std::vector<float> x0 = {0.5f, -0.5f, 2.0f, 3.0f};
  FT_ASSERT_OK(avg.Init(x0, &a));
  FT_ASSERT_OK(avgm.Init(x0, &b));
  for (int r = 0; r < 3; ++r) {
    std::vector<float> d1 = {0.1f * r, -0.2f, 0.3f, 0.01f}, d2 = {0.4f, 0.5f * r, -0.6f, 0.02f};
    std::vector<ClientUpdate> ups = {Upd(0, 5, d1), Upd(1, 7, d2)};
    FT_ASSERT_OK(avg.Update(ups, RoundInfo{}, &a));
    FT_ASSERT_OK(avgm.Update(ups, RoundInfo{}, &b));
    EXPECT_EQ(a.x, b.x) << "round " << r;  // beta * m = 0 exactly: bitwise equal
  }
}

TEST(FedAvgServerTest, U9FedAvgMTwoRoundFormula) {
  const double beta = 0.9, eta = 0.5;
  FedAvgServer s({.server_lr = eta, .weighting = "uniform", .server_momentum = true, .beta = beta});
  ServerState st;
  std::vector<float> x0 = {1.0f, 2.0f};
  FT_ASSERT_OK(s.Init(x0, &st));
  std::vector<float> d0 = {0.5f, -1.0f}, d1 = {0.25f, 0.75f};
  FT_ASSERT_OK(s.Update({Upd(0, 1, d0)}, RoundInfo{}, &st));
  const std::vector<float> x1 = st.x;
  FT_ASSERT_OK(s.Update({Upd(0, 1, d1)}, RoundInfo{}, &st));
  for (size_t j = 0; j < 2; ++j) {
    // x2 = x1 + eta (beta D0 + D1); float state rounding gives ~1e-7 relative error.
    EXPECT_NEAR(st.x[j], x1[j] + eta * (beta * d0[j] + d1[j]), 1e-6) << j;
    EXPECT_NEAR(x1[j], x0[j] + eta * d0[j], 1e-6) << j;
  }
}

TEST(FedAvgServerTest, NesterovVariant) {
  const float beta = 0.5f, eta = 1.0f;
  FedAvgServer s({.server_lr = eta, .server_momentum = true, .beta = beta, .nesterov = true});
  ServerState st;
  std::vector<float> x0 = {0.0f};
  FT_ASSERT_OK(s.Init(x0, &st));
  FT_ASSERT_OK(s.Update({Upd(0, 1, {1.0f})}, RoundInfo{}, &st));
  // m = 1; x = 0 + (beta * 1 + 1) = 1.5 (exact in binary).
  EXPECT_EQ(st.x[0], 1.5f);
}

// Softmax regression on a small deterministic data set for the client-half tests.
struct Tiny {
  Dataset data;
  std::vector<uint32_t> idx;
  Tiny() {
    data.num_features = 3;
    data.num_classes = 2;
    RngStream r = RngStream::For(9, 0, 0, Purpose::kTest);
    for (int i = 0; i < 20; ++i) {
      float a = static_cast<float>(r.Normal()), b = static_cast<float>(r.Normal());
      data.features.insert(data.features.end(), {a, b, 1.0f});
      data.labels.push_back(a + b > 0 ? 1 : 0);
      idx.push_back(i);
    }
  }
};

TEST(FedAvgClientTest, DeltaIsFinalIterateMinusStart) {
  Tiny t;
  auto trainer = MakeMlpTrainer({3, {}, 2});
  ASSERT_TRUE(trainer.ok());
  std::vector<float> x((*trainer)->dim());
  RngStream init = RngStream::For(1, 0, 0, Purpose::kModelInit);
  (*trainer)->InitParams(init, absl::MakeSpan(x));
  LocalContext ctx;
  ctx.trainer = trainer->get();
  ctx.data = DataView::Of(t.data, t.idx);
  ctx.sgd.lr = 0.1;
  ctx.sgd.epochs = 0;
  ctx.sgd.steps = 4;
  ctx.sgd.batch_size = 5;
  RngStream rng = RngStream::For(1, 0, 3, Purpose::kMinibatch);
  ctx.rng = &rng;
  Payload down{{x}, {}};
  Payload up;
  LocalResult res;
  FedAvgClient client;
  ClientState state;
  FT_ASSERT_OK(client.LocalUpdate(down, ctx, &state, &up, &res));
  EXPECT_EQ(res.steps, 4);
  // Reference: the same local SGD run directly.
  std::vector<float> y = x;
  RngStream rng2 = RngStream::For(1, 0, 3, Purpose::kMinibatch);
  FT_ASSERT_OK(RunLocalSgd(**trainer, ctx.data, ctx.sgd, rng2, absl::MakeSpan(y)).status());
  ASSERT_EQ(up.parts.size(), 1u);
  for (size_t j = 0; j < x.size(); ++j) EXPECT_EQ(up.parts[0][j], y[j] - x[j]) << j;
  EXPECT_TRUE(state.vectors.empty());  // FedAvg clients are stateless
}

TEST(FedAvgServerTest, U8IdenticalClientsGiveThatClientsModel) {
  // Every client sends the same delta: the weighted mean is that delta whatever the weights.
  FedAvgServer s({.server_lr = 1.0, .weighting = "samples"});
  ServerState st;
  std::vector<float> x0 = {0.3f, -0.7f, 1.1f};
  FT_ASSERT_OK(s.Init(x0, &st));
  std::vector<float> d = {0.125f, -0.25f, 0.5f};
  FT_ASSERT_OK(s.Update({Upd(0, 3, d), Upd(1, 5, d), Upd(2, 11, d)}, RoundInfo{}, &st));
  for (size_t j = 0; j < 3; ++j) {
    // Weights 3/19, 5/19, 11/19 sum to 1 up to one double rounding; the float result of the
    // mean is then d exactly (a double error of 1e-16 is far below float resolution).
    EXPECT_EQ(st.x[j], x0[j] + d[j]) << j;
  }
}

TEST(RegistryTest, BuiltinsAndErrors) {
  AlgorithmRegistry r;
  RegisterBuiltinAlgorithms(&r);
  EXPECT_THAT(r.Names(), ::testing::IsSupersetOf({"dsgd", "fedavg", "fedavgm"}));
  FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* f, r.Find("fedavg"));
  EXPECT_EQ(f->name(), "fedavg");
  EXPECT_THAT(r.Find("no_such_algorithm"), StatusIs(absl::StatusCode::kNotFound,
                                           ::testing::AllOf(HasSubstr("registered: "), HasSubstr("fedavgm"))));
  class Dup final : public AlgorithmFactory {
   public:
    std::string name() const override { return "fedavg"; }
    int state_version() const override { return 1; }
    absl::Status Validate(const Cfg&) const override { return absl::OkStatus(); }
    absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg&) const override {
      return absl::UnimplementedError("");
    }
    absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg&) const override {
      return absl::UnimplementedError("");
    }
  };
  EXPECT_THAT(r.Register(std::make_unique<Dup>()),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("fedavg")));
}

TEST(RegistryTest, FactoryValidatesFields) {
  AlgorithmRegistry r;
  RegisterBuiltinAlgorithms(&r);
  FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* f, r.Find("fedavgm"));
  Cfg c;
  c.set_momentum(1.5);
  EXPECT_THAT(f->Validate(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("algorithm.momentum")));
  c.set_momentum(0.9);
  c.set_server_lr(0);
  EXPECT_THAT(f->MakeServer(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("algorithm.server_lr")));
}

// U7: K = 1, full participation, sample weights, eta_g = 1, full-batch gradients: one FedAvg
// round is one gradient-descent step on the pooled data's mean loss.
TEST(FedAvgTest, U7OneFullBatchStepPerClientIsPooledGradientDescent) {
  constexpr size_t kDim = 6;
  const Dataset data = testing::QuadraticClients(/*seed=*/4, /*n=*/12, kDim);
  // Clients of unequal sizes: rows [0,2), [2,7), [7,12).
  const std::vector<std::vector<uint32_t>> rows = {{0, 1}, {2, 3, 4, 5, 6}, {7, 8, 9, 10, 11}};
  testing::QuadraticTrainer trainer(kDim);
  FedAvgServer server({.server_lr = 1.0, .weighting = "samples"});
  FedAvgClient client;
  ServerState st;
  std::vector<float> x0 = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -0.25f};
  FT_ASSERT_OK(server.Init(x0, &st));
  Payload down;
  FT_ASSERT_OK(server.DownPayload(st, &down));
  std::vector<Payload> ups(rows.size());
  std::vector<ClientUpdate> updates;
  for (size_t i = 0; i < rows.size(); ++i) {
    LocalContext ctx;
    ctx.trainer = &trainer;
    ctx.data = DataView::Of(data, rows[i]);
    ctx.sgd.lr = 0.1;
    ctx.sgd.steps = 1;
    ctx.sgd.batch_size = 100;  // >= n_i: the batch is the whole local set
    RngStream rng = RngStream::For(1, 0, i, Purpose::kMinibatch);
    ctx.rng = &rng;
    ClientState cs;
    LocalResult res;
    FT_ASSERT_OK(client.LocalUpdate(down, ctx, &cs, &ups[i], &res));
    ClientUpdate u = Upd(i, rows[i].size(), ups[i].parts[0]);
    updates.push_back(u);
  }
  FT_ASSERT_OK(server.Update(updates, RoundInfo{}, &st));
  // The pooled step in double: x - lr * mean over all 12 rows of a_j (x_j - b_j).
  for (size_t j = 0; j < kDim; ++j) {
    double g = 0.0;
    for (size_t r = 0; r < data.size(); ++r)
      g += static_cast<double>(data.row(r)[j]) * (x0[j] - static_cast<double>(data.row(r)[kDim + j]));
    const double want = x0[j] - 0.1 * g / static_cast<double>(data.size());
    // 1e-6 relative: each client's gradient, step and delta are float32 (a few ulps of |x|).
    EXPECT_NEAR(st.x[j], want, 1e-6 * (1.0 + std::fabs(want))) << j;
  }
}

}  // namespace
}  // namespace fedtrain
