#include "aggregators/centered_clipping_reducer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "aggregators/geometric_median_reducer.h"

namespace fedtrain {

absl::Status CenteredClippingReducer::Reduce(absl::Span<const ConstVec> in,
                                             absl::Span<const double> w, Vec out,
                                             const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  const size_t p = in.size(), n = out.size();
  FT_RETURN_IF_ERROR(RequireInputs(name(), p, f, 2 * f + 1, "2f+1"));
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  const auto& x = clean.views;
  const std::string key = ctx.state_key + ".cc_v";
  std::vector<double> v(n, 0.0), step(n), dist(p);
  if (ctx.state) {
    auto it = ctx.state->find(key);
    if (it != ctx.state->end()) {
      if (it->second.size() != n)
        return absl::FailedPreconditionError(absl::StrCat(
            "reducer centered_clipping: the stored centre ", key, " has ", it->second.size(),
            " values, the inputs ", n));
      std::copy(it->second.begin(), it->second.end(), v.begin());
    }
  }
  int64_t clipped = 0;
  for (int64_t l = 0; l < o_.iterations; ++l) {
    DistancesTo(v, x, dist.data());
    std::fill(step.begin(), step.end(), 0.0);
    for (size_t i = 0; i < p; ++i) {
      const double c = dist[i] > o_.tau ? o_.tau / dist[i] : 1.0;
      if (c < 1.0) ++clipped;
      for (size_t k = 0; k < n; ++k) step[k] += c * (x[i][k] - v[k]);
    }
    for (size_t k = 0; k < n; ++k) v[k] += step[k] / static_cast<double>(p);
  }
  for (size_t k = 0; k < n; ++k) out[k] = static_cast<float>(v[k]);
  if (ctx.state) (*ctx.state)[key].assign(out.begin(), out.end());
  if (ctx.diagnostics)
    ctx.diagnostics->Add(static_cast<int64_t>(clean.bad.size()),
                         absl::StrCat("{\"rule\":\"centered_clipping\",\"p\":", p,
                                      ",\"clipped\":", clipped,
                                      ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<CenteredClippingOptions> ReadCc(const ReducerCfg& c) {
  CenteredClippingOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  ParamReader r = ReducerParams(c);
  FT_ASSIGN_OR_RETURN(o.tau, r.Number("tau", 1.0, Range::AtLeast(0)));
  FT_ASSIGN_OR_RETURN(o.iterations, r.Integer("iterations", 1, Range::Closed(1, 1000)));
  FT_RETURN_IF_ERROR(r.Finish());
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewCenteredClippingReducerFactory() {
  return std::make_unique<RuleFactory<CenteredClippingOptions, CenteredClippingReducer>>(
      "centered_clipping", ReadCc);
}

}  // namespace fedtrain
