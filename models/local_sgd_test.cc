// Tests for models/local_sgd.h: step counts, minibatch order, the per-step formula (clip,
// weight decay, hook, momentum) on small exact examples, determinism, option errors, and a
// learnability check of softmax regression.
#include "models/local_sgd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <vector>

#include "core/rng.h"
#include "data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_data.h"
#include "models/mlp.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

// Loss 0.5 * ||y - target||^2 whatever the batch, so the gradient is y - target exactly in
// float; records the batches it was asked for.
class QuadraticTrainer final : public Trainer {
 public:
  explicit QuadraticTrainer(std::vector<float> target) : target_(std::move(target)) {
    layout_.Add("y", {target_.size()});
  }
  size_t dim() const override { return target_.size(); }
  const ParamLayout& layout() const override { return layout_; }
  std::string description() const override { return "quadratic"; }
  void InitParams(RngStream&, Vec w) const override { std::fill(w.begin(), w.end(), 0.0f); }
  absl::StatusOr<double> Gradient(ConstVec w, const Batch& b, Vec grad) override {
    batches.emplace_back(b.indices.begin(), b.indices.end());
    double loss = 0.0;
    for (size_t j = 0; j < w.size(); ++j) {
      grad[j] = w[j] - target_[j];
      loss += 0.5 * grad[j] * grad[j];
    }
    return loss;
  }
  absl::StatusOr<EvalMetrics> Evaluate(ConstVec, const DataView&) override {
    return EvalMetrics{};
  }
  std::unique_ptr<Trainer> Clone() const override {
    return std::make_unique<QuadraticTrainer>(target_);
  }

  std::vector<std::vector<uint32_t>> batches;

 private:
  std::vector<float> target_;
  ParamLayout layout_;
};

using ::fedtrain::testing::RandomDataset;

RngStream MinibatchRng(uint64_t client) {
  return RngStream::For(11, 0, client, Purpose::kMinibatch);
}

TEST(LocalSgdTest, FullBatchStepIsGradientStepBitwise) {
  const MlpSpec spec{6, {5}, 3};
  const Dataset data = RandomDataset(1, 9, spec.inputs, spec.classes);
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  std::vector<float> w0(trainer->dim());
  RngStream init = RngStream::For(1, 0, 0, Purpose::kModelInit);
  trainer->InitParams(init, absl::MakeSpan(w0));

  LocalSgdOptions opts;
  opts.lr = 0.3;
  opts.steps = 1;
  opts.batch_size = 9;  // B = n: the one batch is the whole set, in shuffled order
  std::vector<float> w = w0;
  RngStream rng = MinibatchRng(0);
  FT_ASSERT_OK_AND_ASSIGN(LocalSgdResult r,
                          RunLocalSgd(*trainer, DataView::All(data), opts, rng,
                                      absl::MakeSpan(w)));
  EXPECT_EQ(r.steps, 1);
  EXPECT_EQ(r.samples_seen, 9);

  // The same batch in the same order (RngStream is deterministic) gives the same gradient.
  std::vector<uint32_t> perm(9);
  std::iota(perm.begin(), perm.end(), 0u);
  RngStream replay = MinibatchRng(0);
  replay.Shuffle(absl::MakeSpan(perm));
  std::vector<float> grad(w0.size());
  FT_ASSERT_OK_AND_ASSIGN(double loss,
                          trainer->Gradient(w0, Batch{&data, perm}, absl::MakeSpan(grad)));
  EXPECT_EQ(r.mean_loss, loss);
  const float lr = static_cast<float>(opts.lr);
  for (size_t j = 0; j < w.size(); ++j) {
    EXPECT_EQ(w[j], w0[j] - lr * grad[j]) << "parameter " << j;
  }
}

TEST(LocalSgdTest, EpochModeRunsEpochsTimesCeilBatches) {
  QuadraticTrainer trainer({1, 2});
  const Dataset data = RandomDataset(2, 30, 1, 2);
  // A view over 10 of the 30 samples: batches must hold these data set indices.
  std::vector<uint32_t> idx;
  for (uint32_t i = 0; i < 10; ++i) idx.push_back(3 * i + 1);
  LocalSgdOptions opts;
  opts.epochs = 2;
  opts.batch_size = 3;
  std::vector<float> w = {0, 0};
  RngStream rng = MinibatchRng(0);
  FT_ASSERT_OK_AND_ASSIGN(LocalSgdResult r, RunLocalSgd(trainer, DataView::Of(data, idx), opts,
                                                        rng, absl::MakeSpan(w)));
  EXPECT_EQ(r.steps, 8);  // 2 * ceil(10 / 3)
  EXPECT_EQ(r.samples_seen, 20);
  ASSERT_EQ(trainer.batches.size(), 8u);
  std::vector<size_t> sizes;
  for (const auto& b : trainer.batches) sizes.push_back(b.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 3, 1, 3, 3, 3, 1}));
  // Each epoch visits every sample of the view exactly once, and the two orders differ.
  std::vector<uint32_t> epoch[2];
  for (int e = 0; e < 2; ++e) {
    for (int k = 0; k < 4; ++k) {
      const auto& b = trainer.batches[4 * e + k];
      epoch[e].insert(epoch[e].end(), b.begin(), b.end());
    }
    std::vector<uint32_t> sorted = epoch[e];
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, idx) << "epoch " << e;
  }
  EXPECT_NE(epoch[0], epoch[1]);
  EXPECT_NE(epoch[0], idx);  // shuffled
}

TEST(LocalSgdTest, StepModeRunsExactlyStepsWithReshuffles) {
  QuadraticTrainer trainer({1, 2});
  const Dataset data = RandomDataset(3, 10, 1, 2);
  LocalSgdOptions opts;
  opts.steps = 7;
  opts.epochs = 5;  // ignored: steps wins
  opts.batch_size = 4;
  std::vector<float> w = {0, 0};
  RngStream rng = MinibatchRng(0);
  FT_ASSERT_OK_AND_ASSIGN(LocalSgdResult r, RunLocalSgd(trainer, DataView::All(data), opts,
                                                        rng, absl::MakeSpan(w)));
  EXPECT_EQ(r.steps, 7);
  EXPECT_EQ(r.samples_seen, 28);
  ASSERT_EQ(trainer.batches.size(), 7u);
  // n = 10, B = 4: two full batches per permutation (2 left over < 4 -> reshuffle), so
  // batches (0,1), (2,3), (4,5) are disjoint slices of one permutation each.
  for (int p = 0; p < 3; ++p) {
    std::set<uint32_t> seen(trainer.batches[2 * p].begin(), trainer.batches[2 * p].end());
    seen.insert(trainer.batches[2 * p + 1].begin(), trainer.batches[2 * p + 1].end());
    EXPECT_EQ(seen.size(), 8u) << "permutation " << p;
  }
  for (const auto& b : trainer.batches) EXPECT_EQ(b.size(), 4u);

  // B > n: every step is the whole data set.
  QuadraticTrainer big({1, 2});
  opts.steps = 3;
  opts.batch_size = 16;
  RngStream rng2 = MinibatchRng(0);
  FT_ASSERT_OK_AND_ASSIGN(r, RunLocalSgd(big, DataView::All(data), opts, rng2,
                                         absl::MakeSpan(w)));
  EXPECT_EQ(r.steps, 3);
  EXPECT_EQ(r.samples_seen, 30);
  for (const auto& b : big.batches) EXPECT_EQ(b.size(), 10u);
}

TEST(LocalSgdTest, SameKeyBitIdenticalDifferentKeyDifferent) {
  const MlpSpec spec{8, {6}, 3};
  const Dataset data = RandomDataset(4, 40, spec.inputs, spec.classes);
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  std::vector<float> w0(trainer->dim());
  RngStream init = RngStream::For(4, 0, 0, Purpose::kModelInit);
  trainer->InitParams(init, absl::MakeSpan(w0));
  LocalSgdOptions opts;
  opts.lr = 0.1;
  opts.epochs = 2;
  opts.batch_size = 7;
  opts.momentum = 0.9;
  opts.weight_decay = 1e-3;
  opts.clip_norm = 1.0;

  auto run = [&](uint64_t client, Trainer& t) {
    std::vector<float> w = w0;
    RngStream rng = MinibatchRng(client);
    EXPECT_THAT(RunLocalSgd(t, DataView::All(data), opts, rng, absl::MakeSpan(w)),
                ::fedtrain::testing::IsOk());
    return w;
  };
  std::unique_ptr<Trainer> clone = trainer->Clone();
  const std::vector<float> a = run(0, *trainer);
  const std::vector<float> b = run(0, *clone);
  const std::vector<float> c = run(1, *trainer);
  EXPECT_EQ(HashFloats(a), HashFloats(b));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(LocalSgdTest, MomentumTwoSteps) {
  QuadraticTrainer trainer({1.0f, -2.0f, 0.5f});
  const Dataset data = RandomDataset(5, 4, 1, 2);
  LocalSgdOptions opts;
  opts.lr = 0.25;
  opts.steps = 2;
  opts.batch_size = 2;
  opts.momentum = 0.5;
  std::vector<float> w = {0.0f, 1.0f, 3.0f};
  const std::vector<float> y0 = w;
  RngStream rng = MinibatchRng(0);
  FT_ASSERT_OK_AND_ASSIGN(LocalSgdResult r, RunLocalSgd(trainer, DataView::All(data), opts,
                                                        rng, absl::MakeSpan(w)));
  EXPECT_EQ(r.steps, 2);
  // m1 = g0, y1 = y0 - lr g0; m2 = mu m1 + g1, y2 = y1 - lr m2 (same float ops).
  const std::vector<float> target = {1.0f, -2.0f, 0.5f};
  const float lr = 0.25f, mu = 0.5f;
  for (size_t j = 0; j < 3; ++j) {
    const float g0 = y0[j] - target[j];
    const float m1 = mu * 0.0f + g0;
    const float y1 = y0[j] - lr * m1;
    const float g1 = y1 - target[j];
    const float m2 = mu * m1 + g1;
    EXPECT_EQ(w[j], y1 - lr * m2) << j;
  }
}

TEST(LocalSgdTest, WeightDecayAddsToGradient) {
  QuadraticTrainer trainer({1.0f, -2.0f});
  const Dataset data = RandomDataset(6, 4, 1, 2);
  LocalSgdOptions opts;
  opts.lr = 0.5;
  opts.steps = 1;
  opts.weight_decay = 0.1;
  std::vector<float> w = {3.0f, 4.0f};
  RngStream rng = MinibatchRng(0);
  FT_ASSERT_OK(RunLocalSgd(trainer, DataView::All(data), opts, rng, absl::MakeSpan(w)));
  // y1 = y0 - lr (g + wd y0), g = y0 - target.
  EXPECT_EQ(w[0], 3.0f - 0.5f * ((3.0f - 1.0f) + 0.1f * 3.0f));
  EXPECT_EQ(w[1], 4.0f - 0.5f * ((4.0f + 2.0f) + 0.1f * 4.0f));
}

TEST(LocalSgdTest, ClippingScalesLossGradientOnlyAboveTheNorm) {
  const Dataset data = RandomDataset(7, 4, 1, 2);
  LocalSgdOptions opts;
  opts.lr = 1.0;
  opts.steps = 1;
  opts.clip_norm = 1.0;
  opts.weight_decay = 0.5;
  {
    // g = (3, 4), norm 5 -> g = (0.6, 0.8); weight decay is added after the clip.
    QuadraticTrainer trainer({0.0f, 0.0f});
    std::vector<float> w = {3.0f, 4.0f};
    RngStream rng = MinibatchRng(0);
    FT_ASSERT_OK(RunLocalSgd(trainer, DataView::All(data), opts, rng, absl::MakeSpan(w)));
    const float s = static_cast<float>(1.0 / 5.0);
    EXPECT_EQ(w[0], 3.0f - (3.0f * s + 0.5f * 3.0f));
    EXPECT_EQ(w[1], 4.0f - (4.0f * s + 0.5f * 4.0f));
    EXPECT_FLOAT_EQ(w[0], 3.0f - 0.6f - 1.5f);
  }
  {
    // g = (0.3, 0.4), norm 0.5 <= 1: untouched.
    QuadraticTrainer trainer({0.0f, 0.0f});
    std::vector<float> w = {0.3f, 0.4f};
    RngStream rng = MinibatchRng(0);
    FT_ASSERT_OK(RunLocalSgd(trainer, DataView::All(data), opts, rng, absl::MakeSpan(w)));
    EXPECT_EQ(w[0], 0.3f - (0.3f + 0.5f * 0.3f));
    EXPECT_EQ(w[1], 0.4f - (0.4f + 0.5f * 0.4f));
  }
}

TEST(LocalSgdTest, HookSeesIterateAndItsCorrectionIsApplied) {
  QuadraticTrainer trainer({1.0f, 2.0f});
  const Dataset data = RandomDataset(8, 4, 1, 2);
  LocalSgdOptions opts;
  opts.lr = 0.5;
  opts.steps = 2;
  opts.weight_decay = 0.25;
  std::vector<float> w = {0.0f, 0.0f};
  std::vector<std::vector<float>> seen_y, seen_grad;
  // A FedProx-like correction: + mu (y - x) with x = (0, 0), mu = 2.
  const GradientHook hook = [&](ConstVec y, Vec grad) {
    seen_y.emplace_back(y.begin(), y.end());
    seen_grad.emplace_back(grad.begin(), grad.end());
    for (size_t j = 0; j < grad.size(); ++j) grad[j] += 2.0f * y[j];
  };
  RngStream rng = MinibatchRng(0);
  FT_ASSERT_OK(RunLocalSgd(trainer, DataView::All(data), opts, rng, absl::MakeSpan(w), hook));
  ASSERT_EQ(seen_y.size(), 2u);
  const std::vector<float> target = {1.0f, 2.0f};
  std::vector<float> y = {0.0f, 0.0f};
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(seen_y[k], y) << "step " << k;
    for (size_t j = 0; j < 2; ++j) {
      const float g = (y[j] - target[j]) + 0.25f * y[j];  // hook sees the decayed gradient
      EXPECT_EQ(seen_grad[k][j], g);
      y[j] = y[j] - 0.5f * (g + 2.0f * y[j]);
    }
  }
  EXPECT_EQ(w, y);
}

TEST(LocalSgdTest, BadOptionsNameTheOption) {
  QuadraticTrainer trainer({1.0f});
  const Dataset data = RandomDataset(9, 4, 1, 2);
  std::vector<float> w = {0.0f};
  auto run = [&](const LocalSgdOptions& o) {
    RngStream rng = MinibatchRng(0);
    return RunLocalSgd(trainer, DataView::All(data), o, rng, absl::MakeSpan(w));
  };
  LocalSgdOptions o;
  o.lr = -1;
  EXPECT_THAT(run(o), StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("local.lr must be > 0, got -1")));
  o = {};
  o.lr = NAN;
  EXPECT_THAT(run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lr")));
  o = {};
  o.batch_size = 0;
  EXPECT_THAT(run(o), StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("local.batch_size must be > 0, got 0")));
  o = {};
  o.steps = 0;
  o.epochs = 0;
  EXPECT_THAT(run(o), StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("local.steps or local.epochs")));
  o = {};
  o.steps = -3;
  EXPECT_THAT(run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.steps")));
  o = {};
  o.momentum = 1.0;
  EXPECT_THAT(run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.momentum")));
  o = {};
  o.weight_decay = -0.1;
  EXPECT_THAT(run(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.weight_decay")));
  o = {};
  o.clip_norm = -1;
  EXPECT_THAT(run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.clip_norm")));

  RngStream rng = MinibatchRng(0);
  EXPECT_THAT(RunLocalSgd(trainer, DataView::Of(data, {}), {}, rng, absl::MakeSpan(w)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local data is empty")));
  std::vector<float> wrong(2);
  EXPECT_THAT(RunLocalSgd(trainer, DataView::All(data), {}, rng, absl::MakeSpan(wrong)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("weights have 2 floats; model has 1")));
}

TEST(LocalSgdTest, ErrorFromTrainerIsReturned) {
  const MlpSpec spec{3, {}, 2};
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer, MakeMlpTrainer(spec));
  Dataset data = RandomDataset(10, 5, 3, 2);
  data.labels[2] = 7;
  std::vector<float> w(trainer->dim());
  LocalSgdOptions opts;
  opts.batch_size = 5;
  RngStream rng = MinibatchRng(0);
  EXPECT_THAT(RunLocalSgd(*trainer, DataView::All(data), opts, rng, absl::MakeSpan(w)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label 7")));
}

TEST(LocalSgdTest, SoftmaxRegressionLearnsSeparableData) {
  // 300 points in 5-D labelled by a random linear teacher, keeping only points whose top
  // logit wins by a margin, so the set is linearly separable.
  constexpr size_t kDim = 5, kClasses = 3, kSamples = 300;
  RngStream rng = RngStream::For(12, 0, 0, Purpose::kTest);
  std::vector<double> teacher(kDim * kClasses);
  for (double& t : teacher) t = rng.Normal();
  Dataset data;
  data.num_features = kDim;
  data.num_classes = kClasses;
  while (data.size() < kSamples) {
    std::vector<double> x(kDim);
    for (double& v : x) v = rng.Normal();
    std::vector<double> z(kClasses, 0.0);
    for (size_t c = 0; c < kClasses; ++c)
      for (size_t k = 0; k < kDim; ++k) z[c] += teacher[c * kDim + k] * x[k];
    std::vector<double> sorted = z;
    std::sort(sorted.begin(), sorted.end());
    if (sorted[kClasses - 1] - sorted[kClasses - 2] < 0.5) continue;
    for (double v : x) data.features.push_back(static_cast<float>(v));
    data.labels.push_back(static_cast<int32_t>(std::max_element(z.begin(), z.end()) - z.begin()));
  }

  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Trainer> trainer,
                          MakeMlpTrainer({kDim, {}, kClasses}));
  std::vector<float> w(trainer->dim());
  RngStream init = RngStream::For(12, 0, 0, Purpose::kModelInit);
  trainer->InitParams(init, absl::MakeSpan(w));
  FT_ASSERT_OK_AND_ASSIGN(EvalMetrics before, trainer->Evaluate(w, DataView::All(data)));

  LocalSgdOptions opts;
  opts.lr = 0.5;
  opts.epochs = 30;
  opts.batch_size = 16;
  RngStream mb = MinibatchRng(0);
  FT_ASSERT_OK_AND_ASSIGN(LocalSgdResult r, RunLocalSgd(*trainer, DataView::All(data), opts,
                                                        mb, absl::MakeSpan(w)));
  EXPECT_EQ(r.steps, 30 * 19);
  FT_ASSERT_OK_AND_ASSIGN(EvalMetrics after, trainer->Evaluate(w, DataView::All(data)));
  EXPECT_LT(after.loss, before.loss);
  EXPECT_GE(after.accuracy, 0.97);
}

}  // namespace
}  // namespace fedtrain
