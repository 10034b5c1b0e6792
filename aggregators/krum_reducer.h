// Krum and Multi-Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine
// Tolerant Gradient Descent", arXiv 1703.02757). D_ij = ||x_i - x_j||^2 from the float64 Gram
// (K_ii + K_jj - 2 K_ij, clamped at 0); score(i) = sum of the p - f - 2 smallest D_ij over
// j != i. Krum outputs the input with the lowest score (ties: lower index); Multi-Krum the
// mean of the mk lowest-scored inputs (default mk = p - f; 1 <= mk <= p - f). Both require
// p >= 2f+3. `garfield_compat` reproduces the Garfield++ baseline used in the Flag Aggregator
// paper's experiments: unsquared distances in the scores and mk = p - f - 2.
// Registry names "krum" and "multi_krum". Cost O(p^2 n) for the Gram, O(p^2 log p) for scores.
// Stateless; thread-compatible.
#ifndef FEDTRAIN_AGGREGATORS_KRUM_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_KRUM_REDUCER_H_

#include <memory>
#include <string>
#include <vector>

#include "aggregators/robust_kernels.h"

namespace fedtrain {

struct KrumOptions {
  RobustCommon common;
  bool multi = false;
  int64_t mk = 0;  // 0: the default (p - f, or p - f - 2 with garfield_compat)
  bool garfield_compat = false;
};

// Krum scores of the inputs listed in `members` (indices into the p x p distance matrix D),
// each over the other members: the sum of the `members.size() - f - 2` smallest distances
// (0 when that count is <= 0). `unsquared` takes square roots of D first.
std::vector<double> KrumScores(const std::vector<double>& D, size_t p,
                               const std::vector<size_t>& members, int64_t f, bool unsquared);

class KrumReducer final : public Reducer {
 public:
  explicit KrumReducer(KrumOptions o) : o_(o) {}
  using Reducer::Reduce;
  std::string name() const override { return o_.multi ? "multi_krum" : "krum"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;

 private:
  KrumOptions o_;
};

std::unique_ptr<ReducerFactory> NewKrumReducerFactory(bool multi);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_KRUM_REDUCER_H_
