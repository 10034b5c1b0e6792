#include "aggregators/nna_reducer.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "aggregators/geometric_median_reducer.h"
#include "aggregators/krum_reducer.h"
#include "aggregators/median_reducer.h"
#include "aggregators/trimmed_mean_reducer.h"

namespace fedtrain {

absl::Status NnaReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                Vec out, const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  const size_t p = in.size(), n = out.size();
  FT_RETURN_IF_ERROR(RequireInputs(name(), p, f, 2 * f + 1, "2f+1"));
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  std::vector<double> z(n, 0.0);
  if (o_.pivot_rule) {
    std::vector<float> zf(n);
    std::vector<double> uniform(p, 1.0 / static_cast<double>(p));
    ReduceContext pivot_ctx;  // no diagnostics or state for the pivot
    pivot_ctx.pool = ctx.pool;
    pivot_ctx.ids = ctx.ids;
    FT_RETURN_IF_ERROR(o_.pivot_rule->Reduce(clean.views, uniform, absl::MakeSpan(zf), pivot_ctx));
    std::copy(zf.begin(), zf.end(), z.begin());
  }
  std::vector<double> dist(p);
  DistancesTo(z, clean.views, dist.data());
  std::vector<size_t> order(p);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return dist[a] < dist[b]; });
  std::vector<size_t> kept(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(p - f));
  std::sort(kept.begin(), kept.end());
  MeanOf(clean.views, kept, out);
  if (ctx.diagnostics)
    ctx.diagnostics->Add(f, absl::StrCat("{\"rule\":\"nna\",\"p\":", p, ",\"pivot\":\"", o_.pivot,
                                         "\",\"kept\":", IdList(ctx, kept),
                                         ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<NnaOptions> ReadNna(const ReducerCfg& c) {
  NnaOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  ParamReader r = ReducerParams(c);
  FT_ASSIGN_OR_RETURN(o.pivot, r.String("pivot", "median",
                                        {"median", "trimmed_mean", "krum", "mean", "zero"}));
  FT_RETURN_IF_ERROR(r.Finish());
  if (o.pivot == "median") {
    o.pivot_rule = std::make_shared<MedianReducer>(MedianOptions{o.common});
  } else if (o.pivot == "trimmed_mean") {
    o.pivot_rule = std::make_shared<TrimmedMeanReducer>(TrimmedMeanOptions{o.common});
  } else if (o.pivot == "krum") {
    KrumOptions k;
    k.common = o.common;
    o.pivot_rule = std::make_shared<KrumReducer>(k);
  } else if (o.pivot == "mean") {
    o.pivot_rule = std::make_shared<MeanReducer>();
  }
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewNnaReducerFactory() {
  return std::make_unique<RuleFactory<NnaOptions, NnaReducer>>("nna", ReadNna);
}

}  // namespace fedtrain
