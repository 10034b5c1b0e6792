// The privacy section of a config turned into the mechanism's parameters and the run's
// accountant (docs/privacy.md §3): the one place that reads privacy.* besides the field
// checks of proto/config_io.cc. The workers (to quantize) and the server (to decode and to
// account) build the same plan from the same config and model size: calibration is a
// deterministic computation, so both ends arrive at the same Δ bit for bit.
#ifndef FEDTRAIN_RUNTIME_PRIVACY_SETUP_H_
#define FEDTRAIN_RUNTIME_PRIVACY_SETUP_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "compression/privacy_accountant.h"
#include "compression/rqm.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

struct PrivacyPlan {
  std::string mechanism;    // "rqm" or "gaussian"
  RqmOptions rqm;           // rqm: Δ resolved (calibrated when privacy.target_epsilon is set)
  // gaussian: the noise multiplier (calibrated or given) and the per-coordinate deviation of
  // the noise added to each update (z c local; z S / sqrt(clients_per_round) distributed and
  // central).
  double noise_multiplier = 0.0;
  double sigma = 0.0;
  bool calibrated = false;  // the parameter came from privacy.target_epsilon
  std::shared_ptr<const PrivacyAccountant> accountant;
  double budget_epsilon = 0.0;  // 0: no budget
  std::string guarantee;        // "untrusted_server" / "trusted_aggregator"
};

// The accountant options of a (validated) config for a model of `dim` parameters: K-of-N
// sampling at the rate of the clients a round samples (federation.over_selection included).
AccountantOptions AccountantOptionsFor(const v1::ExperimentConfig& cfg, size_t dim);

// std::nullopt when privacy.mechanism is "none". InvalidArgument naming the field when
// calibration cannot meet privacy.target_epsilon, when privacy.budget_epsilon is smaller
// than one round's cost, or when the accountant has no bound for the combination.
absl::StatusOr<std::optional<PrivacyPlan>> MakePrivacyPlan(const v1::ExperimentConfig& cfg,
                                                           size_t dim);

// FailedPrecondition naming the algorithm when privacy is on and its client sends more than
// one vector per round (the accountant charges one message per round).
absl::Status CheckPrivacyFitsAlgorithm(const v1::ExperimentConfig& cfg, size_t num_up_parts);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_PRIVACY_SETUP_H_
