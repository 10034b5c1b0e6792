#include "aggregators/flag_reducer.h"

#include <algorithm>
#include <cmath>

#include "Eigen/Dense"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/rng.h"

namespace fedtrain {

namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

// E(Z) = sum_i sqrt(max(0, 1 - ||Z[:, i]||^2)): the data part of the objective.
double Objective(const MatrixXd& Z, size_t p) {
  double e = 0.0;
  for (size_t i = 0; i < p; ++i)
    e += std::sqrt(std::max(0.0, 1.0 - (Z.rows() ? Z.col(static_cast<Eigen::Index>(i)).squaredNorm() : 0.0)));
  return e;
}

// Row k of the random start M (n x m), uniform in (-0.5, 0.5), drawn in row order from one
// counter-based stream; regenerated identically by every pass that needs it.
class RandomStart {
 public:
  RandomStart(uint64_t seed, uint64_t round, size_t m)
      : rng_(RngStream::For(seed, round, 0, Purpose::kReducer)), row_(m) {}
  const std::vector<double>& Next() {
    for (double& v : row_) v = rng_.Uniform() - 0.5;
    return row_;
  }

 private:
  RngStream rng_;
  std::vector<double> row_;
};

}  // namespace

absl::Status FlagAggregate(absl::Span<const ConstVec> x, const FlagOptions& o, uint64_t round,
                           std::vector<double>* out, FlagDiagnostics* diag) {
  return FlagAggregateInto(x, o, round, nullptr, out, Vec(), diag);
}

absl::Status FlagAggregateInto(absl::Span<const ConstVec> x, const FlagOptions& o,
                               uint64_t round, const std::vector<double>* gram,
                               std::vector<double>* out, Vec out_float, FlagDiagnostics* diag) {
  const size_t p = x.size(), n = p ? x[0].size() : 0;
  const auto P = static_cast<Eigen::Index>(p);
  const int64_t m = o.m > 0 ? o.m : static_cast<int64_t>((p + 1) / 2);
  // Exactly one of the outputs is written; the float one is rounded from the same float64 sums.
  const bool to_float = out == nullptr;
  if (!to_float) out->assign(n, 0.0);
  else std::fill(out_float.begin(), out_float.end(), 0.0f);
  FlagDiagnostics d;
  d.m = m;

  // K = Gh^T Gh from the raw Gram; zero inputs keep zero rows (the 1e-12 floor).
  std::vector<double> G;
  if (gram) G = *gram;
  else Gram(x, &G);
  VectorXd scale(P);  // 1 / max(||g_i||, 1e-12)
  for (size_t i = 0; i < p; ++i)
    scale[static_cast<Eigen::Index>(i)] = 1.0 / std::max(std::sqrt(G[i * p + i]), 1e-12);
  MatrixXd K(P, P);
  for (Eigen::Index i = 0; i < P; ++i)
    for (Eigen::Index j = 0; j < P; ++j)
      K(i, j) = G[static_cast<size_t>(i) * p + static_cast<size_t>(j)] * scale[i] * scale[j];

  // The start: Z = 0 (orthogonal), or Z = Y_0^T Gh with Y_0 = M L^-T, L L^T = M^T M (the
  // thin QR's Q up to column signs, which change nothing).
  MatrixXd Z = MatrixXd::Zero(0, P);
  MatrixXd MtM, MtG;
  Eigen::LLT<MatrixXd> llt;
  if (o.random_init) {
    const auto Mm = static_cast<Eigen::Index>(m);
    MtM = MatrixXd::Zero(Mm, Mm);
    MtG = MatrixXd::Zero(Mm, P);
    RandomStart rs(o.seed, round, static_cast<size_t>(m));
    for (size_t k = 0; k < n; ++k) {
      const std::vector<double>& r = rs.Next();
      for (Eigen::Index a = 0; a < Mm; ++a) {
        for (Eigen::Index b = 0; b < Mm; ++b) MtM(a, b) += r[a] * r[b];
        for (Eigen::Index i = 0; i < P; ++i) MtG(a, i) += r[a] * x[static_cast<size_t>(i)][k];
      }
    }
    MtG = MtG * scale.asDiagonal();
    llt.compute(MtM);
    if (llt.info() != Eigen::Success)
      return absl::FailedPreconditionError(absl::StrCat(
          "reducer flag: the random start is rank deficient (n = ", n, " < m = ", m,
          "?); use params.init orthogonal"));
    Z = llt.matrixL().solve(MtG);
  }

  // IRLS (spec of the reference: stop after T steps, or when E stops falling).
  double e_prev = Objective(Z, p), diff = 1.0;
  bool have_step = false;
  MatrixXd R, U;
  VectorXd l;
  VectorXd a(P);
  for (int64_t t = 0; t < o.iterations && diff > 1e-10 && e_prev > 1e-10; ++t) {
    for (Eigen::Index i = 0; i < P; ++i) {
      const double z2 = Z.rows() ? Z.col(i).squaredNorm() : 0.0;
      a[i] = 1.0 / std::sqrt(std::fabs(1.0 - z2) + o.eps);
    }
    MatrixXd S = a.asDiagonal();
    MatrixXd Rt;
    if (o.lambda > 0 && p > 1) {
      const double c = o.lambda / static_cast<double>(p * (p - 1));
      MatrixXd B = MatrixXd::Zero(P, P);
      for (Eigen::Index i = 0; i < P; ++i)
        for (Eigen::Index j = 0; j < P; ++j) {
          if (i == j) continue;
          const double dz2 = Z.rows() ? (Z.col(i) - Z.col(j)).squaredNorm() : 0.0;
          if (o.pairwise_normalized) {
            const double dn2 = K(i, i) + K(j, j) - 2.0 * K(i, j);
            if (dn2 < 1e-24) continue;  // ||delta_ij|| < 1e-12: skipped
            B(i, j) = c / std::sqrt(std::fabs(1.0 - dz2 / dn2) + o.eps) / dn2;
          } else {
            B(i, j) = c * c / std::sqrt(std::fabs(1.0 - dz2) + o.eps);
          }
        }
      S += 2.0 * (MatrixXd(B.rowwise().sum().asDiagonal()) - B);
      Eigen::SelfAdjointEigenSolver<MatrixXd> es(S);
      const VectorXd ev = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
      Rt = es.eigenvectors() * ev.asDiagonal() * es.eigenvectors().transpose();
    } else {
      Rt = a.cwiseSqrt().asDiagonal();
    }
    MatrixXd H = Rt.transpose() * K * Rt;
    H = 0.5 * (H + H.transpose());
    Eigen::SelfAdjointEigenSolver<MatrixXd> es(H);
    const VectorXd& ev = es.eigenvalues();  // ascending
    const double l1 = ev[P - 1];
    Eigen::Index keep = 0;
    while (keep < m && keep < P && l1 > 0 && ev[P - 1 - keep] > 1e-12 * l1) ++keep;
    if (keep == 0) {  // every input is zero: the output is zero
      have_step = false;
      Z = MatrixXd::Zero(0, P);
      d.rank = 0;
      break;
    }
    MatrixXd Uk(P, keep);
    VectorXd lk(keep);
    for (Eigen::Index c = 0; c < keep; ++c) {
      Uk.col(c) = es.eigenvectors().col(P - 1 - c);
      lk[c] = ev[P - 1 - c];
    }
    MatrixXd Znew = lk.cwiseSqrt().cwiseInverse().asDiagonal() * Uk.transpose() *
                    Rt.transpose() * K;
    const double e_new = Objective(Znew, p);
    diff = e_prev - e_new;
    const bool first_from_orthogonal = !o.random_init && t == 0;
    if (!(diff > 0) && !first_from_orthogonal) break;  // keep the previous iterate
    Z = Znew;
    R = Rt;
    U = Uk;
    l = lk;
    e_prev = e_new;
    have_step = true;
    d.rank = keep;
    ++d.steps;
  }
  d.weights.assign(a.data(), a.data() + P);
  d.ratios.resize(p);
  for (size_t i = 0; i < p; ++i)
    d.ratios[i] = Z.rows() ? Z.col(static_cast<Eigen::Index>(i)).squaredNorm() : 0.0;
  d.objective = e_prev;

  const double inv_m = 1.0 / static_cast<double>(m);
  if (have_step) {
    // coef = (1/m) R U diag(l)^-1 U^T R^T K 1; out = sum_i coef_i scale_i g_i.
    const VectorXd coef = inv_m * (R * (U * (l.cwiseInverse().asDiagonal() *
                                             (U.transpose() * (R.transpose() * K.rowwise().sum())))));
    std::vector<double> c(p);
    for (size_t i = 0; i < p; ++i)
      c[i] = coef[static_cast<Eigen::Index>(i)] * scale[static_cast<Eigen::Index>(i)];
    // Per coordinate the sum runs in input order (robust_kernels.h).
    LinearCombination(x, c, to_float ? out_float.data() : nullptr,
                      to_float ? nullptr : out->data());
  } else if (o.random_init && Z.rows() > 0) {
    // The random start was kept: out = (1/m) M (M^T M)^-1 M^T Gh 1, M regenerated.
    d.used_random_start = true;
    const VectorXd wv = inv_m * llt.solve(MtG.rowwise().sum());
    RandomStart rs(o.seed, round, static_cast<size_t>(m));
    for (size_t k = 0; k < n; ++k) {
      const std::vector<double>& r = rs.Next();
      double s = 0.0;
      for (Eigen::Index b = 0; b < wv.size(); ++b) s += r[b] * wv[b];
      if (to_float) out_float[k] = static_cast<float>(s);
      else (*out)[k] = s;
    }
  }
  if (diag) *diag = std::move(d);
  return absl::OkStatus();
}

absl::Status FlagReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                 Vec out, const ReduceContext& ctx) const {
  FT_RETURN_IF_ERROR(CheckReduceShapes(in, w, out, name()));
  const int64_t f = o_.common.f;
  const size_t p = in.size();
  FT_RETURN_IF_ERROR(RequireInputs(name(), p, f, 2 * f + 1, "2f+1"));
  CleanInputs clean;
  // The Gram's diagonal finds non-finite inputs for free (a squared sum in float64 of finite
  // floats cannot overflow): only when one is found does the separate scan run, and the Gram
  // is taken again without it.
  std::vector<double> G;
  Gram(in, &G);
  bool finite = true;
  for (size_t i = 0; i < p; ++i) finite = finite && std::isfinite(G[i * p + i]);
  absl::Span<const ConstVec> x = in;
  if (!finite) {
    FT_RETURN_IF_ERROR(CleanNonFinite(in, o_.common, ctx, name(), &clean));
    Gram(clean.views, &G);
    x = clean.views;
  }
  FlagDiagnostics d;
  FT_RETURN_IF_ERROR(FlagAggregateInto(x, o_, ctx.round, &G, nullptr, out, &d));
  if (ctx.diagnostics) {
    std::vector<double> r = d.ratios;
    std::sort(r.begin(), r.end());
    const auto [wmin, wmax] = std::minmax_element(d.weights.begin(), d.weights.end());
    ctx.diagnostics->Add(
        static_cast<int64_t>(clean.bad.size()),
        absl::StrFormat("{\"rule\":\"flag\",\"p\":%d,\"m\":%d,\"rank\":%d,\"steps\":%d,"
                        "\"ratio_min\":%.6g,\"ratio_median\":%.6g,\"ratio_max\":%.6g,"
                        "\"weight_min\":%.6g,\"weight_max\":%.6g,\"objective\":%.6g,"
                        "\"nonfinite\":%d}",
                        p, d.m, d.rank, d.steps, r.front(), r[r.size() / 2], r.back(), *wmin,
                        *wmax, d.objective, clean.bad.size()));
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<FlagOptions> ReadFlag(const ReducerCfg& c) {
  FlagOptions o;
  FT_ASSIGN_OR_RETURN(o.common, ReadCommon(c));
  ParamReader r = ReducerParams(c);
  FT_ASSIGN_OR_RETURN(o.m, r.Integer("m", 0, Range::Closed(0, 1 << 20)));
  FT_ASSIGN_OR_RETURN(o.lambda, r.Number("lambda", 0.0, Range::AtLeast(0)));
  FT_ASSIGN_OR_RETURN(o.iterations, r.Integer("iterations", 1, Range::Closed(1, 10)));
  FT_ASSIGN_OR_RETURN(std::string init, r.String("init", "orthogonal", {"orthogonal", "random"}));
  FT_ASSIGN_OR_RETURN(std::string mode,
                      r.String("pairwise_mode", "reference", {"reference", "normalized"}));
  FT_ASSIGN_OR_RETURN(int64_t seed, r.Integer("seed", 1, Range::AtLeast(0)));
  FT_RETURN_IF_ERROR(r.Finish());
  o.random_init = init == "random";
  o.pairwise_normalized = mode == "normalized";
  o.seed = static_cast<uint64_t>(seed);
  return o;
}

}  // namespace

std::unique_ptr<ReducerFactory> NewFlagReducerFactory() {
  return std::make_unique<RuleFactory<FlagOptions, FlagReducer>>("flag", ReadFlag);
}

}  // namespace fedtrain
