// Building blocks shared by the Byzantine-robust reducers (docs/robust.md): input checks,
// the non-finite input policy, the float64 Gram matrix, pairwise squared distances, per-
// coordinate sorting with a sorting network, and a factory template so that each rule is
// one .h/.cc pair holding its maths, options and registration.
// Pure and single-threaded; every float64 sum runs in a fixed order over fixed coordinate
// blocks, so results do not depend on the machine's thread count.
#ifndef FEDTRAIN_AGGREGATORS_ROBUST_KERNELS_H_
#define FEDTRAIN_AGGREGATORS_ROBUST_KERNELS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "aggregators/params.h"
#include "aggregators/reducer.h"
#include "core/status_macros.h"
#include "core/vec.h"

namespace fedtrain {

// Settings every robust rule shares (algorithm.reducer.f and .nonfinite).
struct RobustCommon {
  int64_t f = 0;
  bool zero_nonfinite = true;  // "zero"; false: "error"
};

// InvalidArgument for no input, an input whose size differs from out's, or w of the wrong size.
absl::Status CheckReduceShapes(absl::Span<const ConstVec> in, absl::Span<const double> w,
                               Vec out, const std::string& rule);

// FailedPrecondition "reducer krum needs p >= 2f+3 = 9 updates (f = 3), this round has 8"
// when p < need.
absl::Status RequireInputs(const std::string& rule, size_t p, int64_t f, int64_t need,
                           const std::string& formula);

// Applies the non-finite policy: `views` receives `in` with every vector holding NaN/Inf
// replaced by a zero vector (kept in `zeros`), `bad` the indices replaced. With
// zero_nonfinite false the first such vector is an InvalidArgument naming its client.
struct CleanInputs {
  std::vector<ConstVec> views;
  std::vector<size_t> bad;
  std::vector<float> zeros;
};
absl::Status CleanNonFinite(absl::Span<const ConstVec> in, const RobustCommon& c,
                            const ReduceContext& ctx, const std::string& rule,
                            CleanInputs* out);

// K[i*p + j] = sum_k x_i[k] x_j[k] in float64 (symmetric, p x p, row-major). Coordinates are
// taken in blocks of kGramBlock; within a block each entry sums in eight interleaved partial
// sums (partial u takes the block's coordinates t with t % 8 == u, in increasing t) combined
// as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), and block sums are added in block
// order. `path` picks the code (tests compare them; every path gives the same bits).
inline constexpr size_t kGramBlock = 256;
// kAuto: the AVX2 build where the CPU has AVX2 and FMA, else the baseline build.
enum class KernelPath { kAuto, kBaseline, kAvx2 };
// Whether this CPU can run `path`.
bool KernelPathAvailable(KernelPath path);
void Gram(absl::Span<const ConstVec> x, std::vector<double>* K,
          KernelPath path = KernelPath::kAuto);

// out[k] = sum_i c[i] x_i[k]: per coordinate a float64 sum from 0.0 that adds the products
// c[i] * x_i[k] (each rounded to float64, no fused multiply-add) in input order. Exactly one
// of out_float (rounded once to float32) and out_double is non-null; it has n entries.
void LinearCombination(absl::Span<const ConstVec> x, absl::Span<const double> c,
                       float* out_float, double* out_double,
                       KernelPath path = KernelPath::kAuto);

// D[i*p + j] = max(0, K_ii + K_jj - 2 K_ij): squared Euclidean distances from the Gram.
std::vector<double> SquaredDistances(const std::vector<double>& K, size_t p);

// Comparators (a < b) of a sorting network for p values: Batcher's odd-even merge sort for
// the next power of two, keeping only comparators inside [0, p) (the dropped ones would
// only ever see +inf padding above p, so they are no-ops).
std::vector<std::pair<int, int>> SortingNetwork(size_t p);

// Sorts the p values of every coordinate: calls fn(k0, len, buf, stride) for consecutive
// coordinate blocks, where buf[r * stride + t] is the r-th smallest value of coordinate k0+t
// (r in [0, p), t in [0, len)). The values of each coordinate come out in ascending order
// whatever the order of the inputs. Inputs must be finite.
inline constexpr size_t kSortBlock = 512;
template <typename Fn>
void ForEachSortedBlock(absl::Span<const ConstVec> in, Fn fn);
// Implementation detail of ForEachSortedBlock.
void SortBlock(absl::Span<const ConstVec> in, size_t k0, size_t len,
               const std::vector<std::pair<int, int>>& net, float* buf);

// Per coordinate, from ascending values v[0..q): the mean (float64, ascending order) of the
// `keep` values closest to `center`; ties in distance take the smaller value. These always
// form a contiguous window of the sorted values.
double MeanOfClosest(const float* v, size_t stride, size_t q, double center, size_t keep);
// Median of ascending values (even q: mean of the two middle ones, in float64).
inline double SortedMedian(const float* v, size_t stride, size_t q) {
  return q % 2 ? v[(q / 2) * stride]
               : 0.5 * (static_cast<double>(v[(q / 2 - 1) * stride]) + v[(q / 2) * stride]);
}

// "[3,5,9]" with the inputs' client ids (ctx.ids) or indices.
std::string IdList(const ReduceContext& ctx, const std::vector<size_t>& idx);
// The uniform mean (float64, index order) of the inputs listed in `idx`, written to out.
void MeanOf(absl::Span<const ConstVec> in, const std::vector<size_t>& idx, Vec out);

// Reads f and nonfinite, and hands out a ParamReader for algorithm.reducer.params.
absl::StatusOr<RobustCommon> ReadCommon(const ReducerCfg& c);
inline ParamReader ReducerParams(const ReducerCfg& c) {
  return ParamReader(c.params(), c.name(), "algorithm.reducer.params");
}

// A reducer factory from the rule's name, its options reader and its Reducer class (which
// has a constructor taking the options).
template <typename Options, typename Rule>
class RuleFactory final : public ReducerFactory {
 public:
  using Read = absl::StatusOr<Options> (*)(const ReducerCfg&);
  RuleFactory(std::string name, Read read) : name_(std::move(name)), read_(read) {}
  std::string name() const override { return name_; }
  absl::Status Validate(const ReducerCfg& c) const override { return read_(c).status(); }
  absl::StatusOr<std::unique_ptr<Reducer>> Make(const ReducerCfg& c) const override {
    FT_ASSIGN_OR_RETURN(Options o, read_(c));
    return std::unique_ptr<Reducer>(new Rule(std::move(o)));
  }

 private:
  std::string name_;
  Read read_;
};

template <typename Fn>
void ForEachSortedBlock(absl::Span<const ConstVec> in, Fn fn) {
  const size_t p = in.size(), n = in.empty() ? 0 : in[0].size();
  const std::vector<std::pair<int, int>> net = SortingNetwork(p);
  std::vector<float> buf(p * kSortBlock);
  for (size_t k0 = 0; k0 < n; k0 += kSortBlock) {
    const size_t len = std::min(kSortBlock, n - k0);
    SortBlock(in, k0, len, net, buf.data());
    fn(k0, len, static_cast<const float*>(buf.data()), kSortBlock);
  }
}

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_ROBUST_KERNELS_H_
