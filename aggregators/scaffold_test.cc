// SCAFFOLD (docs/federated.md §2) and the momentum paper's algorithms (§3) against the
// properties U12-U21 of §9, a V0-style drift check (§8) and the factories' input checks.
// Quadratic clients (tests/testing/quadratic.h), pure SGD, the halves driven directly the way
// the Coordinator drives them (down payload -> local updates in client-id order -> Update).
//
// Tolerances. The spec's 1e-10 is for double; model vectors here are float32 (unit roundoff
// u = 2^-24 ~ 6e-8). Where both sides run the same float operations the test asserts bitwise
// equality; elsewhere each tolerance is written next to the rounding that causes it.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "aggregators/fedavg.h"
#include "aggregators/momentum.h"
#include "aggregators/registry.h"
#include "aggregators/scaffold.h"
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

constexpr double kU = 1.0 / (1 << 24);  // float unit roundoff

// Wraps the quadratic trainer and records every gradient it returns (the raw g_{i,k}).
class RecordingTrainer final : public Trainer {
 public:
  explicit RecordingTrainer(size_t dim) : inner_(dim) {}
  size_t dim() const override { return inner_.dim(); }
  const ParamLayout& layout() const override { return inner_.layout(); }
  std::string description() const override { return inner_.description(); }
  void InitParams(RngStream& rng, Vec w) const override { inner_.InitParams(rng, w); }
  absl::StatusOr<double> Gradient(ConstVec w, const Batch& b, Vec grad) override {
    absl::StatusOr<double> l = inner_.Gradient(w, b, grad);
    if (l.ok()) grads.emplace_back(grad.begin(), grad.end());
    return l;
  }
  absl::StatusOr<EvalMetrics> Evaluate(ConstVec w, const DataView& d) override {
    return inner_.Evaluate(w, d);
  }
  std::unique_ptr<Trainer> Clone() const override {
    return std::make_unique<RecordingTrainer>(inner_.dim());
  }
  std::vector<std::vector<float>> grads;

 private:
  QuadraticTrainer inner_;
};

// N clients, each owning `rows` consecutive rows of a quadratic data set; per-client state.
struct World {
  Dataset data;
  size_t n = 0, d = 0;
  std::vector<std::vector<uint32_t>> idx;
  std::vector<ClientState> states;
  LocalSgdOptions sgd;
  uint64_t seed = 11;

  World(Dataset ds, size_t clients, size_t rows_per_client) : data(std::move(ds)), n(clients) {
    d = data.num_features / 2;
    idx.resize(n);
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < rows_per_client; ++k)
        idx[i].push_back(static_cast<uint32_t>(i * rows_per_client + k));
    states.resize(n);
    sgd.lr = 0.05;
    sgd.epochs = 0;
    sgd.steps = 5;
    sgd.batch_size = static_cast<int64_t>(rows_per_client);  // full batch by default
  }
  static World Heterogeneous(size_t clients, size_t dim, size_t rows = 1, uint64_t seed = 3) {
    return World(QuadraticClients(seed, clients * rows, dim), clients, rows);
  }
  DataView View(ClientId id) const { return DataView::Of(data, idx[id]); }
  std::vector<float> Grad(Trainer& t, ClientId id, const std::vector<float>& x) const {
    std::vector<float> g(d);
    EXPECT_TRUE(t.Gradient(x, Batch{&data, idx[id]}, absl::MakeSpan(g)).ok());
    return g;
  }
};

// One round as the Coordinator runs it. Returns the up payloads (in `sampled` order).
std::vector<Payload> Round(ServerAlgorithm& server, const ClientAlgorithm& client, ServerState* st,
                           World& w, Trainer& trainer, const std::vector<ClientId>& sampled,
                           uint64_t round) {
  Payload down;
  EXPECT_THAT(server.DownPayload(*st, &down), ::fedtrain::testing::IsOk());
  std::vector<Payload> ups(sampled.size());
  std::vector<ClientUpdate> updates;
  for (size_t i = 0; i < sampled.size(); ++i) {
    const ClientId id = sampled[i];
    RngStream rng = RngStream::For(w.seed, round, id, Purpose::kMinibatch);
    LocalContext ctx;
    ctx.trainer = &trainer;
    ctx.data = w.View(id);
    ctx.sgd = w.sgd;
    ctx.rng = &rng;
    ctx.round = round;
    ctx.client = id;
    LocalResult res;
    EXPECT_THAT(client.LocalUpdate(down, ctx, &w.states[id], &ups[i], &res),
                ::fedtrain::testing::IsOk());
    ClientUpdate u;
    u.id = id;
    u.num_samples = w.idx[id].size();
    u.steps = res.steps;
    for (const std::vector<float>& p : ups[i].parts) u.parts.push_back(p);
    updates.push_back(std::move(u));
  }
  RoundInfo info;
  info.round = round;
  info.sampled = sampled;
  info.num_clients = w.n;
  info.lr = w.sgd.lr;  // as the Coordinator does: the rate the round's tasks carried
  EXPECT_THAT(server.Update(updates, info, st), ::fedtrain::testing::IsOk());
  st->round = round + 1;
  return ups;
}

std::vector<ClientId> All(size_t n) {
  std::vector<ClientId> v(n);
  std::iota(v.begin(), v.end(), ClientId{0});
  return v;
}

// m distinct ids of n for round r, sorted (a deterministic stand-in for the sampler).
std::vector<ClientId> Sample(size_t n, size_t m, uint64_t r) {
  std::vector<uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  RngStream rng = RngStream::For(99, r, 0, Purpose::kTest);
  rng.Shuffle(absl::MakeSpan(perm));
  std::vector<ClientId> s(perm.begin(), perm.begin() + m);
  std::sort(s.begin(), s.end());
  return s;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (size_t j = 0; j < a.size(); ++j) m = std::max(m, std::fabs(a[j] - b[j]));
  return m;
}
double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  return MaxAbsDiff(a, std::vector<double>(b.begin(), b.end()));
}
double MaxAbs(const std::vector<float>& a) {
  double m = 0.0;
  for (float v : a) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}
double Dist(const std::vector<float>& x, const std::vector<double>& y) {
  double s = 0.0;
  for (size_t j = 0; j < x.size(); ++j) s += (x[j] - y[j]) * (x[j] - y[j]);
  return std::sqrt(s);
}
std::vector<float> ToFloat(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// (1/N) sum_i c_i in double over every client's stored c_i (0 when never sampled).
std::vector<double> MeanClientVariate(const World& w) {
  std::vector<double> m(w.d, 0.0);
  for (const ClientState& s : w.states) {
    auto it = s.vectors.find("c");
    if (it == s.vectors.end()) continue;
    for (size_t j = 0; j < w.d; ++j) m[j] += it->second[j];
  }
  for (double& v : m) v /= static_cast<double>(w.n);
  return m;
}

// Puts the world at the fixed point of §9 U15/U21: x = x*, c_i = grad f_i(x*), c = mean c_i.
void SetFixedPoint(World& w, Trainer& t, const std::vector<float>& xs, ServerState* st) {
  std::vector<double> c(w.d, 0.0);
  for (ClientId i = 0; i < w.n; ++i) {
    w.states[i].vectors["c"] = w.Grad(t, i, xs);
    for (size_t j = 0; j < w.d; ++j) c[j] += w.states[i].vectors["c"][j];
  }
  for (double& v : c) v /= static_cast<double>(w.n);
  st->vectors["c"] = ToFloat(c);
}

// ---------------------------------------------------------------------------------------------
// SCAFFOLD

TEST(ScaffoldTest, U12OptionTwoVariateIsMeanRawGradientAndOptionOneIsFullGradient) {
  // 4 rows per client, batch 2: stochastic minibatches, so the identity is not a full-batch
  // accident. Two rounds, so the second runs with a non-zero correction c - c_i.
  World w = World::Heterogeneous(4, 6, /*rows=*/4);
  w.sgd.batch_size = 2;
  w.sgd.steps = 7;
  for (auto option : {ScaffoldOptions::Variate::kOptionII, ScaffoldOptions::Variate::kOptionI}) {
    SCOPED_TRACE(option == ScaffoldOptions::Variate::kOptionI ? "option I" : "option II");
    for (ClientState& s : w.states) s = ClientState{};
    ScaffoldServer server({.option = option});
    ScaffoldClient client({.option = option});
    ServerState st;
    FT_ASSERT_OK(server.Init(std::vector<float>(w.d, 0.5f), &st));
    for (uint64_t r = 0; r < 2; ++r) {
      Payload down;
      FT_ASSERT_OK(server.DownPayload(st, &down));
      std::vector<Payload> ups(w.n);
      std::vector<ClientUpdate> updates;
      for (ClientId id = 0; id < w.n; ++id) {
        RecordingTrainer t(w.d);
        RngStream rng = RngStream::For(w.seed, r, id, Purpose::kMinibatch);
        LocalContext ctx{&t, w.View(id), w.sgd, &rng, r, id};
        Payload& up = ups[id];
        LocalResult res;
        const std::vector<float> ci_old =
            w.states[id].vectors.count("c") ? w.states[id].vectors["c"] : std::vector<float>(w.d, 0.0f);
        FT_ASSERT_OK(client.LocalUpdate(down, ctx, &w.states[id], &up, &res));
        ASSERT_EQ(res.steps, 7);
        const std::vector<float>& ci = w.states[id].vectors.at("c");
        ASSERT_EQ(up.parts.size(), 2u);
        for (size_t j = 0; j < w.d; ++j) EXPECT_EQ(up.parts[1][j], ci[j] - ci_old[j]);
        if (option == ScaffoldOptions::Variate::kOptionII) {
          ASSERT_EQ(t.grads.size(), 7u);
          std::vector<double> mean(w.d, 0.0);
          for (const auto& g : t.grads)
            for (size_t j = 0; j < w.d; ++j) mean[j] += g[j] / 7.0;
          // (x - y_K)/(K eta) divides y's float rounding (K steps of <= u|y|/2 each) by K eta:
          // at most ~u max|y| / (2 eta) ~ 6e-8 * 2 / 0.1 ~ 1.2e-6 (measured 2.4e-7).
          EXPECT_LT(MaxAbsDiff(ci, mean), 2e-6) << "client " << id << " round " << r;
        } else {
          // Option I: one extra full-data gradient at the received x, after the 7 steps.
          ASSERT_EQ(t.grads.size(), 8u);
          EXPECT_EQ(ci, w.Grad(t, id, down.parts[0]));  // same computation: bitwise
        }
        ClientUpdate u;
        u.id = id;
        u.num_samples = 4;
        u.steps = res.steps;
        u.parts = {up.parts[0], up.parts[1]};
        updates.push_back(std::move(u));
      }
      RoundInfo info;
      info.num_clients = w.n;
      info.lr = w.sgd.lr;
      FT_ASSERT_OK(server.Update(updates, info, &st));
    }
  }
}

TEST(ScaffoldTest, U13InvariantAfterEveryRoundWithPartialParticipation) {
  struct Algo {
    const char* name;
    std::unique_ptr<ServerAlgorithm> server;
    std::unique_ptr<ClientAlgorithm> client;
  };
  std::vector<Algo> algos;
  algos.push_back({"scaffold II", std::make_unique<ScaffoldServer>(ScaffoldOptions{}),
                   std::make_unique<ScaffoldClient>(ScaffoldOptions{})});
  ScaffoldOptions one{.option = ScaffoldOptions::Variate::kOptionI};
  algos.push_back({"scaffold I", std::make_unique<ScaffoldServer>(one),
                   std::make_unique<ScaffoldClient>(one)});
  MomentumOptions m{.beta = 0.3, .control_variates = true};
  algos.push_back({"scaffold_m", std::make_unique<MomentumServer>(m),
                   std::make_unique<MomentumClient>(m)});
  m.variance_reduction = true;
  algos.push_back({"scaffold_m_vr", std::make_unique<MomentumServer>(m),
                   std::make_unique<MomentumClient>(m)});
  for (Algo& a : algos) {
    SCOPED_TRACE(a.name);
    World w = World::Heterogeneous(10, 8, /*rows=*/3);
    w.sgd.batch_size = 2;  // stochastic
    QuadraticTrainer t(w.d);
    ServerState st;
    FT_ASSERT_OK(a.server->Init(std::vector<float>(w.d, 0.0f), &st));
    for (uint64_t r = 0; r < 40; ++r) {
      Round(*a.server, *a.client, &st, w, t, Sample(w.n, 3, r), r);
      const std::vector<double> mean = MeanClientVariate(w);
      double scale = 0.0;
      for (double v : mean) scale = std::max(scale, std::fabs(v));
      // c accumulates one float rounding per round (of c + sum dc / N, relative u) and each
      // dc_i = c_i^+ - c_i is rounded once: after r rounds |error| <~ 2 (r + 1) u max|c_i|.
      // The bound below is that with max|c_i| <= 4 (scale + 1) as slack for the clients'
      // larger individual c_i.
      EXPECT_LT(MaxAbsDiff(st.vectors.at("c"), mean), 8.0 * (r + 1) * kU * (scale + 1.0))
          << "round " << r;
    }
  }
}

TEST(ScaffoldTest, U14IdenticalClientsFullParticipationEqualFedAvg) {
  Dataset one = QuadraticClients(5, 1, 6);
  Dataset same = one;
  for (int i = 1; i < 5; ++i) {
    same.features.insert(same.features.end(), one.features.begin(), one.features.end());
    same.labels.push_back(0);
  }
  for (auto option : {ScaffoldOptions::Variate::kOptionII, ScaffoldOptions::Variate::kOptionI}) {
    World ws(same, 5, 1), wf(same, 5, 1);
    QuadraticTrainer t(ws.d);
    ScaffoldServer ss({.option = option, .server_lr = 0.8});
    ScaffoldClient sc({.option = option});
    FedAvgServer fs({.server_lr = 0.8, .weighting = "uniform"});
    FedAvgClient fc;
    ServerState a, b;
    const std::vector<float> x0(ws.d, 1.5f);
    FT_ASSERT_OK(ss.Init(x0, &a));
    FT_ASSERT_OK(fs.Init(x0, &b));
    for (uint64_t r = 0; r < 15; ++r) {
      Round(ss, sc, &a, ws, t, All(5), r);
      Round(fs, fc, &b, wf, t, All(5), r);
      // Every c_i equals c up to the rounding of c + dc (1 ulp of c when dc - c_i is not
      // exact), so the correction c - c_i is 0 or ~u|c|, moving y by ~eta K u |c| per round:
      // 1e-6 is far above that and far below the distance FedAvg itself moves per round.
      if (r == 0) {
        EXPECT_EQ(a.x, b.x);  // c = c_i = 0: bit for bit
      }
      EXPECT_LT(MaxAbsDiff(a.x, b.x), 1e-6) << "round " << r;
    }
  }
}

TEST(ScaffoldTest, U15FixedPointAndFedAvgMovesAway) {
  World w = World::Heterogeneous(10, 8);
  QuadraticTrainer t(w.d);
  const std::vector<double> xs = QuadraticOptimum(w.data);
  const std::vector<float> xsf = ToFloat(xs);
  for (int64_t k : {1, 5, 20}) {
    for (double lr : {0.01, 0.1}) {
      for (auto option : {ScaffoldOptions::Variate::kOptionII, ScaffoldOptions::Variate::kOptionI}) {
        SCOPED_TRACE(::testing::Message() << "K " << k << " lr " << lr << " option "
                                          << (option == ScaffoldOptions::Variate::kOptionI ? "I" : "II"));
        w.sgd.steps = k;
        w.sgd.lr = lr;
        ScaffoldServer server({.option = option});
        ScaffoldClient client({.option = option});
        ServerState st;
        FT_ASSERT_OK(server.Init(xsf, &st));
        SetFixedPoint(w, t, xsf, &st);
        for (uint64_t r = 0; r < 10; ++r) Round(server, client, &st, w, t, All(w.n), r);
        // x* is rounded to float, so sum_i grad f_i(x*) = O(u |b| a) ~ 1e-6 instead of 0 and
        // c = mean c_i carries it; steps of eta * 1e-7 fall below one ulp of x. 1e-5 bounds it.
        EXPECT_LT(MaxAbsDiff(st.x, xsf), 1e-5);
      }
      if (k > 1) {
        FedAvgServer fs({.weighting = "uniform"});
        FedAvgClient fc;
        ServerState sf;
        FT_ASSERT_OK(fs.Init(xsf, &sf));
        for (uint64_t r = 0; r < 10; ++r) Round(fs, fc, &sf, w, t, All(w.n), r);
        // Measured 0.012 (K = 5, lr = 0.01) to 0.8: 500x the fixed-point tolerance at least.
        EXPECT_GT(Dist(sf.x, xs), 5e-3) << "FedAvg should drift from x* with K = " << k;
      }
    }
  }
}

TEST(ScaffoldTest, EmptyRoundAndServerChecks) {
  ScaffoldServer s({});
  ServerState st;
  FT_ASSERT_OK(s.Init(std::vector<float>{1.0f, 2.0f}, &st));
  st.vectors["c"] = {0.5f, -0.5f};
  const ServerState before = st;
  FT_ASSERT_OK(s.Update({}, RoundInfo{}, &st));
  EXPECT_EQ(st.x, before.x);
  EXPECT_EQ(st.vectors, before.vectors);
  std::vector<float> d = {0.1f, 0.2f}, dc = {1.0f, 1.0f};
  ClientUpdate u;
  u.id = 3;
  u.num_samples = 1;
  u.steps = 1;
  u.parts = {d, dc};
  RoundInfo info;  // num_clients = 0: the 1/N update is undefined
  EXPECT_THAT(s.Update({u}, info, &st),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_clients")));
  EXPECT_EQ(st.x, before.x);  // nothing changed
  info.num_clients = 4;
  FT_ASSERT_OK(s.Update({u}, info, &st));
  EXPECT_EQ(st.vectors["c"], (std::vector<float>{0.75f, -0.25f}));  // c + dc / N
  EXPECT_EQ(st.x, (std::vector<float>{1.1f, 2.2f}));
}

// ---------------------------------------------------------------------------------------------
// Momentum paper

TEST(MomentumTest, U16BetaOneEqualsFedAvgAndScaffold) {
  const double eta_g = 0.7;
  World base = World::Heterogeneous(8, 6, /*rows=*/3);
  base.sgd.batch_size = 2;
  QuadraticTrainer t(base.d);
  const std::vector<float> x0(base.d, -1.0f);
  const double eta_k = base.sgd.lr * static_cast<double>(base.sgd.steps);
  // FedAvg-M, default gamma (server_lr is the eta_g-equivalent): bit for bit FedAvg.
  // Explicit gamma = eta_g eta K: the same algorithm, reached through g (rounding only).
  for (bool explicit_gamma : {false, true}) {
    SCOPED_TRACE(explicit_gamma ? "explicit gamma" : "default gamma");
    World wm = base, wf = base;
    MomentumOptions o{.beta = 1.0};
    if (explicit_gamma) o.gamma = eta_g * eta_k; else o.server_lr = eta_g;
    MomentumServer ms(o);
    MomentumClient mc(o);
    FedAvgServer fs({.server_lr = eta_g, .weighting = "uniform"});
    FedAvgClient fc;
    ServerState a, b;
    FT_ASSERT_OK(ms.Init(x0, &a));
    FT_ASSERT_OK(fs.Init(x0, &b));
    for (uint64_t r = 0; r < 10; ++r) {
      const auto s = Sample(8, 3, r);
      Round(ms, mc, &a, wm, t, s, r);
      Round(fs, fc, &b, wf, t, s, r);
      if (!explicit_gamma) {
        EXPECT_EQ(a.x, b.x) << "round " << r;
      } else {
        // s_i = gamma Delta_i/(eta K) rounds once (relative u) per coordinate: error ~u|Delta|
        // per round on top of x's own rounding; 1e-5 |x| covers 10 rounds.
        EXPECT_LT(MaxAbsDiff(a.x, b.x), 1e-5 * (1.0 + MaxAbs(b.x))) << "round " << r;
      }
    }
  }
  // SCAFFOLD-M and SCAFFOLD-M-VR with beta = 1 (default gamma, eta_g) vs SCAFFOLD option II.
  for (bool vr : {false, true}) {
    SCOPED_TRACE(vr ? "scaffold_m_vr" : "scaffold_m");
    World wm = base, ws = base;
    MomentumOptions o{.beta = 1.0, .server_lr = eta_g, .control_variates = true,
                      .variance_reduction = vr};
    MomentumServer ms(o);
    MomentumClient mc(o);
    ScaffoldServer ss({.server_lr = eta_g});
    ScaffoldClient sc({});
    ServerState a, b;
    FT_ASSERT_OK(ms.Init(x0, &a));
    FT_ASSERT_OK(ss.Init(x0, &b));
    for (uint64_t r = 0; r < 10; ++r) {
      const auto s = Sample(8, 3, r);
      Round(ms, mc, &a, wm, t, s, r);
      Round(ss, sc, &b, ws, t, s, r);
      // Round 0 has c = c_i = 0 and the same steps: bit for bit. Afterwards c_i^+ is the
      // double-accumulated mean raw gradient (SCAFFOLD-M) vs (x - y)/(K eta) (option II),
      // equal up to ~u max|y| / eta (see U12), which then perturbs later steps by eta times it.
      if (r == 0) {
        EXPECT_EQ(a.x, b.x);
      }
      // Measured 1.2e-7 (x) and 1.5e-7 (c) over 10 rounds.
      EXPECT_LT(MaxAbsDiff(a.x, b.x), 2e-6) << "round " << r;
      EXPECT_LT(MaxAbsDiff(a.vectors.at("c"), b.vectors.at("c")), 2e-6) << "round " << r;
    }
  }
}

TEST(MomentumTest, U17FedAvgMIsExponentialMovingAverageOfGradients) {
  for (bool explicit_gamma : {false, true}) {
    SCOPED_TRACE(explicit_gamma ? "explicit gamma" : "default gamma");
    World w = World::Heterogeneous(6, 5, /*rows=*/4);
    w.sgd.batch_size = 2;
    const double beta = 0.3;
    MomentumOptions o{.beta = beta};
    if (explicit_gamma) o.gamma = 0.2;
    MomentumServer server(o);
    MomentumClient client(o);
    ServerState st;
    FT_ASSERT_OK(server.Init(std::vector<float>(w.d, 2.0f), &st));
    // g as the clients see it: the server holds it in gradient units in both modes.
    auto g_of = [&](const ServerState& s) {
      const std::vector<float>& g = s.vectors.at("g_grad");
      return std::vector<double>(g.begin(), g.end());
    };
    for (uint64_t r = 0; r < 6; ++r) {
      const std::vector<double> g_old = g_of(st);
      RecordingTrainer t(w.d);
      const auto s = Sample(w.n, 3, r);
      Round(server, client, &st, w, t, s, r);
      ASSERT_EQ(t.grads.size(), 3u * 5u);
      std::vector<double> expect(w.d, 0.0);
      for (const auto& g : t.grads)
        for (size_t j = 0; j < w.d; ++j) expect[j] += g[j] / 15.0;  // mean over i and k
      double scale = 1.0;
      for (size_t j = 0; j < w.d; ++j) {
        expect[j] = beta * expect[j] + (1 - beta) * g_old[j];
        scale = std::max(scale, std::fabs(expect[j]));
      }
      // g^{r+1} = -mean(Delta)/(eta K): Delta carries y's rounding (~K u |y|), divided by
      // eta K: ~u |y| / (2 eta) ~ 2e-6 at most (measured 2.5e-7 relative to the scale).
      std::vector<double> got = g_of(st);
      EXPECT_LT(MaxAbsDiff(ToFloat(got), expect), 5e-6 * scale) << "round " << r;
    }
  }
}

TEST(MomentumTest, U18BetaZeroIgnoresDataAndKeepsG) {
  World w = World::Heterogeneous(4, 5);
  QuadraticTrainer t(w.d);
  const std::vector<float> g0 = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f};
  for (bool explicit_gamma : {false, true}) {
    SCOPED_TRACE(explicit_gamma ? "explicit gamma" : "default gamma");
    MomentumOptions o{.beta = 0.0};
    if (explicit_gamma) o.gamma = 0.25;
    MomentumServer server(o);
    MomentumClient client(o);
    ServerState st;
    FT_ASSERT_OK(server.Init(std::vector<float>(w.d, 1.0f), &st));
    const std::vector<float> g_state = g0;  // gradient units in both modes (momentum.h)
    st.vectors["g_grad"] = g_state;
    const std::vector<float> x_before = st.x;
    const auto ups = Round(server, client, &st, w, t, All(w.n), 0);
    const double eta_k = w.sgd.lr * static_cast<double>(w.sgd.steps);
    for (size_t i = 1; i < ups.size(); ++i)
      EXPECT_EQ(ups[i].parts[0], ups[0].parts[0]) << "client " << i << " used its data";
    for (size_t j = 0; j < w.d; ++j) {
      // Every client moved by -eta K g: K float steps of eta g, relative error ~K u.
      const double delta = explicit_gamma ? ups[0].parts[0][j] * eta_k / o.gamma
                                          : ups[0].parts[0][j];
      EXPECT_NEAR(delta, -eta_k * g0[j], 1e-6 * std::fabs(eta_k * g0[j]) + 1e-7) << j;
      EXPECT_NEAR(st.vectors.at("g_grad")[j], g_state[j], 1e-5 * std::fabs(g_state[j])) << j;
      EXPECT_NE(st.x[j], x_before[j]);
    }
  }
}

TEST(MomentumTest, U19PreviousModelIsReconstructedFromXAndG) {
  for (bool explicit_gamma : {false, true}) {
    SCOPED_TRACE(explicit_gamma ? "explicit gamma" : "default gamma");
    World w = World::Heterogeneous(6, 5, /*rows=*/2);
    w.sgd.batch_size = 1;
    QuadraticTrainer t(w.d);
    MomentumOptions o{.beta = 0.2, .control_variates = true, .variance_reduction = true};
    if (explicit_gamma) o.gamma = 0.3;
    MomentumServer server(o);
    MomentumClient client(o);
    ServerState st;
    const std::vector<float> x0(w.d, 0.75f);
    FT_ASSERT_OK(server.Init(x0, &st));
    Payload down;
    FT_ASSERT_OK(server.DownPayload(st, &down));
    FT_ASSERT_OK_AND_ASSIGN(std::vector<float> prev, ReconstructPreviousModel(down));
    EXPECT_EQ(prev, x0);  // x^{-1} = x^0 exactly
    for (uint64_t r = 0; r < 8; ++r) {
      const std::vector<float> x_r = st.x;
      Round(server, client, &st, w, t, Sample(w.n, 2, r), r);
      FT_ASSERT_OK(server.DownPayload(st, &down));
      FT_ASSERT_OK_AND_ASSIGN(prev, ReconstructPreviousModel(down));
      // x^{r+1} = x^r - gamma g rounds once; g = -step/gamma and gamma g round once more:
      // a few ulps of |x|.
      EXPECT_LT(MaxAbsDiff(prev, x_r), 4.0 * kU * (1.0 + MaxAbs(x_r))) << "round " << r;
    }
    // A round without updates: x stays, and x^{r-1} = x^r exactly.
    FT_ASSERT_OK(server.Update({}, RoundInfo{}, &st));
    FT_ASSERT_OK(server.DownPayload(st, &down));
    FT_ASSERT_OK_AND_ASSIGN(prev, ReconstructPreviousModel(down));
    EXPECT_EQ(prev, st.x);
  }
}

TEST(MomentumTest, U20FedAvgMVrOneClientIsGradientDescent) {
  // One client, K = 1, full batch (3 rows, batch 3), g^0 = grad f(x^0), x^{-1} = x^0.
  World w = World::Heterogeneous(1, 4, /*rows=*/3);
  w.sgd.steps = 1;
  QuadraticTrainer t(w.d);
  const double gamma = 0.3;
  const std::vector<float> x0 = {3.0f, -2.0f, 0.5f, 1.0f};
  for (double beta : {0.1, 0.5, 1.0}) {
    SCOPED_TRACE(::testing::Message() << "beta " << beta);
    MomentumOptions o{.beta = beta, .gamma = gamma, .variance_reduction = true};
    MomentumServer server(o);
    MomentumClient client(o);
    ServerState st;
    FT_ASSERT_OK(server.Init(x0, &st));
    st.vectors["g_grad"] = w.Grad(t, 0, x0);  // the warm start the spec's check assumes
    std::vector<double> gd(x0.begin(), x0.end());
    for (uint64_t r = 0; r < 20; ++r) {
      Round(server, client, &st, w, t, {0}, r);
      std::vector<float> gf(w.d);
      FT_ASSERT_OK(t.Gradient(ToFloat(gd), Batch{&w.data, w.idx[0]}, absl::MakeSpan(gf)).status());
      for (size_t j = 0; j < w.d; ++j) gd[j] -= gamma * gf[j];
      // Per round a few u|x| of rounding (s_i, x's update, and g^r - grad F(x^{r-1}) at the
      // reconstructed x^{r-1}, which cancels only up to rounding); GD contracts by
      // 1 - gamma a >= 0.85, so the errors add up over ~1/(gamma a_min) ~ 7 rounds:
      // ~1e-6 |x| (measured 3.8e-6 absolute with beta = 0.1, |x| ~ 3).
      EXPECT_LT(MaxAbsDiff(st.x, gd), 5e-6 * (1.0 + MaxAbs(st.x))) << "round " << r;
    }
  }
}

TEST(MomentumTest, U21ScaffoldMFixedPointAndVrBetaOneIsScaffold) {
  World w = World::Heterogeneous(10, 8);
  QuadraticTrainer t(w.d);
  const std::vector<double> xs = QuadraticOptimum(w.data);
  const std::vector<float> xsf = ToFloat(xs);
  for (bool vr : {false, true}) {
    for (double beta : {0.1, 0.5}) {
      for (int64_t k : {1, 5}) {
        SCOPED_TRACE(::testing::Message() << (vr ? "scaffold_m_vr" : "scaffold_m") << " beta "
                                          << beta << " K " << k);
        w.sgd.steps = k;
        MomentumOptions o{.beta = beta, .control_variates = true, .variance_reduction = vr};
        MomentumServer server(o);
        MomentumClient client(o);
        ServerState st;
        FT_ASSERT_OK(server.Init(xsf, &st));  // g = 0, x^{-1} = x*
        SetFixedPoint(w, t, xsf, &st);
        for (uint64_t r = 0; r < 10; ++r) Round(server, client, &st, w, t, All(w.n), r);
        // As U15; the VR step also forms g_k - (1-beta) grad F(x^{r-1}) - beta c_i with all
        // three ~|grad f_i(x*)| <= 20, leaving ~u * 20 per step before the eta factor. 1e-5.
        EXPECT_LT(MaxAbsDiff(st.x, xsf), 1e-5);
      }
    }
  }
  // (SCAFFOLD-M-VR with beta = 1 vs SCAFFOLD option II: U16BetaOneEqualsFedAvgAndScaffold.)
}

TEST(MomentumTest, UnequalStepsUseDeltaOverKi) {
  MomentumServer server({.beta = 0.5, .server_lr = 2.0});
  ServerState st;
  FT_ASSERT_OK(server.Init(std::vector<float>{0.0f, 0.0f}, &st));
  std::vector<float> d1 = {1.0f, -2.0f}, d2 = {4.0f, 4.0f};
  ClientUpdate a, b;
  a.id = 0, a.num_samples = 1, a.steps = 1, a.parts = {d1};
  b.id = 1, b.num_samples = 1, b.steps = 4, b.parts = {d2};
  RoundInfo info;
  info.num_clients = 2;
  info.lr = 0.5;  // the rate that produced the deltas
  FT_ASSERT_OK(server.Update({a, b}, info, &st));
  // mean(Delta_i/K_i) = ((1,-2) + (1,1))/2 = (1, -0.5); g = -(1, -0.5)/eta = (-2, 1);
  // Kbar = 2.5; x = x + eta_g Kbar mean = (5, -2.5); prev_scale = eta_g Kbar eta = 2.5.
  // All exact in binary.
  EXPECT_EQ(st.vectors.at("g_grad"), (std::vector<float>{-2.0f, 1.0f}));
  EXPECT_EQ(st.x, (std::vector<float>{5.0f, -2.5f}));
  EXPECT_EQ(st.vectors.at("prev_scale"), std::vector<float>{2.5f});
  // Equal K: FedAvg's step; g = -mean(Delta)/(eta K).
  b.steps = 1;
  FT_ASSERT_OK(server.Init(std::vector<float>{0.0f, 0.0f}, &st));
  FT_ASSERT_OK(server.Update({a, b}, info, &st));
  EXPECT_EQ(st.x, (std::vector<float>{5.0f, 2.0f}));
  EXPECT_EQ(st.vectors.at("g_grad"), (std::vector<float>{-5.0f, -2.0f}));
  // The default mode needs the round's rate; without it the update is refused, state intact.
  {
    const ServerState before = st;
    RoundInfo no_lr;
    no_lr.num_clients = 2;
    EXPECT_THAT(server.Update({a, b}, no_lr, &st),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RoundInfo.lr")));
    EXPECT_EQ(st.x, before.x);
    EXPECT_EQ(st.vectors, before.vectors);
  }
  // K_i = 0 is refused before anything changes.
  b.steps = 0;
  const ServerState before = st;
  EXPECT_THAT(server.CheckUpdate(b), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("K_i")));
  EXPECT_THAT(server.Update({a, b}, info, &st), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("K_i")));
  EXPECT_EQ(st.x, before.x);
  EXPECT_EQ(st.vectors, before.vectors);
}

TEST(MomentumTest, EmptyRoundKeepsStateAndClientChecksPayload) {
  MomentumServer server({.control_variates = true});
  ServerState st;
  FT_ASSERT_OK(server.Init(std::vector<float>{1.0f, 2.0f}, &st));
  st.vectors["g_grad"] = {0.5f, 0.5f};
  st.vectors["prev_scale"] = {3.0f};
  FT_ASSERT_OK(server.Update({}, RoundInfo{}, &st));
  EXPECT_EQ(st.x, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(st.vectors.at("g_grad"), (std::vector<float>{0.5f, 0.5f}));
  EXPECT_EQ(st.vectors.at("prev_scale"), std::vector<float>{0.0f});

  World w = World::Heterogeneous(1, 2);
  QuadraticTrainer t(w.d);
  MomentumClient client({.control_variates = true});
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kMinibatch);
  LocalContext ctx{&t, w.View(0), w.sgd, &rng, 0, 0};
  Payload down{{st.x, st.vectors["g_grad"]}, {{"prev_scale", 0.0}}};  // c missing
  Payload up;
  LocalResult res;
  EXPECT_THAT(client.LocalUpdate(down, ctx, &w.states[0], &up, &res),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(x, g, c)")));
}

// Default gamma under local learning-rate decay (local.lr_decay != 1): the four momentum
// variants against a float64 run of the §3.1-§3.4 recursions with gamma = eta^r K (eta_g = 1,
// FL-Simulator's FedCM mapping): g^{r+1} = -mean_S(Delta_i) / (eta^r K), divided by the rate
// that produced the Delta_i, and x^{r+1} = x^r - eta^r K g^{r+1} = x^r + mean_S(Delta_i).
// Full-batch quadratic clients (deterministic gradients), partial participation, 10 rounds.
TEST(MomentumTest, DefaultGammaFollowsTheSpecUnderLrDecay) {
  const size_t n = 6, m = 3;
  const int64_t k_steps = 5;
  const double eta0 = 0.05, beta = 0.3;
  for (double decay : {1.0, 0.9, 0.5}) {
    for (bool cv : {false, true}) {
      for (bool vr : {false, true}) {
        SCOPED_TRACE(::testing::Message() << (cv ? "scaffold_m" : "fedavg_m")
                                          << (vr ? "_vr" : "") << " lr_decay " << decay);
        World w = World::Heterogeneous(n, 5);
        w.sgd.steps = k_steps;
        QuadraticTrainer t(w.d);
        MomentumOptions o{.beta = beta, .control_variates = cv, .variance_reduction = vr};
        MomentumServer server(o);
        MomentumClient client(o);
        ServerState st;
        const std::vector<float> x0 = {1.0f, -2.0f, 0.5f, 3.0f, -1.5f};
        FT_ASSERT_OK(server.Init(x0, &st));
        // The float64 reference: x, g (gradient units), x^{r-1}, c and the c_i.
        const size_t d = w.d;
        std::vector<double> x(x0.begin(), x0.end()), g(d, 0.0), x_prev = x, c(d, 0.0);
        std::vector<std::vector<double>> ci(n, std::vector<double>(d, 0.0));
        auto grad = [&](ClientId i, const std::vector<double>& at, size_t j) {
          ConstVec row = w.data.row(w.idx[i][0]);
          return static_cast<double>(row[j]) * (at[j] - row[d + j]);
        };
        for (uint64_t r = 0; r < 10; ++r) {
          const double eta = eta0 * std::pow(decay, static_cast<double>(r));
          w.sgd.lr = eta;  // what the Coordinator sends: local.lr * lr_decay^r
          const std::vector<ClientId> s = Sample(n, m, r);
          Round(server, client, &st, w, t, s, r);

          std::vector<double> mean_delta(d, 0.0), dc_sum(d, 0.0);
          for (ClientId i : s) {
            std::vector<double> y = x, raw(d, 0.0);
            for (int64_t k = 0; k < k_steps; ++k) {
              std::vector<double> v(d);
              for (size_t j = 0; j < d; ++j) {
                const double gk = grad(i, y, j);
                raw[j] += gk;
                const double corr = cv ? c[j] - ci[i][j] : 0.0;
                v[j] = vr ? gk + beta * corr + (1 - beta) * (g[j] - grad(i, x_prev, j))
                          : beta * (gk + corr) + (1 - beta) * g[j];
              }
              for (size_t j = 0; j < d; ++j) y[j] -= eta * v[j];
            }
            for (size_t j = 0; j < d; ++j) {
              mean_delta[j] += (y[j] - x[j]) / static_cast<double>(m);
              const double ci_new = raw[j] / static_cast<double>(k_steps);
              dc_sum[j] += ci_new - ci[i][j];
              ci[i][j] = ci_new;
            }
          }
          x_prev = x;
          const double gamma = eta * static_cast<double>(k_steps);
          for (size_t j = 0; j < d; ++j) {
            g[j] = -mean_delta[j] / gamma;
            x[j] -= gamma * g[j];
            if (cv) c[j] += dc_sum[j] / static_cast<double>(n);
          }
          // float32 against float64: each of the K local steps and the server step round once
          // (relative u ~ 6e-8 of |x| <= ~4), and the VR step's g^r - grad F(x^{r-1}) cancels
          // only up to rounding; over 10 rounds that is ~1e-6 absolute on x (measured at most
          // 1.1e-6 over the 12 cases), so 1e-5 leaves room. The spec deviation this test exists for (g
          // divided by the client's own eta^{r+1} instead of eta^r) is 1e-2 to 1 here.
          EXPECT_LT(MaxAbsDiff(st.x, x), 1e-5) << "round " << r;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// V0-style drift check (§8): heterogeneous quadratics, full-batch, full participation.

TEST(ScaffoldV0Test, ScaffoldFamilyConvergesWhileFedAvgStalls) {
  // N = 10, d = 20, a in [0.5, 2], b ~ N(0, 9), K = 10, eta_l = 0.05.
  World base = World::Heterogeneous(10, 20, 1, /*seed=*/17);
  base.sgd.steps = 10;
  base.sgd.lr = 0.05;
  QuadraticTrainer t(base.d);
  const std::vector<double> xs = QuadraticOptimum(base.data);
  const std::vector<float> x0(base.d, 0.0f);
  auto run = [&](ServerAlgorithm& s, const ClientAlgorithm& c, int rounds) {
    World w = base;
    ServerState st;
    EXPECT_THAT(s.Init(x0, &st), ::fedtrain::testing::IsOk());
    for (int r = 0; r < rounds; ++r) Round(s, c, &st, w, t, All(w.n), r);
    return Dist(st.x, xs);
  };
  const int kRounds = 300;
  FedAvgServer fs({.weighting = "uniform"});
  FedAvgClient fc;
  const double fedavg = run(fs, fc, kRounds);
  // The spec's plateau is ~0.2 in double (> 1e-3 required); float changes nothing at that size.
  EXPECT_GT(fedavg, 1e-2);
  struct Case {
    const char* name;
    std::unique_ptr<ServerAlgorithm> s;
    std::unique_ptr<ClientAlgorithm> c;
  };
  std::vector<Case> cases;
  cases.push_back({"scaffold II", std::make_unique<ScaffoldServer>(ScaffoldOptions{}),
                   std::make_unique<ScaffoldClient>(ScaffoldOptions{})});
  ScaffoldOptions one{.option = ScaffoldOptions::Variate::kOptionI};
  cases.push_back({"scaffold I", std::make_unique<ScaffoldServer>(one),
                   std::make_unique<ScaffoldClient>(one)});
  MomentumOptions m{.beta = 0.1, .control_variates = true};
  cases.push_back({"scaffold_m", std::make_unique<MomentumServer>(m), std::make_unique<MomentumClient>(m)});
  m.variance_reduction = true;
  cases.push_back({"scaffold_m_vr", std::make_unique<MomentumServer>(m),
                   std::make_unique<MomentumClient>(m)});
  for (Case& c : cases) {
    // In double these reach 1e-8 (§8). In float the iterates stop where every local step
    // eta * v rounds away against y (|eta v| < ulp(y)/2 ~ 1.2e-7 for |y| ~ 3), i.e. where
    // |grad f| ~ 2.4e-6 per coordinate; SCAFFOLD-M puts only beta = 0.1 of the fresh gradient
    // into v, so its floor is 1/beta higher. Measured (300 rounds, unchanged at 1000):
    // SCAFFOLD I/II 2.7e-6, SCAFFOLD-M 2.8e-5, SCAFFOLD-M-VR 2.9e-5; FedAvg 0.33.
    // 1e-4 is the stated float target, 3000x below FedAvg's plateau.
    const double dist = run(*c.s, *c.c, kRounds);
    EXPECT_LT(dist, 1e-4) << c.name << " (FedAvg: " << fedavg << ")";
  }
  // FedAvg-M with beta = 0.1 stalls too (heterogeneity bias; the plateau shrinks with beta).
  MomentumOptions fm{.beta = 0.1};
  MomentumServer ms(fm);
  MomentumClient mc(fm);
  EXPECT_GT(run(ms, mc, kRounds), 1e-3);
}

// ---------------------------------------------------------------------------------------------
// Factories

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

TEST(ScaffoldFamilyFactoryTest, RegisteredWithPartsAndDefaults) {
  AlgorithmRegistry r;
  RegisterBuiltinAlgorithms(&r);
  EXPECT_THAT(r.Names(), ::testing::IsSupersetOf({"scaffold", "fedavg_m", "scaffold_m",
                                                  "fedavg_m_vr", "scaffold_m_vr"}));
  for (const auto& [name, parts] : std::vector<std::pair<std::string, size_t>>{
           {"scaffold", 2}, {"fedavg_m", 1}, {"scaffold_m", 2}, {"fedavg_m_vr", 1},
           {"scaffold_m_vr", 2}}) {
    FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* f, r.Find(name));
    EXPECT_EQ(f->name(), name);
    Cfg c;
    FT_EXPECT_OK(f->Validate(c));
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServerAlgorithm> s, f->MakeServer(c));
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClientAlgorithm> cl, f->MakeClient(c));
    EXPECT_EQ(s->num_up_parts(), parts) << name;
    EXPECT_NE(cl, nullptr);
  }
}

TEST(ScaffoldFamilyFactoryTest, WeightingIsUniformUnlessSet) {
  AlgorithmRegistry r;
  RegisterBuiltinAlgorithms(&r);
  FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* f, r.Find("scaffold"));
  std::vector<float> d1 = {1.0f}, d2 = {4.0f}, dc = {0.0f};
  ClientUpdate a, b;
  a.id = 0, a.num_samples = 1, a.steps = 1, a.parts = {d1, dc};
  b.id = 1, b.num_samples = 3, b.steps = 1, b.parts = {d2, dc};
  RoundInfo info;
  info.num_clients = 2;
  for (const char* rule : {"", "uniform", "samples"}) {
    Cfg c;
    if (*rule) c.set_weighting(rule);
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServerAlgorithm> s, f->MakeServer(c));
    ServerState st;
    FT_ASSERT_OK(s->Init(std::vector<float>{0.0f}, &st));
    FT_ASSERT_OK(s->Update({a, b}, info, &st));
    EXPECT_EQ(st.x[0], std::string(rule) == "samples" ? 3.25f : 2.5f) << "'" << rule << "'";
  }
}

TEST(ScaffoldFamilyFactoryTest, BadInputNamesTheField) {
  AlgorithmRegistry r;
  RegisterBuiltinAlgorithms(&r);
  auto validate = [&](const std::string& name, const Cfg& c) {
    absl::StatusOr<const AlgorithmFactory*> f = r.Find(name);
    EXPECT_TRUE(f.ok());
    return (*f)->Validate(c);
  };
  const auto kBad = absl::StatusCode::kInvalidArgument;
  Cfg c;
  (*c.mutable_params()->mutable_fields())["beta"] = Num(0);
  EXPECT_THAT(validate("scaffold_m", c),
              StatusIs(kBad, HasSubstr("algorithm.params.beta of scaffold_m must be in (0, 1]; got 0")));
  (*c.mutable_params()->mutable_fields())["beta"] = Num(1.5);
  EXPECT_THAT(validate("fedavg_m_vr", c), StatusIs(kBad, HasSubstr("algorithm.params.beta of fedavg_m_vr")));
  (*c.mutable_params()->mutable_fields())["beta"] = Num(1);
  FT_EXPECT_OK(validate("fedavg_m", c));
  (*c.mutable_params()->mutable_fields())["gamma"] = Num(-1);
  EXPECT_THAT(validate("scaffold_m_vr", c), StatusIs(kBad, HasSubstr("algorithm.params.gamma")));
  (*c.mutable_params()->mutable_fields())["gamma"] = Num(0.5);
  FT_EXPECT_OK(validate("scaffold_m_vr", c));
  c.set_server_lr(2.0);
  EXPECT_THAT(validate("scaffold_m", c), StatusIs(kBad, HasSubstr("algorithm.server_lr of scaffold_m")));
  c.clear_server_lr();
  (*c.mutable_params()->mutable_fields())["g0"] = Str("warmup");
  EXPECT_THAT(validate("fedavg_m", c),
              StatusIs(kBad, HasSubstr("algorithm.params.g0 is not a parameter of fedavg_m")));
  EXPECT_THAT(r.Find("fedavg_m").value()->MakeServer(c), StatusIs(kBad, HasSubstr("g0")));
  EXPECT_THAT(r.Find("fedavg_m").value()->MakeClient(c), StatusIs(kBad, HasSubstr("g0")));

  Cfg s;
  (*s.mutable_params()->mutable_fields())["option"] = Str("III");
  EXPECT_THAT(validate("scaffold", s), StatusIs(kBad, HasSubstr("algorithm.params.option of scaffold")));
  (*s.mutable_params()->mutable_fields())["option"] = Str("I");
  FT_EXPECT_OK(validate("scaffold", s));
  (*s.mutable_params()->mutable_fields())["beta"] = Num(0.5);  // not a SCAFFOLD parameter
  EXPECT_THAT(validate("scaffold", s), StatusIs(kBad, HasSubstr("algorithm.params.beta")));
  for (const char* name : {"scaffold", "fedavg_m", "scaffold_m_vr"}) {
    Cfg b;
    b.set_server_lr(0);
    EXPECT_THAT(validate(name, b), StatusIs(kBad, HasSubstr("algorithm.server_lr"))) << name;
    b.clear_server_lr();
    b.set_weighting("median");
    EXPECT_THAT(validate(name, b), StatusIs(kBad, HasSubstr("algorithm.weighting"))) << name;
    b.clear_weighting();
    b.mutable_reducer()->set_name("krum_typo");
    EXPECT_THAT(validate(name, b), StatusIs(kBad, HasSubstr("algorithm.reducer"))) << name;
    EXPECT_THAT(r.Find(name).value()->MakeServer(b), StatusIs(kBad, HasSubstr("algorithm.reducer")));
  }
}

}  // namespace
}  // namespace fedtrain
