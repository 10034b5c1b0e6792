// Quadratic clients for algorithm tests (docs/federated.md §9 fixture and §8 V0), as a
// Trainer and a Dataset so they run through the real local-SGD and algorithm code.
// Header-only; needs fedtrain::models linked.
//
// A sample row holds 2d features (a_1..a_d, b_1..b_d); its loss is
//   l(x) = 1/2 sum_j a_j (x_j - b_j)^2,  gradient a_j (x_j - b_j),
// and a client owning one row has f_i = l_i (full batch = deterministic gradients). The global
// optimum of the uniform mean over clients is x*_j = sum_i a_ij b_ij / sum_i a_ij.
#ifndef FEDTRAIN_TESTS_TESTING_QUADRATIC_H_
#define FEDTRAIN_TESTS_TESTING_QUADRATIC_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "models/trainer.h"

namespace fedtrain::testing {

class QuadraticTrainer final : public Trainer {
 public:
  explicit QuadraticTrainer(size_t dim) : dim_(dim) {
    layout_.Add("x", {dim});
  }
  size_t dim() const override { return dim_; }
  const ParamLayout& layout() const override { return layout_; }
  std::string description() const override { return absl::StrCat("quadratic:", dim_); }
  void InitParams(RngStream&, Vec w) const override {
    for (float& v : w) v = 0.0f;
  }
  absl::StatusOr<double> Gradient(ConstVec w, const Batch& b, Vec grad) override {
    if (w.size() != dim_ || grad.size() != dim_ || b.data->num_features != 2 * dim_)
      return absl::InvalidArgumentError("quadratic: size mismatch");
    std::vector<double> g(dim_, 0.0);
    double loss = 0.0;
    for (uint32_t idx : b.indices) {
      ConstVec r = b.data->row(idx);
      for (size_t j = 0; j < dim_; ++j) {
        const double diff = static_cast<double>(w[j]) - r[dim_ + j];
        g[j] += r[j] * diff;
        loss += 0.5 * r[j] * diff * diff;
      }
    }
    const double inv = 1.0 / static_cast<double>(b.indices.size());
    for (size_t j = 0; j < dim_; ++j) grad[j] = static_cast<float>(g[j] * inv);
    return loss * inv;
  }
  absl::StatusOr<EvalMetrics> Evaluate(ConstVec w, const DataView& d) override {
    EvalMetrics m;
    std::vector<float> g(dim_);
    std::vector<uint32_t> idx(d.size());
    for (size_t i = 0; i < d.size(); ++i) idx[i] = d.index(i);
    if (idx.empty()) return m;
    absl::StatusOr<double> l = Gradient(w, Batch{d.data, idx}, absl::MakeSpan(g));
    if (!l.ok()) return l.status();
    m.loss = *l;
    m.accuracy = 0.0;
    m.count = idx.size();
    return m;
  }
  std::unique_ptr<Trainer> Clone() const override {
    return std::make_unique<QuadraticTrainer>(dim_);
  }

 private:
  size_t dim_;
  ParamLayout layout_;
};

// `n` clients (one row each) with a_ij uniform in [a_lo, a_hi] and b_ij ~ N(0, b_sd^2), from
// RngStream(seed, kTest). Labels are 0 (unused).
inline Dataset QuadraticClients(uint64_t seed, size_t n, size_t dim, double a_lo = 0.5,
                                double a_hi = 2.0, double b_sd = 3.0) {
  RngStream rng = RngStream::For(seed, 0, 0, Purpose::kTest);
  Dataset d;
  d.num_features = 2 * dim;
  d.num_classes = 1;
  d.features.resize(n * 2 * dim);
  for (size_t i = 0; i < n; ++i) {
    float* r = d.features.data() + i * 2 * dim;
    for (size_t j = 0; j < dim; ++j) r[j] = static_cast<float>(a_lo + (a_hi - a_lo) * rng.Uniform());
    for (size_t j = 0; j < dim; ++j) r[dim + j] = static_cast<float>(b_sd * rng.Normal());
    d.labels.push_back(0);
  }
  return d;
}

// x*_j = sum_i a_ij b_ij / sum_i a_ij over all rows (uniform objective weights).
inline std::vector<double> QuadraticOptimum(const Dataset& d) {
  const size_t dim = d.num_features / 2;
  std::vector<double> num(dim, 0.0), den(dim, 0.0), x(dim);
  for (size_t i = 0; i < d.size(); ++i) {
    ConstVec r = d.row(i);
    for (size_t j = 0; j < dim; ++j) {
      num[j] += static_cast<double>(r[j]) * r[dim + j];
      den[j] += r[j];
    }
  }
  for (size_t j = 0; j < dim; ++j) x[j] = num[j] / den[j];
  return x;
}

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_QUADRATIC_H_
