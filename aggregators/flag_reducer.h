// The Flag Aggregator (Almasi, Mishra, Vamanan, Ravi, "Flag Aggregator: Scalable Distributed
// Training under Failures and Augmented Losses using Convex Optimization", ICLR 2024, arXiv
// 2302.05865), computed in the p x p Gram space (docs/robust.md).
//
// Each input g_i becomes a unit direction gh_i = g_i / max(||g_i||, 1e-12). FA looks for an
// m-dimensional subspace Y that explains the directions under a robust loss,
// sum_i sqrt(1 - ||Y^T gh_i||^2), by iteratively reweighted least squares (IRLS): every step
// takes the top-m left singular vectors of the columns (s_i + eps)^(-1/4) gh_i, with
// s_i = |1 - ||Y^T gh_i||^2| from the previous subspace (plus pairwise columns when
// lambda > 0). The output is (1/m) sum_i Y Y^T gh_i.
//
// Nothing of size n x n, n x m or n x p^2 is formed: with K = Gh^T Gh (float64, one pass over
// the data) and the state Z = Y^T Gh (m x p), each IRLS step is a p x p symmetric
// eigenproblem, and the output is sum_i coef_i g_i (a second pass). Default init is a Y
// orthogonal to the inputs (Z = 0; deterministic, permutation invariant); `init: "random"`
// draws Y_0 uniform in (-0.5, 0.5), orthonormalised, from the counter-based stream
// (seed, round, 0, kReducer), as the authors' code does (their code reseeds every call).
// A step is kept only if it lowers the objective (the first step from the orthogonal start
// always is); eigenvalues below 1e-12 of the largest are dropped (rank m' <= m), but the
// output is still divided by m, as in the reference code.
// Options (algorithm.reducer.params): m (default ceil(p/2)), lambda (>= 0, default 0),
// iterations (T, default 1, at most 10), init ("orthogonal" | "random"), pairwise_mode
// ("reference": unit-vector differences, column weight lambda/(p(p-1)) | "normalized":
// normalised differences, quadratic weight lambda/(p(p-1))), seed (random init, default 1).
// The declared f is not used by the maths; p >= 2f+1 is required (the reference trainer's
// check). ||output|| <= p/m. Cost O(n p^2 / 2) for K, O(T p^3), O(n p) for the output.
// Registry name "flag". Stateless; thread-compatible.
#ifndef FEDTRAIN_AGGREGATORS_FLAG_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_FLAG_REDUCER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct FlagOptions {
  RobustCommon common;
  int64_t m = 0;  // 0: ceil(p/2)
  double lambda = 0.0;
  int64_t iterations = 1;
  bool random_init = false;
  bool pairwise_normalized = false;
  uint64_t seed = 1;
  double eps = 1e-7;
};

struct FlagDiagnostics {
  int64_t m = 0, rank = 0, steps = 0;  // steps: IRLS steps accepted
  bool used_random_start = false;      // the random Y_0 was kept (no step lowered E)
  std::vector<double> ratios;          // v_i = ||Y^T gh_i||^2 of the final subspace
  std::vector<double> weights;         // a_i = (s_i + eps)^(-1/2) of the last step
  double objective = 0.0;              // E of the final subspace
};

// The aggregate in float64 (out has the inputs' size). Inputs must be finite.
absl::Status FlagAggregate(absl::Span<const ConstVec> x, const FlagOptions& o, uint64_t round,
                           std::vector<double>* out, FlagDiagnostics* diag);

// The same with the inputs' raw Gram already computed (gram may be null) and the output
// written either to `out` (float64) or, when out is null, rounded into `out_float`.
absl::Status FlagAggregateInto(absl::Span<const ConstVec> x, const FlagOptions& o,
                               uint64_t round, const std::vector<double>* gram,
                               std::vector<double>* out, Vec out_float, FlagDiagnostics* diag);

class FlagReducer final : public Reducer {
 public:
  explicit FlagReducer(FlagOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return "flag"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  FlagOptions o_;
};

std::unique_ptr<ReducerFactory> NewFlagReducerFactory();

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_FLAG_REDUCER_H_
