// Registry entries "fedavg" and "fedavgm" (docs/federated.md §1.1, §1.2), and the helpers for
// every algorithm whose server half is FedAvg's (fedprox, dsgd): the only place that reads
// their proto config.
//   typed fields: server_lr (> 0, eta_g), weighting (default samples), reducer; fedavgm also
//   momentum (beta in [0, 1)) and nesterov. No algorithm.params.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "aggregators/fedavg.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::Status ValidateFedAvgServer(const Cfg& c, bool momentum, const ReducerRegistry* r) {
  FT_RETURN_IF_ERROR(CheckServerLr(c));
  FT_RETURN_IF_ERROR(ResolveWeighting(c, "samples").status());
  if (momentum && !(c.momentum() >= 0 && c.momentum() < 1))
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.momentum (FedAvgM beta) must be in [0, 1), got ", c.momentum()));
  return CheckAveraging(c, "samples", r).status();
}

absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeFedAvgServer(const Cfg& c, bool momentum, const ReducerRegistry* r) {
  FT_RETURN_IF_ERROR(ValidateFedAvgServer(c, momentum, r));
  FedAvgOptions o;
  o.server_lr = c.server_lr();
  FT_ASSIGN_OR_RETURN(o.weighting, ResolveWeighting(c, "samples"));
  o.server_momentum = momentum;
  o.beta = c.momentum();
  o.nesterov = c.nesterov();
  FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer(), r));
  return std::unique_ptr<ServerAlgorithm>(new FedAvgServer(o, std::move(reducer)));
}

namespace {

class FedAvgFactory final : public AlgorithmFactory {
 public:
  explicit FedAvgFactory(bool momentum) : momentum_(momentum) {}
  std::string name() const override { return momentum_ ? "fedavgm" : "fedavg"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(ValidateFedAvgServer(c, momentum_, reducers()));
    return ParamReader(c.params(), name()).Finish();  // typed fields only
  }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    return MakeFedAvgServer(c, momentum_, reducers());
  }
  AlgorithmTraits traits(const Cfg&) const override {
    // FedAvgM's momentum step is not the tracker's.
    return momentum_ ? AlgorithmTraits{} : FedAvgServerTraits();
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg&) const override {
    return std::unique_ptr<ClientAlgorithm>(new FedAvgClient());
  }

 private:
  bool momentum_;
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewFedAvgFactory(bool momentum) {
  return std::make_unique<FedAvgFactory>(momentum);
}

}  // namespace fedtrain
