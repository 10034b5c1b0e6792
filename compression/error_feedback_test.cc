// Unit tests of error feedback (docs/compression.md §2) and the properties U8-U15 of §5.
//
// A small local loop (LocalRun below) plays the production round structure on separable
// quadratics f_i(x) = 1/2 sum_j a_ij (x_j - b_ij)^2: every worker computes its vector at the
// model it was sent, FeedbackStep encodes it, the server decodes every message in worker
// order, folds it into a TrackerAggregate and then moves the model. The reusable harness
// with the spec's problems is sim/ef_validation.h; this one exposes the internal state that
// the identities need. Compressors carry float64 values, so every round trip is exact and
// the tolerances below (1e-12 relative) only absorb the rounding of a few hundred additions.
#include "compression/error_feedback.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

// The float64 compressors of compression/compressor.cc and sparse.cc. A build where they do
// not exist yet skips the tests that need them (NotFound) rather than failing them.
#define FT_COMPRESSOR_OR_SKIP(var, name_, k_, d_)                                         \
  std::unique_ptr<Compressor> var;                                                     \
  do {                                                                                 \
    CompressorOptions o_;                                                              \
    o_.compressor = (name_);                                                           \
    o_.k = (k_);                                                                       \
    o_.value_type = "f64";                                                             \
    absl::StatusOr<std::unique_ptr<Compressor>> c_ = MakeCompressor(o_, (d_));        \
    if (absl::IsNotFound(c_.status()))                                                 \
      GTEST_SKIP() << "compressor '" << (name_) << "' with f64 values not available: "  \
                   << c_.status().message();                                           \
    ASSERT_THAT(c_, IsOk());                                                           \
    var = std::move(c_).value();                                                       \
  } while (0)

double Norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

double Dist(absl::Span<const double> a, absl::Span<const double> b) {
  double s = 0;
  for (size_t j = 0; j < a.size(); ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
  return std::sqrt(s);
}

// f_i(x) = 1/2 sum_j a_ij (x_j - b_ij)^2 with a_ij in [0.5, 2], b_ij ~ N(0, 1): heterogeneous,
// strongly convex, L_i = max_j a_ij. Optional gradient noise N(0, sigma^2) per coordinate,
// keyed (seed, round, worker, kMinibatch) so every method sees the same draws.
struct Quadratics {
  size_t n, d;
  double sigma = 0.0;
  std::vector<std::vector<double>> a, b;

  Quadratics(size_t n_, size_t d_, double sigma_ = 0.0) : n(n_), d(d_), sigma(sigma_) {
    for (size_t i = 0; i < n; ++i) {
      RngStream rng = RngStream::For(7, 0, i, Purpose::kTest);
      a.emplace_back(d);
      b.emplace_back(d);
      for (size_t j = 0; j < d; ++j) {
        a[i][j] = 0.5 + 1.5 * rng.Uniform();
        b[i][j] = rng.Normal();
      }
    }
  }
  void Grad(size_t i, absl::Span<const double> x, uint64_t round, double* g) const {
    RngStream rng = RngStream::For(7, round, i, Purpose::kMinibatch);
    for (size_t j = 0; j < d; ++j) {
      g[j] = a[i][j] * (x[j] - b[i][j]);
      if (sigma > 0) g[j] += sigma * rng.Normal();
    }
  }
  double L(size_t i) const {
    double m = 0;
    for (double v : a[i]) m = std::max(m, v);
    return m;
  }
};

enum class Mode { kGd, kNaive, kEf14A, kEf14B, kEf21, kEf21W, kEControl };

// One simulated job: n workers with their FeedbackState, a server with x and (tracker
// methods) a TrackerAggregate. Round() is one round of the pipeline.
class LocalRun {
 public:
  LocalRun(const Quadratics& q, Mode mode, double gamma, double eta, const Compressor* c,
           const Compressor* dense, std::vector<double> x0)
      : q_(q), mode_(mode), gamma_(gamma), c_(c), dense_(dense), x(std::move(x0)),
        st(q.n), agg(q.d, q.n, TrackerInit::kDense), weight(q.n, 1.0 / q.n),
        scale(q.n, 1.0), g(q.n, std::vector<double>(q.d)), sent(q.n, std::vector<double>(q.d)),
        u(q.n, std::vector<double>(q.d)), e_before(q.n) {
    opts_.eta = eta;
    switch (mode) {
      case Mode::kGd:
      case Mode::kNaive:
        opts_.method = Feedback::kNone;
        break;
      case Mode::kEf14A:
      case Mode::kEf14B:
        opts_.method = Feedback::kEf14;
        break;
      case Mode::kEf21:
        opts_.method = Feedback::kEf21;
        break;
      case Mode::kEf21W: {
        opts_.method = Feedback::kEf21W;
        double sum = 0;
        for (size_t i = 0; i < q.n; ++i) sum += q.L(i);
        for (size_t i = 0; i < q.n; ++i) {
          weight[i] = q.L(i) / sum;
          scale[i] = 1.0 / (q.n * weight[i]);
        }
        break;
      }
      case Mode::kEControl:
        opts_.method = Feedback::kEControl;
        break;
    }
  }

  absl::Status Round() {
    const size_t n = q_.n, d = q_.d;
    std::vector<double> acc(d, 0.0), v(d), msg(d);
    for (size_t i = 0; i < n; ++i) {
      q_.Grad(i, x, t, g[i].data());
      if (mode_ == Mode::kGd) {
        for (size_t j = 0; j < d; ++j) acc[j] += g[i][j];
        continue;
      }
      const double s = mode_ == Mode::kEf14A ? gamma_ : scale[i];
      for (size_t j = 0; j < d; ++j) v[j] = s * g[i][j];
      e_before[i] = st[i].e;
      for (size_t j = 0; j < d; ++j)
        u[i][j] = opts_.eta * (st[i].e.empty() ? 0.0 : st[i].e[j]) + v[j] -
                  (st[i].h.empty() ? 0.0 : st[i].h[j]);
      RngStream rng = RngStream::For(7, t, i, Purpose::kCompression);
      Encoded out;
      bool dense = false;
      FT_RETURN_IF_ERROR(FeedbackStep(opts_, *c_, *dense_, v, rng, &st[i], &out,
                                      absl::MakeSpan(sent[i]), &dense));
      // Server side: decode what came over the wire.
      FT_RETURN_IF_ERROR((dense ? dense_ : c_)->Decode(out, absl::MakeSpan(msg)));
      if (HasTracker(opts_.method)) {
        FT_RETURN_IF_ERROR(agg.Check(i, dense));
        agg.Add(i, absl::Span<const double>(msg), dense, weight[i]);
      } else {
        for (size_t j = 0; j < d; ++j) acc[j] += msg[j];
      }
    }
    for (size_t j = 0; j < d; ++j) {
      switch (mode_) {
        case Mode::kGd:
        case Mode::kNaive:
        case Mode::kEf14B:
          x[j] -= gamma_ * (acc[j] / n);
          break;
        case Mode::kEf14A:
          x[j] -= acc[j] / n;
          break;
        default:
          x[j] -= gamma_ * agg.h()[j];
      }
    }
    ++t;
    return absl::OkStatus();
  }

  const Quadratics& q_;
  Mode mode_;
  double gamma_;
  const Compressor* c_;
  const Compressor* dense_;
  FeedbackOptions opts_;

  std::vector<double> x;
  std::vector<FeedbackState> st;
  TrackerAggregate agg;
  std::vector<double> weight, scale;
  // Last round, per worker: gradient, decoded message, compressor input of the tracker
  // methods (eta e + v - h), and e before the step.
  std::vector<std::vector<double>> g, sent, u, e_before;
  uint64_t t = 0;
};

std::vector<double> Ones(size_t d) { return std::vector<double>(d, 1.0); }

// U8: with the identity compressor (float64 values) every method is uncompressed (S)GD with
// the same gradient draws.
TEST(ErrorFeedbackTest, U8IdentityCompressorGivesGd) {
  const size_t n = 4, d = 10;
  FT_COMPRESSOR_OR_SKIP(id, "identity", 0, d);
  for (double sigma : {0.0, 0.5}) {
    Quadratics q(n, d, sigma);
    const double gamma = 0.1;
    const int rounds = 200;
    LocalRun gd(q, Mode::kGd, gamma, 0, id.get(), id.get(), Ones(d));
    std::vector<std::vector<double>> ref;
    for (int t = 0; t < rounds; ++t) {
      ASSERT_THAT(gd.Round(), IsOk());
      ref.push_back(gd.x);
    }
    struct Case {
      Mode mode;
      double eta;
      const char* name;
    };
    for (const Case& k : {Case{Mode::kEf14A, 0, "ef14 A"}, Case{Mode::kEf14B, 0, "ef14 B"},
                          Case{Mode::kEf21, 0, "ef21"}, Case{Mode::kEf21W, 0, "ef21w"},
                          Case{Mode::kEControl, 0.0, "econtrol 0"},
                          Case{Mode::kEControl, 0.02, "econtrol 0.02"},
                          Case{Mode::kEControl, 0.5, "econtrol 0.5"},
                          Case{Mode::kEControl, 0.9, "econtrol 0.9"},
                          Case{Mode::kNaive, 0, "naive"}}) {
      LocalRun r(q, k.mode, gamma, k.eta, id.get(), id.get(), Ones(d));
      double worst = 0;
      for (int t = 0; t < rounds; ++t) {
        ASSERT_THAT(r.Round(), IsOk());
        worst = std::max(worst, Dist(r.x, ref[t]) / Norm(ref[t]));
      }
      // A few hundred rounding steps of ~1e-16 each, on a contracting iteration.
      EXPECT_LT(worst, 1e-12) << k.name << " sigma " << sigma;
    }
  }
}

// U9: server trackers equal the (weighted) mean of the worker trackers after 1000 rounds.
TEST(ErrorFeedbackTest, U9TrackerInvariants) {
  const size_t n = 4, d = 10;
  FT_COMPRESSOR_OR_SKIP(top1, "topk", 1, d);
  FT_COMPRESSOR_OR_SKIP(id, "identity", 0, d);
  Quadratics q(n, d, /*sigma=*/0.3);
  for (Mode mode : {Mode::kEf21, Mode::kEf21W, Mode::kEControl}) {
    LocalRun r(q, mode, 0.05, 0.05, top1.get(), id.get(), Ones(d));
    for (int t = 0; t < 1000; ++t) ASSERT_THAT(r.Round(), IsOk());
    std::vector<double> mean(d, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d; ++j) mean[j] += r.weight[i] * r.st[i].h[j];
    std::vector<double> h(r.agg.h().begin(), r.agg.h().end());
    // 1000 rounds of accumulation in two different orders (per worker vs per round).
    EXPECT_LT(Dist(h, mean), 1e-12 * Norm(mean)) << static_cast<int>(mode);
    for (size_t i = 0; i < n; ++i) EXPECT_TRUE(r.agg.initialised(i));
  }
}

// U10: EControl's virtual iterate x~ = x - gamma mean(e) follows SGD exactly, and
// e^{t+1} = (1 - eta) e^t + (u - C(u)).
TEST(ErrorFeedbackTest, U10EControlIdentities) {
  const size_t n = 4, d = 10;
  FT_COMPRESSOR_OR_SKIP(top2, "topk", 2, d);
  FT_COMPRESSOR_OR_SKIP(id, "identity", 0, d);
  Quadratics q(n, d, /*sigma=*/0.3);
  for (double eta : {0.0, 0.05, 0.2}) {
    const double gamma = 0.05;
    LocalRun r(q, Mode::kEControl, gamma, eta, top2.get(), id.get(), Ones(d));
    auto virtual_x = [&] {
      std::vector<double> xt = r.x;
      for (size_t i = 0; i < n; ++i)
        if (!r.st[i].e.empty())
          for (size_t j = 0; j < d; ++j) xt[j] -= gamma * r.st[i].e[j] / n;
      return xt;
    };
    double worst_x = 0, worst_e = 0;
    for (int t = 0; t < 300; ++t) {
      const std::vector<double> before = virtual_x();
      ASSERT_THAT(r.Round(), IsOk());
      std::vector<double> expect = before;
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < d; ++j) expect[j] -= gamma * r.g[i][j] / n;
      worst_x = std::max(worst_x, Dist(virtual_x(), expect) / Norm(expect));
      if (t == 0) continue;  // round 0 is the dense initialisation (e stays 0)
      for (size_t i = 0; i < n; ++i) {
        std::vector<double> e_expect(d);
        for (size_t j = 0; j < d; ++j)
          e_expect[j] = (1 - eta) * r.e_before[i][j] + (r.u[i][j] - r.sent[i][j]);
        worst_e = std::max(worst_e, Dist(r.st[i].e, e_expect) /
                                        std::max(1e-300, Norm(r.st[i].e) + Norm(r.u[i])));
      }
    }
    EXPECT_LT(worst_x, 1e-12) << "eta " << eta;
    EXPECT_LT(worst_e, 1e-12) << "eta " << eta;
  }
}

// U11: EControl(eta = 0) started from x_0 = x^0 - gamma g^0 with h_i^0 = grad f_i(x^0)
// reproduces EF21's x^1, x^2, ...
TEST(ErrorFeedbackTest, U11EControlEtaZeroIsEf21) {
  const size_t n = 4, d = 10;
  FT_COMPRESSOR_OR_SKIP(top1, "topk", 1, d);
  FT_COMPRESSOR_OR_SKIP(id, "identity", 0, d);
  Quadratics q(n, d);
  const double gamma = 0.1;
  LocalRun ef21(q, Mode::kEf21, gamma, 0, top1.get(), id.get(), Ones(d));
  std::vector<std::vector<double>> ref;  // x^1, x^2, ...
  for (int t = 0; t < 300; ++t) {
    ASSERT_THAT(ef21.Round(), IsOk());
    ref.push_back(ef21.x);
  }
  // EControl's own initialisation, done by hand: h_i^0 = grad f_i(x^0), dense, e_i^0 = 0.
  LocalRun ec(q, Mode::kEControl, gamma, 0.0, top1.get(), id.get(), ref[0]);
  std::vector<double> g(d);
  for (size_t i = 0; i < n; ++i) {
    q.Grad(i, Ones(d), 0, g.data());
    ec.st[i].h = g;
    ec.st[i].initialised = true;
    ASSERT_THAT(ec.agg.Check(i, /*dense=*/true), IsOk());
    ec.agg.Add(i, absl::Span<const double>(g), /*dense=*/true, 1.0 / n);
  }
  ec.t = 1;  // no noise here, the round number only keys the compressor's stream
  for (int t = 1; t < 300; ++t) {
    ASSERT_THAT(ec.Round(), IsOk());
    EXPECT_LT(Dist(ec.x, ref[t]), 1e-12 * Norm(ref[t])) << "round " << t;
  }
}

// U12: EF21-W with Top-K (positively homogeneous) has EF21's iterates at the same gamma.
TEST(ErrorFeedbackTest, U12Ef21WEqualsEf21ForTopK) {
  const size_t n = 4, d = 10;
  FT_COMPRESSOR_OR_SKIP(top2, "topk", 2, d);
  FT_COMPRESSOR_OR_SKIP(id, "identity", 0, d);
  Quadratics q(n, d);
  LocalRun a(q, Mode::kEf21, 0.1, 0, top2.get(), id.get(), Ones(d));
  LocalRun b(q, Mode::kEf21W, 0.1, 0, top2.get(), id.get(), Ones(d));
  ASSERT_NE(b.weight[0], b.weight[1]);  // the weights really differ
  for (int t = 0; t < 300; ++t) {
    ASSERT_THAT(a.Round(), IsOk());
    ASSERT_THAT(b.Round(), IsOk());
    ASSERT_LT(Dist(a.x, b.x), 1e-12 * Norm(a.x)) << "round " << t;
  }
}

// U13: EF14 form A (step inside) equals form B (step outside) for Top-K and a constant step.
TEST(ErrorFeedbackTest, U13Ef14FormsAgreeForTopK) {
  const size_t n = 4, d = 10;
  FT_COMPRESSOR_OR_SKIP(top1, "topk", 1, d);
  FT_COMPRESSOR_OR_SKIP(id, "identity", 0, d);
  Quadratics q(n, d);
  const double gamma = 0.05;
  LocalRun a(q, Mode::kEf14A, gamma, 0, top1.get(), id.get(), Ones(d));
  LocalRun b(q, Mode::kEf14B, gamma, 0, top1.get(), id.get(), Ones(d));
  for (int t = 0; t < 300; ++t) {
    ASSERT_THAT(a.Round(), IsOk());
    ASSERT_THAT(b.Round(), IsOk());
    ASSERT_LT(Dist(a.x, b.x), 1e-12 * Norm(a.x)) << "round " << t;
  }
  // e^A = gamma e^B.
  for (size_t j = 0; j < d; ++j) EXPECT_NEAR(a.st[0].e[j], gamma * b.st[0].e[j], 1e-12);
}

// U14: docs/compression.md §4.1. Naive Top-1 gives x^t = (1 + 11 gamma / 6)^t (1, 1, 1).
TEST(ErrorFeedbackTest, U14NaiveTop1DivergesGeometrically) {
  FT_COMPRESSOR_OR_SKIP(top1, "topk", 1, 3);
  const double a[3][3] = {{-3, 2, 2}, {2, -3, 2}, {2, 2, -3}};
  for (double gamma : {0.01, 0.1}) {
    std::vector<double> x = Ones(3), g(3), sent(3);
    for (int t = 1; t <= 50; ++t) {
      std::vector<double> acc(3, 0.0);
      for (int i = 0; i < 3; ++i) {
        const double ax = a[i][0] * x[0] + a[i][1] * x[1] + a[i][2] * x[2];
        for (int j = 0; j < 3; ++j) g[j] = 2 * a[i][j] * ax + 0.5 * x[j];
        FeedbackState st;
        Encoded out;
        RngStream rng = RngStream::For(1, t, i, Purpose::kCompression);
        ASSERT_THAT(FeedbackStep({}, *top1, *top1, g, rng, &st, &out, absl::MakeSpan(sent),
                                 nullptr),
                    IsOk());
        for (int j = 0; j < 3; ++j) acc[j] += sent[j];
      }
      for (int j = 0; j < 3; ++j) x[j] -= gamma * acc[j] / 3;
      const double expect = std::pow(1 + 11 * gamma / 6, t);
      for (int j = 0; j < 3; ++j) ASSERT_NEAR(x[j], expect, 1e-12 * expect) << "t " << t;
    }
  }
}

// U15: the EF21 theory constant.
TEST(ErrorFeedbackTest, U15Ef21TheoryStep) {
  EXPECT_NEAR(Ef21Xi(1.0 / 30), 58.4958, 5e-5);
  EXPECT_EQ(Ef21Xi(1.0), 0.0);
  const double delta = 0.02;
  EXPECT_NEAR(Ef21Xi(delta), 2 / delta - 1, 1.0);  // ~ 2/delta - 1 for small delta
  const double theta = 1 - std::sqrt(1 - delta), beta = (1 - delta) / theta;
  EXPECT_NEAR(Ef21Xi(delta), std::sqrt(beta / theta), 1e-12 * Ef21Xi(delta));
  EXPECT_DOUBLE_EQ(Ef21TheoryStep(2.0, 3.0, 1.0 / 30), 1.0 / (2.0 + 3.0 * Ef21Xi(1.0 / 30)));
}

TEST(ErrorFeedbackTest, ParseAndNames) {
  for (Feedback f : {Feedback::kNone, Feedback::kEf14, Feedback::kEf21, Feedback::kEf21W,
                     Feedback::kEControl}) {
    absl::StatusOr<Feedback> p = ParseFeedback(FeedbackName(f));
    ASSERT_THAT(p, IsOk());
    EXPECT_EQ(*p, f);
  }
  EXPECT_THAT(ParseFeedback("ef22"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("compression.feedback: unknown method 'ef22'; known: none")));
  EXPECT_FALSE(HasTracker(Feedback::kEf14));
  EXPECT_TRUE(HasTracker(Feedback::kEf21W));
  FeedbackOptions o;
  o.eta = 1.0;
  EXPECT_THAT(ValidateFeedbackOptions(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.eta")));
  o.eta = NAN;
  EXPECT_THAT(ValidateFeedbackOptions(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("compression.eta")));
  o.eta = -0.1;
  EXPECT_FALSE(ValidateFeedbackOptions(o).ok());
  o.eta = 0.99;
  EXPECT_THAT(ValidateFeedbackOptions(o), IsOk());
}

// Spec §2 rule: state is updated with the decoded message. The float32 identity rounds every
// value, so e = p - float(p) for EF14 and h = float(v) for EF21 (not v).
TEST(ErrorFeedbackTest, StateUsesDecodedMessage) {
  IdentityCompressor f32(3);
  const std::vector<double> v = {0.1, 1.0 / 3, -2.0 / 7};  // none is a float
  std::vector<double> sent(3);
  Encoded out;
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);

  FeedbackOptions ef14;
  ef14.method = Feedback::kEf14;
  FeedbackState s14;
  ASSERT_THAT(FeedbackStep(ef14, f32, f32, v, rng, &s14, &out, absl::MakeSpan(sent), nullptr),
              IsOk());
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(sent[j], static_cast<double>(static_cast<float>(v[j])));
    EXPECT_EQ(s14.e[j], v[j] - sent[j]);
    EXPECT_NE(s14.e[j], 0.0);
  }

  FeedbackOptions ef21;
  ef21.method = Feedback::kEf21;
  FeedbackState s21;
  bool dense = false;
  ASSERT_THAT(FeedbackStep(ef21, f32, f32, v, rng, &s21, &out, absl::MakeSpan(sent), &dense),
              IsOk());
  EXPECT_TRUE(dense);
  EXPECT_TRUE(s21.initialised);
  for (int j = 0; j < 3; ++j) EXPECT_EQ(s21.h[j], static_cast<double>(static_cast<float>(v[j])));
  ASSERT_THAT(FeedbackStep(ef21, f32, f32, v, rng, &s21, &out, absl::MakeSpan(sent), &dense),
              IsOk());
  EXPECT_FALSE(dense);

  // EControl's dense init keeps the initialisation's rounding in e (e + h = v).
  FeedbackOptions ec;
  ec.method = Feedback::kEControl;
  ec.eta = 0.1;
  FeedbackState sec;
  ASSERT_THAT(FeedbackStep(ec, f32, f32, v, rng, &sec, &out, absl::MakeSpan(sent), &dense),
              IsOk());
  EXPECT_TRUE(dense);
  for (int j = 0; j < 3; ++j) EXPECT_EQ(sec.e[j] + sec.h[j], v[j]);
}

// A compressor that scribbles over `decoded` and then fails: FeedbackStep must leave the
// state as it was.
class FailingCompressor final : public Compressor {
 public:
  explicit FailingCompressor(size_t d) : d_(d) {}
  std::string codec() const override { return "failing/1"; }
  size_t dim() const override { return d_; }
  CompressorInfo info() const override { return {}; }
  uint64_t PayloadBits() const override { return 0; }
  absl::Status Encode(ConstVec, RngStream&, Encoded*, Vec decoded) const override {
    for (float& f : decoded) f = 12345;
    return absl::InvalidArgumentError("failing/1 always fails");
  }
  absl::Status Encode(absl::Span<const double>, RngStream&, Encoded*,
                      absl::Span<double> decoded) const override {
    for (double& f : decoded) f = 12345;
    return absl::InvalidArgumentError("failing/1 always fails");
  }
  absl::Status Decode(const EncodedView&, Vec) const override { return absl::OkStatus(); }
  absl::Status Decode(const EncodedView&, absl::Span<double>) const override {
    return absl::OkStatus();
  }

 private:
  size_t d_;
};

void ExpectSameState(const FeedbackState& a, const FeedbackState& b) {
  EXPECT_EQ(a.e, b.e);
  EXPECT_EQ(a.h, b.h);
  EXPECT_EQ(a.initialised, b.initialised);
}

TEST(ErrorFeedbackTest, StateUnchangedOnError) {
  const size_t d = 3;
  FailingCompressor bad(d);
  IdentityCompressor good(d);
  const std::vector<double> v = {1, -2, 3};
  std::vector<double> sent(d);
  Encoded out;
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  for (Feedback f : {Feedback::kNone, Feedback::kEf14, Feedback::kEf21, Feedback::kEf21W,
                     Feedback::kEControl}) {
    FeedbackOptions o;
    o.method = f;
    o.eta = 0.1;
    SCOPED_TRACE(FeedbackName(f));
    FeedbackState st;
    st.e = {0.5, 0.25, -1};
    if (HasTracker(f)) {
      // Uninitialised: the dense codec fails.
      const FeedbackState before = st;
      EXPECT_THAT(FeedbackStep(o, good, bad, v, rng, &st, &out, absl::MakeSpan(sent), nullptr),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("always fails")));
      ExpectSameState(st, before);
      st.h = {1, 1, 1};
      st.initialised = true;
    }
    const FeedbackState before = st;
    EXPECT_THAT(FeedbackStep(o, bad, good, v, rng, &st, &out, absl::MakeSpan(sent), nullptr),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("always fails")));
    ExpectSameState(st, before);
    // Bad input is refused before anything is encoded.
    const std::vector<double> nan = {1, NAN, 3};
    EXPECT_THAT(FeedbackStep(o, good, good, nan, rng, &st, &out, absl::MakeSpan(sent), nullptr),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 1")));
    ExpectSameState(st, before);
    std::vector<double> short_sent(2);
    EXPECT_THAT(FeedbackStep(o, good, good, v, rng, &st, &out, absl::MakeSpan(short_sent),
                             nullptr),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("`sent` has 2")));
    ExpectSameState(st, before);
    const std::vector<double> longer = {1, 2, 3, 4};
    std::vector<double> sent4(4);
    EXPECT_THAT(FeedbackStep(o, good, good, longer, rng, &st, &out, absl::MakeSpan(sent4),
                             nullptr),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vector of 4")));
    ExpectSameState(st, before);
    FeedbackOptions bad_eta = o;
    bad_eta.eta = 1.5;
    EXPECT_THAT(FeedbackStep(bad_eta, good, good, v, rng, &st, &out, absl::MakeSpan(sent),
                             nullptr),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.eta")));
    ExpectSameState(st, before);
  }
  // A state vector of the wrong length.
  FeedbackOptions o;
  o.method = Feedback::kEf14;
  FeedbackState st;
  st.e = {1, 2};
  EXPECT_THAT(FeedbackStep(o, good, good, v, rng, &st, &out, absl::MakeSpan(sent), nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("state e has 2 values")));
  EXPECT_EQ(st.e.size(), 2u);
}

TEST(TrackerAggregateTest, DenseInitProtocol) {
  TrackerAggregate agg(2, 3, TrackerInit::kDense);
  EXPECT_EQ(agg.num_clients(), 3u);
  EXPECT_EQ(agg.dim(), 2u);
  EXPECT_THAT(agg.Check(3, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("client 3 is not one")));
  EXPECT_THAT(agg.Check(1, false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("client 1 sent a compressed tracker update before")));
  ASSERT_THAT(agg.Check(1, true), IsOk());
  const std::vector<double> m = {2, -4};
  agg.Add(1, absl::Span<const double>(m), true, 0.5);
  EXPECT_TRUE(agg.initialised(1));
  EXPECT_FALSE(agg.initialised(0));
  EXPECT_THAT(agg.Check(1, true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("client 1 sent a dense tracker initialisation but is "
                                 "already initialised")));
  ASSERT_THAT(agg.Check(1, false), IsOk());
  const std::vector<float> mf = {1.5f, 1.0f};
  agg.Add(1, ConstVec(mf), false, 0.5);
  EXPECT_EQ(agg.h()[0], 1.0 + 0.75);
  EXPECT_EQ(agg.h()[1], -2.0 + 0.5);
  // Checkpoint view.
  EXPECT_EQ(agg.mutable_h().size(), 2u);
  EXPECT_EQ(agg.mutable_initialised(), std::vector<bool>({false, true, false}));
}

TEST(TrackerAggregateTest, CompressedInitProtocol) {
  TrackerAggregate agg(2, 2, TrackerInit::kCompressed);
  EXPECT_THAT(agg.Check(0, true), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("client 0 sent a dense tracker message")));
  ASSERT_THAT(agg.Check(0, false), IsOk());
  const std::vector<double> m = {1, 1};
  agg.Add(0, absl::Span<const double>(m), false, 1.0);
  ASSERT_THAT(agg.Check(0, false), IsOk());
  EXPECT_TRUE(agg.initialised(0));

  // The worker side of the compressed init: the first message is C(v) and not dense.
  IdentityCompressor c(2);
  FeedbackOptions o;
  o.method = Feedback::kEf21;
  o.init = TrackerInit::kCompressed;
  FeedbackState st;
  std::vector<double> sent(2);
  Encoded out;
  bool dense = true;
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  const std::vector<double> v = {3, 4};
  ASSERT_THAT(FeedbackStep(o, c, c, v, rng, &st, &out, absl::MakeSpan(sent), &dense), IsOk());
  EXPECT_FALSE(dense);
  EXPECT_TRUE(st.initialised);
  EXPECT_EQ(st.h, v);
}

TEST(TrackerAggregateDeathTest, AddWithoutCheckCrashes) {
  TrackerAggregate agg(1, 1, TrackerInit::kDense);
  const std::vector<double> m = {1};
  EXPECT_DEATH(agg.Add(0, absl::Span<const double>(m), false, 1.0), "FT_CHECK");
}

}  // namespace
}  // namespace fedtrain
