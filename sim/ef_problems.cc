// The problems of the float64 error-feedback validation harness (docs/compression.md §4.1-
// §4.4): three workers, heterogeneous quadratics, nonconvex logistic regression on
// breast_cancer and its CSV reader. See ef_validation.h.
//
// Thread-compatible: each function builds a new EfProblem (or BinaryData); a built problem is
// immutable and its gradient may be called concurrently.
#include "sim/ef_validation.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/rng.h"
#include "core/status_macros.h"

namespace fedtrain {

namespace {

// Largest eigenvalue of a symmetric matrix (exact, Eigen's self-adjoint solver).
double MaxEigenvalue(const Eigen::MatrixXd& m) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(m, Eigen::EigenvaluesOnly);
  return es.eigenvalues().maxCoeff();
}

// Logistic sigmoid 1/(1 + exp(-z)) without overflow.
double Sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

}  // namespace

double EfProblem::l_am() const {
  double s = 0;
  for (double l : smoothness) s += l;
  return smoothness.empty() ? 0.0 : s / smoothness.size();
}

double EfProblem::l_qm() const {
  double s = 0;
  for (double l : smoothness) s += l * l;
  return smoothness.empty() ? 0.0 : std::sqrt(s / smoothness.size());
}

// ---- Problems.

EfProblem ThreeWorkerProblem() {
  static constexpr double kA[3][3] = {{-3, 2, 2}, {2, -3, 2}, {2, 2, -3}};
  EfProblem p;
  p.name = "three_workers";
  p.num_workers = 3;
  p.dim = 3;
  p.x0 = {1, 1, 1};
  p.x_star = {0, 0, 0};
  // Hessians: 2 a_i a_i^T + I/2.
  Eigen::MatrixXd mean = Eigen::MatrixXd::Zero(3, 3);
  for (int i = 0; i < 3; ++i) {
    Eigen::Vector3d a(kA[i][0], kA[i][1], kA[i][2]);
    Eigen::MatrixXd h = 2 * a * a.transpose() + 0.5 * Eigen::MatrixXd::Identity(3, 3);
    p.smoothness.push_back(MaxEigenvalue(h));
    mean += h / 3;
  }
  p.l = MaxEigenvalue(mean);
  p.gradient = [](size_t i, absl::Span<const double> x, absl::Span<double> g) {
    const double* a = kA[i];
    const double ax = a[0] * x[0] + a[1] * x[1] + a[2] * x[2];
    for (int j = 0; j < 3; ++j) g[j] = 2 * a[j] * ax + 0.5 * x[j];
  };
  return p;
}

absl::StatusOr<EfProblem> HeterogeneousQuadratics(const QuadraticsOptions& o) {
  if (o.num_workers == 0 || o.dim == 0)
    return absl::InvalidArgumentError("quadratics: num_workers and dim must be > 0");
  if (!(o.zeta >= 0) || !(o.sigma >= 0))
    return absl::InvalidArgumentError("quadratics: zeta and sigma must be >= 0");
  const size_t n = o.num_workers, d = o.dim;
  auto a = std::make_shared<std::vector<double>>(n);
  auto b = std::make_shared<std::vector<double>>(n * d);
  EfProblem p;
  p.name = "quadratics";
  p.num_workers = n;
  p.dim = d;
  p.x0.assign(d, 1.0);
  p.x_star.assign(d, 0.0);
  double sum_a2 = 0;
  for (size_t w = 0; w < n; ++w) {
    const double i = static_cast<double>(w + 1);  // the spec numbers workers from 1
    (*a)[w] = i / std::sqrt(static_cast<double>(n));
    RngStream rng = RngStream::For(o.seed, 0, w, Purpose::kSyntheticData);
    for (size_t j = 0; j < d; ++j) (*b)[w * d + j] = rng.Normal(0.0, o.zeta / i);
    const double a2 = (*a)[w] * (*a)[w];
    p.smoothness.push_back(a2);
    sum_a2 += a2;
    for (size_t j = 0; j < d; ++j) p.x_star[j] += (*a)[w] * (*b)[w * d + j];
  }
  for (size_t j = 0; j < d; ++j) p.x_star[j] /= sum_a2;
  p.l = sum_a2 / n;  // the Hessian of f is mean(a_i^2) I
  p.noise_sigma = o.sigma;
  p.noise_seed = o.seed;
  p.gradient = [a, b, d](size_t w, absl::Span<const double> x, absl::Span<double> g) {
    const double ai = (*a)[w];
    const double* bi = b->data() + w * d;
    for (size_t j = 0; j < d; ++j) g[j] = ai * (ai * x[j] - bi[j]);
  };
  return p;
}

absl::StatusOr<BinaryData> LoadBreastCancerCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat(
        "cannot open ", path,
        "; scripts/install_deps.sh extracts breast_cancer.csv from Debian's python3-sklearn"));
  std::string line;
  if (!std::getline(in, line))
    return absl::DataLossError(absl::StrCat(path, ": empty file"));
  // Header: "569,30,malignant,benign".
  std::vector<std::string> head = absl::StrSplit(line, ',');
  size_t rows = 0, cols = 0;
  if (head.size() < 2 || !absl::SimpleAtoi(head[0], &rows) || !absl::SimpleAtoi(head[1], &cols) ||
      rows == 0 || cols == 0)
    return absl::DataLossError(absl::StrCat(
        path, ":1: expected a header 'rows,cols,...' (scikit-learn's format), got '", line, "'"));
  BinaryData data;
  data.rows = rows;
  data.cols = cols;
  data.features.reserve(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    if (!std::getline(in, line))
      return absl::DataLossError(
          absl::StrCat(path, ": the header announces ", rows, " rows; the file has ", r));
    std::vector<absl::string_view> f = absl::StrSplit(absl::StripTrailingAsciiWhitespace(line), ',');
    if (f.size() != cols + 1)
      return absl::DataLossError(absl::StrCat(path, ":", r + 2, ": ", f.size(),
                                              " fields; expected ", cols, " features and a class"));
    for (size_t c = 0; c < cols; ++c) {
      double v;
      if (!absl::SimpleAtod(f[c], &v) || !std::isfinite(v))
        return absl::DataLossError(
            absl::StrCat(path, ":", r + 2, ": field ", c + 1, " '", f[c], "' is not a number"));
      data.features.push_back(v);
    }
    int label;
    if (!absl::SimpleAtoi(f[cols], &label) || (label != 0 && label != 1))
      return absl::DataLossError(
          absl::StrCat(path, ":", r + 2, ": class '", f[cols], "' is not 0 or 1"));
    data.labels.push_back(label == 1 ? 1.0 : -1.0);
  }
  // z-score every column with the population standard deviation.
  for (size_t c = 0; c < cols; ++c) {
    double mean = 0;
    for (size_t r = 0; r < rows; ++r) mean += data.features[r * cols + c];
    mean /= rows;
    double var = 0;
    for (size_t r = 0; r < rows; ++r) {
      const double z = data.features[r * cols + c] - mean;
      var += z * z;
    }
    const double sd = std::sqrt(var / rows);
    for (size_t r = 0; r < rows; ++r) {
      double& v = data.features[r * cols + c];
      v = sd > 0 ? (v - mean) / sd : 0.0;
    }
  }
  return data;
}

absl::StatusOr<EfProblem> NonconvexLogReg(const BinaryData& data, const LogRegOptions& o) {
  const size_t n = o.num_workers, d = data.cols, rows = data.rows;
  if (n == 0 || n > rows)
    return absl::InvalidArgumentError(
        absl::StrCat("logreg: num_workers must be in [1, ", rows, "], got ", n));
  if (!(o.lambda >= 0) || !(o.init_stddev >= 0) || !(o.scale_last_worker > 0) || !(o.sigma >= 0))
    return absl::InvalidArgumentError(
        "logreg: lambda, init_stddev and sigma must be >= 0, scale_last_worker > 0");
  struct Shared {
    std::vector<double> a;      // rows x d, row-major, labels folded in: row j is y_j a_j
    std::vector<size_t> begin;  // worker w holds rows [begin[w], begin[w+1])
    double lambda;
  };
  auto s = std::make_shared<Shared>();
  s->lambda = o.lambda;
  s->a.resize(rows * d);
  // Contiguous blocks of floor(N/n) or floor(N/n) + 1 rows, the longer ones first (numpy's
  // array_split). The spec's text says "worker n takes the remainder", but its [N] constants
  // (§4.3 gamma = 4.05e-3; §4.4 L_QM = 103.3, L_AM = 26.8) are those of this split: with a
  // 37-row last worker they would be 90.8 and 24.1.
  const size_t per = rows / n, extra = rows % n;
  for (size_t w = 0; w <= n; ++w) s->begin.push_back(w * per + std::min(w, extra));
  Eigen::MatrixXd plain(rows, d);  // features without labels, for the smoothness constants
  for (size_t r = 0; r < rows; ++r) {
    const double scale = r >= s->begin[n - 1] ? o.scale_last_worker : 1.0;
    for (size_t c = 0; c < d; ++c) {
      plain(r, c) = scale * data.features[r * d + c];
      s->a[r * d + c] = data.labels[r] * plain(r, c);
    }
  }
  EfProblem p;
  p.name = "logreg";
  p.num_workers = n;
  p.dim = d;
  p.noise_sigma = o.sigma;
  p.noise_seed = o.seed;
  // L_i bounds the Hessian of f_i; L that of f = (1/n) sum f_i, i.e. it uses the mean of the
  // per-worker matrices (the spec's A^T A / (4N) is the pooled version; the two agree for
  // equal N_i, and this one reproduces the spec's L = 26.1 of §4.4).
  Eigen::MatrixXd mean = Eigen::MatrixXd::Zero(d, d);
  for (size_t w = 0; w < n; ++w) {
    const size_t b = s->begin[w], m = s->begin[w + 1] - b;
    const Eigen::MatrixXd aw = plain.middleRows(b, m);
    const Eigen::MatrixXd hw = aw.transpose() * aw / (4.0 * m);
    p.smoothness.push_back(MaxEigenvalue(hw) + 2 * o.lambda);
    mean += hw / static_cast<double>(n);
  }
  p.l = MaxEigenvalue(mean) + 2 * o.lambda;
  RngStream rng = RngStream::For(o.seed, 0, 0, Purpose::kModelInit);
  for (size_t c = 0; c < d; ++c) p.x0.push_back(rng.Normal(0.0, o.init_stddev));
  // Plain loops rather than Eigen expressions: the gradient is the inner loop of every run,
  // and the tests also run in unoptimised sanitizer builds.
  p.gradient = [s, d](size_t w, absl::Span<const double> x, absl::Span<double> g) {
    const size_t b = s->begin[w], e = s->begin[w + 1];
    const double inv_m = 1.0 / static_cast<double>(e - b);
    for (size_t k = 0; k < d; ++k) {
      const double q = 1 + x[k] * x[k];
      g[k] = s->lambda * 2 * x[k] / (q * q);
    }
    // d/dx log(1 + exp(-y a^T x)) = -sigmoid(-y a^T x) y a.
    for (size_t r = b; r < e; ++r) {
      const double* row = s->a.data() + r * d;
      double z = 0;
      for (size_t k = 0; k < d; ++k) z += row[k] * x[k];
      const double coef = -Sigmoid(-z) * inv_m;
      for (size_t k = 0; k < d; ++k) g[k] += coef * row[k];
    }
  };
  return p;
}

}  // namespace fedtrain
