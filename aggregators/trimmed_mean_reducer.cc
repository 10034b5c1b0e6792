#include "aggregators/trimmed_mean_reducer.h"

#include "absl/strings/str_cat.h"

namespace fedtrain {

absl::Status TrimmedMeanReducer::Reduce(absl::Span<const ConstVec> in,
                                        absl::Span<const double> w, Vec out,
                                        const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  FT_RETURN_IF_ERROR(RequireInputs(name(), in.size(), f, 2 * f + 1, "2f+1"));
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  const size_t p = in.size(), lo = static_cast<size_t>(f), hi = p - static_cast<size_t>(f);
  const double inv = 1.0 / static_cast<double>(hi - lo);
  std::vector<double> acc(kSortBlock);
  ForEachSortedBlock(clean.views, [&](size_t k0, size_t len, const float* v, size_t stride) {
    std::fill(acc.begin(), acc.begin() + len, 0.0);
    for (size_t r = lo; r < hi; ++r)
      for (size_t t = 0; t < len; ++t) acc[t] += v[r * stride + t];
    for (size_t t = 0; t < len; ++t) out[k0 + t] = static_cast<float>(acc[t] * inv);
  });
  if (ctx.diagnostics)
    ctx.diagnostics->Add(static_cast<int64_t>(clean.bad.size()),
                         absl::StrCat("{\"rule\":\"trimmed_mean\",\"p\":", p, ",\"trimmed_per_coordinate\":",
                                      2 * f, ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<TrimmedMeanOptions> ReadTrimmedMean(const ReducerCfg& c) {
  TrimmedMeanOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  FT_RETURN_IF_ERROR(ReducerParams(c).Finish());
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewTrimmedMeanReducerFactory() {
  return std::make_unique<RuleFactory<TrimmedMeanOptions, TrimmedMeanReducer>>(
      "trimmed_mean", ReadTrimmedMean);
}

}  // namespace fedtrain
