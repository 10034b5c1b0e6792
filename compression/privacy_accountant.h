// Privacy accounting in Rényi differential privacy (docs/privacy.md §2): the per-use RDP
// curves of RQM (exact, over a finite grid of inputs) and of the Gaussian mechanism, their
// composition over coordinates, rounds and client sampling (sampled Gaussian for Poisson
// sampling, the SubRDP bound for K-of-N sampling), the conversion to (ε, δ)-DP, and
// calibration by bisection.
//
// Pure functions and immutable objects: thread-safe.
#ifndef FEDTRAIN_COMPRESSION_PRIVACY_ACCOUNTANT_H_
#define FEDTRAIN_COMPRESSION_PRIVACY_ACCOUNTANT_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compression/rqm.h"

namespace fedtrain {

// The default order grid α (integers are needed by the subsampling bounds).
const std::vector<double>& DefaultRdpOrders();

// D_α(P ‖ Q) = log(Σ_z P(z)^α Q(z)^(1-α)) / (α - 1), by log-sum-exp (no overflow at large α).
// Outcomes with P(z) = 0 contribute nothing; P(z) > 0 = Q(z) gives +inf.
double RenyiDivergence(absl::Span<const double> p, absl::Span<const double> q, double alpha);

// (ε, δ) from an RDP guarantee ε_rdp at order α > 1.
//   simple [Mironov 2017]:          ε = ε_rdp + log(1/δ) / (α - 1)
//   tight  [Canonne et al. 2020]:   ε = ε_rdp + log((α - 1)/α) - (log δ + log α) / (α - 1)
double RdpToDpSimple(double rdp, double alpha, double delta);
double RdpToDpTight(double rdp, double alpha, double delta);

struct DpGuarantee {
  double epsilon = 0.0;
  double delta = 0.0;
  double order = 0.0;    // the α that gave the minimum
  bool tight = true;     // which conversion gave it
};
// The minimum over the orders and both conversions. +inf when every order is +inf.
DpGuarantee RdpToDp(absl::Span<const double> orders, absl::Span<const double> rdp, double delta);

// ---- RQM ---------------------------------------------------------------------------------

// The finite input set G = {-c, c} ∪ {B(i) : -c < B(i) < c} on which the worst case lies.
std::vector<double> RqmWorstCaseInputs(const RqmGrid& g);
// ε_1(α) of one coordinate: the maximum of D_α(P_x ‖ P_x') over x, x' in G, for every order.
// Orders may be +inf (pure DP: max_z log(P_x(z) / P_x'(z))).
std::vector<double> RqmCoordinateRdp(const RqmGrid& g, absl::Span<const double> orders);

// ---- Gaussian ----------------------------------------------------------------------------

// RDP of the Gaussian mechanism with sensitivity 1 and noise multiplier z: α / (2 z²).
double GaussianRdp(double z, double alpha);
// The sampled Gaussian mechanism (Poisson rate p, add/remove neighbours; integer α >= 2):
// log(Σ_k C(α,k) (1-p)^(α-k) p^k exp((k² - k) / (2 z²))) / (α - 1). +inf for non-integer α
// unless p = 1.
double SampledGaussianRdp(double p, double z, double alpha);
// The SubRDP bound for sampling K of N without replacement (ratio γ = K/N, replace-one
// neighbours; integer α >= 2), given the RDP of one use at every integer order:
// rdp_at(j) for j = 2..α. +inf for non-integer α.
template <typename F>
double SubsampledRdp(double gamma, double alpha, F rdp_at);

// ---- The accountant of a run ------------------------------------------------------------

// Which adversary the reported numbers hold against.
enum class PrivacyGuarantee {
  kUntrustedServer,    // the server sees every client's message and who sent it (local DP)
  kTrustedAggregator,  // only the aggregate is seen (trusted server or secure aggregation)
};
// "untrusted_server" / "trusted_aggregator".
const char* GuaranteeName(PrivacyGuarantee g);

struct AccountantOptions {
  std::string mechanism = "rqm";  // "rqm", "gaussian"
  PrivacyGuarantee guarantee = PrivacyGuarantee::kUntrustedServer;
  // Client sampling: "fixed" (K of N without replacement, replace-one neighbours) or
  // "poisson" (rate p, add/remove neighbours); `rate` is K/N or p.
  std::string sampling = "fixed";
  double rate = 1.0;
  // Claim amplification by sampling (trusted aggregator and secret sampling only).
  bool amplification = false;
  // Whether the adversary cannot see who took part in a round (required for amplification).
  bool secret_sampling = false;
  uint64_t dim = 1;  // coordinates per message
  RqmOptions rqm;    // mechanism "rqm"
  // mechanism "gaussian": "central" (server adds N(0, (z S)²)), "distributed" (each of |S|
  // clients adds N(0, (z S)² / |S|) before secure aggregation; the sum is the same as central),
  // "local" (each client adds N(0, σ²) to its l-infinity-clipped vector, σ = z c).
  std::string placement = "central";
  double noise_multiplier = 1.0;  // z
  double delta = 1e-5;
  std::vector<double> orders = DefaultRdpOrders();
};

class PrivacyAccountant {
 public:
  // InvalidArgument naming the privacy.* field for a combination without a valid bound.
  static absl::StatusOr<PrivacyAccountant> Create(const AccountantOptions& o);

  const AccountantOptions& options() const { return o_; }
  // RDP of one message of one client (all d coordinates), at every order.
  const std::vector<double>& message_rdp() const { return message_rdp_; }
  // RDP charged per round: the amplified per-round cost when amplification applies, the
  // per-message cost otherwise.
  const std::vector<double>& round_rdp() const { return round_rdp_; }
  // The guarantee after `rounds` rounds in which the most-used client sent `max_sends`
  // messages: with amplification every round counts (rounds x round_rdp), without it the
  // client's own messages (max_sends x message_rdp).
  DpGuarantee After(uint64_t rounds, uint64_t max_sends) const;

 private:
  AccountantOptions o_;
  std::vector<double> message_rdp_, round_rdp_;
};

// Calibration by bisection (ε after `rounds` rounds, every client sending in every round
// unless amplification applies, at o.delta): the RQM range extension Δ (o.rqm.delta, for
// o.rqm.clip) or the Gaussian noise multiplier z that meets `target_epsilon` with the
// least noise. InvalidArgument when no value in the search range meets it.
absl::StatusOr<double> CalibrateRqmDelta(AccountantOptions o, uint64_t rounds,
                                         double target_epsilon);
absl::StatusOr<double> CalibrateNoiseMultiplier(AccountantOptions o, uint64_t rounds,
                                                double target_epsilon);

// ---- implementation of the template ------------------------------------------------------

namespace privacy_internal {
double LogBinomial(int n, int k);
double LogAddExp(double a, double b);
}  // namespace privacy_internal

template <typename F>
double SubsampledRdp(double gamma, double alpha, F rdp_at) {
  using privacy_internal::LogAddExp;
  using privacy_internal::LogBinomial;
  const double inf = std::numeric_limits<double>::infinity();
  const int a = static_cast<int>(alpha);
  if (static_cast<double>(a) != alpha || a < 2) return inf;
  if (gamma >= 1.0) return rdp_at(a);
  // log of 1 + γ² C(α,2) min{4(e^{ε(2)} - 1), 2 e^{ε(2)}} + Σ_{j=3..α} 2 γ^j C(α,j) e^{(j-1) ε(j)}
  const double e2 = rdp_at(2);
  if (e2 == inf) return inf;
  // log(4 (e^{e2} - 1)) = log 4 + e2 + log(1 - e^{-e2}); log(2 e^{e2}) = log 2 + e2.
  const double t4 = std::log(4.0) + e2 + std::log1p(-std::exp(-e2));
  const double t2 = std::log(2.0) + e2;
  double acc = LogAddExp(0.0, 2 * std::log(gamma) + LogBinomial(a, 2) + std::min(t4, t2));
  for (int j = 3; j <= a; ++j) {
    const double ej = rdp_at(j);
    if (ej == inf) return inf;
    acc = LogAddExp(acc, std::log(2.0) + j * std::log(gamma) + LogBinomial(a, j) + (j - 1) * ej);
  }
  return acc / (alpha - 1.0);
}

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_PRIVACY_ACCOUNTANT_H_
