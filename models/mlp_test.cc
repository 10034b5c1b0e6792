// Tests for models/mlp.h: layout, gradients against central finite differences (double),
// float trainer against the double template, Evaluate, InitParams and error messages.
#include "models/mlp.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/rng.h"
#include "data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<double> NormalVector(RngStream& rng, size_t n, double stddev) {
  std::vector<double> v(n);
  for (double& x : v) x = rng.Normal(0.0, stddev);
  return v;
}

std::vector<int32_t> RandomLabels(RngStream& rng, size_t n, size_t classes) {
  std::vector<int32_t> labels(n);
  for (int32_t& y : labels) y = static_cast<int32_t>(rng.UniformInt(classes));
  return labels;
}

using ::fedtrain::testing::RandomDataset;

// Independent plain-loop forward and backward pass in double, one sample at a time (no
// Eigen): returns the mean loss, its gradient in `grad` (when not null) and the smallest
// |pre-activation| of any hidden unit (how close the point is to a ReLU kink).
double ReferenceLoss(const MlpSpec& spec, const std::vector<double>& w,
                     const std::vector<double>& x, const std::vector<int32_t>& labels,
                     double* min_abs_preact, std::vector<double>* grad = nullptr) {
  const size_t n = labels.size();
  const size_t layers = spec.hidden.size() + 1;
  if (grad != nullptr) grad->assign(w.size(), 0.0);
  double loss = 0.0;
  *min_abs_preact = INFINITY;
  for (size_t i = 0; i < n; ++i) {
    // acts[l] is the input of layer l; offsets[l] where its weights start.
    std::vector<std::vector<double>> acts;
    std::vector<size_t> offsets;
    acts.emplace_back(x.begin() + i * spec.inputs, x.begin() + (i + 1) * spec.inputs);
    size_t offset = 0;
    for (size_t l = 0; l < layers; ++l) {
      const std::vector<double>& a = acts.back();
      const bool head = l + 1 == layers;
      const size_t out = head ? spec.classes : spec.hidden[l];
      std::vector<double> z(out);
      for (size_t o = 0; o < out; ++o) {
        double s = w[offset + a.size() * out + o];  // bias
        for (size_t k = 0; k < a.size(); ++k) s += w[offset + o * a.size() + k] * a[k];
        if (!head) *min_abs_preact = std::min(*min_abs_preact, std::fabs(s));
        z[o] = head ? s : std::max(s, 0.0);
      }
      offsets.push_back(offset);
      offset += a.size() * out + out;
      acts.push_back(std::move(z));
    }
    const std::vector<double>& logits = acts.back();
    const double m = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (double v : logits) sum += std::exp(v - m);
    loss += std::log(sum) + m - logits[labels[i]];
    if (grad == nullptr) continue;

    // delta = d(loss_i / n) / d(pre-activation of layer l), walking back from the head.
    std::vector<double> delta(logits.size());
    for (size_t c = 0; c < logits.size(); ++c) {
      delta[c] = (std::exp(logits[c] - m) / sum - (c == size_t(labels[i]) ? 1.0 : 0.0)) / n;
    }
    for (size_t l = layers; l-- > 0;) {
      const std::vector<double>& in = acts[l];
      const size_t out = delta.size();
      for (size_t o = 0; o < out; ++o) {
        double* row = grad->data() + offsets[l] + o * in.size();
        for (size_t k = 0; k < in.size(); ++k) row[k] += delta[o] * in[k];
        (*grad)[offsets[l] + in.size() * out + o] += delta[o];
      }
      if (l == 0) break;
      std::vector<double> prev(in.size(), 0.0);
      for (size_t k = 0; k < in.size(); ++k) {
        if (in[k] <= 0) continue;  // ReLU: in = max(z, 0) > 0 exactly where z > 0
        for (size_t o = 0; o < out; ++o) prev[k] += w[offsets[l] + o * in.size() + k] * delta[o];
      }
      delta = std::move(prev);
    }
  }
  return loss / n;
}

TEST(MlpLayoutTest, SegmentsInLayerOrder) {
  const ParamLayout layout = MlpLayout({4, {3}, 2});
  ASSERT_EQ(layout.segments().size(), 4u);
  EXPECT_EQ(layout.segments()[0].name, "fc0.weight");
  EXPECT_EQ(layout.segments()[0].shape, (std::vector<size_t>{3, 4}));
  EXPECT_EQ(layout.segments()[1].name, "fc0.bias");
  EXPECT_EQ(layout.segments()[1].offset, 12u);
  EXPECT_EQ(layout.segments()[2].name, "fc1.weight");
  EXPECT_EQ(layout.segments()[2].shape, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(layout.segments()[3].name, "fc1.bias");
  EXPECT_EQ(layout.segments()[3].offset, 21u);
  EXPECT_EQ(layout.dim(), 23u);
  EXPECT_EQ(MlpLayout({784, {200}, 10}).dim(), 159010u);
  EXPECT_EQ(MlpLayout({784, {}, 10}).dim(), 7850u);
}

// Central differences f'(w) ~ (f(w+h) - f(w-h)) / 2h with h = 1e-6 on a loss of order 1:
// truncation error O(h^2 f''') ~ 1e-12, rounding error ~ eps * |f| / h ~ 1e-10. A tolerance
// of 1e-7 (absolute, or relative for entries above 1) is far above both and far below any
// real gradient bug.
void ExpectGradientMatchesFiniteDifferences(const MlpSpec& spec, uint64_t seed, size_t n) {
  RngStream rng = RngStream::For(seed, 0, 0, Purpose::kTest);
  const size_t dim = MlpLayout(spec).dim();
  std::vector<double> w = NormalVector(rng, dim, 0.7);
  const std::vector<double> x = NormalVector(rng, n * spec.inputs, 1.0);
  const std::vector<int32_t> labels = RandomLabels(rng, n, spec.classes);

  constexpr double kH = 1e-6;
  double margin;
  std::vector<double> ref_grad;
  const double ref = ReferenceLoss(spec, w, x, labels, &margin, &ref_grad);
  // Each perturbation moves a pre-activation by about h * |w| * |x| << 1e-3, so with this
  // margin no ReLU changes side and the loss is smooth on [w - h, w + h].
  ASSERT_GT(margin, 1e-3) << "pick another seed: a pre-activation is near a ReLU kink";

  std::vector<double> grad(dim);
  const double loss =
      MlpLossAndGradient<double>(spec, w.data(), x.data(), labels.data(), n, grad.data());
  // The plain-loop reference: same maths, different summation order (double rounding only).
  // Checking it here against finite differences too lets the blocked-product test below
  // trust it at sizes where finite differences would be slow and cross ReLU kinks.
  EXPECT_NEAR(loss, ref, 1e-12);
  for (size_t j = 0; j < dim; ++j) EXPECT_NEAR(grad[j], ref_grad[j], 1e-12) << "parameter " << j;

  std::vector<double> scratch(dim);
  for (size_t j = 0; j < dim; ++j) {
    const double w0 = w[j];
    w[j] = w0 + kH;
    const double up =
        MlpLossAndGradient<double>(spec, w.data(), x.data(), labels.data(), n, scratch.data());
    w[j] = w0 - kH;
    const double down =
        MlpLossAndGradient<double>(spec, w.data(), x.data(), labels.data(), n, scratch.data());
    w[j] = w0;
    const double fd = (up - down) / (2 * kH);
    EXPECT_NEAR(grad[j], fd, 1e-7 * std::max(1.0, std::fabs(fd))) << "parameter " << j;
  }
}

TEST(MlpGradientTest, SoftmaxRegressionMatchesFiniteDifferences) {
  ExpectGradientMatchesFiniteDifferences({5, {}, 4}, /*seed=*/1, /*n=*/7);
}

TEST(MlpGradientTest, TwoHiddenLayersMatchFiniteDifferences) {
  ExpectGradientMatchesFiniteDifferences({4, {6, 5}, 3}, /*seed=*/2, /*n=*/5);
}

// Float Trainer::Gradient on a gathered minibatch against the double template on the same
// rows (converted exactly to double).
void ExpectFloatMatchesDouble(const MlpSpec& spec, uint64_t seed,
                              const std::vector<uint32_t>& idx, size_t samples) {
  const Dataset data = RandomDataset(seed, samples, spec.inputs, spec.classes);
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  std::vector<float> w(trainer->dim());
  RngStream init = RngStream::For(seed, 0, 0, Purpose::kModelInit);
  trainer->InitParams(init, absl::MakeSpan(w));
  // Non-zero biases so their gradients flow through the check too.
  for (const Segment& s : trainer->layout().segments()) {
    if (s.shape.size() == 1) {
      for (size_t j = 0; j < s.size(); ++j) w[s.offset + j] = 0.01f * static_cast<float>(j % 10);
    }
  }

  std::vector<float> grad(trainer->dim());
  FT_ASSERT_OK_AND_ASSIGN(double loss,
                          trainer->Gradient(w, Batch{&data, idx}, absl::MakeSpan(grad)));

  std::vector<double> wd(w.begin(), w.end());
  std::vector<double> xd;
  std::vector<int32_t> labels;
  for (uint32_t i : idx) {
    for (float v : data.row(i)) xd.push_back(v);
    labels.push_back(data.labels[i]);
  }
  std::vector<double> gd(wd.size());
  const double loss_d = MlpLossAndGradient<double>(spec, wd.data(), xd.data(), labels.data(),
                                                   idx.size(), gd.data());
  // Float has eps ~ 6e-8; entries are sums of up to a few hundred O(1) products, so errors
  // stay below ~1e-6 of the gradient's scale. 1e-5 of that scale leaves room without hiding a
  // bug (a wrong term moves entries by O(scale)).
  double scale = 1.0;
  for (double g : gd) scale = std::max(scale, std::fabs(g));
  EXPECT_NEAR(loss, loss_d, 1e-5 * std::max(1.0, loss_d));
  for (size_t j = 0; j < gd.size(); ++j) {
    ASSERT_NEAR(grad[j], gd[j], 1e-5 * scale) << "parameter " << j;
  }
}

TEST(MlpGradientTest, FloatTrainerAgreesWithDoubleTemplate) {
  ExpectFloatMatchesDouble({6, {8}, 4}, 3, {3, 0, 17, 9, 9, 12, 5}, 20);  // repeats allowed
}

TEST(MlpGradientTest, BlockedProductsMatchPlainLoopsAndFloat) {
  // Inner dimensions above the 128 block of mlp.cc's Product: 300 inputs, a 150-row batch,
  // a 140-wide hidden layer feeding back through a 130-wide one.
  std::vector<uint32_t> idx(150);
  for (uint32_t i = 0; i < idx.size(); ++i) idx[i] = (7 * i) % 160;
  const MlpSpec spec{300, {140, 130}, 5};
  ExpectFloatMatchesDouble(spec, 4, idx, 160);

  // Both sides of that check share Product(); this one checks the double template itself
  // against the plain loops of ReferenceLoss on the same sizes.
  RngStream rng = RngStream::For(4, 1, 0, Purpose::kTest);
  const size_t dim = MlpLayout(spec).dim();
  const std::vector<double> w = NormalVector(rng, dim, 0.1);
  const std::vector<double> x = NormalVector(rng, idx.size() * spec.inputs, 1.0);
  const std::vector<int32_t> labels = RandomLabels(rng, idx.size(), spec.classes);
  double margin;
  std::vector<double> ref_grad;
  const double ref = ReferenceLoss(spec, w, x, labels, &margin, &ref_grad);
  std::vector<double> grad(dim);
  const double loss = MlpLossAndGradient<double>(spec, w.data(), x.data(), labels.data(),
                                                 idx.size(), grad.data());
  // Same maths in a different summation order: double rounding, ~1e-15 per term over sums
  // of a few hundred terms.
  EXPECT_NEAR(loss, ref, 1e-12);
  double scale = 0.0;
  for (double g : ref_grad) scale = std::max(scale, std::fabs(g));
  for (size_t j = 0; j < dim; ++j) {
    ASSERT_NEAR(grad[j], ref_grad[j], 1e-12 * scale) << "parameter " << j;
  }
}

TEST(MlpGradientTest, CloneAndRepeatedCallsAreBitIdentical) {
  const MlpSpec spec{10, {7}, 3};
  const Dataset data = RandomDataset(4, 50, spec.inputs, spec.classes);
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  std::vector<float> w(trainer->dim());
  RngStream init = RngStream::For(4, 0, 0, Purpose::kModelInit);
  trainer->InitParams(init, absl::MakeSpan(w));
  std::vector<uint32_t> small = {1, 2, 3};
  std::vector<uint32_t> big(40);
  std::iota(big.begin(), big.end(), 5u);

  std::vector<float> g1(w.size()), g2(w.size()), g3(w.size());
  FT_ASSERT_OK(trainer->Gradient(w, Batch{&data, small}, absl::MakeSpan(g1)));
  // A bigger batch in between grows the scratch; the small batch must not notice.
  FT_ASSERT_OK(trainer->Gradient(w, Batch{&data, big}, absl::MakeSpan(g2)));
  FT_ASSERT_OK(trainer->Gradient(w, Batch{&data, small}, absl::MakeSpan(g2)));
  std::unique_ptr<Trainer> clone = trainer->Clone();
  FT_ASSERT_OK(clone->Gradient(w, Batch{&data, small}, absl::MakeSpan(g3)));
  EXPECT_EQ(g1, g2);
  EXPECT_EQ(g1, g3);
  EXPECT_EQ(clone->description(), "mlp:10-7-3");
}

TEST(MlpEvaluateTest, HandBuiltModelAccuracyAndLossExactly) {
  // Softmax regression 2 -> 2 with W = I, b = 0: predicts the larger feature.
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer({2, {}, 2}));
  const std::vector<float> w = {1, 0, 0, 1, 0, 0};
  Dataset data;
  data.num_features = 2;
  data.num_classes = 2;
  data.features = {2, 0, 0, 3, 1, 0, 0, 1, 5, 5};
  data.labels = {0, 1, 1, 1, 0};  // right, right, wrong, right, tie -> class 0: right
  FT_ASSERT_OK_AND_ASSIGN(EvalMetrics m, trainer->Evaluate(w, DataView::All(data)));
  EXPECT_EQ(m.count, 5u);
  EXPECT_EQ(m.accuracy, 0.8);
  // Two classes: loss = log(1 + exp(z_other - z_label)).
  const double expected = (std::log1p(std::exp(-2.0)) + std::log1p(std::exp(-3.0)) +
                           std::log1p(std::exp(1.0)) + std::log1p(std::exp(-1.0)) +
                           std::log(2.0)) / 5;
  EXPECT_NEAR(m.loss, expected, 1e-6);  // float log-sum-exp: ~1e-7 per sample

  const std::vector<uint32_t> idx = {2, 2, 0};
  FT_ASSERT_OK_AND_ASSIGN(EvalMetrics sub, trainer->Evaluate(w, DataView::Of(data, idx)));
  EXPECT_EQ(sub.count, 3u);
  EXPECT_EQ(sub.accuracy, 1.0 / 3.0);

  FT_ASSERT_OK_AND_ASSIGN(EvalMetrics empty, trainer->Evaluate(w, DataView::Of(data, {})));
  EXPECT_EQ(empty.count, 0u);
}

TEST(MlpEvaluateTest, ChunkedLossIsMeanOfPerSampleLosses) {
  // 2500 samples: three chunks of the 1024-row evaluation, the last one partial.
  const MlpSpec spec{8, {16}, 5};
  const Dataset data = RandomDataset(5, 2500, spec.inputs, spec.classes);
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  std::vector<float> w(trainer->dim());
  RngStream init = RngStream::For(5, 0, 0, Purpose::kModelInit);
  trainer->InitParams(init, absl::MakeSpan(w));

  FT_ASSERT_OK_AND_ASSIGN(EvalMetrics all, trainer->Evaluate(w, DataView::All(data)));
  std::vector<uint32_t> idx(data.size());
  std::iota(idx.begin(), idx.end(), 0u);
  FT_ASSERT_OK_AND_ASSIGN(EvalMetrics gathered, trainer->Evaluate(w, DataView::Of(data, idx)));
  EXPECT_EQ(all.loss, gathered.loss);  // same rows, same chunks: identical arithmetic
  EXPECT_EQ(all.accuracy, gathered.accuracy);

  double loss_sum = 0.0;
  double correct = 0.0;
  for (uint32_t i = 0; i < data.size(); ++i) {
    FT_ASSERT_OK_AND_ASSIGN(EvalMetrics one, trainer->Evaluate(w, DataView::Of(data, {&i, 1})));
    loss_sum += one.loss;
    correct += one.accuracy;
  }
  EXPECT_EQ(all.count, 2500u);
  // Per-sample losses in float (~1e-7 relative each) summed in double.
  EXPECT_NEAR(all.loss, loss_sum / 2500, 1e-6);
  EXPECT_EQ(all.accuracy, correct / 2500);
}

TEST(MlpInitTest, DeterministicBoundedZeroBias) {
  const MlpSpec spec{50, {20}, 10};
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  std::vector<float> a(trainer->dim()), b(trainer->dim()), c(trainer->dim());
  RngStream r1 = RngStream::For(7, 0, 0, Purpose::kModelInit);
  RngStream r2 = RngStream::For(7, 0, 0, Purpose::kModelInit);
  RngStream r3 = RngStream::For(8, 0, 0, Purpose::kModelInit);
  trainer->InitParams(r1, absl::MakeSpan(a));
  trainer->InitParams(r2, absl::MakeSpan(b));
  trainer->InitParams(r3, absl::MakeSpan(c));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (const Segment& s : trainer->layout().segments()) {
    const bool bias = s.shape.size() == 1;
    const double bound = bias ? 0.0 : 1.0 / std::sqrt(static_cast<double>(s.shape[1]));
    double max_abs = 0.0;
    for (size_t j = 0; j < s.size(); ++j) {
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(a[s.offset + j])));
    }
    EXPECT_LE(max_abs, bound * (1 + 1e-6)) << s.name;  // float rounding of the draw
    if (!bias) {
      EXPECT_GT(max_abs, 0.9 * bound) << s.name;  // fills the range
    }
  }
  EXPECT_EQ(trainer->description(), "mlp:50-20-10");
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> softmax, MakeMlpTrainer({60, {}, 10}));
  EXPECT_EQ(softmax->description(), "softmax:60-10");
}

TEST(MlpErrorsTest, MismatchesNameTheSizes) {
  const MlpSpec spec{4, {3}, 2};
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  const Dataset data = RandomDataset(6, 5, 4, 2);
  const std::vector<uint32_t> idx = {0, 1};
  std::vector<float> w(trainer->dim()), grad(trainer->dim());
  std::vector<float> short_w(10);

  EXPECT_THAT(trainer->Gradient(short_w, Batch{&data, idx}, absl::MakeSpan(grad)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("weights have 10 floats; model has 23")));
  std::vector<float> short_grad(22);
  EXPECT_THAT(trainer->Gradient(w, Batch{&data, idx}, absl::MakeSpan(short_grad)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("gradient buffer has 22 floats; model has 23")));
  EXPECT_THAT(trainer->Evaluate(short_w, DataView::All(data)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("weights have 10 floats; model has 23")));

  const Dataset wide = RandomDataset(6, 5, 7, 2);
  EXPECT_THAT(trainer->Gradient(w, Batch{&wide, idx}, absl::MakeSpan(grad)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("data set has 7 features; model expects 4 inputs")));
  EXPECT_THAT(trainer->Evaluate(w, DataView::All(wide)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("7 features")));

  Dataset bad_label = data;
  bad_label.labels[1] = 2;
  EXPECT_THAT(trainer->Gradient(w, Batch{&bad_label, idx}, absl::MakeSpan(grad)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample 1 has label 2; model has 2 classes")));
  EXPECT_THAT(trainer->Evaluate(w, DataView::All(bad_label)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label 2")));
  bad_label.labels[1] = -1;
  EXPECT_THAT(trainer->Evaluate(w, DataView::Of(bad_label, idx)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label -1")));

  const std::vector<uint32_t> out_of_range = {0, 5};
  EXPECT_THAT(trainer->Gradient(w, Batch{&data, out_of_range}, absl::MakeSpan(grad)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sample index 5 out of range; data set has 5 samples")));
  EXPECT_THAT(trainer->Gradient(w, Batch{&data, {}}, absl::MakeSpan(grad)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty batch")));
}

TEST(MlpErrorsTest, BadSpecNamesTheField) {
  EXPECT_THAT(MakeMlpTrainer({0, {}, 10}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.inputs")));
  EXPECT_THAT(MakeMlpTrainer({10, {}, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.classes")));
  EXPECT_THAT(MakeMlpTrainer({10, {5, 0}, 3}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.hidden[1]")));
}

}  // namespace
}  // namespace fedtrain
