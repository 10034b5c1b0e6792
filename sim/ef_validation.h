// Float64 validation harness for error feedback (docs/compression.md §4): distributed
// (S)GD in double with n workers, every worker in every round, through the production
// pieces: Compressor (float64 values on the wire, so round trips are exact), FeedbackStep on
// the worker and TrackerAggregate on the server. The round is the pipeline's: each worker
// computes its vector at the model it was sent, encodes it, the server decodes every message
// in increasing worker order, folds it in, then moves the model:
//   gd        x -= gamma mean g_i                         (uncompressed)
//   naive     x -= gamma mean C(g_i)
// ef14      v = gamma g (form A): x -= mean Delta_i      ef14b  v = g (form B): x -= gamma mean
// Delta_i
//   ef21, ef21w, econtrol: x -= gamma h, h the server's tracker (EF21-W: v = g/(n w_i),
//             w_i = L_i / sum_j L_j, h = sum_i w_i h_i)
// Problems: §4.1 three workers, §4.2 heterogeneous quadratics, §4.3/§4.4 nonconvex logistic
// regression on breast_cancer. `fedtrain ef-validate` (cli/ef_validate.h) runs a grid of
// these from a v1::EfValidationConfig.
//
// Thread-compatible: an EfProblem is immutable once built; RunEf is a pure function of its
// arguments (all randomness from RngStream keyed (seed, round, worker, purpose)).
#ifndef FEDTRAIN_SIM_EF_VALIDATION_H_
#define FEDTRAIN_SIM_EF_VALIDATION_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"
#include "fedtrain/v1/ef_validation.pb.h"

namespace fedtrain {

// min_x f(x) = (1/n) sum_i f_i(x).
struct EfProblem {
  std::string name;
  size_t num_workers = 0;
  size_t dim = 0;
  std::vector<double> x0;
  std::vector<double> x_star;      // the minimiser when known, else empty
  std::vector<double> smoothness;  // L_i
  double l = 0.0;                  // L of f
  // Stochastic oracle: every worker adds N(0, noise_sigma^2 / d I) to its exact gradient in
  // every round, drawn from RngStream::For(noise_seed, round, worker, kMinibatch).
  double noise_sigma = 0.0;
  uint64_t noise_seed = 0;
  // Exact local gradient of f_i at x, written into g (both of length dim).
  std::function<void(size_t i, absl::Span<const double> x, absl::Span<double> g)> gradient;

  double l_am() const;  // (1/n) sum L_i
  double l_qm() const;  // sqrt((1/n) sum L_i^2)
};

// §4.1: f_i(x) = <a_i, x>^2 + |x|^2/4, a_1 = (-3,2,2), a_2 = (2,-3,2), a_3 = (2,2,-3),
// x^0 = (1,1,1), x* = 0.
EfProblem ThreeWorkerProblem();

// §4.2: f_i(x) = 1/2 |a_i x - b_i|^2 with a_i = i/sqrt(n), b_i ~ N(0, (zeta/i)^2 I_d) drawn
// from RngStream (seed, 0, i-1, kSyntheticData), x^0 = (1,...,1), L_i = i^2/n,
// x* = sum a_i b_i / sum a_i^2; gradient noise sigma.
struct QuadraticsOptions {
  size_t num_workers = 10;
  size_t dim = 50;
  double zeta = 0.0;
  double sigma = 0.0;
  uint64_t seed = 1;
};
absl::StatusOr<EfProblem> HeterogeneousQuadratics(const QuadraticsOptions& o);

// A binary data set: rows x cols features (row-major), labels +1 / -1.
struct BinaryData {
  size_t rows = 0, cols = 0;
  std::vector<double> features;
  std::vector<double> labels;
};
// The installed copy (scripts/install_deps.sh).
inline constexpr char kBreastCancerCsv[] = "/usr/local/share/fedtrain/datasets/breast_cancer.csv";
// scikit-learn's breast_cancer.csv: a header line "rows,cols,name0,name1", then rows lines of
// cols features and an integer class. Features are z-scored with the population standard
// deviation; class 1 -> +1, 0 -> -1 (docs/compression.md §4.3). NotFound (naming the file and how
// to install it) when missing; DataLoss naming the line when malformed.
absl::StatusOr<BinaryData> LoadBreastCancerCsv(const std::string& path);

// §4.3: f_i(x) = (1/N_i) sum_j log(1 + exp(-y_ij a_ij^T x)) + lambda sum_k x_k^2/(1 + x_k^2),
// contiguous split over n workers (blocks of floor(N/n) + 1 rows first, then floor(N/n): the
// split that reproduces the spec's constants), x^0 ~ N(0, init_stddev^2 I) from RngStream
// (seed, 0, 0, kModelInit); L_i = lambda_max(A_i^T A_i / (4 N_i)) + 2 lambda,
// L = lambda_max((1/n) sum_i A_i^T A_i / (4 N_i)) + 2 lambda (exact eigenvalues). §4.4:
// scale_last_worker = 10 multiplies the last worker's (z-scored) features.
struct LogRegOptions {
  size_t num_workers = 20;
  double lambda = 0.1;
  double init_stddev = 2.0;
  double scale_last_worker = 1.0;
  double sigma = 0.0;  // gradient noise (0: full local gradients, as in the spec)
  uint64_t seed = 1;
};
absl::StatusOr<EfProblem> NonconvexLogReg(const BinaryData& data, const LogRegOptions& o);

enum class EfMethod { kGd, kNaive, kEf14A, kEf14B, kEf21, kEf21W, kEControl };
// "gd", "naive", "ef14", "ef14b", "ef21", "ef21w", "econtrol".
absl::StatusOr<EfMethod> ParseEfMethod(const std::string& name);
const char* EfMethodName(EfMethod m);

struct EfRunOptions {
  EfMethod method = EfMethod::kGd;
  double gamma = 0.0;
  double eta = 0.0;                         // EControl
  TrackerInit init = TrackerInit::kDense;   // tracker methods
  CompressorOptions compression;            // value_type is forced to "f64"
  int64_t rounds = 0;
  std::vector<int64_t> report_rounds;       // ||grad f(x^t)||^2 at these t in [0, rounds]
  double tail_fraction = 0.05;
  // Called with every iterate x^t, t = 1..rounds (tests compare trajectories). May be null.
  std::function<void(int64_t t, absl::Span<const double> x)> on_iterate;
};

struct EfRunResult {
  std::vector<double> x;  // the last iterate
  int64_t rounds_run = 0;
  // Mean of |x^t - x*|^2 over the last ceil(tail_fraction * rounds) iterates; NaN without x*.
  double dist2_tail = std::numeric_limits<double>::quiet_NaN();
  double final_dist = std::numeric_limits<double>::quiet_NaN();  // |x^T - x*|
  double final_grad2 = std::numeric_limits<double>::quiet_NaN();  // |grad f(x^T)|^2
  std::vector<double> grad2;  // |grad f(x^t)|^2 at report_rounds (NaN after a divergence)
  // A non-finite gradient or iterate appeared in round `diverged_at`; the run stopped there.
  bool diverged = false;
  int64_t diverged_at = -1;
  uint64_t compressed_bits = 0;  // wire bits of the compressed messages (headers included)
  uint64_t dense_bits = 0;       // wire bits of the dense tracker initialisations
  double wall_s = 0.0;
};

// One run. InvalidArgument for bad options (naming them); compressor errors as they come.
absl::StatusOr<EfRunResult> RunEf(const EfProblem& p, const EfRunOptions& o);

// ---- Config grids (`fedtrain ef-validate`).

struct EfRunSpec {
  std::string label;  // e.g. "econtrol eta=0.02"
  double gamma_factor = 0.0;  // 0 for an explicit gamma
  std::string step_mean;      // "qm" / "am" for factor steps
  EfRunOptions options;
};

struct EfExperimentPlan {
  std::string name;
  std::string description;  // problem, compressor and constants, one line
  EfProblem problem;
  double delta = 1.0;       // the compressor's delta
  double gamma_theory_qm = 0.0, gamma_theory_am = 0.0;  // 1 / (L + L_mean xi(delta))
  std::vector<int64_t> report_rounds;
  std::vector<EfRunSpec> runs;
};

struct EfValidationPlan {
  std::string name;
  std::vector<EfExperimentPlan> experiments;
};

// Checks the config and builds every problem (reading the CSV when a logreg problem is
// listed) and run. InvalidArgument naming the field (e.g. "experiments[1].methods[0].eta[0]
// must be in [0, 1), got 1") for a bad config; NotFound / DataLoss for a missing or malformed
// data file.
absl::StatusOr<EfValidationPlan> PlanEfValidation(const v1::EfValidationConfig& cfg);

struct EfRow {
  size_t experiment = 0;  // index into the plan
  size_t run = 0;         // index into the experiment's runs
  EfRunResult result;
};
struct EfValidationReport {
  std::vector<EfRow> rows;
  double wall_s = 0.0;
};

// Runs every run of the plan in order; `on_row` (may be null) sees each row when it is done.
absl::StatusOr<EfValidationReport> RunEfValidation(
    const EfValidationPlan& plan, const std::function<void(const EfRow&)>& on_row);

// The report as a fixed-width text table (one block per experiment), as CSV (one line per
// run; grad2_r<t> columns for every reported round) and as JSON.
std::string FormatEfTable(const EfValidationPlan& plan, const EfValidationReport& report);
std::string EfTableCsv(const EfValidationPlan& plan, const EfValidationReport& report);
std::string EfResultsJson(const EfValidationPlan& plan, const EfValidationReport& report);

}  // namespace fedtrain

#endif  // FEDTRAIN_SIM_EF_VALIDATION_H_
