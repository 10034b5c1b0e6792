// Deterministic properties of the Byzantine-robust reducers (docs/robust.md), one block per
// property: identical inputs, order invariance, translation and scale equivariance,
// breakdown with identical honest inputs, hand examples, requirements, the non-finite
// policy, centered clipping's state, diagnostics, config errors. Flag has its own test file.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/median_reducer.h"
#include "aggregators/reducer.h"
#include "aggregators/registry.h"
#include "aggregators/robust_kernels.h"
#include "core/rng.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;
using Vecs = std::vector<std::vector<float>>;

ReducerCfg Cfg(const std::string& name, int64_t f,
               const std::map<std::string, double>& params = {}) {
  ReducerCfg c;
  c.set_name(name);
  c.set_f(f);
  for (const auto& [k, v] : params) (*c.mutable_params()->mutable_fields())[k].set_number_value(v);
  return c;
}

std::unique_ptr<Reducer> Make(const ReducerCfg& c) {
  absl::StatusOr<std::unique_ptr<Reducer>> r = MakeReducer(c, nullptr);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? std::move(*r) : nullptr;
}

absl::Status RunRule(const Reducer& r, const Vecs& x, std::vector<float>* out,
                 const ReduceContext& ctx = {}) {
  std::vector<ConstVec> in(x.begin(), x.end());
  std::vector<double> w(x.size(), 1.0 / static_cast<double>(x.size()));
  out->assign(x[0].size(), -12345.0f);
  return r.Reduce(in, w, absl::MakeSpan(*out), ctx);
}

std::vector<float> Reduce(const ReducerCfg& c, const Vecs& x) {
  std::vector<float> out;
  std::unique_ptr<Reducer> r = Make(c);
  absl::Status s = RunRule(*r, x, &out);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s;
  return out;
}

Vecs Random(size_t p, size_t n, uint64_t seed, double scale = 1.0) {
  RngStream rng = RngStream::For(seed, 0, 0, Purpose::kTest);
  Vecs x(p, std::vector<float>(n));
  for (auto& v : x)
    for (float& e : v) e = static_cast<float>(scale * rng.Normal());
  return x;
}

// The rules with the "returns g on identical inputs" and equivariance properties (spec §6 1-4).
const std::vector<ReducerCfg>& EquivariantRules() {
  static const auto* rules = new std::vector<ReducerCfg>{
      Cfg("mean", 0),         Cfg("median", 1),     Cfg("trimmed_mean", 1), Cfg("meamed", 1),
      Cfg("phocas", 1),       Cfg("krum", 1),       Cfg("multi_krum", 1),   Cfg("bulyan", 1),
      Cfg("geometric_median", 1), Cfg("nna", 1)};
  return *rules;
}

TEST(SortingNetworkTest, SortsEverySizeUpTo33) {
  for (size_t p = 1; p <= 33; ++p) {
    Vecs x = Random(p, 700, p);  // 700: a full and a partial block of kSortBlock
    std::vector<ConstVec> in(x.begin(), x.end());
    ForEachSortedBlock(in, [&](size_t k0, size_t len, const float* v, size_t stride) {
      for (size_t t = 0; t < len; ++t) {
        std::vector<float> col;
        for (size_t i = 0; i < p; ++i) col.push_back(x[i][k0 + t]);
        std::sort(col.begin(), col.end());
        for (size_t r = 0; r < p; ++r) ASSERT_EQ(v[r * stride + t], col[r]) << p;
      }
    });
  }
}

TEST(RobustReducersTest, IdenticalInputsGiveTheInput) {
  const std::vector<float> g = {0.5f, -1.25f, 3.0f, 1e-3f, -7.0f};
  const Vecs x(7, g);  // p = 7 = 4f+3 for f = 1 (Bulyan's bound)
  for (const ReducerCfg& c : EquivariantRules()) EXPECT_EQ(Reduce(c, x), g) << c.name();
  // Centered clipping from v_0 = g (the stored centre) returns g.
  std::map<std::string, std::vector<float>> state{{"reducer.cc_v", g}};
  ReduceContext ctx;
  ctx.state = &state;
  std::vector<float> out;
  FT_ASSERT_OK(RunRule(*Make(Cfg("centered_clipping", 1, {{"tau", 0.1}})), x, &out, ctx));
  EXPECT_EQ(out, g);
}

TEST(RobustReducersTest, WorkerOrderInvariance) {
  const Vecs x = Random(11, 37, 7);  // continuous random values: tie-free
  Vecs y = x;
  std::reverse(y.begin(), y.end());
  std::rotate(y.begin(), y.begin() + 4, y.end());
  std::vector<ReducerCfg> rules = EquivariantRules();
  rules.push_back(Cfg("centered_clipping", 2, {{"tau", 0.5}, {"iterations", 3}}));
  // Bulyan's selection scores members by the sum of their |R| - f - 2 nearest squared
  // distances; its last pick has |R| = 2f+1, i.e. f - 1 neighbours counted. For f = 1 every
  // score there is 0, and for f = 2 the two members of a mutually-nearest pair have the same
  // score: ties by construction, broken by index. Only f >= 3 (p >= 15) is tie-free.
  rules.erase(std::remove_if(rules.begin(), rules.end(),
                             [](const ReducerCfg& c) { return c.name() == "bulyan"; }),
              rules.end());
  {
    const Vecs u = Random(15, 37, 8);
    Vecs v = u;
    std::reverse(v.begin(), v.end());
    EXPECT_EQ(Reduce(Cfg("bulyan", 3), u), Reduce(Cfg("bulyan", 3), v));  // sorting: exact
  }
  for (const ReducerCfg& c : rules) {
    const std::vector<float> a = Reduce(c, x), b = Reduce(c, y);
    for (size_t k = 0; k < a.size(); ++k)
      // Coordinate-wise rules sort, so they are exact; rules that average a chosen subset sum
      // in float64 in input order, which may move the float result by one rounding.
      EXPECT_NEAR(a[k], b[k], 1e-6 * (1 + std::fabs(a[k]))) << c.name() << " k=" << k;
  }
}

TEST(RobustReducersTest, TranslationAndScaleEquivariance) {
  const Vecs x = Random(9, 23, 11);
  Vecs shifted = x, scaled = x;
  const float shift = 0.75f;
  for (auto& v : shifted)
    for (float& e : v) e += shift;
  for (auto& v : scaled)
    for (float& e : v) e *= 4.0f;  // a power of two: scaling is exact in float
  for (const ReducerCfg& base : EquivariantRules()) {
    ReducerCfg c = base;
    if (c.name() == "geometric_median") {  // equivariance holds as nu -> 0
      (*c.mutable_params()->mutable_fields())["nu"].set_number_value(1e-12);
    }
    const std::vector<float> a = Reduce(c, x), t = Reduce(c, shifted), s = Reduce(c, scaled);
    for (size_t k = 0; k < a.size(); ++k) {
      // x + c is rounded to float per input (relative 6e-8 of |x|+|c|), and the rules
      // average a few such values: 1e-5 absolute covers it at |x| ~ 3.
      EXPECT_NEAR(t[k], a[k] + shift, 1e-5) << c.name();
      // Scaling by 4 is exact; what remains is float64 rounding of sums and, for GM, of
      // the iteration: 1e-5 relative.
      EXPECT_NEAR(s[k], 4.0f * a[k], 1e-5 * (1 + std::fabs(4.0f * a[k]))) << c.name();
    }
  }
}

TEST(RobustReducersTest, BreakdownWithIdenticalHonestInputs) {
  const size_t p = 15, n = 6;
  const int64_t f = 3;
  const std::vector<float> g = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 0.0f};
  Vecs x(p, g);
  const Vecs bad = Random(f, n, 3, 1e6);
  for (int64_t i = 0; i < f; ++i) x[static_cast<size_t>(i) * 5] = bad[static_cast<size_t>(i)];
  for (const char* rule : {"median", "trimmed_mean", "krum", "multi_krum", "bulyan"})
    EXPECT_EQ(Reduce(Cfg(rule, f), x), g) << rule;
  // GM is only approximately robust: 50 iterations with nu = 1e-9 land within 1e-6 (the
  // repeated point is the exact minimiser; Weiszfeld converges linearly, ratio ~ f/(p-f)).
  const std::vector<float> gm =
      Reduce(Cfg("geometric_median", f, {{"nu", 1e-9}, {"iterations", 50}, {"tol", 0}}), x);
  for (size_t k = 0; k < n; ++k) EXPECT_NEAR(gm[k], g[k], 1e-6);
}

TEST(RobustReducersTest, HandExamples) {
  auto one_d = [](std::vector<float> v) {
    Vecs x;
    for (float e : v) x.push_back({e});
    return x;
  };
  EXPECT_EQ(Reduce(Cfg("median", 0), one_d({1, 5, 2, 8}))[0], 3.5f);
  EXPECT_EQ(Reduce(Cfg("trimmed_mean", 1), one_d({1, 2, 3, 100}))[0], 2.5f);
  EXPECT_EQ(Reduce(Cfg("krum", 1), one_d({0, 0.1f, 0.2f, 0.15f, 10}))[0], 0.15f);
  // 200 Weiszfeld steps with nu = 1e-9 reach the 1-D median 1 to 1e-6 (linear convergence).
  EXPECT_NEAR(Reduce(Cfg("geometric_median", 0, {{"nu", 1e-9}, {"iterations", 200}, {"tol", 0}}),
                     one_d({0, 1, 10}))[0],
              1.0, 1e-6);
  const Vecs x = Random(6, 5, 5);
  std::vector<float> mean(5);
  for (size_t k = 0; k < 5; ++k) {
    double s = 0;
    for (const auto& v : x) s += v[k];
    mean[k] = static_cast<float>(s / 6);
  }
  const std::vector<float> cc_inf = Reduce(Cfg("centered_clipping", 0, {{"tau", 1e30}}), x);
  // CC with tau = inf is v_0 + mean(x_i - v_0) = mean (v_0 = 0); float64 sums, one rounding.
  for (size_t k = 0; k < 5; ++k) EXPECT_NEAR(cc_inf[k], mean[k], 1e-6);
  EXPECT_EQ(Reduce(Cfg("centered_clipping", 0, {{"tau", 0}}), x), std::vector<float>(5, 0.0f));
  ReducerCfg nna = Cfg("nna", 1);
  (*nna.mutable_params()->mutable_fields())["pivot"].set_string_value("zero");
  EXPECT_EQ(Reduce(nna, one_d({0, 1, 2, 100}))[0], 1.0f);
  EXPECT_EQ(Reduce(Cfg("meamed", 1), one_d({1, 2, 3, 100}))[0], 2.0f);  // 3 closest to 2.5
}

TEST(RobustReducersTest, RequirementViolationsAreErrorsNamingRuleAndNumbers) {
  struct Case {
    const char* rule;
    int64_t f;
    size_t p;
    const char* formula;
  };
  for (const Case& c : {Case{"median", 2, 4, "2f+1"}, Case{"trimmed_mean", 1, 2, "2f+1"},
                        Case{"meamed", 1, 2, "2f+1"}, Case{"phocas", 3, 6, "2f+1"},
                        Case{"krum", 2, 6, "2f+3"}, Case{"multi_krum", 1, 4, "2f+3"},
                        Case{"bulyan", 2, 10, "4f+3"}, Case{"geometric_median", 1, 2, "2f+1"},
                        Case{"centered_clipping", 1, 2, "2f+1"}, Case{"nna", 2, 4, "2f+1"},
                        Case{"flag", 3, 6, "2f+1"}}) {
    std::vector<float> out;
    const absl::Status s = RunRule(*Make(Cfg(c.rule, c.f)), Random(c.p, 4, 1), &out);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                            HasSubstr(absl::StrCat("reducer ", c.rule, " needs p >= ", c.formula))))
        << c.rule;
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("p = ", c.p)));
    for (float v : out) EXPECT_FALSE(std::isnan(v));
    // One more input is enough.
    FT_EXPECT_OK(RunRule(*Make(Cfg(c.rule, c.f)), Random(c.p + 1, 4, 1), &out))
        << c.rule;
  }
  std::vector<float> out;
  EXPECT_THAT(RunRule(*Make(Cfg("multi_krum", 1, {{"mk", 5}})), Random(5, 3, 1), &out),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("mk = 5 exceeds p - f = 4")));
}

TEST(RobustReducersTest, NonFiniteInputsAreZeroedAndCountedOrRefused) {
  Vecs x = Random(7, 9, 2);
  x[3][4] = std::nanf("");
  x[5][0] = INFINITY;
  std::vector<ReducerCfg> rules = EquivariantRules();
  rules.push_back(Cfg("centered_clipping", 1));
  rules.push_back(Cfg("flag", 1));
  for (const ReducerCfg& c : rules) {
    if (c.name() == "mean") continue;  // the server rejects non-finite updates before the mean
    ReduceDiagnostics d;
    ReduceContext ctx;
    ctx.diagnostics = &d;
    std::vector<float> out;
    FT_ASSERT_OK(RunRule(*Make(c), x, &out, ctx));
    for (float v : out) EXPECT_TRUE(std::isfinite(v)) << c.name();
    EXPECT_THAT(d.detail, HasSubstr("\"nonfinite\":2")) << c.name();
    ReducerCfg strict = c;
    strict.set_nonfinite("error");
    EXPECT_THAT(RunRule(*Make(strict), x, &out),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("client 3 holds NaN")))
        << c.name();
  }
}

TEST(RobustReducersTest, CenteredClippingKeepsItsCentreInTheServerState) {
  const ReducerCfg c = Cfg("centered_clipping", 1, {{"tau", 0.5}});
  std::unique_ptr<Reducer> r = Make(c);
  std::map<std::string, std::vector<float>> state;
  ReduceContext ctx;
  ctx.state = &state;
  ctx.state_key = "reducer.fedavg.delta";
  std::vector<float> out1, out2, again;
  FT_ASSERT_OK(RunRule(*r, Random(5, 4, 1), &out1, ctx));
  ASSERT_EQ(state.count("reducer.fedavg.delta.cc_v"), 1u);
  EXPECT_EQ(state["reducer.fedavg.delta.cc_v"], out1);
  FT_ASSERT_OK(RunRule(*r, Random(5, 4, 2), &out2, ctx));
  // A restarted server with the checkpointed centre continues identically.
  std::map<std::string, std::vector<float>> restored{{"reducer.fedavg.delta.cc_v", out1}};
  ctx.state = &restored;
  FT_ASSERT_OK(RunRule(*r, Random(5, 4, 2), &again, ctx));
  EXPECT_EQ(again, out2);
  // Without state it starts from zero, which differs here.
  std::vector<float> fresh;
  FT_ASSERT_OK(RunRule(*r, Random(5, 4, 2), &fresh));
  EXPECT_NE(fresh, out2);
}

TEST(RobustReducersTest, KrumDiagnosticsNameTheChosenClients) {
  const Vecs x = {{0.0f}, {0.1f}, {0.2f}, {0.15f}, {10.0f}};
  const std::vector<uint64_t> ids = {3, 8, 12, 40, 41};
  ReduceDiagnostics d;
  ReduceContext ctx;
  ctx.ids = ids;
  ctx.diagnostics = &d;
  std::vector<float> out;
  FT_ASSERT_OK(RunRule(*Make(Cfg("krum", 1)), x, &out, ctx));
  EXPECT_THAT(d.detail, HasSubstr("\"chosen\":[40]"));
  EXPECT_EQ(d.discarded, 4);
  FT_ASSERT_OK(RunRule(*Make(Cfg("multi_krum", 1)), x, &out, ctx));
  EXPECT_THAT(d.detail, HasSubstr(";{\"rule\":\"multi_krum\""));
  EXPECT_THAT(d.detail, HasSubstr("\"chosen\":[3,8,12,40]"));
}

TEST(RobustReducersTest, GarfieldCompatMultiKrumAveragesPMinusFMinus2) {
  ReducerCfg c = Cfg("multi_krum", 1);
  (*c.mutable_params()->mutable_fields())["garfield_compat"].set_bool_value(true);
  ReduceDiagnostics d;
  ReduceContext ctx;
  ctx.diagnostics = &d;
  std::vector<float> out;
  FT_ASSERT_OK(RunRule(*Make(c), Random(9, 3, 4), &out, ctx));
  EXPECT_EQ(d.discarded, 9 - 6);  // mk = p - f - 2 = 6
}

TEST(ReducerRegistryTest, ConfigErrorsNameTheField) {
  ReducerRegistry r;
  RegisterBuiltinReducers(&r);
  EXPECT_THAT(r.Validate(Cfg("krumm", 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("algorithm.reducer.name must be one of bulyan, centered_clipping")));
  EXPECT_THAT(r.Validate(Cfg("krum", -1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("algorithm.reducer.f")));
  EXPECT_THAT(r.Validate(Cfg("flag", 0, {{"lamda", 1}})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("algorithm.reducer.params.lamda is not a parameter of flag")));
  EXPECT_THAT(r.Validate(Cfg("flag", 0, {{"iterations", 11}})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("algorithm.reducer.params.iterations")));
  ReducerCfg bad = Cfg("median", 0);
  bad.set_nonfinite("skip");
  EXPECT_THAT(r.Validate(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("algorithm.reducer.nonfinite")));
  EXPECT_THAT(r.Register(NewMedianReducerFactory()), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("median")));
}

}  // namespace
}  // namespace fedtrain

namespace fedtrain {
namespace {

// Every server half that averages client vectors goes through the configured reducer: with
// four identical honest updates and one huge one, the model moves by a bounded amount under
// the median, while the mean lets the outlier through.
TEST(RobustServerHalvesTest, EveryAveragingAlgorithmUsesTheReducer) {
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  const size_t d = 4;
  const std::vector<float> x0(d, 0.0f), honest = {0.1f, -0.2f, 0.05f, 0.3f};
  const std::vector<float> outlier(d, 1e6f);
  for (const char* name : {"fedavg", "fedavgm", "fedprox", "dsgd", "fedadam", "fedyogi",
                           "fedadagrad", "feddyn", "scaffold", "fedavg_m", "scaffold_m",
                           "fedavg_m_vr", "scaffold_m_vr", "fedspeed"}) {
    double moved[2];
    for (int robust = 0; robust < 2; ++robust) {
      v1::AlgorithmConfig c;
      c.set_name(name);
      if (robust) {
        c.mutable_reducer()->set_name("median");
        c.mutable_reducer()->set_f(1);
      }
      FT_ASSERT_OK_AND_ASSIGN(const AlgorithmFactory* f, reg.Find(name));
      FT_ASSERT_OK(f->Validate(c));
      FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ServerAlgorithm> s, f->MakeServer(c));
      ServerState st;
      FT_ASSERT_OK(s->Init(x0, &st));
      std::vector<ClientUpdate> ups;
      for (ClientId id = 0; id < 5; ++id) {
        ClientUpdate u;
        u.id = id;
        u.num_samples = 10;
        u.steps = 1;
        for (size_t part = 0; part < s->num_up_parts(); ++part)
          u.parts.push_back(id == 2 ? ConstVec(outlier) : ConstVec(honest));
        ups.push_back(u);
      }
      RoundInfo info;
      info.num_clients = 5;
      info.lr = 0.1;  // the local rate the momentum server halves divide by
      ReduceDiagnostics diag;
      info.diagnostics = &diag;
      FT_ASSERT_OK(s->Update(ups, info, &st)) << name;
      double m = 0;
      for (size_t k = 0; k < d; ++k) m = std::max(m, std::fabs(double(st.x[k])));
      moved[robust] = m;
      // The honest step lowers x[1] (adaptive server optimisers bound the step's size, so
      // the direction is what tells the outlier was filtered).
      if (robust) EXPECT_LT(st.x[1], 0.0f) << name;
      else EXPECT_GT(st.x[1], 0.0f) << name;
      if (robust) EXPECT_GE(diag.calls, 1) << name;
    }
    EXPECT_LT(moved[1], 10.0) << name << ": the median does not";
  }
}

}  // namespace
}  // namespace fedtrain
