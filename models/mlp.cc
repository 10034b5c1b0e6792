// MLP / softmax regression in Eigen: forward and backward passes over a whole minibatch as
// matrix products on Eigen::Map views of the flat weight vector, and the Trainer built on
// them. Single-threaded by design (no OpenMP, no Eigen thread pool) so results do not depend
// on the thread count; parallelism comes from running one Trainer per worker thread.
#include "models/mlp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

template <typename S>
using RowMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using MatrixMap = Eigen::Map<RowMatrix<S>>;
template <typename S>
using ConstMatrixMap = Eigen::Map<const RowMatrix<S>>;
template <typename S>
using ConstVectorMap = Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>>;
template <typename S>
using VectorMap = Eigen::Map<Eigen::Matrix<S, Eigen::Dynamic, 1>>;
template <typename S>
using RowArrayMap = Eigen::Map<Eigen::Array<S, 1, Eigen::Dynamic>>;

// Eigen's GEMM splits the inner (k) dimension into blocks whose size it derives from the L1
// cache size it queries from the CPU at run time; the split changes the summation order and
// so the last bits of the result. Feeding it inner dimensions of at most kInnerBlock, and
// adding the partial products ourselves in a fixed order, makes a given binary produce the
// same bits on every machine with an L1 data cache of at least 32 KiB (Eigen 3.4's k block
// is then at least 136, for AVX-512 doubles; 504 for SSE floats). Measured cost on
// 784-200-10 training: none beyond noise.
constexpr Eigen::Index kInnerBlock = 128;

// dst = a * b, summed over the inner dimension in blocks of kInnerBlock, in order.
template <typename Dst, typename Lhs, typename Rhs>
void Product(Dst&& dst, const Lhs& a, const Rhs& b) {
  const Eigen::Index k = a.cols();
  if (k == 0) {
    dst.setZero();
    return;
  }
  for (Eigen::Index k0 = 0; k0 < k; k0 += kInnerBlock) {
    const Eigen::Index kb = std::min(kInnerBlock, k - k0);
    if (k0 == 0) {
      dst.noalias() = a.middleCols(k0, kb) * b.middleRows(k0, kb);
    } else {
      dst.noalias() += a.middleCols(k0, kb) * b.middleRows(k0, kb);
    }
  }
}

// One fully connected layer: where its parameters sit in the flat vector.
struct Layer {
  size_t in = 0;
  size_t out = 0;
  size_t weight_offset = 0;  // {out, in} row-major
  size_t bias_offset = 0;    // {out}
};

std::vector<Layer> MakeLayers(const MlpSpec& spec) {
  std::vector<Layer> layers;
  size_t in = spec.inputs;
  size_t offset = 0;
  for (size_t l = 0; l <= spec.hidden.size(); ++l) {
    Layer layer;
    layer.in = in;
    layer.out = l < spec.hidden.size() ? spec.hidden[l] : spec.classes;
    layer.weight_offset = offset;
    offset += layer.in * layer.out;
    layer.bias_offset = offset;
    offset += layer.out;
    layers.push_back(layer);
    in = layer.out;
  }
  return layers;
}

// Scratch for one forward/backward pass. Buffers only grow, so a trainer that sees batches of
// at most B rows allocates once.
template <typename S>
struct Workspace {
  // act[l] is n x layers[l].out: ReLU outputs of hidden layer l, logits for the head. The
  // backward pass overwrites each with the gradient of the loss wrt that layer's
  // pre-activation (the ReLU mask is read from the activations just before that).
  std::vector<std::vector<S>> act;
  std::vector<S> tmp;  // n x (widest hidden layer): gradient wrt a hidden layer's output

  void Reserve(const std::vector<Layer>& layers, size_t n) {
    act.resize(layers.size());
    size_t widest_hidden = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      const size_t need = n * layers[l].out;
      if (act[l].size() < need) act[l].resize(need);
      if (l + 1 < layers.size()) widest_hidden = std::max(widest_hidden, layers[l].out);
    }
    if (tmp.size() < n * widest_hidden) tmp.resize(n * widest_hidden);
  }
};

// Fills ws->act for the n rows of x (row-major n x inputs). ws must be reserved for n.
template <typename S>
void Forward(const std::vector<Layer>& layers, const S* w, const S* x, size_t n,
             Workspace<S>* ws) {
  const Eigen::Index rows = static_cast<Eigen::Index>(n);
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& layer = layers[l];
    const S* input = l == 0 ? x : ws->act[l - 1].data();
    ConstMatrixMap<S> in(input, rows, layer.in);
    ConstMatrixMap<S> weight(w + layer.weight_offset, layer.out, layer.in);
    ConstVectorMap<S> bias(w + layer.bias_offset, layer.out);
    MatrixMap<S> z(ws->act[l].data(), rows, layer.out);
    Product(z, in, weight.transpose());
    z.rowwise() += bias.transpose();
    if (l + 1 < layers.size()) z = z.cwiseMax(S(0));
  }
}

// Cross-entropy of one row of logits against `label`, with the numerically stable
// log-sum-exp: loss = log(sum_j exp(z_j - m)) - (z_label - m), m = max_j z_j. When
// `prob_scale` is non-zero the row is overwritten with prob_scale * (softmax(z) - onehot),
// the gradient of prob_scale * loss wrt z.
template <typename S>
S RowCrossEntropy(S* logits, size_t classes, int32_t label, S prob_scale) {
  RowArrayMap<S> z(logits, classes);
  const S m = z.maxCoeff();
  const S z_label = z[label];
  if (prob_scale == S(0)) {
    return std::log((z - m).exp().sum()) - (z_label - m);
  }
  z = (z - m).exp();
  const S sum = z.sum();
  z *= prob_scale / sum;
  z[label] -= prob_scale;
  return std::log(sum) - (z_label - m);
}

// Index of the largest logit (the first one on ties).
template <typename S>
int32_t ArgMax(const S* logits, size_t classes) {
  size_t best = 0;
  for (size_t j = 1; j < classes; ++j)
    if (logits[j] > logits[best]) best = j;
  return static_cast<int32_t>(best);
}

// Mean cross-entropy of the n rows of x and its gradient into grad. Preconditions (checked by
// the callers): n > 0, labels in [0, classes).
template <typename S>
double LossAndGradient(const std::vector<Layer>& layers, const S* w, const S* x,
                       const int32_t* labels, size_t n, S* grad, Workspace<S>* ws) {
  ws->Reserve(layers, n);
  Forward(layers, w, x, n, ws);

  // Head: per-row loss, and the logits replaced by d(mean loss)/d(logits).
  const Layer& head = layers.back();
  const S inv_n = S(1) / static_cast<S>(n);
  double loss_sum = 0.0;
  S* logits = ws->act.back().data();
  for (size_t i = 0; i < n; ++i) {
    loss_sum += RowCrossEntropy(logits + i * head.out, head.out, labels[i], inv_n);
  }

  const Eigen::Index rows = static_cast<Eigen::Index>(n);
  for (size_t l = layers.size(); l-- > 0;) {
    const Layer& layer = layers[l];
    ConstMatrixMap<S> dz(ws->act[l].data(), rows, layer.out);
    const S* input = l == 0 ? x : ws->act[l - 1].data();
    ConstMatrixMap<S> in(input, rows, layer.in);
    MatrixMap<S> dweight(grad + layer.weight_offset, layer.out, layer.in);
    VectorMap<S> dbias(grad + layer.bias_offset, layer.out);
    Product(dweight, dz.transpose(), in);
    dbias = dz.colwise().sum().transpose();
    if (l == 0) break;  // no gradient wrt the inputs needed
    // Gradient wrt the previous layer's output, then through its ReLU: the mask is
    // "activation > 0", which equals "pre-activation > 0" (the derivative at 0 is taken as 0).
    ConstMatrixMap<S> weight(w + layer.weight_offset, layer.out, layer.in);
    MatrixMap<S> da(ws->tmp.data(), rows, layer.in);
    Product(da, dz, weight);
    MatrixMap<S> prev(ws->act[l - 1].data(), rows, layer.in);
    prev.array() = (prev.array() > S(0)).select(da.array(), S(0));
  }
  return loss_sum / static_cast<double>(n);
}

std::string Description(const MlpSpec& spec) {
  std::vector<size_t> dims;
  dims.push_back(spec.inputs);
  dims.insert(dims.end(), spec.hidden.begin(), spec.hidden.end());
  dims.push_back(spec.classes);
  return absl::StrCat(spec.hidden.empty() ? "softmax:" : "mlp:", absl::StrJoin(dims, "-"));
}

absl::Status CheckDataset(const Dataset* data, size_t inputs) {
  if (data == nullptr) return absl::InvalidArgumentError("batch or view has no data set");
  if (data->num_features != inputs) {
    return absl::InvalidArgumentError(absl::StrCat("data set has ", data->num_features,
                                                   " features; model expects ", inputs,
                                                   " inputs"));
  }
  if (data->features.size() < data->size() * data->num_features) {
    return absl::InvalidArgumentError(
        absl::StrCat("data set has ", data->features.size(), " feature values for ",
                     data->size(), " samples of ", data->num_features, " features"));
  }
  return absl::OkStatus();
}

absl::Status CheckLabel(int32_t label, uint32_t index, size_t classes) {
  if (label < 0 || static_cast<size_t>(label) >= classes) {
    return absl::InvalidArgumentError(absl::StrCat("sample ", index, " has label ", label,
                                                   "; model has ", classes, " classes"));
  }
  return absl::OkStatus();
}

absl::Status CheckIndex(uint32_t index, const Dataset& data) {
  if (index >= data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("sample index ", index,
                                                   " out of range; data set has ",
                                                   data.size(), " samples"));
  }
  return absl::OkStatus();
}

// Rows evaluated per forward pass in Evaluate: bounds the scratch (1024 x widest layer).
constexpr size_t kEvalChunk = 1024;

// Thread-compatible: Gradient and Evaluate reuse scratch buffers, so one trainer per thread.
class MlpTrainer final : public Trainer {
 public:
  explicit MlpTrainer(const MlpSpec& spec)
      : spec_(spec), layout_(MlpLayout(spec)), layers_(MakeLayers(spec)) {}

  size_t dim() const override { return layout_.dim(); }
  const ParamLayout& layout() const override { return layout_; }
  std::string description() const override { return Description(spec_); }

  // PyTorch nn.Linear's weight init (kaiming_uniform with a = sqrt(5)): every weight uniform
  // in [-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn layer by layer in row-major order; biases 0
  // (PyTorch draws them too; zero keeps the draw count equal to the number of weights). The
  // draw order is part of the reproducibility contract.
  void InitParams(RngStream& rng, Vec w) const override {
    FT_CHECK(w.size() == dim());
    for (const Layer& layer : layers_) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(layer.in));
      float* weight = w.data() + layer.weight_offset;
      for (size_t j = 0; j < layer.in * layer.out; ++j) {
        weight[j] = static_cast<float>((2.0 * rng.Uniform() - 1.0) * bound);
      }
      std::fill_n(w.data() + layer.bias_offset, layer.out, 0.0f);
    }
  }

  absl::StatusOr<double> Gradient(ConstVec w, const Batch& b, Vec grad) override {
    FT_RETURN_IF_ERROR(CheckWeights(w));
    if (grad.size() != dim()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gradient buffer has ", grad.size(), " floats; model has ", dim()));
    }
    FT_RETURN_IF_ERROR(CheckDataset(b.data, spec_.inputs));
    const size_t n = b.size();
    if (n == 0) return absl::InvalidArgumentError("empty batch: the mean loss is undefined");
    // Gather the minibatch into contiguous scratch so the layers are plain GEMMs.
    const size_t in = spec_.inputs;
    if (x_.size() < n * in) x_.resize(n * in);
    if (labels_.size() < n) labels_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t idx = b.indices[i];
      FT_RETURN_IF_ERROR(CheckIndex(idx, *b.data));
      labels_[i] = b.data->labels[idx];
      FT_RETURN_IF_ERROR(CheckLabel(labels_[i], idx, spec_.classes));
      std::memcpy(x_.data() + i * in, b.data->features.data() + idx * in, in * sizeof(float));
    }
    return LossAndGradient(layers_, w.data(), x_.data(), labels_.data(), n, grad.data(), &ws_);
  }

  absl::StatusOr<EvalMetrics> Evaluate(ConstVec w, const DataView& d) override {
    FT_RETURN_IF_ERROR(CheckWeights(w));
    FT_RETURN_IF_ERROR(CheckDataset(d.data, spec_.inputs));
    const Dataset& data = *d.data;
    const size_t in = spec_.inputs;
    const size_t classes = spec_.classes;
    EvalMetrics metrics;
    metrics.count = d.size();
    if (metrics.count == 0) return metrics;  // nothing to evaluate: loss and accuracy 0

    double loss_sum = 0.0;
    size_t correct = 0;
    for (size_t start = 0; start < metrics.count; start += kEvalChunk) {
      const size_t n = std::min(kEvalChunk, metrics.count - start);
      const float* x;
      const int32_t* labels;
      if (d.all) {
        // The whole data set is contiguous already: no copy.
        x = data.features.data() + start * in;
        labels = data.labels.data() + start;
        for (size_t i = 0; i < n; ++i) {
          FT_RETURN_IF_ERROR(CheckLabel(labels[i], static_cast<uint32_t>(start + i), classes));
        }
      } else {
        if (x_.size() < n * in) x_.resize(n * in);
        if (labels_.size() < n) labels_.resize(n);
        for (size_t i = 0; i < n; ++i) {
          const uint32_t idx = d.index(start + i);
          FT_RETURN_IF_ERROR(CheckIndex(idx, data));
          labels_[i] = data.labels[idx];
          FT_RETURN_IF_ERROR(CheckLabel(labels_[i], idx, classes));
          std::memcpy(x_.data() + i * in, data.features.data() + idx * in, in * sizeof(float));
        }
        x = x_.data();
        labels = labels_.data();
      }
      ws_.Reserve(layers_, n);
      Forward(layers_, w.data(), x, n, &ws_);
      float* logits = ws_.act.back().data();
      for (size_t i = 0; i < n; ++i) {
        float* row = logits + i * classes;
        if (ArgMax(row, classes) == labels[i]) ++correct;
        loss_sum += RowCrossEntropy(row, classes, labels[i], 0.0f);
      }
    }
    metrics.loss = loss_sum / static_cast<double>(metrics.count);
    metrics.accuracy = static_cast<double>(correct) / static_cast<double>(metrics.count);
    return metrics;
  }

  std::unique_ptr<Trainer> Clone() const override {
    return std::make_unique<MlpTrainer>(spec_);  // fresh scratch
  }

 private:
  absl::Status CheckWeights(ConstVec w) const {
    if (w.size() != dim()) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights have ", w.size(), " floats; model has ", dim()));
    }
    return absl::OkStatus();
  }

  const MlpSpec spec_;
  const ParamLayout layout_;
  const std::vector<Layer> layers_;
  // Scratch, reused across calls (grows to the largest batch / evaluation chunk seen).
  Workspace<float> ws_;
  std::vector<float> x_;
  std::vector<int32_t> labels_;
};

}  // namespace

ParamLayout MlpLayout(const MlpSpec& spec) {
  ParamLayout layout;
  size_t in = spec.inputs;
  for (size_t l = 0; l <= spec.hidden.size(); ++l) {
    const size_t out = l < spec.hidden.size() ? spec.hidden[l] : spec.classes;
    layout.Add(absl::StrCat("fc", l, ".weight"), {out, in});
    layout.Add(absl::StrCat("fc", l, ".bias"), {out});
    in = out;
  }
  return layout;
}

template <typename Scalar>
Scalar MlpLossAndGradient(const MlpSpec& spec, const Scalar* w, const Scalar* x,
                          const int32_t* labels, size_t n, Scalar* grad) {
  // A reference entry point (tests, tools): invalid input is a caller bug, not bad data.
  FT_CHECK(n > 0);
  for (size_t i = 0; i < n; ++i) {
    FT_CHECK(labels[i] >= 0 && static_cast<size_t>(labels[i]) < spec.classes);
  }
  Workspace<Scalar> ws;
  return static_cast<Scalar>(LossAndGradient(MakeLayers(spec), w, x, labels, n, grad, &ws));
}

template float MlpLossAndGradient<float>(const MlpSpec&, const float*, const float*,
                                         const int32_t*, size_t, float*);
template double MlpLossAndGradient<double>(const MlpSpec&, const double*, const double*,
                                           const int32_t*, size_t, double*);

absl::StatusOr<std::unique_ptr<Trainer>> MakeMlpTrainer(const MlpSpec& spec) {
  if (spec.inputs == 0) return absl::InvalidArgumentError("model.inputs must be > 0, got 0");
  if (spec.classes == 0) return absl::InvalidArgumentError("model.classes must be > 0, got 0");
  for (size_t l = 0; l < spec.hidden.size(); ++l) {
    if (spec.hidden[l] == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.hidden[", l, "] (width of hidden layer ", l, ") must be > 0"));
    }
  }
  return std::unique_ptr<Trainer>(std::make_unique<MlpTrainer>(spec));
}

}  // namespace fedtrain
