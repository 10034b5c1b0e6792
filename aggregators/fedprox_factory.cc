// Registry entry "fedprox" (docs/federated.md §1.3): the only place that reads its proto
// config.
//   typed fields: server_lr (> 0, default 1), weighting (default samples), reducer: FedProx's
//   server half is FedAvg's (no server momentum).
//   algorithm.params: mu in [0, inf), default 0.01.
#include <memory>
#include <string>

#include "aggregators/fedavg.h"
#include "aggregators/fedprox.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

absl::StatusOr<FedProxOptions> ReadFedProx(const Cfg& c, const ReducerRegistry* r) {
  FT_RETURN_IF_ERROR(ValidateFedAvgServer(c, /*momentum=*/false, r));
  ParamReader p(c.params(), "fedprox");
  FedProxOptions o;
  FT_ASSIGN_OR_RETURN(o.mu, p.Number("mu", 0.01, Range::AtLeast(0)));
  FT_RETURN_IF_ERROR(p.Finish());
  return o;
}

class FedProxFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return "fedprox"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return ReadFedProx(c, reducers()).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    return MakeFedAvgServer(c, /*momentum=*/false, reducers());
  }
  AlgorithmTraits traits(const Cfg&) const override { return FedAvgServerTraits(); }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(FedProxOptions o, ReadFedProx(c, reducers()));
    return std::unique_ptr<ClientAlgorithm>(new FedProxClient(o));
  }
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewFedProxFactory() {
  return std::make_unique<FedProxFactory>();
}

}  // namespace fedtrain
