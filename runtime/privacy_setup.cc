#include "runtime/privacy_setup.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

AccountantOptions AccountantOptionsFor(const v1::ExperimentConfig& cfg, size_t dim) {
  const auto& p = cfg.privacy();
  const auto& fed = cfg.federation();
  AccountantOptions o;
  o.mechanism = p.mechanism();
  o.guarantee = p.guarantee() == "trusted_aggregator" ? PrivacyGuarantee::kTrustedAggregator
                                                      : PrivacyGuarantee::kUntrustedServer;
  o.sampling = "fixed";
  // The clients a round samples (server/coordinator.cc: over-selection rounds up).
  int64_t sampled = fed.clients_per_round();
  if (fed.over_selection() > 0) {
    const int64_t ppm = std::llround(fed.over_selection() * 1e6);
    sampled = std::min<int64_t>(fed.num_clients(),
                                fed.clients_per_round() + (fed.clients_per_round() * ppm + 999999) / 1000000);
  }
  o.rate = static_cast<double>(sampled) / static_cast<double>(std::max<int64_t>(1, fed.num_clients()));
  o.amplification = p.amplification();
  o.secret_sampling = p.secret_sampling();
  o.dim = dim;
  o.rqm.clip = p.clip();
  o.rqm.delta = p.range_extension();
  o.rqm.levels = p.levels();
  o.rqm.keep = p.keep_prob();
  o.delta = p.delta();
  o.placement = p.placement();
  o.noise_multiplier = p.noise_multiplier();
  return o;
}

absl::StatusOr<std::optional<PrivacyPlan>> MakePrivacyPlan(const v1::ExperimentConfig& cfg,
                                                           size_t dim) {
  const auto& p = cfg.privacy();
  if (p.mechanism() == "none") return std::optional<PrivacyPlan>();
  AccountantOptions o = AccountantOptionsFor(cfg, dim);
  PrivacyPlan plan;
  plan.mechanism = p.mechanism();
  const uint64_t rounds = static_cast<uint64_t>(cfg.rounds());
  if (p.mechanism() == "rqm" && p.range_extension() == 0) {
    FT_ASSIGN_OR_RETURN(o.rqm.delta, CalibrateRqmDelta(o, rounds, p.target_epsilon()));
    plan.calibrated = true;
  }
  if (p.mechanism() == "gaussian" && p.noise_multiplier() == 0) {
    FT_ASSIGN_OR_RETURN(o.noise_multiplier,
                        CalibrateNoiseMultiplier(o, rounds, p.target_epsilon()));
    plan.calibrated = true;
  }
  plan.rqm = o.rqm;
  plan.noise_multiplier = o.noise_multiplier;
  plan.sigma = p.placement() == "local"
                   ? o.noise_multiplier * p.clip()
                   : o.noise_multiplier * p.clip() /
                         std::sqrt(static_cast<double>(cfg.federation().clients_per_round()));
  FT_ASSIGN_OR_RETURN(PrivacyAccountant acc, PrivacyAccountant::Create(o));
  plan.accountant = std::make_shared<const PrivacyAccountant>(std::move(acc));
  plan.budget_epsilon = p.budget_epsilon();
  plan.guarantee = GuaranteeName(o.guarantee);
  if (plan.budget_epsilon > 0) {
    const DpGuarantee one = plan.accountant->After(1, 1);
    if (one.epsilon > plan.budget_epsilon)
      return absl::InvalidArgumentError(absl::StrCat(
          "privacy.budget_epsilon = ", plan.budget_epsilon, " is smaller than one round's cost (",
          "epsilon = ", one.epsilon, " at delta = ", one.delta, ", ", plan.guarantee,
          "): no round could run"));
  }
  return std::optional<PrivacyPlan>(std::move(plan));
}

absl::Status CheckPrivacyFitsAlgorithm(const v1::ExperimentConfig& cfg, size_t num_up_parts) {
  if (cfg.privacy().mechanism() == "none" || num_up_parts == 1) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "privacy.mechanism ", cfg.privacy().mechanism(), " needs an algorithm whose client sends "
      "one vector per round; algorithm.name ", cfg.algorithm().name(), " sends ", num_up_parts));
}

}  // namespace fedtrain
