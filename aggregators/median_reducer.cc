#include "aggregators/median_reducer.h"

#include "absl/strings/str_cat.h"

namespace fedtrain {

absl::Status MedianReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                   Vec out, const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  FT_RETURN_IF_ERROR(RequireInputs(name(), in.size(), f, 2 * f + 1, "2f+1"));
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  const size_t p = in.size();
  ForEachSortedBlock(clean.views, [&](size_t k0, size_t len, const float* v, size_t stride) {
    if (p % 2) {
      const float* mid = v + (p / 2) * stride;
      std::copy(mid, mid + len, out.data() + k0);
    } else {
      const float* a = v + (p / 2 - 1) * stride;
      const float* b = v + (p / 2) * stride;
      for (size_t t = 0; t < len; ++t)
        out[k0 + t] = static_cast<float>(0.5 * (static_cast<double>(a[t]) + b[t]));
    }
  });
  if (ctx.diagnostics)
    ctx.diagnostics->Add(static_cast<int64_t>(clean.bad.size()),
                         absl::StrCat("{\"rule\":\"median\",\"p\":", p,
                                      ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<MedianOptions> ReadMedian(const ReducerCfg& c) {
  MedianOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  FT_RETURN_IF_ERROR(ReducerParams(c).Finish());
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewMedianReducerFactory() {
  return std::make_unique<RuleFactory<MedianOptions, MedianReducer>>("median", ReadMedian);
}

}  // namespace fedtrain
