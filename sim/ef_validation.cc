// Float64 validation harness for error feedback. See ef_validation.h and
// specs/compression.md §4 (problems, metrics) and §2 (methods).
#include "sim/ef_validation.h"

#include <Eigen/Dense>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/rng.h"
#include "core/status_macros.h"

namespace fedtrain {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Norm2(absl::Span<const double> v) {
  double s = 0;
  for (double x : v) s += x * x;
  return s;
}

bool AllFinite(absl::Span<const double> v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

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

// ---- One run.

absl::StatusOr<EfMethod> ParseEfMethod(const std::string& name) {
  for (EfMethod m : {EfMethod::kGd, EfMethod::kNaive, EfMethod::kEf14A, EfMethod::kEf14B,
                     EfMethod::kEf21, EfMethod::kEf21W, EfMethod::kEControl})
    if (name == EfMethodName(m)) return m;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown method '", name, "'; known: gd, naive, ef14, ef14b, ef21, ef21w, econtrol"));
}

const char* EfMethodName(EfMethod m) {
  switch (m) {
    case EfMethod::kGd:
      return "gd";
    case EfMethod::kNaive:
      return "naive";
    case EfMethod::kEf14A:
      return "ef14";
    case EfMethod::kEf14B:
      return "ef14b";
    case EfMethod::kEf21:
      return "ef21";
    case EfMethod::kEf21W:
      return "ef21w";
    case EfMethod::kEControl:
      return "econtrol";
  }
  return "unknown";
}

namespace {

Feedback FeedbackOf(EfMethod m) {
  switch (m) {
    case EfMethod::kGd:
    case EfMethod::kNaive:
      return Feedback::kNone;
    case EfMethod::kEf14A:
    case EfMethod::kEf14B:
      return Feedback::kEf14;
    case EfMethod::kEf21:
      return Feedback::kEf21;
    case EfMethod::kEf21W:
      return Feedback::kEf21W;
    case EfMethod::kEControl:
      return Feedback::kEControl;
  }
  return Feedback::kNone;
}

// |grad f(x)|^2 with f = (1/n) sum f_i (exact gradients).
double FullGrad2(const EfProblem& p, absl::Span<const double> x, std::vector<double>* gi,
                 std::vector<double>* sum) {
  sum->assign(p.dim, 0.0);
  for (size_t i = 0; i < p.num_workers; ++i) {
    p.gradient(i, x, absl::MakeSpan(*gi));
    for (size_t j = 0; j < p.dim; ++j) (*sum)[j] += (*gi)[j];
  }
  for (double& v : *sum) v /= p.num_workers;
  return Norm2(*sum);
}

}  // namespace

absl::StatusOr<EfRunResult> RunEf(const EfProblem& p, const EfRunOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const size_t n = p.num_workers, d = p.dim;
  if (n == 0 || d == 0 || !p.gradient || p.x0.size() != d)
    return absl::InvalidArgumentError(absl::StrCat("problem '", p.name, "' is incomplete"));
  if (!(o.gamma > 0) || !std::isfinite(o.gamma))
    return absl::InvalidArgumentError(absl::StrCat("gamma must be > 0, got ", o.gamma));
  if (o.rounds <= 0)
    return absl::InvalidArgumentError(absl::StrCat("rounds must be > 0, got ", o.rounds));
  if (!(o.tail_fraction > 0 && o.tail_fraction <= 1))
    return absl::InvalidArgumentError(
        absl::StrCat("tail_fraction must be in (0, 1], got ", o.tail_fraction));
  for (int64_t r : o.report_rounds)
    if (r < 0 || r > o.rounds)
      return absl::InvalidArgumentError(
          absl::StrCat("report round ", r, " is outside [0, ", o.rounds, "]"));
  FeedbackOptions fo;
  fo.method = FeedbackOf(o.method);
  fo.eta = o.eta;
  fo.init = o.init;
  FT_RETURN_IF_ERROR(ValidateFeedbackOptions(fo));

  CompressorOptions co = o.compression;
  co.value_type = "f64";
  std::unique_ptr<Compressor> c, dense;
  if (o.method != EfMethod::kGd) {
    FT_ASSIGN_OR_RETURN(c, MakeCompressor(co, d));
    CompressorOptions id;
    id.compressor = "identity";
    id.value_type = "f64";
    FT_ASSIGN_OR_RETURN(dense, MakeCompressor(id, d));
  }

  // Tracker weights and input scales: EF21-W w_i = L_i / sum L_j, v_i = g_i / (n w_i).
  std::vector<double> weight(n, 1.0 / n), scale(n, 1.0);
  if (o.method == EfMethod::kEf21W) {
    double sum = 0;
    for (double l : p.smoothness) sum += l;
    if (p.smoothness.size() != n || !(sum > 0))
      return absl::InvalidArgumentError("ef21w needs the positive smoothness constants L_i");
    for (size_t i = 0; i < n; ++i) {
      if (!(p.smoothness[i] > 0))
        return absl::InvalidArgumentError(
            absl::StrCat("ef21w: L_", i, " = ", p.smoothness[i], " must be > 0"));
      weight[i] = p.smoothness[i] / sum;
      scale[i] = 1.0 / (n * weight[i]);
    }
  }
  if (o.method == EfMethod::kEf14A)
    for (double& s : scale) s = o.gamma;

  EfRunResult res;
  std::vector<double> x = p.x0, acc(d), g(d), v(d), sent(d), msg(d), gtmp(d), gsum(d);
  std::vector<FeedbackState> st(n);
  TrackerAggregate agg(d, n, o.init);
  const bool tracker = HasTracker(fo.method);
  const bool has_star = p.x_star.size() == d;
  const double noise_sd = p.noise_sigma / std::sqrt(static_cast<double>(d));
  const int64_t tail = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(o.tail_fraction * static_cast<double>(o.rounds))));
  const int64_t tail_start = o.rounds - tail + 1;
  double tail_sum = 0;
  std::map<int64_t, double> grad2_at;
  std::set<int64_t> wanted(o.report_rounds.begin(), o.report_rounds.end());
  if (wanted.count(0)) grad2_at[0] = FullGrad2(p, x, &gtmp, &gsum);

  for (int64_t t = 0; t < o.rounds; ++t) {
    std::fill(acc.begin(), acc.end(), 0.0);
    bool finite = true;
    for (size_t i = 0; i < n && finite; ++i) {
      // Worker i, at the model it was sent.
      p.gradient(i, x, absl::MakeSpan(g));
      if (p.noise_sigma > 0) {
        RngStream rng = RngStream::For(p.noise_seed, t, i, Purpose::kMinibatch);
        for (size_t j = 0; j < d; ++j) g[j] += noise_sd * rng.Normal();
      }
      if (!AllFinite(g)) {
        finite = false;
        break;
      }
      if (o.method == EfMethod::kGd) {
        for (size_t j = 0; j < d; ++j) acc[j] += g[j];
        continue;
      }
      for (size_t j = 0; j < d; ++j) v[j] = scale[i] * g[j];
      if (!AllFinite(v)) {
        finite = false;
        break;
      }
      RngStream crng = RngStream::For(p.noise_seed, t, i, Purpose::kCompression);
      Encoded out;
      bool is_dense = false;
      FT_RETURN_IF_ERROR(FeedbackStep(fo, *c, *dense, v, crng, &st[i], &out,
                                      absl::MakeSpan(sent), &is_dense));
      // Server: decode what came over the wire and fold it in, in worker order.
      FT_RETURN_IF_ERROR((is_dense ? dense : c)->Decode(out, absl::MakeSpan(msg)));
      (is_dense ? res.dense_bits : res.compressed_bits) += 8 * out.bytes.size();
      if (tracker) {
        FT_RETURN_IF_ERROR(agg.Check(i, is_dense));
        agg.Add(i, absl::Span<const double>(msg), is_dense, weight[i]);
      } else {
        for (size_t j = 0; j < d; ++j) acc[j] += msg[j];
      }
    }
    if (finite) {
      // The server moves the model.
      const absl::Span<const double> h = agg.h();
      for (size_t j = 0; j < d; ++j) {
        switch (o.method) {
          case EfMethod::kGd:
          case EfMethod::kNaive:
          case EfMethod::kEf14B:
            x[j] -= o.gamma * (acc[j] / n);
            break;
          case EfMethod::kEf14A:
            x[j] -= acc[j] / n;
            break;
          case EfMethod::kEf21:
          case EfMethod::kEf21W:
          case EfMethod::kEControl:
            x[j] -= o.gamma * h[j];
            break;
        }
      }
      finite = AllFinite(x);
    }
    if (!finite) {
      res.diverged = true;
      res.diverged_at = t;
      break;
    }
    res.rounds_run = t + 1;
    if (has_star && t + 1 >= tail_start) {
      double s = 0;
      for (size_t j = 0; j < d; ++j) s += (x[j] - p.x_star[j]) * (x[j] - p.x_star[j]);
      tail_sum += s;
    }
    if (wanted.count(t + 1)) grad2_at[t + 1] = FullGrad2(p, x, &gtmp, &gsum);
    if (o.on_iterate) o.on_iterate(t + 1, x);
  }

  if (!res.diverged) {
    if (has_star) {
      res.dist2_tail = tail_sum / tail;
      double s = 0;
      for (size_t j = 0; j < d; ++j) s += (x[j] - p.x_star[j]) * (x[j] - p.x_star[j]);
      res.final_dist = std::sqrt(s);
    }
    res.final_grad2 = FullGrad2(p, x, &gtmp, &gsum);
  }
  for (int64_t r : o.report_rounds) {
    auto it = grad2_at.find(r);
    res.grad2.push_back(it == grad2_at.end() ? kNaN : it->second);
  }
  res.x = std::move(x);
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

// ---- Config grids.

namespace {

std::string Num(double v) { return absl::StrFormat("%.4g", v); }

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckStepMean(const std::string& field, const std::string& v) {
  if (v != "qm" && v != "am") return Bad(field, absl::StrCat("must be \"qm\" or \"am\", got \"", v, "\""));
  return absl::OkStatus();
}

// Caches the data set so a config with several logreg experiments reads it once.
struct DataCache {
  std::string path;
  std::unique_ptr<BinaryData> data;
  absl::StatusOr<const BinaryData*> Get(const std::string& p) {
    if (!data || path != p) {
      FT_ASSIGN_OR_RETURN(BinaryData d, LoadBreastCancerCsv(p));
      data = std::make_unique<BinaryData>(std::move(d));
      path = p;
    }
    return data.get();
  }
};

absl::StatusOr<EfProblem> BuildProblem(const v1::EfProblemConfig& pc, const std::string& field,
                                       uint64_t seed, const std::string& csv, DataCache* cache) {
  const std::string& kind = pc.kind();
  if (pc.has_num_workers() && pc.num_workers() <= 0)
    return Bad(field + ".num_workers", absl::StrCat("must be > 0, got ", pc.num_workers()));
  if (!(pc.sigma() >= 0) || !std::isfinite(pc.sigma()))
    return Bad(field + ".sigma", absl::StrCat("must be >= 0, got ", pc.sigma()));
  if (kind == "three_workers") {
    if (pc.has_num_workers() && pc.num_workers() != 3)
      return Bad(field + ".num_workers", "three_workers has exactly 3 workers");
    EfProblem p = ThreeWorkerProblem();
    p.noise_sigma = pc.sigma();
    p.noise_seed = seed;
    return p;
  }
  if (kind == "quadratics") {
    if (pc.dim() <= 0) return Bad(field + ".dim", absl::StrCat("must be > 0, got ", pc.dim()));
    if (!(pc.zeta() >= 0) || !std::isfinite(pc.zeta()))
      return Bad(field + ".zeta", absl::StrCat("must be >= 0, got ", pc.zeta()));
    QuadraticsOptions o;
    o.num_workers = pc.has_num_workers() ? pc.num_workers() : 10;
    o.dim = pc.dim();
    o.zeta = pc.zeta();
    o.sigma = pc.sigma();
    o.seed = seed;
    return HeterogeneousQuadratics(o);
  }
  if (kind == "logreg") {
    if (!(pc.lambda() >= 0) || !std::isfinite(pc.lambda()))
      return Bad(field + ".lambda", absl::StrCat("must be >= 0, got ", pc.lambda()));
    if (!(pc.init_stddev() >= 0) || !std::isfinite(pc.init_stddev()))
      return Bad(field + ".init_stddev", absl::StrCat("must be >= 0, got ", pc.init_stddev()));
    if (!(pc.scale_last_worker() > 0) || !std::isfinite(pc.scale_last_worker()))
      return Bad(field + ".scale_last_worker",
                 absl::StrCat("must be > 0, got ", pc.scale_last_worker()));
    FT_ASSIGN_OR_RETURN(const BinaryData* data, cache->Get(csv));
    LogRegOptions o;
    o.num_workers = pc.has_num_workers() ? pc.num_workers() : 20;
    if (o.num_workers > data->rows)
      return Bad(field + ".num_workers", absl::StrCat("at most ", data->rows,
                                                      " (one sample each), got ", o.num_workers));
    o.lambda = pc.lambda();
    o.init_stddev = pc.init_stddev();
    o.scale_last_worker = pc.scale_last_worker();
    o.sigma = pc.sigma();
    o.seed = seed;
    return NonconvexLogReg(*data, o);
  }
  return Bad(field + ".kind", absl::StrCat("unknown problem '", kind,
                                           "'; known: three_workers, quadratics, logreg"));
}

}  // namespace

absl::StatusOr<EfValidationPlan> PlanEfValidation(const v1::EfValidationConfig& cfg) {
  EfValidationPlan plan;
  plan.name = cfg.name();
  if (cfg.experiments_size() == 0)
    return Bad("experiments", "the config lists no experiment");
  DataCache cache;
  std::set<std::string> names;
  for (int e = 0; e < cfg.experiments_size(); ++e) {
    const v1::EfExperimentConfig& ec = cfg.experiments(e);
    const std::string f = absl::StrCat("experiments[", e, "]");
    EfExperimentPlan ep;
    ep.name = ec.has_name() ? ec.name() : absl::StrCat("experiment", e);
    if (!names.insert(ep.name).second)
      return Bad(f + ".name", absl::StrCat("'", ep.name, "' is used twice"));
    if (!ec.has_problem() || !ec.problem().has_kind())
      return Bad(f + ".problem.kind",
                 "missing; one of three_workers, quadratics, logreg is needed");
    if (ec.rounds() <= 0) return Bad(f + ".rounds", absl::StrCat("must be > 0, got ", ec.rounds()));
    if (!(ec.tail_fraction() > 0 && ec.tail_fraction() <= 1))
      return Bad(f + ".tail_fraction", absl::StrCat("must be in (0, 1], got ", ec.tail_fraction()));
    for (int r = 0; r < ec.report_rounds_size(); ++r)
      if (ec.report_rounds(r) < 0 || ec.report_rounds(r) > ec.rounds())
        return Bad(absl::StrCat(f, ".report_rounds[", r, "]"),
                   absl::StrCat("must be in [0, rounds = ", ec.rounds(), "], got ",
                                ec.report_rounds(r)));
    if (ec.gamma_size() == 0 && ec.gamma_factor_size() == 0)
      return Bad(f + ".gamma", "no step size: give gamma and/or gamma_factor");
    for (int g = 0; g < ec.gamma_size(); ++g)
      if (!(ec.gamma(g) > 0) || !std::isfinite(ec.gamma(g)))
        return Bad(absl::StrCat(f, ".gamma[", g, "]"), absl::StrCat("must be > 0, got ", ec.gamma(g)));
    for (int g = 0; g < ec.gamma_factor_size(); ++g)
      if (!(ec.gamma_factor(g) > 0) || !std::isfinite(ec.gamma_factor(g)))
        return Bad(absl::StrCat(f, ".gamma_factor[", g, "]"),
                   absl::StrCat("must be > 0, got ", ec.gamma_factor(g)));
    FT_RETURN_IF_ERROR(CheckStepMean(f + ".step_mean", ec.step_mean()));
    if (ec.methods_size() == 0) return Bad(f + ".methods", "no method listed");

    // Methods (checked before the problem is built, so config errors come before file errors).
    struct MethodRun {
      EfMethod method;
      double eta;
      TrackerInit init;
      std::string step_mean, label;
    };
    std::vector<MethodRun> method_runs;
    for (int m = 0; m < ec.methods_size(); ++m) {
      const v1::EfMethodConfig& mc = ec.methods(m);
      const std::string mf = absl::StrCat(f, ".methods[", m, "]");
      absl::StatusOr<EfMethod> method = ParseEfMethod(mc.method());
      if (!method.ok()) return Bad(mf + ".method", std::string(method.status().message()));
      TrackerInit init;
      if (mc.init() == "dense") {
        init = TrackerInit::kDense;
      } else if (mc.init() == "compressed") {
        init = TrackerInit::kCompressed;
      } else {
        return Bad(mf + ".init",
                   absl::StrCat("must be \"dense\" or \"compressed\", got \"", mc.init(), "\""));
      }
      const std::string mean = mc.has_step_mean() ? mc.step_mean() : ec.step_mean();
      if (mc.has_step_mean()) FT_RETURN_IF_ERROR(CheckStepMean(mf + ".step_mean", mean));
      if (*method == EfMethod::kEControl) {
        if (mc.eta_size() == 0) return Bad(mf + ".eta", "econtrol needs at least one eta");
        for (int k = 0; k < mc.eta_size(); ++k) {
          const double eta = mc.eta(k);
          if (!(eta >= 0 && eta < 1))
            return Bad(absl::StrCat(mf, ".eta[", k, "]"),
                       absl::StrCat("must be in [0, 1), got ", eta));
          std::string label =
              mc.has_label() ? mc.label() : absl::StrCat("econtrol eta=", Num(eta));
          if (mc.has_label() && mc.eta_size() > 1) label = absl::StrCat(mc.label(), " eta=", Num(eta));
          method_runs.push_back({*method, eta, init, mean, label});
        }
      } else {
        if (mc.eta_size() > 0) return Bad(mf + ".eta", "eta applies to econtrol only");
        std::string label = mc.has_label() ? mc.label() : EfMethodName(*method);
        if (!mc.has_label() && mc.has_step_mean()) label += absl::StrCat(" (", mean, ")");
        method_runs.push_back({*method, 0.0, init, mean, label});
      }
    }

    FT_ASSIGN_OR_RETURN(ep.problem, BuildProblem(ec.problem(), f + ".problem", cfg.seed(),
                                                 cfg.breast_cancer_csv(), &cache));
    CompressorOptions co;
    const v1::EfCompressionConfig& cc = ec.compression();
    co.compressor = cc.compressor();
    co.k = cc.k();
    co.k_fraction = cc.k_fraction();
    co.levels = cc.levels();
    co.bucket = cc.bucket();
    co.value_type = "f64";
    {
      absl::StatusOr<std::unique_ptr<Compressor>> c = MakeCompressor(co, ep.problem.dim);
      if (!c.ok()) {
        // Config errors (bad k, unknown compressor) name the field inside compression.
        return Bad(f + ".compression", std::string(c.status().message()));
      }
      ep.delta = (*c)->info().delta;
    }
    const EfProblem& p = ep.problem;
    const bool factors = ec.gamma_factor_size() > 0;
    if (factors && !(ep.delta > 0))
      return Bad(f + ".gamma_factor",
                 absl::StrCat("compressor '", co.compressor, "' is not contractive (delta = 0)"));
    if (ep.delta > 0) {
      ep.gamma_theory_qm = Ef21TheoryStep(p.l, p.l_qm(), ep.delta);
      ep.gamma_theory_am = Ef21TheoryStep(p.l, p.l_am(), ep.delta);
    }
    ep.report_rounds.assign(ec.report_rounds().begin(), ec.report_rounds().end());
    std::string problem_desc = p.name;
    if (ec.problem().kind() == "quadratics")
      absl::StrAppend(&problem_desc, " zeta=", Num(ec.problem().zeta()));
    if (ec.problem().kind() == "logreg" && ec.problem().scale_last_worker() != 1)
      absl::StrAppend(&problem_desc, " last worker x", Num(ec.problem().scale_last_worker()));
    if (p.noise_sigma > 0) absl::StrAppend(&problem_desc, " sigma=", Num(p.noise_sigma));
    ep.description = absl::StrCat(
        problem_desc, " n=", p.num_workers, " d=", p.dim, "; ", co.compressor,
        co.compressor == "topk" || co.compressor == "randk" ? absl::StrCat(" k=", co.k) : "",
        " delta=", Num(ep.delta), "; L=", Num(p.l), " L_AM=", Num(p.l_am()),
        " L_QM=", Num(p.l_qm()),
        ep.delta > 0 ? absl::StrCat(" gamma_QM=", Num(ep.gamma_theory_qm),
                                    " gamma_AM=", Num(ep.gamma_theory_am))
                     : "",
        "; ", ec.rounds(), " rounds");

    auto add = [&](const MethodRun& mr, double gamma, double factor) {
      EfRunSpec s;
      s.label = mr.label;
      s.gamma_factor = factor;
      s.step_mean = factor > 0 ? mr.step_mean : "";
      s.options.method = mr.method;
      s.options.gamma = gamma;
      s.options.eta = mr.eta;
      s.options.init = mr.init;
      s.options.compression = co;
      s.options.rounds = ec.rounds();
      s.options.report_rounds = ep.report_rounds;
      s.options.tail_fraction = ec.tail_fraction();
      ep.runs.push_back(std::move(s));
    };
    for (double gamma : ec.gamma())
      for (const MethodRun& mr : method_runs) add(mr, gamma, 0.0);
    for (double factor : ec.gamma_factor())
      for (const MethodRun& mr : method_runs)
        add(mr, factor * (mr.step_mean == "am" ? ep.gamma_theory_am : ep.gamma_theory_qm),
            factor);
    plan.experiments.push_back(std::move(ep));
  }
  return plan;
}

absl::StatusOr<EfValidationReport> RunEfValidation(
    const EfValidationPlan& plan, const std::function<void(const EfRow&)>& on_row) {
  const auto start = std::chrono::steady_clock::now();
  EfValidationReport report;
  for (size_t e = 0; e < plan.experiments.size(); ++e) {
    const EfExperimentPlan& ep = plan.experiments[e];
    for (size_t r = 0; r < ep.runs.size(); ++r) {
      absl::StatusOr<EfRunResult> res = RunEf(ep.problem, ep.runs[r].options);
      if (!res.ok())
        return absl::Status(res.status().code(),
                            absl::StrCat("experiment '", ep.name, "', run '", ep.runs[r].label,
                                         "': ", res.status().message()));
      EfRow row;
      row.experiment = e;
      row.run = r;
      row.result = std::move(res).value();
      if (on_row) on_row(row);
      report.rows.push_back(std::move(row));
    }
  }
  report.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

// ---- Output.

namespace {

std::string Sci(double v) {
  if (std::isnan(v)) return "-";
  return absl::StrFormat("%.3g", v);
}

std::string JsonNum(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.17g", v);
}

std::string JsonStr(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<int>(ch));
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string CsvNum(double v) { return std::isnan(v) ? "" : absl::StrFormat("%.6g", v); }

std::string RunStatus(const EfRunResult& r) {
  return r.diverged ? absl::StrCat("diverged@", r.diverged_at) : "ok";
}

}  // namespace

std::string FormatEfTable(const EfValidationPlan& plan, const EfValidationReport& report) {
  std::string out;
  for (size_t e = 0; e < plan.experiments.size(); ++e) {
    const EfExperimentPlan& ep = plan.experiments[e];
    absl::StrAppend(&out, "== ", ep.name, ": ", ep.description, "\n");
    const bool star = ep.problem.x_star.size() == ep.problem.dim;
    int gw = 10;  // gamma column: wider when it also shows "(factor x mean)"
    for (const EfRunSpec& s : ep.runs)
      if (s.gamma_factor > 0) gw = 20;
    std::string head = absl::StrFormat("%-26s %-*s", "method", gw, "gamma");
    if (star) absl::StrAppend(&head, absl::StrFormat(" %-11s %-11s", "dist2_tail", "|x_T-x*|"));
    for (int64_t r : ep.report_rounds)
      absl::StrAppend(&head, absl::StrFormat(" %-11s", absl::StrCat("grad2@", r)));
    absl::StrAppend(&head, absl::StrFormat(" %-11s %-8s %s", "grad2_T", "time_s", "status"));
    absl::StrAppend(&out, head, "\n");
    for (const EfRow& row : report.rows) {
      if (row.experiment != e) continue;
      const EfRunSpec& s = ep.runs[row.run];
      const EfRunResult& r = row.result;
      std::string gamma = Sci(s.options.gamma);
      if (s.gamma_factor > 0)
        gamma = absl::StrCat(gamma, " (", Num(s.gamma_factor), "x ", s.step_mean, ")");
      std::string line = absl::StrFormat("%-26s %-*s", s.label, gw, gamma);
      if (star)
        absl::StrAppend(&line, absl::StrFormat(" %-11s %-11s", Sci(r.dist2_tail), Sci(r.final_dist)));
      for (double g : r.grad2) absl::StrAppend(&line, absl::StrFormat(" %-11s", Sci(g)));
      absl::StrAppend(&line, absl::StrFormat(" %-11s %-8.2f %s", Sci(r.final_grad2), r.wall_s,
                                             RunStatus(r)));
      absl::StrAppend(&out, line, "\n");
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, absl::StrFormat("%d runs in %.1f s\n", report.rows.size(), report.wall_s));
  return out;
}

std::string EfTableCsv(const EfValidationPlan& plan, const EfValidationReport& report) {
  std::set<int64_t> all_rounds;
  for (const EfExperimentPlan& ep : plan.experiments)
    all_rounds.insert(ep.report_rounds.begin(), ep.report_rounds.end());
  std::string out =
      "experiment,problem,method,label,gamma,gamma_factor,step_mean,eta,rounds,rounds_run,"
      "dist2_tail,final_dist,grad2_final";
  for (int64_t r : all_rounds) absl::StrAppend(&out, ",grad2_r", r);
  absl::StrAppend(&out, ",diverged,compressed_bits,dense_bits,wall_s\n");
  for (const EfRow& row : report.rows) {
    const EfExperimentPlan& ep = plan.experiments[row.experiment];
    const EfRunSpec& s = ep.runs[row.run];
    const EfRunResult& r = row.result;
    absl::StrAppend(&out, CsvField(ep.name), ",", CsvField(ep.problem.name), ",",
                    EfMethodName(s.options.method), ",", CsvField(s.label), ",",
                    absl::StrFormat("%.6g", s.options.gamma), ",", CsvNum(s.gamma_factor > 0 ? s.gamma_factor : kNaN),
                    ",", s.step_mean, ",", CsvNum(s.options.eta), ",", s.options.rounds, ",",
                    r.rounds_run, ",", CsvNum(r.dist2_tail), ",", CsvNum(r.final_dist), ",",
                    CsvNum(r.final_grad2));
    for (int64_t t : all_rounds) {
      double v = kNaN;
      for (size_t k = 0; k < ep.report_rounds.size(); ++k)
        if (ep.report_rounds[k] == t) v = r.grad2[k];
      absl::StrAppend(&out, ",", CsvNum(v));
    }
    absl::StrAppend(&out, ",", r.diverged ? r.diverged_at : -1, ",", r.compressed_bits, ",",
                    r.dense_bits, ",", absl::StrFormat("%.3f", r.wall_s), "\n");
  }
  return out;
}

std::string EfResultsJson(const EfValidationPlan& plan, const EfValidationReport& report) {
  std::string out = absl::StrCat("{\n  \"name\": ", JsonStr(plan.name),
                                 ",\n  \"wall_s\": ", JsonNum(report.wall_s),
                                 ",\n  \"experiments\": [");
  for (size_t e = 0; e < plan.experiments.size(); ++e) {
    const EfExperimentPlan& ep = plan.experiments[e];
    const EfProblem& p = ep.problem;
    absl::StrAppend(&out, e ? "," : "", "\n    {\"name\": ", JsonStr(ep.name),
                    ", \"description\": ", JsonStr(ep.description),
                    ",\n     \"problem\": ", JsonStr(p.name), ", \"num_workers\": ", p.num_workers,
                    ", \"dim\": ", p.dim, ", \"L\": ", JsonNum(p.l), ", \"L_AM\": ",
                    JsonNum(p.l_am()), ", \"L_QM\": ", JsonNum(p.l_qm()), ", \"delta\": ",
                    JsonNum(ep.delta), ", \"gamma_theory_qm\": ", JsonNum(ep.gamma_theory_qm),
                    ", \"gamma_theory_am\": ", JsonNum(ep.gamma_theory_am),
                    ",\n     \"report_rounds\": [", absl::StrJoin(ep.report_rounds, ", "),
                    "],\n     \"runs\": [");
    bool first = true;
    for (const EfRow& row : report.rows) {
      if (row.experiment != e) continue;
      const EfRunSpec& s = ep.runs[row.run];
      const EfRunResult& r = row.result;
      std::vector<std::string> g2;
      for (double v : r.grad2) g2.push_back(JsonNum(v));
      absl::StrAppend(
          &out, first ? "" : ",", "\n       {\"label\": ", JsonStr(s.label),
          ", \"method\": ", JsonStr(EfMethodName(s.options.method)),
          ", \"gamma\": ", JsonNum(s.options.gamma),
          ", \"gamma_factor\": ", s.gamma_factor > 0 ? JsonNum(s.gamma_factor) : "null",
          ", \"step_mean\": ", s.gamma_factor > 0 ? JsonStr(s.step_mean) : "null",
          ", \"eta\": ", JsonNum(s.options.eta), ", \"rounds\": ", s.options.rounds,
          ", \"rounds_run\": ", r.rounds_run, ", \"dist2_tail\": ", JsonNum(r.dist2_tail),
          ", \"final_dist\": ", JsonNum(r.final_dist), ", \"grad2_final\": ",
          JsonNum(r.final_grad2), ", \"grad2\": [", absl::StrJoin(g2, ", "),
          "], \"diverged\": ", r.diverged ? "true" : "false",
          ", \"diverged_at\": ", r.diverged_at, ", \"compressed_bits\": ", r.compressed_bits,
          ", \"dense_bits\": ", r.dense_bits, ", \"wall_s\": ", JsonNum(r.wall_s), "}");
      first = false;
    }
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "\n  ]\n}\n");
  return out;
}

}  // namespace fedtrain
