#include "compression/privacy_accountant.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

bool IsInteger(double a) { return std::isfinite(a) && a == std::floor(a); }
}  // namespace

namespace privacy_internal {

double LogBinomial(int n, int k) {
  return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0);
}

double LogAddExp(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp(lo - hi));
}

}  // namespace privacy_internal

using privacy_internal::LogAddExp;
using privacy_internal::LogBinomial;

const std::vector<double>& DefaultRdpOrders() {
  static const std::vector<double>* orders = new std::vector<double>{
      1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 128, 256};
  return *orders;
}

double RenyiDivergence(absl::Span<const double> p, absl::Span<const double> q, double alpha) {
  if (alpha == kInf) {
    double worst = -kInf;
    for (size_t z = 0; z < p.size(); ++z) {
      if (p[z] <= 0) continue;
      if (q[z] <= 0) return kInf;
      worst = std::max(worst, std::log(p[z]) - std::log(q[z]));
    }
    return worst;
  }
  // log Σ_z exp(α log P(z) - (α - 1) log Q(z)), the largest term factored out.
  std::vector<double> terms;
  terms.reserve(p.size());
  double hi = -kInf;
  for (size_t z = 0; z < p.size(); ++z) {
    if (p[z] <= 0) continue;
    if (q[z] <= 0) return kInf;
    const double t = alpha * std::log(p[z]) - (alpha - 1.0) * std::log(q[z]);
    terms.push_back(t);
    hi = std::max(hi, t);
  }
  if (terms.empty()) return 0.0;
  double s = 0.0;
  for (double t : terms) s += std::exp(t - hi);
  const double d = (hi + std::log(s)) / (alpha - 1.0);
  return std::max(d, 0.0);  // a divergence; rounding may give -1e-17 for P = Q
}

double RdpToDpSimple(double rdp, double alpha, double delta) {
  return rdp + std::log(1.0 / delta) / (alpha - 1.0);
}

double RdpToDpTight(double rdp, double alpha, double delta) {
  return rdp + std::log((alpha - 1.0) / alpha) - (std::log(delta) + std::log(alpha)) / (alpha - 1.0);
}

DpGuarantee RdpToDp(absl::Span<const double> orders, absl::Span<const double> rdp, double delta) {
  DpGuarantee best;
  best.epsilon = kInf;
  best.delta = delta;
  for (size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i];
    if (!(a > 1.0) || !std::isfinite(a) || rdp[i] == kInf) continue;
    const double s = RdpToDpSimple(rdp[i], a, delta);
    const double t = RdpToDpTight(rdp[i], a, delta);
    if (s < best.epsilon) best = {s, delta, a, false};
    if (t < best.epsilon) best = {t, delta, a, true};
  }
  if (best.epsilon < 0) best.epsilon = 0;  // (0, δ)-DP is the floor
  return best;
}

std::vector<double> RqmWorstCaseInputs(const RqmGrid& g) {
  const double c = g.options().clip;
  std::vector<double> xs = {-c};
  for (int64_t i = 0; i < g.m(); ++i) {
    const double b = g.Level(i);
    if (b > -c && b < c) xs.push_back(b);
  }
  xs.push_back(c);
  return xs;
}

std::vector<double> RqmCoordinateRdp(const RqmGrid& g, absl::Span<const double> orders) {
  const std::vector<double> xs = RqmWorstCaseInputs(g);
  std::vector<std::vector<double>> pmf(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) g.Pmf(xs[i], &pmf[i]);
  std::vector<double> out(orders.size(), 0.0);
  for (size_t k = 0; k < orders.size(); ++k)
    for (size_t a = 0; a < xs.size(); ++a)
      for (size_t b = 0; b < xs.size(); ++b)
        if (a != b) out[k] = std::max(out[k], RenyiDivergence(pmf[a], pmf[b], orders[k]));
  return out;
}

double GaussianRdp(double z, double alpha) { return alpha / (2.0 * z * z); }

double SampledGaussianRdp(double p, double z, double alpha) {
  if (p >= 1.0) return GaussianRdp(z, alpha);
  if (!IsInteger(alpha) || alpha < 2) return kInf;
  const int a = static_cast<int>(alpha);
  // A_α = Σ_k b_k e^{e_k} with binomial weights b_k summing to 1, so A_α = 1 + Σ_k b_k
  // (e^{e_k} - 1), whose terms are all >= 0 (zero for k = 0, 1): summed in log space, then
  // log1p, no cancellation when A_α is close to 1 (small p).
  double acc = -kInf;
  for (int k = 2; k <= a; ++k) {
    const double e = (static_cast<double>(k) * k - k) / (2.0 * z * z);
    const double log_expm1 = e > 1.0 ? e + std::log1p(-std::exp(-e)) : std::log(std::expm1(e));
    const double t =
        LogBinomial(a, k) + (a - k) * std::log1p(-p) + k * std::log(p) + log_expm1;
    acc = LogAddExp(acc, t);
  }
  return LogAddExp(0.0, acc) / (alpha - 1.0);
}

const char* GuaranteeName(PrivacyGuarantee g) {
  return g == PrivacyGuarantee::kUntrustedServer ? "untrusted_server" : "trusted_aggregator";
}

absl::StatusOr<PrivacyAccountant> PrivacyAccountant::Create(const AccountantOptions& o) {
  using absl::InvalidArgumentError;
  using absl::StrCat;
  if (!(o.delta > 0.0 && o.delta < 1.0))
    return InvalidArgumentError(StrCat("privacy.delta = ", o.delta, " must be in (0, 1)"));
  if (o.sampling != "fixed" && o.sampling != "poisson")
    return InvalidArgumentError(
        StrCat("privacy sampling '", o.sampling, "' is unknown; known: fixed, poisson"));
  if (!(o.rate > 0.0 && o.rate <= 1.0))
    return InvalidArgumentError(StrCat("privacy sampling rate ", o.rate, " must be in (0, 1]"));
  if (o.dim < 1) return InvalidArgumentError("privacy: the model has no coordinates");
  if (o.orders.empty()) return InvalidArgumentError("privacy: empty order grid");
  for (double a : o.orders)
    if (!(a > 1.0))
      return InvalidArgumentError(StrCat("privacy: RDP order ", a, " must be > 1"));
  if (o.amplification) {
    if (o.guarantee != PrivacyGuarantee::kTrustedAggregator)
      return InvalidArgumentError(
          "privacy.amplification needs privacy.guarantee = trusted_aggregator: an untrusted "
          "server sees who took part, so sampling does not amplify privacy");
    if (!o.secret_sampling)
      return InvalidArgumentError(
          "privacy.amplification needs privacy.secret_sampling = true: amplification by client "
          "sampling holds only if the adversary cannot see who took part");
  }
  PrivacyAccountant acc;
  acc.o_ = o;
  const std::vector<double>& orders = o.orders;
  const double d = static_cast<double>(o.dim);
  // The per-message RDP at order α; computed for the grid, and (for the SubRDP bound) at
  // every integer order up to the largest integer of the grid.
  std::function<std::vector<double>(const std::vector<double>&)> message;
  if (o.mechanism == "rqm") {
    FT_RETURN_IF_ERROR(ValidateRqmOptions(o.rqm));
    if (o.rqm.levels > 256)
      return InvalidArgumentError(StrCat("privacy.levels = ", o.rqm.levels,
                                         ": the accountant handles at most 256 levels"));
    if (o.amplification && o.sampling == "poisson")
      return InvalidArgumentError(
          "privacy.amplification with Poisson sampling has no bound for rqm here (the "
          "SubRDP bound is for K-of-N sampling); use fixed sampling");
    const RqmGrid grid(o.rqm);
    message = [grid, d](const std::vector<double>& ords) {
      std::vector<double> r = RqmCoordinateRdp(grid, ords);
      for (double& v : r) v *= d;
      return r;
    };
  } else if (o.mechanism == "gaussian") {
    if (!(o.noise_multiplier > 0.0) || !std::isfinite(o.noise_multiplier))
      return InvalidArgumentError(StrCat("privacy.noise_multiplier = ", o.noise_multiplier,
                                         " must be finite and > 0"));
    const double z = o.noise_multiplier;
    if (o.placement == "central" || o.placement == "distributed") {
      if (o.guarantee == PrivacyGuarantee::kUntrustedServer)
        return InvalidArgumentError(StrCat(
            "privacy.placement '", o.placement, "' gives no guarantee against an untrusted "
            "server (it sees the un-noised updates); use placement local or "
            "privacy.guarantee trusted_aggregator"));
      // Replace-one neighbours (fixed-size cohorts) double the sensitivity: z/2.
      const double ze = o.sampling == "fixed" ? z / 2 : z;
      message = [ze](const std::vector<double>& ords) {
        std::vector<double> r;
        for (double a : ords) r.push_back(GaussianRdp(ze, a));
        return r;
      };
    } else if (o.placement == "local") {
      if (o.amplification && o.sampling == "poisson")
        return InvalidArgumentError(
            "privacy.amplification with Poisson sampling is implemented for the central and "
            "distributed Gaussian only");
      // l2 sensitivity of an l-infinity-clipped vector: 2 c sqrt(d); σ = z c.
      message = [z, d](const std::vector<double>& ords) {
        std::vector<double> r;
        for (double a : ords) r.push_back(GaussianRdp(z / (2.0 * std::sqrt(d)), a));
        return r;
      };
    } else {
      return InvalidArgumentError(StrCat("privacy.placement '", o.placement,
                                         "' is unknown; known: central, distributed, local"));
    }
  } else {
    return InvalidArgumentError(
        StrCat("privacy.mechanism '", o.mechanism, "' has no accountant; known: rqm, gaussian"));
  }
  acc.message_rdp_ = message(orders);
  if (!o.amplification) {
    acc.round_rdp_ = acc.message_rdp_;
    return acc;
  }
  acc.round_rdp_.resize(orders.size());
  if (o.sampling == "poisson") {  // Gaussian central / distributed (checked above)
    for (size_t k = 0; k < orders.size(); ++k)
      acc.round_rdp_[k] = SampledGaussianRdp(o.rate, o.noise_multiplier, orders[k]);
    return acc;
  }
  // K of N: the SubRDP bound needs the per-message RDP at every integer j = 2..α.
  int amax = 2;
  for (double a : orders)
    if (IsInteger(a)) amax = std::max(amax, static_cast<int>(a));
  std::vector<double> ints;
  for (int j = 2; j <= amax; ++j) ints.push_back(j);
  const std::vector<double> at = message(ints);
  for (size_t k = 0; k < orders.size(); ++k)
    acc.round_rdp_[k] = SubsampledRdp(o.rate, orders[k], [&](int j) { return at[j - 2]; });
  return acc;
}

DpGuarantee PrivacyAccountant::After(uint64_t rounds, uint64_t max_sends) const {
  const double n = static_cast<double>(o_.amplification ? rounds : max_sends);
  const std::vector<double>& per = o_.amplification ? round_rdp_ : message_rdp_;
  std::vector<double> total(per.size());
  for (size_t k = 0; k < per.size(); ++k) total[k] = n == 0 ? 0.0 : n * per[k];
  if (n == 0) return DpGuarantee{0.0, o_.delta, o_.orders.front(), true};
  return RdpToDp(o_.orders, total, o_.delta);
}

namespace {

// Smallest v in [lo, hi] (log-space bisection) with eps(v) <= target, for eps decreasing in v.
template <typename F>
absl::StatusOr<double> BisectDecreasing(F eps, double lo, double hi, double target,
                                        const char* what) {
  FT_ASSIGN_OR_RETURN(const double at_hi, eps(hi));
  if (at_hi > target)
    return absl::InvalidArgumentError(absl::StrCat(
        "privacy.target_epsilon = ", target, " is out of reach: even ", what, " = ", hi,
        " gives epsilon = ", at_hi));
  FT_ASSIGN_OR_RETURN(const double at_lo, eps(lo));
  if (at_lo <= target) return lo;
  for (int it = 0; it < 100 && hi / lo > 1.0 + 1e-12; ++it) {
    const double mid = std::sqrt(lo * hi);
    FT_ASSIGN_OR_RETURN(const double e, eps(mid));
    (e <= target ? hi : lo) = mid;
  }
  return hi;  // eps(hi) <= target throughout
}

}  // namespace

absl::StatusOr<double> CalibrateRqmDelta(AccountantOptions o, uint64_t rounds,
                                         double target_epsilon) {
  if (!(target_epsilon > 0.0))
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.target_epsilon = ", target_epsilon, " must be > 0"));
  const double c = o.rqm.clip;
  auto eps = [&](double ratio) -> absl::StatusOr<double> {
    o.rqm.delta = ratio * c;
    FT_ASSIGN_OR_RETURN(PrivacyAccountant a, PrivacyAccountant::Create(o));
    return a.After(rounds, rounds).epsilon;
  };
  FT_ASSIGN_OR_RETURN(const double ratio,
                      BisectDecreasing(eps, 1e-3, 1e3, target_epsilon, "range_extension/clip"));
  return ratio * c;
}

absl::StatusOr<double> CalibrateNoiseMultiplier(AccountantOptions o, uint64_t rounds,
                                                double target_epsilon) {
  if (!(target_epsilon > 0.0))
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.target_epsilon = ", target_epsilon, " must be > 0"));
  auto eps = [&](double z) -> absl::StatusOr<double> {
    o.noise_multiplier = z;
    FT_ASSIGN_OR_RETURN(PrivacyAccountant a, PrivacyAccountant::Create(o));
    return a.After(rounds, rounds).epsilon;
  };
  return BisectDecreasing(eps, 1e-2, 1e6, target_epsilon, "noise_multiplier");
}

}  // namespace fedtrain
