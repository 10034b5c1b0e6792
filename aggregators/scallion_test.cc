// SCALLION / SCAFCOM (docs/federated.md §5) against §9 U28-U29, and the CommitSent hook that
// keeps SCAFFOLD's c = (1/N) sum c_i under a lossy uplink. Quadratic clients, pure SGD, the
// halves driven the way the Worker and Coordinator drive them: LocalUpdate -> the real
// UplinkCodec (compressor, codec, decoded payload) -> CommitSent; the server decodes the
// wire message with DecodePayload (the Coordinator's decode) -> Update, in client-id order.
//
// Tolerances (float32 storage, unit roundoff u = 2^-24 ~ 6e-8):
//  * U28 compares two algorithms that compute the same quantities by different float
//    formulas (SCAFFOLD: c_i^+ = c_i - c + (x - y)/(K eta), x += mean Delta; SCALLION: lr-unit
//    C = eta c, D = (x - y)/K - C, x -= K (C + mean D)). Each round adds a few roundings of
//    size u * max|value| to every vector, and the local steps propagate them without growth
//    (contracting quadratic, eta * a <= 0.1). After R rounds: |diff| <= 1e-5 * max(1, |ref|)
//    (~170 u, R = 6 rounds of about 10 roundings each, a safety factor ~3).
//  * The invariants compare a float sum over clients with a float tracker that each received
//    the same decoded vectors: per round one rounding on each side per coordinate, so after R
//    rounds |C - mean C_i| <= R * 4 u * max|C_i| (asserted with 8 R u, margin 2).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "aggregators/momentum.h"
#include "aggregators/registry.h"
#include "aggregators/scaffold.h"
#include "aggregators/scallion.h"
#include "compression/uplink_codec.h"
#include "compression/payload_codec.h"
#include "compression/compressor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/quadratic.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::QuadraticClients;
using ::fedtrain::testing::QuadraticTrainer;
using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

constexpr double kU = 1.0 / (1 << 24);

struct World {
  Dataset data;
  size_t n = 0, d = 0;
  std::vector<std::vector<uint32_t>> idx;
  std::vector<ClientState> states;
  LocalSgdOptions sgd;
  uint64_t seed = 5;
  World(size_t clients, size_t dim, size_t rows = 2)
      : data(QuadraticClients(17, clients * rows, dim)), n(clients), d(dim) {
    idx.resize(n);
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < rows; ++k) idx[i].push_back(static_cast<uint32_t>(i * rows + k));
    states.resize(n);
    sgd.lr = 0.05;
    sgd.epochs = 0;
    sgd.steps = 4;
    sgd.batch_size = 1;  // stochastic: one of the client's rows per step
  }
};

// The Worker's and Coordinator's path for one round. `uplink` null: no pipeline (sent = up,
// no CommitSent call when `commit` is false). Returns the (exact up, sent) pairs.
struct Sent {
  Payload up, sent;
};
std::vector<Sent> Round(ServerAlgorithm& server, const ClientAlgorithm& client, ServerState* st,
                        World& w, const std::vector<ClientId>& sampled, uint64_t round,
                        const UplinkCodec* uplink, bool commit = true) {
  QuadraticTrainer trainer(w.d);
  Payload down;
  EXPECT_THAT(server.DownPayload(*st, &down), IsOk());
  std::vector<Sent> out(sampled.size());
  std::vector<Payload> decoded(sampled.size());
  std::vector<ClientUpdate> updates;
  for (size_t i = 0; i < sampled.size(); ++i) {
    const ClientId id = sampled[i];
    RngStream rng = RngStream::For(w.seed, round, id, Purpose::kMinibatch);
    LocalContext ctx;
    ctx.trainer = &trainer;
    ctx.data = DataView::Of(w.data, w.idx[id]);
    ctx.sgd = w.sgd;
    ctx.rng = &rng;
    ctx.round = round;
    ctx.client = id;
    LocalResult res;
    ClientState state = w.states[id];
    EXPECT_THAT(client.LocalUpdate(down, ctx, &state, &out[i].up, &res), IsOk());
    if (uplink != nullptr) {
      RngStream crng = RngStream::For(w.seed, round, id, Purpose::kCompression);
      v1::Payload wire;
      EXPECT_THAT(uplink->Encode(out[i].up, crng, &state, &wire, &out[i].sent), IsOk());
      // The server's decode; CommitSent's `sent` must be exactly it.
      EXPECT_THAT(DecodePayload(wire, uplink->compressor(), out[i].up.parts.size(), w.d,
                                &decoded[i]),
                  IsOk());
      for (size_t p = 0; p < decoded[i].parts.size(); ++p)
        EXPECT_EQ(0, std::memcmp(decoded[i].parts[p].data(), out[i].sent.parts[p].data(),
                                 w.d * sizeof(float)));
    } else {
      out[i].sent = out[i].up;
      decoded[i] = out[i].up;
    }
    if (commit) {
      EXPECT_THAT(client.CommitSent(out[i].up, out[i].sent, &state), IsOk());
    }
    w.states[id] = std::move(state);
    ClientUpdate u;
    u.id = id;
    u.num_samples = w.idx[id].size();
    u.steps = res.steps;
    for (const std::vector<float>& p : decoded[i].parts) u.parts.push_back(p);
    updates.push_back(std::move(u));
  }
  RoundInfo info;
  info.round = round;
  info.sampled = sampled;
  info.num_clients = w.n;
  info.lr = w.sgd.lr;  // as the Coordinator does
  EXPECT_THAT(server.Update(updates, info, st), IsOk());
  st->round = round + 1;
  return out;
}

std::vector<ClientId> Sample(size_t n, size_t m, uint64_t r) {
  std::vector<uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  RngStream rng = RngStream::For(99, r, 0, Purpose::kTest);
  rng.Shuffle(absl::MakeSpan(perm));
  std::vector<ClientId> s(perm.begin(), perm.begin() + static_cast<long>(m));
  std::sort(s.begin(), s.end());
  return s;
}

std::vector<float> StateOr0(const World& w, ClientId id, const char* key) {
  auto it = w.states[id].vectors.find(key);
  return it == w.states[id].vectors.end() ? std::vector<float>(w.d, 0.0f) : it->second;
}

// max_j |c_j - (1/N) sum_i c_i[j]| and max |c_i| over the clients.
std::pair<double, double> InvariantGap(const World& w, const std::vector<float>& c) {
  double gap = 0.0, scale = 0.0;
  for (size_t j = 0; j < w.d; ++j) {
    double sum = 0.0;
    for (size_t i = 0; i < w.n; ++i) {
      const double v = StateOr0(w, static_cast<ClientId>(i), "c")[j];
      sum += v;
      scale = std::max(scale, std::abs(v));
    }
    gap = std::max(gap, std::abs(c[j] - sum / static_cast<double>(w.n)));
  }
  return {gap, scale};
}

std::unique_ptr<Compressor> MakeC(const std::string& name, double k_fraction, size_t d) {
  CompressorOptions o;
  o.compressor = name;
  o.k_fraction = k_fraction;
  absl::StatusOr<std::unique_ptr<Compressor>> c = MakeCompressor(o, d);
  EXPECT_THAT(c.status(), IsOk());
  return std::move(c).value();
}

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want, double rtol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t j = 0; j < got.size(); ++j)
    EXPECT_NEAR(got[j], want[j], rtol * std::max(1.0, std::abs(want[j]))) << what << " j=" << j;
}

// U28: SCALLION (identity, alpha 1) and SCAFCOM (identity, alpha 1, beta 1) = SCAFFOLD option
// II with gamma = eta_g eta_l K, under partial participation and eta_g != 1.
TEST(ScallionTest, U28IdentityCompressorEqualsScaffoldOptionII) {
  constexpr size_t kN = 6, kD = 7, kS = 3, kR = 6;
  for (bool momentum : {false, true}) {
    ScallionOptions so;
    so.momentum = momentum;
    so.alpha = 1.0;
    so.beta = 1.0;
    so.server_lr = 0.8;
    ScaffoldOptions fo;
    fo.server_lr = 0.8;
    World ws(kN, kD), wf(kN, kD);
    ScallionServer ss(so);
    ScallionClient sc(so);
    ScaffoldServer fs(fo);
    ScaffoldClient fc(fo);
    std::vector<float> x0(kD);
    for (size_t j = 0; j < kD; ++j) x0[j] = 0.3f * static_cast<float>(j) - 1.0f;
    ServerState sst, fst;
    ASSERT_THAT(ss.Init(x0, &sst), IsOk());
    ASSERT_THAT(fs.Init(x0, &fst), IsOk());
    IdentityCompressor id(kD);
    UplinkCodec uplink(UplinkOptions{}, &id, nullptr);
    for (uint64_t r = 0; r < kR; ++r) {
      const std::vector<ClientId> s = Sample(kN, kS, r);
      Round(ss, sc, &sst, ws, s, r, &uplink);
      Round(fs, fc, &fst, wf, s, r, &uplink);
      const double rtol = 1e-5;
      ExpectClose(sst.x, std::vector<double>(fst.x.begin(), fst.x.end()), rtol, "x");
      std::vector<double> c_lr(kD);  // SCAFFOLD's c in lr units
      for (size_t j = 0; j < kD; ++j) c_lr[j] = ws.sgd.lr * fst.vectors["c"][j];
      ExpectClose(sst.vectors["c"], c_lr, rtol, "c");
      for (size_t i = 0; i < kN; ++i) {
        const std::vector<float> cf = StateOr0(wf, static_cast<ClientId>(i), "c");
        std::vector<double> ci_lr(kD);
        for (size_t j = 0; j < kD; ++j) ci_lr[j] = ws.sgd.lr * cf[j];
        ExpectClose(StateOr0(ws, static_cast<ClientId>(i), "c"), ci_lr, rtol, "c_i");
      }
    }
    // The run moved: the comparison is not between two idle states.
    EXPECT_NE(sst.x, x0) << momentum;
  }
}

// U29: C = (1/N) sum C_i for SCALLION / SCAFCOM, several alpha, a real lossy compressor
// through the real pipeline, partial participation.
TEST(ScallionTest, U29InvariantHoldsUnderLossyCompression) {
  constexpr size_t kN = 8, kD = 20, kS = 3, kR = 10;
  struct Case {
    bool momentum;
    const char* compressor;
  };
  for (const Case& cs : {Case{false, "randk_scaled"}, Case{true, "topk"}}) {
    for (double alpha : {1.0, 0.5, 0.25}) {
      ScallionOptions o;
      o.momentum = cs.momentum;
      o.alpha = alpha;
      World w(kN, kD);
      ScallionServer server(o);
      ScallionClient client(o);
      ServerState st;
      ASSERT_THAT(server.Init(std::vector<float>(kD, 0.5f), &st), IsOk());
      std::unique_ptr<Compressor> comp = MakeC(cs.compressor, 0.25, kD);
      UplinkCodec uplink(UplinkOptions{}, comp.get(), nullptr);
      bool lossy = false;
      for (uint64_t r = 0; r < kR; ++r) {
        std::vector<Sent> sent = Round(server, client, &st, w, Sample(kN, kS, r), r, &uplink);
        for (const Sent& s : sent) lossy = lossy || s.sent.parts[0] != s.up.parts[0];
        const auto [gap, scale] = InvariantGap(w, st.vectors["c"]);
        EXPECT_LE(gap, 8.0 * (r + 1) * kU * std::max(scale, 1e-3))
            << cs.compressor << " alpha=" << alpha << " round " << r;
        EXPECT_GT(scale, 0.0);
      }
      EXPECT_TRUE(lossy) << cs.compressor;
    }
  }
}

// SCAFFOLD and SCAFFOLD-M through a lossy pipeline: with CommitSent the invariant holds; the
// old rule (c_i <- c_i^+, i.e. no commit) drifts.
TEST(ScallionTest, ScaffoldInvariantHoldsUnderLossyUplinkWithCommitSent) {
  constexpr size_t kN = 6, kD = 16, kS = 3, kR = 8;
  for (bool scaffold_m : {false, true}) {
    for (bool commit : {true, false}) {
      World w(kN, kD);
      std::unique_ptr<ServerAlgorithm> server;
      std::unique_ptr<ClientAlgorithm> client;
      if (scaffold_m) {
        MomentumOptions o;
        o.control_variates = true;
        o.beta = 0.5;
        server = std::make_unique<MomentumServer>(o);
        client = std::make_unique<MomentumClient>(o);
      } else {
        server = std::make_unique<ScaffoldServer>(ScaffoldOptions{});
        client = std::make_unique<ScaffoldClient>(ScaffoldOptions{});
      }
      ServerState st;
      ASSERT_THAT(server->Init(std::vector<float>(kD, 0.5f), &st), IsOk());
      std::unique_ptr<Compressor> comp = MakeC("topk", 0.25, kD);
      UplinkCodec uplink(UplinkOptions{}, comp.get(), nullptr);
      double worst = 0.0, scale_max = 0.0;
      for (uint64_t r = 0; r < kR; ++r) {
        Round(*server, *client, &st, w, Sample(kN, kS, r), r, &uplink, commit);
        const auto [gap, scale] = InvariantGap(w, st.vectors["c"]);
        worst = std::max(worst, gap / std::max(scale, 1e-3));
        scale_max = std::max(scale_max, scale);
      }
      if (commit) {
        EXPECT_LE(worst, 8.0 * kR * kU) << scaffold_m;
      } else {
        EXPECT_GT(worst, 1e-3) << scaffold_m;  // the drift CommitSent removes
      }
      EXPECT_GT(scale_max, 0.0);
    }
  }
}

// The identity codec changes nothing: CommitSent keeps SCAFFOLD's c_i^+ bit for bit.
TEST(ScallionTest, ScaffoldCommitIsBitIdenticalWithIdentityCodec) {
  constexpr size_t kN = 4, kD = 9;
  World a(kN, kD), b(kN, kD);
  ScaffoldServer sa(ScaffoldOptions{}), sb(ScaffoldOptions{});
  ScaffoldClient client(ScaffoldOptions{});
  ServerState ta, tb;
  ASSERT_THAT(sa.Init(std::vector<float>(kD, 0.25f), &ta), IsOk());
  ASSERT_THAT(sb.Init(std::vector<float>(kD, 0.25f), &tb), IsOk());
  IdentityCompressor id(kD);
  UplinkCodec uplink(UplinkOptions{}, &id, nullptr);
  for (uint64_t r = 0; r < 5; ++r) {
    const std::vector<ClientId> s = Sample(kN, 2, r);
    Round(sa, client, &ta, a, s, r, &uplink, /*commit=*/true);
    Round(sb, client, &tb, b, s, r, nullptr, /*commit=*/false);
  }
  EXPECT_EQ(ta.x, tb.x);
  EXPECT_EQ(ta.vectors["c"], tb.vectors["c"]);
  for (size_t i = 0; i < kN; ++i)
    EXPECT_EQ(a.states[i].vectors["c"], b.states[i].vectors["c"]) << i;
}

// SCALLION with alpha = k/d and rescaled rand-k: C_i takes D_i exactly on the sent coordinates
// (alpha * (d/k) D_ij = D_ij up to one rounding) and stays put elsewhere.
TEST(ScallionTest, AlphaKOverDTakesTheExactDeltaOnSentCoordinates) {
  constexpr size_t kD = 20;
  World w(1, kD);
  ScallionOptions o;
  o.alpha = 0.25;  // k/d with k_fraction 0.25
  ScallionServer server(o);
  ScallionClient client(o);
  ServerState st;
  ASSERT_THAT(server.Init(std::vector<float>(kD, 0.5f), &st), IsOk());
  std::unique_ptr<Compressor> comp = MakeC("randk_scaled", 0.25, kD);
  UplinkCodec uplink(UplinkOptions{}, comp.get(), nullptr);
  std::vector<Sent> s = Round(server, client, &st, w, {0}, 0, &uplink);
  const std::vector<float> ci = StateOr0(w, 0, "c");
  size_t sent = 0;
  for (size_t j = 0; j < kD; ++j) {
    if (s[0].sent.parts[0][j] == 0.0f) {
      EXPECT_EQ(ci[j], 0.0f) << j;
    } else {
      ++sent;
      EXPECT_NEAR(ci[j], s[0].up.parts[0][j], 4 * kU * std::abs(s[0].up.parts[0][j])) << j;
    }
  }
  EXPECT_EQ(sent, 5u);
}

TEST(ScallionTest, FactoriesValidateParams) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  for (const char* name : {"scallion", "scafcom"}) {
    FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* f, reg.Find(name));
    Cfg c;
    c.set_name(name);
    EXPECT_THAT(f->Validate(c), IsOk()) << name;
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServerAlgorithm> s, f->MakeServer(c));
    EXPECT_EQ(s->num_up_parts(), 1u);
    Cfg bad = c;
    (*bad.mutable_params()->mutable_fields())["alpha"].set_number_value(0.0);
    EXPECT_THAT(f->Validate(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("algorithm.params.alpha")));
    Cfg bad_lr = c;
    bad_lr.set_server_lr(0.0);
    EXPECT_THAT(f->Validate(bad_lr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("")));
    Cfg bad_red = c;
    bad_red.mutable_reducer()->set_name("median");
    EXPECT_THAT(f->Validate(bad_red), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("algorithm.reducer")));
  }
  Cfg beta;
  (*beta.mutable_params()->mutable_fields())["beta"].set_number_value(1.5);
  FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* scafcom, reg.Find("scafcom"));
  EXPECT_THAT(scafcom->Validate(beta), StatusIs(absl::StatusCode::kInvalidArgument,
                                                HasSubstr("algorithm.params.beta")));
  // SCALLION has no beta: refused as an unknown key.
  FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* scallion, reg.Find("scallion"));
  (*beta.mutable_params()->mutable_fields())["beta"].set_number_value(0.5);
  EXPECT_THAT(scallion->Validate(beta), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("beta")));
}

TEST(ScallionTest, ServerRefusesZeroStepsAndWrongParts) {
  ScallionServer server(ScallionOptions{});
  ClientUpdate u;
  u.steps = 0;
  EXPECT_THAT(server.CheckUpdate(u), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("")));
  ServerState st;
  ASSERT_THAT(server.Init(std::vector<float>(3, 0.0f), &st), IsOk());
  std::vector<float> wrong(2, 1.0f);
  u.steps = 1;
  u.num_samples = 1;
  u.parts = {wrong};
  RoundInfo info;
  info.num_clients = 1;
  const std::vector<float> x = st.x;
  EXPECT_THAT(server.Update({u}, info, &st), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("")));
  EXPECT_EQ(st.x, x);
}

}  // namespace
}  // namespace fedtrain
