// FedProx, FedAdagrad/FedAdam/FedYogi and FedDyn (docs/federated.md §1.3-§1.5) against the
// properties U10 and U11 of §9, the update formulas written out by hand, and the V0 drift
// behaviour of §8 on quadratic clients. The halves are driven directly, as in fedavg_test.cc.
//
// Model vectors, and the server/client state vectors, are float32: where a result passes
// through a float store, the tolerance is a few float ulps of the magnitudes involved (float
// epsilon is 1.19e-7), and the comment next to it says which stores.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "aggregators/fedavg.h"
#include "aggregators/feddyn.h"
#include "aggregators/fedopt.h"
#include "aggregators/fedprox.h"
#include "aggregators/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/quadratic.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::QuadraticClients;
using ::fedtrain::testing::QuadraticOptimum;
using ::fedtrain::testing::QuadraticTrainer;
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

RoundInfo Info(uint64_t round, uint64_t num_clients) {
  RoundInfo info;
  info.round = round;
  info.num_clients = num_clients;
  return info;
}

// Quadratic clients of docs/federated.md §8 V0 (one data row each, full-batch deterministic
// gradients): f_i(x) = 1/2 sum_j a_ij (x_j - b_ij)^2, a_ij in [0.5, 2], b_ij ~ N(0, 9).
struct QuadWorld {
  QuadWorld(size_t n, size_t dim, uint64_t seed = 7)
      : data(QuadraticClients(seed, n, dim)), trainer(dim), rows(n), xstar(QuadraticOptimum(data)) {
    for (size_t i = 0; i < n; ++i) rows[i] = {static_cast<uint32_t>(i)};
  }
  size_t dim() const { return trainer.dim(); }
  size_t num_clients() const { return rows.size(); }

  // Client i's local update in round `round`: K full-batch steps at learning rate lr.
  absl::Status Local(const ClientAlgorithm& c, const Payload& down, ClientId i, uint64_t round,
                     int64_t K, double lr, ClientState* st, Payload* up) {
    LocalContext ctx;
    ctx.trainer = &trainer;
    ctx.data = DataView::Of(data, rows[i]);
    ctx.sgd.lr = lr;
    ctx.sgd.epochs = 0;
    ctx.sgd.steps = K;
    ctx.sgd.batch_size = 1;
    RngStream rng = RngStream::For(11, round, i, Purpose::kMinibatch);
    ctx.rng = &rng;
    ctx.round = round;
    ctx.client = i;
    LocalResult res;
    return c.LocalUpdate(down, ctx, st, up, &res);
  }

  // One round with every client participating (ids in increasing order, as the Coordinator
  // sorts them); `states` holds one ClientState per client.
  absl::Status Round(ServerAlgorithm& s, const ClientAlgorithm& c, ServerState* st,
                     std::vector<ClientState>* states, uint64_t round, int64_t K, double lr) {
    Payload down;
    if (absl::Status e = s.DownPayload(*st, &down); !e.ok()) return e;
    std::vector<Payload> ups(num_clients());
    std::vector<ClientUpdate> updates;
    for (ClientId i = 0; i < num_clients(); ++i) {
      if (absl::Status e = Local(c, down, i, round, K, lr, &(*states)[i], &ups[i]); !e.ok())
        return e;
      updates.push_back(Upd(i, 1, ups[i].parts.at(0)));
    }
    return s.Update(updates, Info(round, num_clients()), st);
  }

  // ||x - x*||_2, in double.
  double Dist(const std::vector<float>& x) const {
    double s = 0.0;
    for (size_t j = 0; j < x.size(); ++j) s += (x[j] - xstar[j]) * (x[j] - xstar[j]);
    return std::sqrt(s);
  }

  // Runs `rounds` full-participation rounds from x0 = 0 and returns ||x - x*||.
  double Run(ServerAlgorithm& s, const ClientAlgorithm& c, int rounds, int64_t K, double lr,
             ServerState* st) {
    std::vector<float> x0(dim(), 0.0f);
    EXPECT_THAT(s.Init(x0, st), ::fedtrain::testing::IsOk());
    std::vector<ClientState> states(num_clients());
    for (int r = 0; r < rounds; ++r) {
      absl::Status e = Round(s, c, st, &states, r, K, lr);
      EXPECT_THAT(e, ::fedtrain::testing::IsOk()) << "round " << r;
      if (!e.ok()) break;
    }
    return Dist(st->x);
  }

  Dataset data;
  QuadraticTrainer trainer;
  std::vector<std::vector<uint32_t>> rows;
  std::vector<double> xstar;
};

// A non-zero starting model for client-half tests.
std::vector<float> StartModel(size_t d) {
  std::vector<float> x(d);
  for (size_t j = 0; j < d; ++j) x[j] = 0.5f - 0.25f * static_cast<float>(j % 5);
  return x;
}

google::protobuf::Value Num(double v) {
  google::protobuf::Value x;
  x.set_number_value(v);
  return x;
}
google::protobuf::Value Str(const std::string& v) {
  google::protobuf::Value x;
  x.set_string_value(v);
  return x;
}

Cfg Config(const std::string& name) {
  Cfg c;
  c.set_name(name);
  return c;
}

const AlgorithmFactory* Factory(const AlgorithmRegistry& r, const std::string& name) {
  absl::StatusOr<const AlgorithmFactory*> f = r.Find(name);
  EXPECT_THAT(f, ::fedtrain::testing::IsOk());
  return f.ok() ? *f : nullptr;
}

// ----------------------------------------------------------------------------------- FedProx

TEST(FedProxTest, U10MuZeroEqualsFedAvgBitwise) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  Cfg prox = Config("fedprox");
  (*prox.mutable_params()->mutable_fields())["mu"] = Num(0.0);
  Cfg avg = Config("fedavg");
  FT_ASSERT_OK_AND_ASSIGN(auto prox_server, Factory(reg, "fedprox")->MakeServer(prox));
  FT_ASSERT_OK_AND_ASSIGN(auto prox_client, Factory(reg, "fedprox")->MakeClient(prox));
  FT_ASSERT_OK_AND_ASSIGN(auto avg_server, Factory(reg, "fedavg")->MakeServer(avg));
  FT_ASSERT_OK_AND_ASSIGN(auto avg_client, Factory(reg, "fedavg")->MakeClient(avg));
  QuadWorld w(4, 6);
  ServerState a, b;
  std::vector<float> x0 = StartModel(w.dim());
  FT_ASSERT_OK(prox_server->Init(x0, &a));
  FT_ASSERT_OK(avg_server->Init(x0, &b));
  std::vector<ClientState> sa(4), sb(4);
  for (int r = 0; r < 5; ++r) {
    FT_ASSERT_OK(w.Round(*prox_server, *prox_client, &a, &sa, r, /*K=*/5, /*lr=*/0.05));
    FT_ASSERT_OK(w.Round(*avg_server, *avg_client, &b, &sb, r, /*K=*/5, /*lr=*/0.05));
    ASSERT_EQ(a.x, b.x) << "round " << r;  // mu = 0: the same operations, bitwise
  }
}

TEST(FedProxTest, U10FirstLocalStepEqualsFedAvgForAnyMu) {
  QuadWorld w(3, 5);
  Payload down{{StartModel(w.dim())}, {}};
  FedAvgClient avg;
  for (double mu : {0.001, 0.5, 1.0, 10.0}) {
    FedProxClient prox({mu});
    for (ClientId i = 0; i < 3; ++i) {
      Payload up_prox, up_avg;
      ClientState s1, s2;
      FT_ASSERT_OK(w.Local(prox, down, i, 0, /*K=*/1, 0.1, &s1, &up_prox));
      FT_ASSERT_OK(w.Local(avg, down, i, 0, /*K=*/1, 0.1, &s2, &up_avg));
      // At y_0 = x the proximal gradient mu (y_0 - x) is exactly 0: bitwise equal.
      EXPECT_EQ(up_prox.parts.at(0), up_avg.parts.at(0)) << "mu " << mu << " client " << i;
      EXPECT_TRUE(s1.vectors.empty());  // FedProx clients are stateless
    }
  }
}

TEST(FedProxTest, SecondLocalStepAddsTheProximalGradient) {
  QuadWorld w(1, 4);
  const std::vector<float> x = StartModel(w.dim());
  const float lr = 0.1f, mu = 0.5f;
  FedProxClient prox({mu});
  Payload up;
  ClientState st;
  FT_ASSERT_OK(w.Local(prox, Payload{{x}, {}}, 0, 0, /*K=*/2, lr, &st, &up));
  // By hand (docs/federated.md §1.3): y1 = x - lr g(x); y2 = y1 - lr (g(y1) + mu (y1 - x)), g_j =
  // a_j (y_j - b_j).
  ConstVec row = w.data.row(0);
  const size_t d = w.dim();
  for (size_t j = 0; j < d; ++j) {
    const double a = row[j], b = row[d + j];
    const double y1 = x[j] - lr * a * (x[j] - b);
    const double y2 = y1 - lr * (a * (y1 - b) + mu * (y1 - x[j]));
    // The client runs in float32 (the gradient is rounded to float, the iterate is stored in
    // float): a few ulps of |y| <= ~10 -> 1e-5 absolute.
    EXPECT_NEAR(up.parts.at(0)[j], y2 - x[j], 1e-5) << j;
  }
}

TEST(FedProxTest, V0StallsAwayFromOptimumLikeFedAvg) {
  // docs/federated.md §8 V0 (full participation): N = 10, d = 20, K = 10, lr = 0.05. Client drift
  // makes FedAvg and FedProx stall at a non-zero distance from x* (FedAvg's plateau ~0.2 in the
  // reference model, acceptance > 1e-3); the proximal term shrinks the plateau but does not remove
  // it.
  QuadWorld w(10, 20);
  FedAvgServer avg_server({.server_lr = 1.0, .weighting = "samples"});
  FedAvgClient avg_client;
  ServerState sa;
  const double d_avg = w.Run(avg_server, avg_client, 300, 10, 0.05, &sa);
  for (double mu : {0.01, 0.1}) {
    FedAvgServer server({.server_lr = 1.0, .weighting = "samples"});
    FedProxClient client({mu});
    ServerState st;
    const double d300 = w.Run(server, client, 300, 10, 0.05, &st);
    const std::vector<float> x300 = st.x;
    // Stalled: 50 more rounds barely move x (the iteration has reached its fixed point).
    std::vector<ClientState> states(10);
    for (int r = 300; r < 350; ++r)
      FT_ASSERT_OK(w.Round(server, client, &st, &states, r, 10, 0.05));
    double moved = 0.0;
    for (size_t j = 0; j < x300.size(); ++j) moved += std::fabs(st.x[j] - x300[j]);
    EXPECT_LT(moved, 1e-4) << "mu " << mu;  // float noise around the fixed point only
    EXPECT_GT(d300, 1e-3) << "mu " << mu;    // V0 acceptance for the stalling methods
    EXPECT_LE(d300, d_avg) << "mu " << mu;   // the proximal term reduces drift
    std::printf("V0 fedprox mu=%g: ||x - x*|| = %.3e (fedavg %.3e)\n", mu, d300, d_avg);
  }
  EXPECT_GT(d_avg, 1e-3);
}

// ------------------------------------------------------------------------------------ FedOpt

FedOptOptions U11Options(FedOptVariant v) {
  FedOptOptions o;
  o.variant = v;
  o.server_lr = 0.1;
  o.beta1 = 0.9;
  o.beta2 = 0.99;
  o.tau = 1e-3;
  return o;
}

TEST(FedOptTest, U11FedAdamAndFedYogiFirstStepKernel) {
  // Scalar, Dbar = 1, v^{-1} = tau^2 (docs/federated.md §9 U11), in double: +-1e-14 as the spec
  // states.
  for (auto [variant, expected] :
       {std::pair{FedOptVariant::kAdam, 0.0990050488825424},
        std::pair{FedOptVariant::kYogi, 0.0990049998750062}}) {
    const FedOptOptions o = U11Options(variant);
    double m = 0.0, v = FedOptInitialV(o);
    EXPECT_EQ(v, 1e-3 * 1e-3);
    EXPECT_NEAR(FedOptCoordinateStep(o, 1.0, &m, &v), expected, 1e-14);
    EXPECT_NEAR(m, 0.1, 1e-16);  // (1 - beta1) * 1, one double rounding
  }
}

TEST(FedOptTest, U11FirstStepThroughTheServerHalf) {
  for (auto [variant, expected] :
       {std::pair{FedOptVariant::kAdam, 0.0990050488825424},
        std::pair{FedOptVariant::kYogi, 0.0990049998750062}}) {
    FedOptServer s(U11Options(variant));
    ServerState st;
    std::vector<float> x0 = {0.0f};
    FT_ASSERT_OK(s.Init(x0, &st));
    FT_ASSERT_OK(s.Update({Upd(0, 1, {1.0f})}, Info(0, 1), &st));
    // The step is computed in double from v^{-1} = float(tau^2) (relative error ~3e-8 of a
    // term that is 1e-4 of v^0: negligible) and stored once into float x: half an ulp at
    // 0.099 is 3.7e-9.
    EXPECT_NEAR(st.x[0], expected, 4e-9);
    EXPECT_EQ(st.vectors.at(FedOptServer::kFirstMoment)[0], 0.1f);
  }
}

TEST(FedOptTest, FedAdagradUpdateFormula) {
  FedOptOptions o;
  o.variant = FedOptVariant::kAdagrad;
  o.server_lr = 0.05;
  o.beta1 = 0.5;
  o.tau = 1e-2;
  // Kernel, two rounds, against the formula in double (identical operations: 1e-16 slack).
  double m = 0.0, v = FedOptInitialV(o);
  const double s0 = FedOptCoordinateStep(o, 0.5, &m, &v);
  EXPECT_NEAR(v, 1e-4 + 0.25, 1e-16);
  EXPECT_NEAR(m, 0.25, 1e-16);
  EXPECT_NEAR(s0, 0.05 * 0.25 / (std::sqrt(0.2501) + 1e-2), 1e-16);
  const double s1 = FedOptCoordinateStep(o, -0.25, &m, &v);
  EXPECT_NEAR(v, 1e-4 + 0.25 + 0.0625, 1e-16);  // Adagrad sums squares: no decay
  EXPECT_NEAR(m, 0.5 * 0.25 - 0.5 * 0.25, 1e-16);
  EXPECT_NEAR(s1, 0.0, 1e-16);

  // Server half: two clients, uniform weights, two rounds.
  FedOptServer s(o);
  ServerState st;
  const std::vector<float> x0 = {1.0f, -2.0f};
  FT_ASSERT_OK(s.Init(x0, &st));
  const std::vector<std::vector<float>> d1 = {{0.5f, 0.25f}, {-0.1f, 0.4f}},
                                        d2 = {{1.5f, -0.75f}, {0.3f, 0.2f}};
  FT_ASSERT_OK(s.Update({Upd(0, 1, d1[0]), Upd(3, 9, d1[1])}, Info(0, 4), &st));
  FT_ASSERT_OK(s.Update({Upd(1, 1, d2[0]), Upd(2, 9, d2[1])}, Info(1, 4), &st));
  for (size_t j = 0; j < 2; ++j) {
    double mj = 0.0, vj = 1e-4, x = x0[j];
    for (const auto* d : {&d1, &d2}) {
      const double dbar = 0.5 * ((*d)[0][j] + (*d)[1][j]);  // uniform (the fedopt default)
      mj = 0.5 * mj + 0.5 * dbar;
      vj = vj + dbar * dbar;
      x += 0.05 * mj / (std::sqrt(vj) + 1e-2);
    }
    // Dbar, m, v and x are stored as float between rounds (relative 6e-8 each) and |x| <= 2:
    // 1e-6 absolute covers a few ulps.
    EXPECT_NEAR(st.x[j], x, 1e-6) << j;
    EXPECT_NEAR(st.vectors.at(FedOptServer::kSecondMoment)[j], vj, 1e-6 * vj) << j;
  }
}

TEST(FedOptTest, FedYogiSecondMomentMovesTowardDbarSquared) {
  FedOptOptions o = U11Options(FedOptVariant::kYogi);
  // v > Dbar^2: v decreases by (1 - beta2) Dbar^2; v < Dbar^2: increases; v == Dbar^2: stays.
  double m = 0.0, v = 1.0;
  FedOptCoordinateStep(o, 0.5, &m, &v);
  EXPECT_NEAR(v, 1.0 - 0.01 * 0.25, 1e-16);
  v = 0.01;
  FedOptCoordinateStep(o, 0.5, &m, &v);
  EXPECT_NEAR(v, 0.01 + 0.01 * 0.25, 1e-16);
  v = 0.25;
  FedOptCoordinateStep(o, 0.5, &m, &v);
  EXPECT_EQ(v, 0.25);  // sign(0) = 0
}

TEST(FedOptTest, VInitZeroVariant) {
  // FL-Simulator's FedAdam (docs/federated.md §1.4): m, v start at 0, tau = 0.01.
  FedOptOptions o = U11Options(FedOptVariant::kAdam);
  o.tau = 0.01;
  o.v_init_zero = true;
  EXPECT_EQ(FedOptInitialV(o), 0.0);
  double m = 0.0, v = 0.0;
  const double step = FedOptCoordinateStep(o, 2.0, &m, &v);
  // m = 0.1 * 2, v = 0.01 * 4, step = 0.1 * 0.2 / (0.2 + 0.01); double, same operations.
  EXPECT_NEAR(step, 0.1 * 0.2 / (0.2 + 0.01), 1e-15);

  FedOptServer zero(o);
  ServerState st;
  const std::vector<float> x0 = {0.0f, 0.0f};
  FT_ASSERT_OK(zero.Init(x0, &st));
  EXPECT_EQ(st.vectors.at(FedOptServer::kSecondMoment), (std::vector<float>{0.0f, 0.0f}));
  FT_ASSERT_OK(zero.Update({Upd(0, 1, {2.0f, 0.0f})}, Info(0, 1), &st));
  EXPECT_NEAR(st.x[0], step, 1e-8);  // one float rounding of x ~0.095 (half ulp 3.7e-9)
  EXPECT_EQ(st.x[1], 0.0f);          // Dbar = 0 with v = 0: m = 0, step 0 (tau > 0)

  FedOptServer tau2(U11Options(FedOptVariant::kAdam));
  FT_ASSERT_OK(tau2.Init(x0, &st));
  EXPECT_EQ(st.vectors.at(FedOptServer::kSecondMoment)[0], static_cast<float>(1e-6));
}

TEST(FedOptTest, NoUpdatesLeavesModelAndMoments) {
  FedOptServer s(U11Options(FedOptVariant::kYogi));
  ServerState st;
  const std::vector<float> x0 = {0.25f, 0.5f};
  FT_ASSERT_OK(s.Init(x0, &st));
  FT_ASSERT_OK(s.Update({Upd(0, 1, {1.0f, -1.0f})}, Info(0, 2), &st));
  const ServerState before = st;
  FT_ASSERT_OK(s.Update({}, Info(1, 2), &st));
  EXPECT_EQ(st.x, before.x);
  EXPECT_EQ(st.vectors, before.vectors);
}

TEST(FedOptTest, WeightingDefaultsToUniformAndHonoursAnExplicitSetting) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  Cfg c = Config("fedadam");
  c.set_server_lr(0.1);
  FT_ASSERT_OK_AND_ASSIGN(auto unset, Factory(reg, "fedadam")->MakeServer(c));
  c.set_weighting("samples");
  FT_ASSERT_OK_AND_ASSIGN(auto samples, Factory(reg, "fedadam")->MakeServer(c));
  FedOptServer uniform(U11Options(FedOptVariant::kAdam));
  FedOptOptions so = U11Options(FedOptVariant::kAdam);
  so.weighting = "samples";
  FedOptServer by_samples(so);
  const std::vector<float> x0 = {0.0f};
  const std::vector<float> plus = {1.0f}, minus = {-1.0f};  // the updates view these
  const std::vector<ClientUpdate> ups = {Upd(0, 1, plus), Upd(1, 3, minus)};
  ServerState a, b, c1, c2;
  for (auto [server, st] : {std::pair{unset.get(), &a}, std::pair{samples.get(), &b},
                            std::pair<ServerAlgorithm*, ServerState*>{&uniform, &c1},
                            std::pair<ServerAlgorithm*, ServerState*>{&by_samples, &c2}}) {
    FT_ASSERT_OK(server->Init(x0, st));
    FT_ASSERT_OK(server->Update(ups, Info(0, 2), st));
  }
  EXPECT_EQ(a.x, c1.x);   // uniform: Dbar = 0, x stays 0
  EXPECT_EQ(a.x[0], 0.0f);
  EXPECT_EQ(b.x, c2.x);   // samples: Dbar = -0.5
  EXPECT_LT(b.x[0], 0.0f);
}

// A reducer that takes the coordinate-wise maximum, to see that server halves go through the
// Reducer they were given (compose, don't inherit).
class MaxReducer final : public Reducer {
 public:
  using Reducer::Reduce;
  std::string name() const override { return "max"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double>, Vec out,
                      const ReduceContext&) const override {
    for (size_t j = 0; j < out.size(); ++j) {
      out[j] = in[0][j];
      for (ConstVec v : in) out[j] = std::max(out[j], v[j]);
    }
    return absl::OkStatus();
  }
};

TEST(FedOptTest, AveragesThroughItsReducer) {
  FedOptServer s(U11Options(FedOptVariant::kAdam), std::make_unique<MaxReducer>());
  ServerState st;
  FT_ASSERT_OK(s.Init(std::vector<float>{0.0f}, &st));
  FT_ASSERT_OK(s.Update({Upd(0, 1, {1.0f}), Upd(1, 1, {-3.0f})}, Info(0, 2), &st));
  // max = 1 -> the U11 step; the mean (-1) would move x the other way.
  EXPECT_NEAR(st.x[0], 0.0990050488825424, 4e-9);  // one float rounding of x (see U11)
}

// ------------------------------------------------------------------------------------ FedDyn

TEST(FedDynTest, ServerUpdateMatchesSpecFormula) {
  const double alpha = 0.1;
  const uint64_t N = 5;
  FedDynServer s({alpha});
  ServerState st;
  const std::vector<float> x0 = {1.0f, -0.5f, 2.0f};
  FT_ASSERT_OK(s.Init(x0, &st));
  EXPECT_EQ(st.vectors.at(FedDynServer::kH), (std::vector<float>(3, 0.0f)));
  // Start from a non-zero h, as after earlier rounds.
  const std::vector<float> h0 = {0.02f, -0.01f, 0.0f};
  st.vectors[FedDynServer::kH] = h0;
  const std::vector<std::vector<float>> d = {{0.1f, 0.2f, -0.3f}, {-0.4f, 0.05f, 0.6f}};
  // Sample sizes differ: FedDyn's mean_S is uniform regardless.
  FT_ASSERT_OK(s.Update({Upd(1, 10, d[0]), Upd(4, 30, d[1])}, Info(0, N), &st));
  for (size_t j = 0; j < 3; ++j) {
    // h <- h - (alpha/N) sum_S (y_i - x); x <- mean_S(y_i) - h/alpha (docs/federated.md §1.5), in double.
    const double y0 = x0[j] + d[0][j], y1 = x0[j] + d[1][j];
    const double h1 = h0[j] - alpha / N * (d[0][j] + d[1][j]);
    const double x1 = 0.5 * (y0 + y1) - h1 / alpha;
    // mean_S(Delta) and h are stored as float (relative 6e-8); h/alpha multiplies h's rounding
    // by 10 and |x| <= 2.5: 1e-6 absolute is a few ulps.
    EXPECT_NEAR(st.vectors.at(FedDynServer::kH)[j], h1, 1e-8) << j;
    EXPECT_NEAR(st.x[j], x1, 1e-6) << j;
  }
  // No update: x and h stay.
  const ServerState before = st;
  FT_ASSERT_OK(s.Update({}, Info(1, N), &st));
  EXPECT_EQ(st.x, before.x);
  EXPECT_EQ(st.vectors, before.vectors);
}

TEST(FedDynTest, ServerNeedsNumClients) {
  FedDynServer s({0.1});
  ServerState st;
  FT_ASSERT_OK(s.Init(std::vector<float>{0.0f}, &st));
  EXPECT_THAT(s.Update({Upd(0, 1, {1.0f}), Upd(1, 1, {1.0f})}, Info(0, 1), &st),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_clients")));
}

TEST(FedDynTest, AveragesThroughItsReducer) {
  FedDynServer s({0.5}, std::make_unique<MaxReducer>());
  ServerState st;
  FT_ASSERT_OK(s.Init(std::vector<float>{0.0f}, &st));
  FT_ASSERT_OK(s.Update({Upd(0, 1, {1.0f}), Upd(1, 1, {-3.0f})}, Info(0, 4), &st));
  // reduce = 1, S = 2, N = 4: h = -0.5 * 2/4 * 1 = -0.25; x = 0 + 1 + 0.25/0.5 = 1.5 (exact).
  EXPECT_EQ(st.vectors.at(FedDynServer::kH)[0], -0.25f);
  EXPECT_EQ(st.x[0], 1.5f);
}

TEST(FedDynTest, ClientStatePersistsAndCorrectsTheLocalGradient) {
  const double alpha = 0.1, lr = 0.05;
  const int64_t K = 3;
  QuadWorld w(2, 4);
  FedDynClient dyn({alpha});
  ClientState st;
  const std::vector<float> x0 = StartModel(w.dim());

  // Round 0: grad_L = 0, so the local problem is FedProx's with mu = alpha (bitwise: the
  // hook adds alpha (y - x) - 0).
  Payload up0, up_prox;
  FT_ASSERT_OK(w.Local(dyn, Payload{{x0}, {}}, 0, 0, K, lr, &st, &up0));
  ClientState none;
  FT_ASSERT_OK(w.Local(FedProxClient({alpha}), Payload{{x0}, {}}, 0, 0, K, lr, &none, &up_prox));
  EXPECT_EQ(up0.parts.at(0), up_prox.parts.at(0));
  ASSERT_EQ(st.vectors.count(FedDynClient::kGradL), 1u);
  std::vector<float> gl = st.vectors.at(FedDynClient::kGradL);
  for (size_t j = 0; j < w.dim(); ++j)
    // grad_L = 0 - alpha Delta, one float rounding of a value <= ~1.
    EXPECT_NEAR(gl[j], -alpha * up0.parts[0][j], 1e-7) << j;

  // The client sits out round 1 (its state is not touched) and returns in round 2 at another
  // model: the step uses the stored grad_L.
  const std::vector<float> x2 = {0.1f, 0.2f, -0.3f, 0.4f};
  Payload up2;
  FT_ASSERT_OK(w.Local(dyn, Payload{{x2}, {}}, 0, 2, K, lr, &st, &up2));
  // Reference: the same local SGD with the correction written out.
  std::vector<float> y = x2;
  LocalSgdOptions o;
  o.lr = lr;
  o.epochs = 0;
  o.steps = K;
  o.batch_size = 1;
  RngStream rng = RngStream::For(11, 2, 0, Purpose::kMinibatch);
  const float a = static_cast<float>(alpha);
  FT_ASSERT_OK(RunLocalSgd(w.trainer, DataView::Of(w.data, w.rows[0]), o, rng, absl::MakeSpan(y),
                           [&](ConstVec yk, Vec g) {
                             for (size_t j = 0; j < g.size(); ++j)
                               g[j] += a * (yk[j] - x2[j]) - gl[j];
                           })
                   .status());
  for (size_t j = 0; j < w.dim(); ++j) {
    EXPECT_EQ(up2.parts.at(0)[j], y[j] - x2[j]) << j;  // same float operations: bitwise
    EXPECT_NEAR(st.vectors.at(FedDynClient::kGradL)[j], gl[j] - alpha * up2.parts[0][j], 1e-7)
        << j;  // one float rounding of a value <= ~1
  }

  // A state of the wrong size is refused, naming the client and the state.
  st.vectors[FedDynClient::kGradL].resize(2);
  Payload bad;
  EXPECT_THAT(w.Local(dyn, Payload{{x2}, {}}, 0, 3, K, lr, &st, &bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(FedDynClient::kGradL)));
}

TEST(FedDynTest, V0ConvergesToOptimumWithFullParticipation) {
  // docs/federated.md §8 V0: N = 10, d = 20, K = 10, lr = 0.05, alpha = 0.1, full participation.
  // FedDyn's fixed point is x* (grad_L_i = grad f_i(x*), h = 0) and it converges linearly; FedAvg
  // and FedProx stall at ~0.29 on the same clients (V0StallsAwayFromOptimumLikeFedAvg).
  QuadWorld w(10, 20);
  FedDynServer server({0.1});
  FedDynClient client({0.1});
  ServerState st;
  std::vector<float> x0(w.dim(), 0.0f);
  FT_ASSERT_OK(server.Init(x0, &st));
  std::vector<ClientState> states(w.num_clients());
  std::vector<double> dist;  // after 100, 200, ..., 1000 rounds
  for (int r = 0; r < 1000; ++r) {
    FT_ASSERT_OK(w.Round(server, client, &st, &states, r, 10, 0.05));
    if (r % 100 == 99) dist.push_back(w.Dist(st.x));
  }
  std::printf("V0 feddyn: ||x - x*|| = %.3e, %.3e, %.3e after 100, 200, 1000 rounds\n", dist[0],
              dist[1], dist.back());
  // Linear convergence while far above the float floor (observed: a factor of ~35 per 100
  // rounds; 10 leaves room).
  EXPECT_LT(dist[1], dist[0] / 10);
  // In float32 the iteration ends in a rounding floor around x* (observed 4.7e-6, flat from
  // round ~400 on): local gradients reach |a (y - b)| ~ 20, whose float ulp is ~2e-6, and the
  // corrected gradient g - grad_L_i cancels two such numbers every step, so the fixed point
  // moves by ~1e-6 / a per coordinate, ~5e-6 over d = 20. 5e-5 is 10x that floor and still
  // ~6000x below FedAvg's plateau.
  EXPECT_LT(dist.back(), 5e-5);
  // Server and client states agree at the fixed point: h = (1/N) sum_i grad_L_i (both are
  // built from the same deltas; float rounding of |grad_L| <= ~20 -> 1e-5 slack).
  for (size_t j = 0; j < w.dim(); ++j) {
    double mean = 0.0;
    for (const ClientState& cs : states) mean += cs.vectors.at(FedDynClient::kGradL)[j];
    EXPECT_NEAR(st.vectors.at(FedDynServer::kH)[j], mean / w.num_clients(), 1e-5) << j;
  }
}

// ---------------------------------------------------------------------------------- factories

TEST(ProxFamilyFactoryTest, RegisteredWithDefaults) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  EXPECT_THAT(reg.Names(), ::testing::IsSupersetOf(
                               {"fedprox", "fedadagrad", "fedadam", "fedyogi", "feddyn"}));
  for (const char* name : {"fedprox", "fedadagrad", "fedadam", "fedyogi", "feddyn"}) {
    const AlgorithmFactory* f = Factory(reg, name);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->name(), name);
    const Cfg c = Config(name);
    FT_EXPECT_OK(f->Validate(c));
    FT_EXPECT_OK(f->MakeServer(c));
    FT_EXPECT_OK(f->MakeClient(c));
  }
}

TEST(ProxFamilyFactoryTest, FactoryParamsReachTheHalves) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  // fedyogi with the U11 settings through the config: the U11 step.
  Cfg c = Config("fedyogi");
  c.set_server_lr(0.1);
  auto& p = *c.mutable_params()->mutable_fields();
  p["beta1"] = Num(0.9);
  p["beta2"] = Num(0.99);
  p["tau"] = Num(1e-3);
  p["v_init"] = Str("tau2");
  FT_ASSERT_OK_AND_ASSIGN(auto s, Factory(reg, "fedyogi")->MakeServer(c));
  ServerState st;
  FT_ASSERT_OK(s->Init(std::vector<float>{0.0f}, &st));
  FT_ASSERT_OK(s->Update({Upd(0, 1, {1.0f})}, Info(0, 1), &st));
  EXPECT_NEAR(st.x[0], 0.0990049998750062, 4e-9);  // one float rounding of x (see U11)
  // v_init zero through the config.
  p["v_init"] = Str("zero");
  FT_ASSERT_OK_AND_ASSIGN(auto z, Factory(reg, "fedyogi")->MakeServer(c));
  FT_ASSERT_OK(z->Init(std::vector<float>{0.0f}, &st));
  EXPECT_EQ(st.vectors.at(FedOptServer::kSecondMoment)[0], 0.0f);
  // feddyn alpha through the config.
  Cfg dc = Config("feddyn");
  (*dc.mutable_params()->mutable_fields())["alpha"] = Num(0.5);
  FT_ASSERT_OK_AND_ASSIGN(auto ds, Factory(reg, "feddyn")->MakeServer(dc));
  FT_ASSERT_OK(ds->Init(std::vector<float>{0.0f}, &st));
  FT_ASSERT_OK(ds->Update({Upd(0, 1, {1.0f})}, Info(0, 2), &st));
  EXPECT_EQ(st.vectors.at(FedDynServer::kH)[0], -0.25f);  // -alpha/N * 1, exact in binary
}

struct BadCase {
  std::string algorithm;
  std::string key;  // empty: no param
  google::protobuf::Value value;
  std::string message;  // expected substring
};

TEST(ProxFamilyFactoryTest, BadParamsAreRefusedNamingTheField) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  const std::vector<BadCase> cases = {
      {"fedprox", "mu", Num(-1), "algorithm.params.mu of fedprox must be in [0, inf); got -1"},
      {"fedprox", "mu", Str("0.1"), "algorithm.params.mu of fedprox must be a number"},
      {"fedprox", "mu_", Num(0.1), "algorithm.params.mu_ is not a parameter of fedprox"},
      {"fedprox", "mu", Num(std::nan("")), "algorithm.params.mu of fedprox"},
      {"fedadam", "beta1", Num(1.0), "algorithm.params.beta1 of fedadam must be in [0, 1); got 1"},
      {"fedadam", "beta1", Num(-0.1), "algorithm.params.beta1 of fedadam"},
      {"fedyogi", "beta2", Num(1.5), "algorithm.params.beta2 of fedyogi must be in [0, 1)"},
      {"fedadam", "tau", Num(0), "algorithm.params.tau of fedadam must be in (0, inf); got 0"},
      {"fedyogi", "tau", Str("small"), "algorithm.params.tau of fedyogi must be a number"},
      {"fedadam", "v_init", Str("one"), "algorithm.params.v_init of fedadam must be one of tau2, zero"},
      {"fedadam", "v_init", Num(0), "algorithm.params.v_init of fedadam must be a string"},
      {"fedadagrad", "beta2", Num(0.99), "algorithm.params.beta2 is not a parameter of fedadagrad"},
      {"fedadam", "momentum", Num(0.9), "algorithm.params.momentum is not a parameter of fedadam"},
      {"feddyn", "alpha", Num(0), "algorithm.params.alpha of feddyn must be in (0, inf); got 0"},
      {"feddyn", "alpha", Num(-2), "algorithm.params.alpha of feddyn"},
      {"feddyn", "alpha", Str("0.1"), "algorithm.params.alpha of feddyn must be a number"},
      {"feddyn", "mu", Num(0.1), "algorithm.params.mu is not a parameter of feddyn"},
  };
  for (const BadCase& bc : cases) {
    Cfg c = Config(bc.algorithm);
    (*c.mutable_params()->mutable_fields())[bc.key] = bc.value;
    const AlgorithmFactory* f = Factory(reg, bc.algorithm);
    ASSERT_NE(f, nullptr);
    EXPECT_THAT(f->Validate(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bc.message)))
        << bc.algorithm << "." << bc.key;
    // Building either half refuses the same config.
    EXPECT_THAT(f->MakeServer(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bc.message)))
        << bc.algorithm << "." << bc.key;
    EXPECT_THAT(f->MakeClient(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bc.message)))
        << bc.algorithm << "." << bc.key;
  }
}

TEST(ProxFamilyFactoryTest, BadTypedFieldsAreRefusedNamingTheField) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  for (const char* name : {"fedprox", "fedadagrad", "fedadam", "fedyogi", "feddyn"}) {
    const AlgorithmFactory* f = Factory(reg, name);
    ASSERT_NE(f, nullptr);
    Cfg c = Config(name);
    c.mutable_reducer()->set_name("krum_typo");
    EXPECT_THAT(f->Validate(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("algorithm.reducer")))
        << name;
    c = Config(name);
    c.set_weighting("median");
    EXPECT_THAT(f->Validate(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("algorithm.weighting")))
        << name;
    c = Config(name);
    c.set_server_lr(0);
    EXPECT_THAT(f->Validate(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("algorithm.server_lr")))
        << name;
  }
  // FedDyn's server step has neither eta_g nor sample weights: settings it would ignore are
  // refused rather than silently dropped.
  const AlgorithmFactory* dyn = Factory(reg, "feddyn");
  ASSERT_NE(dyn, nullptr);
  Cfg c = Config("feddyn");
  c.set_server_lr(0.5);
  EXPECT_THAT(dyn->Validate(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("algorithm.server_lr is not used by feddyn")));
  c = Config("feddyn");
  c.set_weighting("samples");
  EXPECT_THAT(dyn->Validate(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("algorithm.weighting of feddyn must be uniform")));
  c.set_weighting("uniform");
  c.set_server_lr(1.0);
  FT_EXPECT_OK(dyn->Validate(c));
}

}  // namespace
}  // namespace fedtrain
