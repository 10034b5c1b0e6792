// Tests of the float64 error-feedback validation harness: the problems (gradients, constants,
// the CSV recipe), the run loop (identity compressor = GD, determinism, divergence), the
// config planner's errors, and the outcomes the spec expects (docs/compression.md §4.1-§4.4).
//
// Run time: these tests share a ~20 s budget in a Release build (they also run under
// ASan+UBSan). Where the spec's T is longer than needed to show an ordering, T is reduced
// and the comment says so; the full-length runs are the example configs in examples/ef/.
// The breast_cancer tests skip when the CSV is not installed (scripts/install_deps.sh).
#include "sim/ef_validation.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "core/status_macros.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

// |a / b| within [1/f, f].
::testing::AssertionResult WithinFactor(double a, double b, double f) {
  if (a > 0 && b > 0 && a <= b * f && b <= a * f) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " is not within a factor " << f << " of " << b;
}

EfRunOptions Opts(EfMethod m, double gamma, int64_t rounds, double eta = 0.0, int64_t k = 1) {
  EfRunOptions o;
  o.method = m;
  o.gamma = gamma;
  o.eta = eta;
  o.rounds = rounds;
  o.compression.compressor = "topk";
  o.compression.k = k;
  return o;
}

EfRunResult RunOk(const EfProblem& p, const EfRunOptions& o) {
  absl::StatusOr<EfRunResult> r = RunEf(p, o);
  EXPECT_THAT(r, IsOk());
  if (!r.ok()) return EfRunResult{};
  EXPECT_FALSE(r->diverged) << EfMethodName(o.method);
  return *std::move(r);
}

EfProblem Quadratics(double zeta, double sigma) {
  QuadraticsOptions o;
  o.zeta = zeta;
  o.sigma = sigma;
  absl::StatusOr<EfProblem> p = HeterogeneousQuadratics(o);
  EXPECT_THAT(p, IsOk());
  return *std::move(p);
}

// The breast_cancer problem, or nullopt (the test then skips).
absl::StatusOr<EfProblem> BreastCancer(double scale_last_worker) {
  FT_ASSIGN_OR_RETURN(BinaryData data, LoadBreastCancerCsv(kBreastCancerCsv));
  LogRegOptions o;
  o.scale_last_worker = scale_last_worker;
  return NonconvexLogReg(data, o);
}

#define FT_BREAST_CANCER_OR_SKIP(var, scale)                                            \
  absl::StatusOr<EfProblem> var##_or = BreastCancer(scale);                             \
  if (absl::IsNotFound(var##_or.status()))                                              \
    GTEST_SKIP() << var##_or.status().message();                                        \
  ASSERT_THAT(var##_or, IsOk());                                                        \
  const EfProblem& var = *var##_or

// Central differences of f_i against the problem's gradient (the f_i are written out here
// independently of sim/ef_problems.cc).
void CheckGradient(const EfProblem& p, const std::function<double(size_t, const std::vector<double>&)>& f) {
  std::vector<double> x = p.x0, g(p.dim);
  for (size_t j = 0; j < p.dim; ++j) x[j] += 0.1 * std::sin(3.0 * j);
  for (size_t i = 0; i < p.num_workers; i += std::max<size_t>(1, p.num_workers / 4)) {
    p.gradient(i, x, absl::MakeSpan(g));
    for (size_t j = 0; j < p.dim; ++j) {
      const double h = 1e-5;
      std::vector<double> a = x, b = x;
      a[j] += h;
      b[j] -= h;
      const double fd = (f(i, a) - f(i, b)) / (2 * h);
      // Central differences have error O(h^2 f''') plus rounding O(eps f / h).
      EXPECT_NEAR(g[j], fd, 1e-6 * std::max(1.0, std::abs(fd))) << "worker " << i << " coord " << j;
    }
  }
}

// ---- Problems.

TEST(EfProblemTest, ThreeWorkerGradientsAndConstants) {
  EfProblem p = ThreeWorkerProblem();
  std::vector<double> g(3);
  p.gradient(0, std::vector<double>{2, 2, 2}, absl::MakeSpan(g));
  EXPECT_EQ(g, std::vector<double>({-11, 9, 9}));  // t (-5.5, 4.5, 4.5) at t = 2 (docs/compression.md §4.1)
  EXPECT_NEAR(p.smoothness[0], 34.5, 1e-12);        // 2 |a_i|^2 + 1/2
  EXPECT_EQ(p.x_star, std::vector<double>({0, 0, 0}));
}

TEST(EfProblemTest, QuadraticsGradientsAndMinimiser) {
  EfProblem p = Quadratics(10, 0);
  ASSERT_EQ(p.num_workers, 10u);
  ASSERT_EQ(p.dim, 50u);
  EXPECT_NEAR(p.smoothness[9], 10.0, 1e-12);  // L_i = i^2 / n
  EXPECT_NEAR(p.smoothness[0], 0.1, 1e-12);
  EXPECT_NEAR(p.l, p.l_am(), 1e-12);  // the Hessian of f is mean(a_i^2) I
  // grad f(x*) = 0.
  std::vector<double> g(p.dim), sum(p.dim, 0.0);
  for (size_t i = 0; i < p.num_workers; ++i) {
    p.gradient(i, p.x_star, absl::MakeSpan(g));
    for (size_t j = 0; j < p.dim; ++j) sum[j] += g[j];
  }
  for (double s : sum) EXPECT_NEAR(s, 0.0, 1e-12);
  // Heterogeneous: the local minimisers differ from x*.
  p.gradient(0, p.x_star, absl::MakeSpan(g));
  double n2 = 0;
  for (double v : g) n2 += v * v;
  EXPECT_GT(n2, 1.0);
}

TEST(EfProblemTest, LoadBreastCancerRecipe) {
  absl::StatusOr<BinaryData> d = LoadBreastCancerCsv(kBreastCancerCsv);
  if (absl::IsNotFound(d.status())) GTEST_SKIP() << d.status().message();
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->rows, 569u);
  EXPECT_EQ(d->cols, 30u);
  int pos = 0;
  for (double y : d->labels) {
    ASSERT_TRUE(y == 1.0 || y == -1.0);
    pos += y > 0;
  }
  EXPECT_EQ(pos, 357);  // benign = class 1
  for (size_t c = 0; c < d->cols; ++c) {
    double m = 0, v = 0;
    for (size_t r = 0; r < d->rows; ++r) m += d->features[r * d->cols + c];
    m /= d->rows;
    for (size_t r = 0; r < d->rows; ++r) v += std::pow(d->features[r * d->cols + c] - m, 2);
    EXPECT_NEAR(m, 0.0, 1e-12);
    EXPECT_NEAR(v / d->rows, 1.0, 1e-12);  // population standard deviation
  }
}

TEST(EfProblemTest, LoadCsvErrors) {
  testing::TempDir dir;
  EXPECT_THAT(LoadBreastCancerCsv(dir.File("missing.csv")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("install_deps.sh")));
  testing::WriteFileBytes(dir.File("a.csv"), "2,2,neg,pos\n1,2,0\n3,x,1\n");
  EXPECT_THAT(LoadBreastCancerCsv(dir.File("a.csv")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("a.csv:3: field 2 'x'")));
  testing::WriteFileBytes(dir.File("b.csv"), "3,2,neg,pos\n1,2,0\n3,4,1\n");
  EXPECT_THAT(LoadBreastCancerCsv(dir.File("b.csv")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("announces 3 rows")));
  testing::WriteFileBytes(dir.File("c.csv"), "1,2,neg,pos\n1,2,7\n");
  EXPECT_THAT(LoadBreastCancerCsv(dir.File("c.csv")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("class '7'")));
  testing::WriteFileBytes(dir.File("d.csv"), "1,2,neg,pos\n1,2,3,0\n");
  EXPECT_THAT(LoadBreastCancerCsv(dir.File("d.csv")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("4 fields")));
  testing::WriteFileBytes(dir.File("e.csv"), "1,2,neg,pos\n1,2,1\n");
  absl::StatusOr<BinaryData> ok = LoadBreastCancerCsv(dir.File("e.csv"));
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->features, std::vector<double>({0, 0}));  // constant column -> 0
}

TEST(EfProblemTest, LogRegGradientAndSpecConstants) {
  FT_BREAST_CANCER_OR_SKIP(p, 1.0);
  absl::StatusOr<BinaryData> data = LoadBreastCancerCsv(kBreastCancerCsv);
  ASSERT_THAT(data, IsOk());
  // f_i by its definition (docs/compression.md §4.3), over the same blocks: 29 rows for the first
  // 569 mod 20 = 9 workers, 28 for the rest.
  auto f = [&](size_t i, const std::vector<double>& x) {
    const size_t begin = i * 28 + std::min<size_t>(i, 9), rows = i < 9 ? 29 : 28;
    double loss = 0;
    for (size_t r = begin; r < begin + rows; ++r) {
      double z = 0;
      for (size_t c = 0; c < 30; ++c) z += data->features[r * 30 + c] * x[c];
      loss += std::log1p(std::exp(-data->labels[r] * z));
    }
    double reg = 0;
    for (double v : x) reg += v * v / (1 + v * v);
    return loss / rows + 0.1 * reg;
  };
  CheckGradient(p, f);
  // gamma_theory = 4.05e-3 (docs/compression.md §4.3, to the 3 digits given).
  EXPECT_NEAR(Ef21TheoryStep(p.l, p.l_qm(), 1.0 / 30), 4.05e-3, 0.005e-3);

  // §4.4 constants: L = 26.1, L_QM = 103.3, L_AM = 26.8, gamma_QM = 1.65e-4, gamma_AM = 6.26e-4.
  FT_BREAST_CANCER_OR_SKIP(q, 10.0);
  EXPECT_NEAR(q.l, 26.1, 0.05);
  EXPECT_NEAR(q.l_qm(), 103.3, 0.05);
  EXPECT_NEAR(q.l_am(), 26.8, 0.05);
  EXPECT_NEAR(Ef21TheoryStep(q.l, q.l_qm(), 1.0 / 30), 1.65e-4, 0.005e-4);
  EXPECT_NEAR(Ef21TheoryStep(q.l, q.l_am(), 1.0 / 30), 6.26e-4, 0.01e-4);
}

// ---- The run loop.

// U8 through the harness: with the identity compressor every method is (S)GD.
TEST(EfRunTest, IdentityCompressorEqualsGd) {
  EfProblem p = Quadratics(10, 1);
  EfRunOptions o = Opts(EfMethod::kGd, 1e-2, 300);
  o.compression.compressor = "identity";
  std::vector<std::vector<double>> ref;
  o.on_iterate = [&](int64_t, absl::Span<const double> x) { ref.emplace_back(x.begin(), x.end()); };
  RunOk(p, o);
  for (EfMethod m : {EfMethod::kNaive, EfMethod::kEf14A, EfMethod::kEf14B, EfMethod::kEf21,
                     EfMethod::kEf21W, EfMethod::kEControl}) {
    double worst = 0;
    o.method = m;
    o.eta = 0.3;
    o.on_iterate = [&](int64_t t, absl::Span<const double> x) {
      double d = 0, n = 0;
      for (size_t j = 0; j < x.size(); ++j) {
        d += std::pow(x[j] - ref[t - 1][j], 2);
        n += ref[t - 1][j] * ref[t - 1][j];
      }
      worst = std::max(worst, std::sqrt(d / n));
    };
    RunOk(p, o);
    EXPECT_LT(worst, 1e-12) << EfMethodName(m);
  }
}

TEST(EfRunTest, DeterministicAndCountsBits) {
  EfProblem p = Quadratics(10, 1);
  const EfRunOptions o = Opts(EfMethod::kEControl, 1e-3, 200, 0.02);
  EfRunResult a = RunOk(p, o), b = RunOk(p, o);
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.dist2_tail, b.dist2_tail);
  EXPECT_EQ(a.dense_bits, 10u * 50 * 64);  // one dense float64 initialisation per worker
  EXPECT_GT(a.compressed_bits, 0u);
}

TEST(EfRunTest, DivergenceStopsTheRun) {
  EfProblem p = Quadratics(10, 0);
  absl::StatusOr<EfRunResult> r = RunEf(p, Opts(EfMethod::kGd, 10.0, 5000));  // gamma L >> 2
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->diverged);
  EXPECT_GT(r->diverged_at, 0);
  EXPECT_LT(r->rounds_run, 5000);
  EXPECT_TRUE(std::isnan(r->dist2_tail));
}

TEST(EfRunTest, BadOptions) {
  EfProblem p = ThreeWorkerProblem();
  EXPECT_THAT(RunEf(p, Opts(EfMethod::kEf21, 0.0, 10)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gamma")));
  EXPECT_THAT(RunEf(p, Opts(EfMethod::kEf21, 0.1, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rounds")));
  EXPECT_THAT(RunEf(p, Opts(EfMethod::kEControl, 0.1, 10, 1.0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.eta")));
  EfRunOptions o = Opts(EfMethod::kEf21, 0.1, 10);
  o.report_rounds = {11};
  EXPECT_THAT(RunEf(p, o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("report round 11")));
  o = Opts(EfMethod::kEf21, 0.1, 10, 0.0, /*k=*/4);  // k > d
  EXPECT_FALSE(RunEf(p, o).ok());
}

// ---- Spec outcomes.

// §4.1, full length: gamma = 0.01, 2000 steps; |x^T| within a factor 2 of the spec's values.
TEST(EfSpecTest, ThreeWorkersNaiveDivergesEfConverges) {
  EfProblem p = ThreeWorkerProblem();
  EXPECT_TRUE(WithinFactor(RunOk(p, Opts(EfMethod::kNaive, 0.01, 2000)).final_dist, 1.04e16, 2));
  EXPECT_TRUE(WithinFactor(RunOk(p, Opts(EfMethod::kEf14A, 0.01, 2000)).final_dist, 8.6e-11, 2));
  EXPECT_TRUE(WithinFactor(RunOk(p, Opts(EfMethod::kEf21, 0.01, 2000)).final_dist, 8.5e-11, 2));
  EXPECT_TRUE(WithinFactor(RunOk(p, Opts(EfMethod::kGd, 0.01, 2000)).final_dist, 1.1e-10, 2));
}

// §4.2 item 1, exact gradients, zeta = 10. T reduced from 40000/80000: EF14 sits on its
// floor after ~3000 rounds at gamma = 1e-3, and EF21/EControl reach round-off (~1e-27) by
// round 10000.
TEST(EfSpecTest, QuadraticsExactGradients) {
  EfProblem p = Quadratics(10, 0);
  const double floor1 = RunOk(p, Opts(EfMethod::kEf14B, 1e-3, 5000)).dist2_tail;
  const double floor2 = RunOk(p, Opts(EfMethod::kEf14B, 5e-4, 10000)).dist2_tail;
  EXPECT_TRUE(WithinFactor(floor1, 6.7e-3, 2));
  EXPECT_TRUE(WithinFactor(floor2, 1.6e-3, 2));
  EXPECT_TRUE(WithinFactor(floor1 / floor2, 4.0, 1.25)) << "floor ~ gamma^2";
  EXPECT_LT(RunOk(p, Opts(EfMethod::kEf21, 1e-3, 10000)).dist2_tail, 1e-24);
  for (double eta : {0.02, 0.005})  // eta >= delta/4
    EXPECT_LT(RunOk(p, Opts(EfMethod::kEControl, 1e-3, 10000, eta)).dist2_tail, 1e-24) << eta;
  EXPECT_GT(RunOk(p, Opts(EfMethod::kNaive, 1e-3, 10000)).dist2_tail, 1.0);  // stalls far away
}

// §4.2 item 2, sigma = 1, zeta = 10, gamma = 1e-3. T reduced from 40000 to 15000 (the three
// floors are reached by ~5000 rounds; the tail is the last 750 rounds).
TEST(EfSpecTest, QuadraticsStochasticHeterogeneous) {
  EfProblem p = Quadratics(10, 1);
  const double ef14 = RunOk(p, Opts(EfMethod::kEf14B, 1e-3, 15000)).dist2_tail;
  const double ef21 = RunOk(p, Opts(EfMethod::kEf21, 1e-3, 15000)).dist2_tail;
  const double ec = RunOk(p, Opts(EfMethod::kEControl, 1e-3, 15000, 0.02)).dist2_tail;
  EXPECT_LT(3 * ec, ef21);
  EXPECT_LT(3 * ef21, ef14);
  EXPECT_TRUE(WithinFactor(ef14, 6.7e-3, 2));
  EXPECT_TRUE(WithinFactor(ef21, 1.2e-3, 2));
  EXPECT_TRUE(WithinFactor(ec, 1.3e-4, 2));
}

// §4.2 item 3, sigma = 1, zeta = 0, gamma = 1e-3: EF14 ~ GD, EF21 ~100x worse, EControl
// between. T reduced from 40000 to 15000 as above.
TEST(EfSpecTest, QuadraticsStochasticHomogeneous) {
  EfProblem p = Quadratics(0, 1);
  const double gd = RunOk(p, Opts(EfMethod::kGd, 1e-3, 15000)).dist2_tail;
  const double ef14 = RunOk(p, Opts(EfMethod::kEf14B, 1e-3, 15000)).dist2_tail;
  const double ef21 = RunOk(p, Opts(EfMethod::kEf21, 1e-3, 15000)).dist2_tail;
  const double ec = RunOk(p, Opts(EfMethod::kEControl, 1e-3, 15000, 0.02)).dist2_tail;
  EXPECT_TRUE(WithinFactor(ef14, gd, 1.5));
  EXPECT_GT(ef21, 30 * gd);
  EXPECT_GT(ec, 2 * gd);
  EXPECT_LT(3 * ec, ef21);
}

// §4.3: EF21 tolerates steps far above its theory step, EF14 does not. With this seed's x^0
// EF21 reaches round-off within 20000 rounds from 64x on (at 16x it is at 9e-9 after 20000
// rounds, ~800x below EF14 and still falling, examples/ef/logreg.json; the spec's run reached
// round-off at 16x already). T reduced from 20000: 64x to 5000 (EF21 2e-8, EF14 stalled at
// 2e-4 since round ~1000) and 256x to 7000 (EF21 ~1e-26, round-off ~1e-30 by 8000).
TEST(EfSpecTest, LogRegEf21ToleratesLargeSteps) {
  FT_BREAST_CANCER_OR_SKIP(p, 1.0);
  const double theory = Ef21TheoryStep(p.l, p.l_qm(), 1.0 / 30);
  auto both = [&](double factor, int64_t rounds) {
    EfRunOptions o = Opts(EfMethod::kEf21, factor * theory, rounds);
    const double ef21 = RunOk(p, o).final_grad2;
    o.method = EfMethod::kEf14A;
    return std::make_pair(ef21, RunOk(p, o).final_grad2);
  };
  // Factor 1: the two methods are indistinguishable.
  auto [ef21_1, ef14_1] = both(1, 2000);
  EXPECT_TRUE(WithinFactor(ef21_1, ef14_1, 1.1));
  auto [ef21_64, ef14_64] = both(64, 5000);
  EXPECT_LT(1000 * ef21_64, ef14_64);
  EXPECT_GT(ef14_64, 1e-5);
  // Factor 256: EF21 near round-off, EF14 stalled (spec: 9.4e-34 vs 2.0e-3 after 20000).
  auto [ef21_256, ef14_256] = both(256, 7000);
  EXPECT_LT(ef21_256, 1e-25);
  EXPECT_GT(ef14_256, 1e-4);
}

// §4.4: EF21-W with gamma_AM beats EF21 with gamma_QM; with Top-K, EF21-W has EF21's iterates
// at the same gamma. T reduced from 20000 to 5000 (spec at 5000: 0.625 vs 0.189).
TEST(EfSpecTest, Ef21WLargerStepWins) {
  FT_BREAST_CANCER_OR_SKIP(p, 10.0);
  const double g_qm = Ef21TheoryStep(p.l, p.l_qm(), 1.0 / 30);
  const double g_am = Ef21TheoryStep(p.l, p.l_am(), 1.0 / 30);
  EXPECT_GT(g_am, 3.5 * g_qm);
  EfRunOptions o = Opts(EfMethod::kEf21, g_qm, 5000);
  o.report_rounds = {1000, 5000};
  const EfRunResult ef21_qm = RunOk(p, o);
  std::vector<std::vector<double>> traj;
  o.gamma = g_am;
  o.on_iterate = [&](int64_t, absl::Span<const double> x) { traj.emplace_back(x.begin(), x.end()); };
  const EfRunResult ef21_am = RunOk(p, o);
  o.method = EfMethod::kEf21W;
  double worst = 0;
  o.on_iterate = [&](int64_t t, absl::Span<const double> x) {
    double d = 0, n = 0;
    for (size_t j = 0; j < x.size(); ++j) {
      d += std::pow(x[j] - traj[t - 1][j], 2);
      n += traj[t - 1][j] * traj[t - 1][j];
    }
    worst = std::max(worst, std::sqrt(d / n));
  };
  const EfRunResult ef21w_am = RunOk(p, o);
  EXPECT_LT(worst, 1e-10) << "EF21-W and EF21 iterates differ";
  EXPECT_LT(2 * ef21w_am.grad2[1], ef21_qm.grad2[1]);
  EXPECT_LT(ef21w_am.grad2[0], ef21_qm.grad2[0]);
  EXPECT_TRUE(WithinFactor(ef21w_am.grad2[1], ef21_am.grad2[1], 1.0 + 1e-9));
}

// ---- Config planning.

absl::StatusOr<EfValidationPlan> PlanJson(const std::string& json) {
  v1::EfValidationConfig cfg;
  auto st = google::protobuf::util::JsonStringToMessage(json, &cfg);
  if (!st.ok()) return absl::InvalidArgumentError(std::string(st.message()));
  return PlanEfValidation(cfg);
}

TEST(EfPlanTest, GridExpands) {
  absl::StatusOr<EfValidationPlan> plan = PlanJson(R"({"name": "g", "experiments": [
      {"name": "a", "problem": {"kind": "quadratics", "dim": 8, "num_workers": 3},
       "rounds": 10, "gamma": [0.1, 0.01], "gamma_factor": [2],
       "methods": [{"method": "ef21"}, {"method": "econtrol", "eta": [0.1, 0.2]},
                   {"method": "ef21w", "step_mean": "am"}]}]})");
  ASSERT_THAT(plan, IsOk());
  ASSERT_EQ(plan->experiments.size(), 1u);
  const EfExperimentPlan& e = plan->experiments[0];
  ASSERT_EQ(e.runs.size(), 12u);  // 3 steps x 4 method runs
  EXPECT_EQ(e.runs[1].label, "econtrol eta=0.1");
  EXPECT_EQ(e.runs[3].label, "ef21w (am)");
  EXPECT_DOUBLE_EQ(e.runs[8].options.gamma, 2 * e.gamma_theory_qm);
  EXPECT_DOUBLE_EQ(e.runs[11].options.gamma, 2 * e.gamma_theory_am);
  EXPECT_DOUBLE_EQ(e.delta, 1.0 / 8);
  absl::StatusOr<EfValidationReport> rep = RunEfValidation(*plan, nullptr);
  ASSERT_THAT(rep, IsOk());
  EXPECT_EQ(rep->rows.size(), 12u);
  const std::string csv = EfTableCsv(*plan, *rep);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 13);
  EXPECT_THAT(FormatEfTable(*plan, *rep), HasSubstr("econtrol eta=0.2"));
  EXPECT_THAT(EfResultsJson(*plan, *rep), HasSubstr("\"gamma_theory_am\""));
}

TEST(EfPlanTest, ErrorsNameTheField) {
  const std::string head = R"({"experiments": [{"problem": {"kind": "quadratics"}, )";
  struct Case {
    std::string json, field;
  } cases[] = {
      {R"({"experiments": []})", "experiments: the config lists no experiment"},
      {head + R"("rounds": 0, "gamma": [1], "methods": [{"method": "gd"}]}]})",
       "experiments[0].rounds: must be > 0"},
      {head + R"("rounds": 5, "methods": [{"method": "gd"}]}]})", "experiments[0].gamma"},
      {head + R"("rounds": 5, "gamma": [-1], "methods": [{"method": "gd"}]}]})",
       "experiments[0].gamma[0]"},
      {head + R"("rounds": 5, "gamma": [1], "methods": [{"method": "ef99"}]}]})",
       "experiments[0].methods[0].method: unknown method 'ef99'"},
      {head + R"("rounds": 5, "gamma": [1], "methods": [{"method": "econtrol", "eta": [1]}]}]})",
       "experiments[0].methods[0].eta[0]: must be in [0, 1)"},
      {head + R"("rounds": 5, "gamma": [1], "methods": [{"method": "econtrol"}]}]})",
       "experiments[0].methods[0].eta"},
      {head + R"("rounds": 5, "gamma": [1], "methods": [{"method": "ef21", "eta": [0.1]}]}]})",
       "eta applies to econtrol only"},
      {head + R"("rounds": 5, "gamma": [1], "methods": [{"method": "ef21", "init": "x"}]}]})",
       "experiments[0].methods[0].init"},
      {head + R"("rounds": 5, "gamma": [1], "step_mean": "gm", "methods": [{"method": "gd"}]}]})",
       "experiments[0].step_mean"},
      {head + R"("rounds": 5, "gamma": [1], "report_rounds": [6], "methods": [{"method": "gd"}]}]})",
       "experiments[0].report_rounds[0]"},
      {head + R"("rounds": 5, "gamma": [1], "compression": {"k": 0}, "methods": [{"method": "gd"}]}]})",
       "experiments[0].compression"},
      {head + R"("rounds": 5, "gamma": [1], "compression": {"compressor": "zip"}, "methods": [{"method": "gd"}]}]})",
       "experiments[0].compression: unknown compressor 'zip'"},
      {R"({"experiments": [{"problem": {"kind": "cubic"}, "rounds": 5, "gamma": [1], "methods": [{"method": "gd"}]}]})",
       "experiments[0].problem.kind: unknown problem 'cubic'"},
      {R"({"experiments": [{"problem": {"kind": "quadratics", "sigma": -1}, "rounds": 5, "gamma": [1], "methods": [{"method": "gd"}]}]})",
       "experiments[0].problem.sigma"},
      {R"({"experiments": [{"rounds": 5, "gamma": [1], "methods": [{"method": "gd"}]}]})",
       "experiments[0].problem.kind: missing"},
  };
  for (const Case& c : cases)
    EXPECT_THAT(PlanJson(c.json), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.json;
  // A missing data file is not a config error.
  EXPECT_THAT(PlanJson(R"({"breast_cancer_csv": "/nonexistent.csv", "experiments": [{"problem":
      {"kind": "logreg"}, "rounds": 5, "gamma": [1], "methods": [{"method": "gd"}]}]})"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent.csv")));
}

}  // namespace
}  // namespace fedtrain
