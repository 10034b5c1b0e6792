#include "aggregators/bulyan_reducer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "aggregators/krum_reducer.h"

namespace fedtrain {

absl::Status BulyanReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                   Vec out, const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  const size_t p = in.size();
  FT_RETURN_IF_ERROR(RequireInputs(name(), p, f, 4 * f + 3, "4f+3"));
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  std::vector<double> K;
  Gram(clean.views, &K);
  const std::vector<double> D = SquaredDistances(K, p);
  const size_t theta = p - 2 * static_cast<size_t>(f);
  const size_t beta = theta - 2 * static_cast<size_t>(f);
  std::vector<size_t> remaining(p), selected;
  for (size_t i = 0; i < p; ++i) remaining[i] = i;
  while (selected.size() < theta) {
    const std::vector<double> score = KrumScores(D, p, remaining, f, false);
    size_t best = 0;
    for (size_t a = 1; a < remaining.size(); ++a)
      if (score[a] < score[best]) best = a;  // ties: the lower index (remaining is sorted)
    selected.push_back(remaining[best]);
    remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(best));
  }
  std::sort(selected.begin(), selected.end());
  std::vector<ConstVec> sel;
  for (size_t i : selected) sel.push_back(clean.views[i]);
  ForEachSortedBlock(sel, [&](size_t k0, size_t len, const float* v, size_t stride) {
    for (size_t t = 0; t < len; ++t)
      out[k0 + t] = static_cast<float>(
          MeanOfClosest(v + t, stride, theta, SortedMedian(v + t, stride, theta), beta));
  });
  if (ctx.diagnostics)
    ctx.diagnostics->Add(static_cast<int64_t>(p - theta),
                         absl::StrCat("{\"rule\":\"bulyan\",\"p\":", p, ",\"selected\":",
                                      IdList(ctx, selected), ",\"beta\":", beta,
                                      ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<BulyanOptions> ReadBulyan(const ReducerCfg& c) {
  BulyanOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  FT_RETURN_IF_ERROR(ReducerParams(c).Finish());
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewBulyanReducerFactory() {
  return std::make_unique<RuleFactory<BulyanOptions, BulyanReducer>>("bulyan", ReadBulyan);
}

}  // namespace fedtrain
