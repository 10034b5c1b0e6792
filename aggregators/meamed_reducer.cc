#include "aggregators/meamed_reducer.h"

#include "absl/strings/str_cat.h"

namespace fedtrain {

absl::Status MeaMedReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                   Vec out, const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  FT_RETURN_IF_ERROR(RequireInputs(name(), in.size(), f, 2 * f + 1, "2f+1"));
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  const size_t p = in.size(), keep = p - static_cast<size_t>(f);
  ForEachSortedBlock(clean.views, [&](size_t k0, size_t len, const float* v, size_t stride) {
    for (size_t t = 0; t < len; ++t) {
      double c;
      if (o_.trimmed_center) {
        c = 0.0;
        for (size_t r = static_cast<size_t>(f); r < p - static_cast<size_t>(f); ++r)
          c += v[r * stride + t];
        c /= static_cast<double>(p - 2 * static_cast<size_t>(f));
      } else {
        c = SortedMedian(v + t, stride, p);
      }
      out[k0 + t] = static_cast<float>(MeanOfClosest(v + t, stride, p, c, keep));
    }
  });
  if (ctx.diagnostics)
    ctx.diagnostics->Add(static_cast<int64_t>(clean.bad.size()),
                         absl::StrCat("{\"rule\":\"", name(), "\",\"p\":", p,
                                      ",\"kept_per_coordinate\":", keep,
                                      ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<MeaMedOptions> ReadMeaMed(const ReducerCfg& c) {
  MeaMedOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  FT_RETURN_IF_ERROR(ReducerParams(c).Finish());
  return o;
}

absl::StatusOr<MeaMedOptions> ReadPhocas(const ReducerCfg& c) {
  FT_ASSIGN_OR_RETURN(MeaMedOptions o, ReadMeaMed(c));
  o.trimmed_center = true;
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewMeaMedReducerFactory() {
  return std::make_unique<RuleFactory<MeaMedOptions, MeaMedReducer>>("meamed", ReadMeaMed);
}
std::unique_ptr<ReducerFactory> NewPhocasReducerFactory() {
  return std::make_unique<RuleFactory<MeaMedOptions, MeaMedReducer>>("phocas", ReadPhocas);
}

}  // namespace fedtrain
