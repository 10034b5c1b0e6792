// Registry entry for FedSpeed (docs/federated.md §4, defaults §6 and §10): the only place that
// reads its proto config.
//
// algorithm.params (all optional):
//   mode                    "code" (default, §4.2 aggregation) | "paper" (§4.1)
//   prox_coef               lamb = 1/λ, in (0, inf), default 0.1
//   rho                     ρ, in [0, inf), default 0.1
//   alpha                   α, in [0, 1], default 1
//   normalize_perturbation  bool, default true (ε = ρ g1 / (‖g1‖₂ + 1e-7))
// Typed fields: algorithm.reducer is honoured (the mean over participants); algorithm.server_lr
// must stay 1 (FedSpeed has no server step size, §4.2 "η_g unused"); algorithm.weighting is
// checked like everywhere but not used: FedSpeed's mean over participants is the uniform mean_P
// of §4.1/§4.2, paired with the uniform (1/N) Σ_j H_j correction. (A resolved config fills in
// weighting = "samples", so refusing it would refuse FedSpeed's own saved configs.)
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "aggregators/fedspeed.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

constexpr char kName[] = "fedspeed";

absl::StatusOr<FedSpeedOptions> ReadOptions(const Cfg& c, const ReducerRegistry* r) {
  if (!(c.server_lr() == 1.0))
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.server_lr is not used by fedspeed (no server step size) and must be 1; got ",
        c.server_lr()));
  FT_RETURN_IF_ERROR(CheckAveraging(c, "uniform", r).status());  // checked; the mean is uniform
  ParamReader p(c.params(), kName);
  FedSpeedOptions o;
  FT_ASSIGN_OR_RETURN(const std::string mode, p.String("mode", "code", {"code", "paper"}));
  o.mode = mode == "paper" ? FedSpeedMode::kPaper : FedSpeedMode::kCode;
  // Half-open at infinity so the messages read "(0, inf)" / "[0, inf)"; ParamReader refuses
  // non-finite values anyway.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  FT_ASSIGN_OR_RETURN(o.prox_coef, p.Number("prox_coef", 0.1, Range::Open(0, kInf)));
  FT_ASSIGN_OR_RETURN(o.rho, p.Number("rho", 0.1, Range::ClosedOpen(0, kInf)));
  FT_ASSIGN_OR_RETURN(o.alpha, p.Number("alpha", 1.0, Range::Closed(0, 1)));
  FT_ASSIGN_OR_RETURN(o.normalize_perturbation, p.Bool("normalize_perturbation", true));
  FT_RETURN_IF_ERROR(p.Finish());
  return o;
}

class FedSpeedFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return kName; }
  // 1: client vectors["fedspeed.ghat"] = ĝ_i; server vectors["fedspeed.h_sum"] (code mode).
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return ReadOptions(c, reducers()).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(const FedSpeedOptions o, ReadOptions(c, reducers()));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer(), reducers()));
    return std::unique_ptr<ServerAlgorithm>(new FedSpeedServer(o, std::move(reducer)));
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(const FedSpeedOptions o, ReadOptions(c, reducers()));
    return std::unique_ptr<ClientAlgorithm>(new FedSpeedClient(o));
  }
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewFedSpeedFactory() {
  return std::make_unique<FedSpeedFactory>();
}

}  // namespace fedtrain
