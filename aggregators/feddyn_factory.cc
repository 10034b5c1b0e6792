// Registry entry "feddyn" (docs/federated.md §1.5): the only place that reads its proto config.
//   typed fields: reducer; server_lr must stay 1 and weighting uniform (the spec's server step
//   has no eta_g and uses mean_S).
//   algorithm.params: alpha in (0, inf), default 0.1.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "aggregators/feddyn.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

absl::StatusOr<FedDynOptions> ReadFedDyn(const Cfg& c, const ReducerRegistry* r) {
  // The spec's server step x = mean_S(y) - h/alpha has no server learning rate and averages
  // uniformly; refuse settings that would be silently ignored.
  if (c.has_server_lr() && c.server_lr() != 1.0)
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.server_lr is not used by feddyn (its server step has no eta_g); leave it "
        "unset or 1, got ",
        c.server_lr()));
  if (!c.weighting().empty() && c.weighting() != "uniform")
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.weighting of feddyn must be uniform (its server step uses mean_S), got '",
        c.weighting(), "'"));
  FT_RETURN_IF_ERROR(ValidateReducer(c.reducer(), r));
  ParamReader p(c.params(), "feddyn");
  FedDynOptions o;
  FT_ASSIGN_OR_RETURN(o.alpha, p.Number("alpha", 0.1, Range::GreaterThan(0)));
  FT_RETURN_IF_ERROR(p.Finish());
  return o;
}

class FedDynFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return "feddyn"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return ReadFedDyn(c, reducers()).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(FedDynOptions o, ReadFedDyn(c, reducers()));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer(), reducers()));
    return std::unique_ptr<ServerAlgorithm>(new FedDynServer(o, std::move(reducer)));
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(FedDynOptions o, ReadFedDyn(c, reducers()));
    return std::unique_ptr<ClientAlgorithm>(new FedDynClient(o));
  }
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewFedDynFactory() { return std::make_unique<FedDynFactory>(); }

}  // namespace fedtrain
