#include "aggregators/geometric_median_reducer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace fedtrain {

void DistancesTo(absl::Span<const double> v, absl::Span<const ConstVec> x, double* dist) {
  const size_t n = v.size();
  for (size_t i = 0; i < x.size(); ++i) {
    double s[4] = {0, 0, 0, 0};
    size_t k = 0;
    for (; k + 4 <= n; k += 4)
      for (int u = 0; u < 4; ++u) {
        const double d = v[k + u] - x[i][k + u];
        s[u] += d * d;
      }
    for (; k < n; ++k) {
      const double d = v[k] - x[i][k];
      s[0] += d * d;
    }
    dist[i] = std::sqrt((s[0] + s[1]) + (s[2] + s[3]));
  }
}

absl::Status GeometricMedianReducer::Reduce(absl::Span<const ConstVec> in,
                                            absl::Span<const double> w, Vec out,
                                            const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  const size_t p = in.size(), n = out.size();
  FT_RETURN_IF_ERROR(RequireInputs(name(), p, f, 2 * f + 1, "2f+1"));
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  const auto& x = clean.views;
  std::vector<double> v(n, 0.0), next(n), dist(p), b(p);
  for (size_t i = 0; i < p; ++i)
    for (size_t k = 0; k < n; ++k) v[k] += x[i][k];
  for (size_t k = 0; k < n; ++k) v[k] /= static_cast<double>(p);
  DistancesTo(v, x, dist.data());
  double obj = 0.0;
  for (double d : dist) obj += d / static_cast<double>(p);
  int64_t steps = 0;
  for (; steps < o_.iterations; ++steps) {
    double bsum = 0.0;
    for (size_t i = 0; i < p; ++i) bsum += b[i] = 1.0 / std::max(o_.nu, dist[i]);
    std::fill(next.begin(), next.end(), 0.0);
    for (size_t i = 0; i < p; ++i) {
      const double c = b[i] / bsum;
      for (size_t k = 0; k < n; ++k) next[k] += c * x[i][k];
    }
    v.swap(next);
    DistancesTo(v, x, dist.data());
    double obj_new = 0.0;
    for (double d : dist) obj_new += d / static_cast<double>(p);
    const bool small = obj - obj_new < o_.tol * obj;
    obj = obj_new;
    if (small) {
      ++steps;
      break;
    }
  }
  for (size_t k = 0; k < n; ++k) out[k] = static_cast<float>(v[k]);
  if (ctx.diagnostics)
    ctx.diagnostics->Add(static_cast<int64_t>(clean.bad.size()),
                         absl::StrCat("{\"rule\":\"geometric_median\",\"p\":", p,
                                      ",\"iterations\":", steps, ",\"objective\":", obj,
                                      ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<GeometricMedianOptions> ReadGm(const ReducerCfg& c) {
  GeometricMedianOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  ParamReader r = ReducerParams(c);
  FT_ASSIGN_OR_RETURN(o.nu, r.Number("nu", 1e-6, Range::Positive()));
  FT_ASSIGN_OR_RETURN(o.iterations, r.Integer("iterations", 20, Range::Closed(0, 10000)));
  FT_ASSIGN_OR_RETURN(o.tol, r.Number("tol", 1e-6, Range::AtLeast(0)));
  FT_RETURN_IF_ERROR(r.Finish());
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewGeometricMedianReducerFactory() {
  return std::make_unique<RuleFactory<GeometricMedianOptions, GeometricMedianReducer>>(
      "geometric_median", ReadGm);
}

}  // namespace fedtrain
