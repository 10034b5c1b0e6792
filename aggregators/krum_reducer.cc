#include "aggregators/krum_reducer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace fedtrain {

std::vector<double> KrumScores(const std::vector<double>& D, size_t p,
                               const std::vector<size_t>& members, int64_t f, bool unsquared) {
  const int64_t count = static_cast<int64_t>(members.size()) - f - 2;
  std::vector<double> scores(members.size(), 0.0), row;
  if (count <= 0) return scores;
  for (size_t a = 0; a < members.size(); ++a) {
    row.clear();
    for (size_t b = 0; b < members.size(); ++b)
      if (a != b) {
        const double d = D[members[a] * p + members[b]];
        row.push_back(unsquared ? std::sqrt(d) : d);
      }
    std::sort(row.begin(), row.end());
    double s = 0.0;
    for (int64_t k = 0; k < count; ++k) s += row[static_cast<size_t>(k)];
    scores[a] = s;
  }
  return scores;
}

absl::Status KrumReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                 Vec out, const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  const size_t p = in.size();
  FT_RETURN_IF_ERROR(RequireInputs(name(), p, f, 2 * f + 3, "2f+3"));
  size_t mk = 1;
  if (o_.multi) {
    const int64_t def = static_cast<int64_t>(p) - f - (o_.garfield_compat ? 2 : 0);
    const int64_t want = o_.mk > 0 ? o_.mk : def;
    if (want > static_cast<int64_t>(p) - f)
      return absl::FailedPreconditionError(absl::StrCat(
          "reducer multi_krum: algorithm.reducer.params.mk = ", want, " exceeds p - f = ",
          static_cast<int64_t>(p) - f, " (p = ", p, " updates this round, f = ", f, ")"));
    mk = static_cast<size_t>(want);
  }
  CleanInputs clean;
  FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
  std::vector<double> K;
  Gram(clean.views, &K);
  const std::vector<double> D = SquaredDistances(K, p);
  std::vector<size_t> all(p);
  std::iota(all.begin(), all.end(), 0);
  const std::vector<double> score = KrumScores(D, p, all, f, o_.garfield_compat);
  std::vector<size_t> order = all;
  // Lowest score first; ties by the lower index (stable sort over index order).
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return score[a] < score[b]; });
  std::vector<size_t> chosen(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(mk));
  std::sort(chosen.begin(), chosen.end());
  if (mk == 1) {
    std::copy(clean.views[chosen[0]].begin(), clean.views[chosen[0]].end(), out.begin());
  } else {
    MeanOf(clean.views, chosen, out);
  }
  if (ctx.diagnostics)
    ctx.diagnostics->Add(static_cast<int64_t>(p - mk),
                         absl::StrCat("{\"rule\":\"", name(), "\",\"p\":", p,
                                      ",\"chosen\":", IdList(ctx, chosen),
                                      ",\"nonfinite\":", clean.bad.size(), "}"));
  return absl::OkStatus();
}

namespace {

absl::StatusOr<KrumOptions> ReadKrum(const ReducerCfg& c, bool multi) {
  KrumOptions o;
  o.multi = multi;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  ParamReader r = ReducerParams(c);
  if (multi) {
    FT_ASSIGN_OR_RETURN(o.mk, r.Integer("mk", 0, Range::AtLeast(0)));
    FT_ASSIGN_OR_RETURN(o.garfield_compat, r.Bool("garfield_compat", false));
  }
  FT_RETURN_IF_ERROR(r.Finish());
  return o;
}
absl::StatusOr<KrumOptions> ReadSingle(const ReducerCfg& c) { return ReadKrum(c, false); }
absl::StatusOr<KrumOptions> ReadMulti(const ReducerCfg& c) { return ReadKrum(c, true); }

}  // namespace

std::unique_ptr<ReducerFactory> NewKrumReducerFactory(bool multi) {
  if (multi)
    return std::make_unique<RuleFactory<KrumOptions, KrumReducer>>("multi_krum", ReadMulti);
  return std::make_unique<RuleFactory<KrumOptions, KrumReducer>>("krum", ReadSingle);
}

}  // namespace fedtrain
