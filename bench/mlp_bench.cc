// Local training against the machine's GEMM speed: one minibatch gradient of the MLP
// (Trainer::Gradient: gather, forward, cross-entropy, backward) against the plain Eigen
// matrix products of the same shapes, measured in the same run, alternating, best of --reps.
//
//   forward   Z_l = A_{l-1} W_l^T            n x out_l,  inner in_l
//   backward  dW_l = dZ_l^T A_{l-1}          out_l x in_l, inner n
//             dA_{l-1} = dZ_l W_l  (l > 0)   n x in_l,   inner out_l
//
// FLOPs = 2 m n k summed over those products; both rates use that count, so the ratio is the
// GEMM time over the gradient's time (the gradient also gathers the batch, adds biases, takes
// ReLUs and the softmax: its overhead is in the ratio). Goal: >= 0.6.
// Every buffer is allocated and touched before timing. The result is checked: the gradient
// equals an independent float64 Eigen implementation of the same network to 1e-4 relative
// (float32 against float64 over sums of <= 784 terms).
//
//   mlp_bench [--batch=50] [--hidden=200,200] [--reps=20] [--steps=200]
#include <Eigen/Core>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "models/mlp.h"

namespace fedtrain {
namespace {

using bench::BestSeconds;
using RowF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatD = Eigen::MatrixXd;

struct Shapes {
  std::vector<size_t> dims;  // inputs, hidden..., classes
  size_t layers() const { return dims.size() - 1; }
};

// The float64 reference gradient of the mean cross-entropy, parameters in the MLP's layout
// (per layer: weight {out, in} row-major, then bias {out}).
std::vector<double> ReferenceGradient(const Shapes& s, const std::vector<float>& w,
                                      const Dataset& d, const std::vector<uint32_t>& idx) {
  const size_t n = idx.size(), L = s.layers();
  std::vector<MatD> W(L), A(L + 1);
  std::vector<Eigen::VectorXd> b(L);
  size_t off = 0;
  std::vector<size_t> woff(L), boff(L);
  for (size_t l = 0; l < L; ++l) {
    const size_t in = s.dims[l], out = s.dims[l + 1];
    W[l].resize(out, in);
    for (size_t o = 0; o < out; ++o)
      for (size_t i = 0; i < in; ++i) W[l](o, i) = w[off + o * in + i];
    woff[l] = off;
    off += in * out;
    b[l].resize(out);
    for (size_t o = 0; o < out; ++o) b[l](o) = w[off + o];
    boff[l] = off;
    off += out;
  }
  A[0].resize(n, s.dims[0]);
  for (size_t r = 0; r < n; ++r)
    for (size_t c = 0; c < s.dims[0]; ++c) A[0](r, c) = d.features[idx[r] * s.dims[0] + c];
  for (size_t l = 0; l < L; ++l) {
    A[l + 1] = (A[l] * W[l].transpose()).rowwise() + b[l].transpose();
    if (l + 1 < L) A[l + 1] = A[l + 1].cwiseMax(0.0);
  }
  MatD dz = A[L];
  for (size_t r = 0; r < n; ++r) {
    const double m = dz.row(r).maxCoeff();
    double sum = 0;
    for (Eigen::Index c = 0; c < dz.cols(); ++c) sum += std::exp(dz(r, c) - m);
    for (Eigen::Index c = 0; c < dz.cols(); ++c) dz(r, c) = std::exp(dz(r, c) - m) / sum / n;
    dz(r, d.labels[idx[r]]) -= 1.0 / n;
  }
  std::vector<double> g(off);
  for (size_t l = L; l-- > 0;) {
    const MatD dW = dz.transpose() * A[l];
    const Eigen::VectorXd db = dz.colwise().sum().transpose();
    for (Eigen::Index o = 0; o < dW.rows(); ++o) {
      for (Eigen::Index i = 0; i < dW.cols(); ++i) g[woff[l] + o * dW.cols() + i] = dW(o, i);
      g[boff[l] + o] = db(o);
    }
    if (l == 0) break;
    MatD da = dz * W[l];
    dz = (A[l].array() > 0).select(da, 0.0);
  }
  return g;
}

int Main(int argc, char** argv) {
  unsigned long long batch = 50, reps = 20, steps = 200;
  Shapes s{{784, 200, 200, 10}};
  for (int i = 1; i < argc; ++i) {
    std::string name, value;
    bench::SplitFlag(argc, argv, &i, &name, &value);
    if (name == "--batch") {
      if (!bench::PositiveInt("mlp_bench", name, value, &batch)) return 2;
    } else if (name == "--reps") {
      if (!bench::PositiveInt("mlp_bench", name, value, &reps)) return 2;
    } else if (name == "--steps") {
      if (!bench::PositiveInt("mlp_bench", name, value, &steps)) return 2;
    } else if (name == "--hidden") {
      s.dims = {784};
      size_t pos = 0;
      while (pos <= value.size()) {
        const size_t comma = std::min(value.find(',', pos), value.size());
        unsigned long long h = 0;
        if (!bench::PositiveInt("mlp_bench", name, value.substr(pos, comma - pos), &h)) return 2;
        s.dims.push_back(h);
        pos = comma + 1;
      }
      s.dims.push_back(10);
    } else {
      std::fprintf(stderr, "mlp_bench: unknown flag %s\n", name.c_str());
      return 2;
    }
  }
  const size_t n = batch, L = s.layers();
  MlpSpec spec;
  spec.inputs = s.dims[0];
  spec.classes = s.dims.back();
  for (size_t l = 1; l < L; ++l) spec.hidden.push_back(s.dims[l]);
  std::unique_ptr<Trainer> mlp = MakeMlpTrainer(spec).value();
  const size_t dim = mlp->dim();

  // Data: 20 batches' worth of random rows, labels in [0, classes).
  Dataset d;
  d.num_features = s.dims[0];
  d.num_classes = static_cast<int>(s.dims.back());
  const size_t rows = 20 * n;
  d.features.resize(rows * d.num_features);
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  for (float& v : d.features) v = static_cast<float>(rng.Uniform());
  for (size_t r = 0; r < rows; ++r) d.labels.push_back(static_cast<int32_t>(rng.UniformInt(d.num_classes)));
  std::vector<float> w(dim), grad(dim, 0.0f);
  mlp->InitParams(rng, Vec(w));
  std::vector<std::vector<uint32_t>> batches(20, std::vector<uint32_t>(n));
  for (size_t b = 0; b < 20; ++b)
    for (size_t i = 0; i < n; ++i) batches[b][i] = static_cast<uint32_t>(rng.UniformInt(rows));

  // The check (and the warm-up that sizes the trainer's scratch).
  Batch b0{&d, batches[0]};
  if (!mlp->Gradient(w, b0, Vec(grad)).ok()) {
    std::fprintf(stderr, "mlp_bench: Gradient failed\n");
    return 1;
  }
  const std::vector<double> ref = ReferenceGradient(s, w, d, batches[0]);
  double err = 0, scale = 0;
  for (size_t j = 0; j < dim; ++j) {
    err = std::max(err, std::fabs(grad[j] - ref[j]));
    scale = std::max(scale, std::fabs(ref[j]));
  }
  const bool correct = err <= 1e-4 * scale;

  // The GEMM baseline's operands, allocated and filled (touched) now.
  std::vector<RowF> Wt(L), A(L + 1), dZ(L), dW(L), dA(L);
  A[0] = RowF::Random(n, s.dims[0]);
  for (size_t l = 0; l < L; ++l) {
    Wt[l] = RowF::Random(s.dims[l + 1], s.dims[l]);
    A[l + 1] = RowF::Zero(n, s.dims[l + 1]);
    dZ[l] = RowF::Random(n, s.dims[l + 1]);
    dW[l] = RowF::Zero(s.dims[l + 1], s.dims[l]);
    dA[l] = RowF::Zero(n, s.dims[l]);
  }
  double flops = 0;
  for (size_t l = 0; l < L; ++l) {
    const double in = s.dims[l], out = s.dims[l + 1];
    flops += 2.0 * n * in * out * (l > 0 ? 3 : 2);
  }
  auto gemms = [&] {
    for (unsigned long long t = 0; t < steps; ++t) {
      for (size_t l = 0; l < L; ++l) A[l + 1].noalias() = A[l] * Wt[l].transpose();
      for (size_t l = L; l-- > 0;) {
        dW[l].noalias() = dZ[l].transpose() * A[l];
        if (l > 0) dA[l].noalias() = dZ[l] * Wt[l];
      }
    }
  };
  bool ok = true;
  auto gradients = [&] {
    for (unsigned long long t = 0; t < steps; ++t) {
      Batch b{&d, batches[t % 20]};
      ok &= mlp->Gradient(w, b, Vec(grad)).ok();
    }
  };
  double best_gemm = 1e300, best_grad = 1e300;
  for (unsigned long long r = 0; r < reps; ++r) {  // alternating, so both see the same load
    best_gemm = std::min(best_gemm, BestSeconds(1, gemms));
    best_grad = std::min(best_grad, BestSeconds(1, gradients));
  }
  const double gemm_rate = flops * steps / best_gemm / 1e9;
  const double grad_rate = flops * steps / best_grad / 1e9;
  const double ratio = grad_rate / gemm_rate;
  std::printf("mlp_bench: %s, batch %zu, %llu steps, best of %llu\n", mlp->description().c_str(),
              n, steps, reps);
  std::printf("  %.1f MFLOP per step (GEMMs of the forward and backward passes)\n", flops / 1e6);
  std::printf("  plain Eigen GEMMs, same shapes: %8.3f ms per step  %6.1f GFLOP/s\n",
              best_gemm / steps * 1e3, gemm_rate);
  std::printf("  Trainer::Gradient:              %8.3f ms per step  %6.1f GFLOP/s\n",
              best_grad / steps * 1e3, grad_rate);
  std::printf("  ratio %.2f of GEMM speed (goal >= 0.60): %s\n", ratio, bench::Verdict(ratio >= 0.6));
  std::printf("  check: gradient vs float64 reference, max abs error %.3g (scale %.3g): %s\n", err,
              scale, bench::Verdict(correct && ok));
  return correct && ok ? 0 : 1;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) { return fedtrain::Main(argc, argv); }
