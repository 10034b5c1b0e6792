// Registry entries "fedadagrad", "fedadam", "fedyogi" (docs/federated.md §1.4): the only place
// that reads their proto config.
//   typed fields: server_lr (> 0; the paper's eta, suggest 1e-2), weighting (uniform when
//   unset, §1.4 [A]), reducer.
//   algorithm.params: beta1 in [0, 1), 0.9; beta2 in [0, 1), 0.99 (not fedadagrad);
//   tau in (0, inf), 1e-3; v_init "tau2" (default) | "zero".
#include <memory>
#include <string>
#include <utility>

#include "aggregators/fedavg.h"
#include "aggregators/fedopt.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

class FedOptFactory final : public AlgorithmFactory {
 public:
  FedOptFactory(FedOptVariant variant, std::string name)
      : variant_(variant), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return Read(c).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(FedOptOptions o, Read(c));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer(), reducers()));
    return std::unique_ptr<ServerAlgorithm>(new FedOptServer(o, std::move(reducer)));
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    return std::unique_ptr<ClientAlgorithm>(new FedAvgClient());  // clients run plain SGD
  }

 private:
  absl::StatusOr<FedOptOptions> Read(const Cfg& c) const {
    FT_RETURN_IF_ERROR(CheckServerLr(c));
    FedOptOptions o;
    o.variant = variant_;
    o.server_lr = c.server_lr();
    // The paper's algorithm box averages uniformly (§1.4 [A]); an explicit setting wins.
    FT_ASSIGN_OR_RETURN(o.weighting, CheckAveraging(c, "uniform", reducers()));
    ParamReader p(c.params(), name_);
    FT_ASSIGN_OR_RETURN(o.beta1, p.Number("beta1", 0.9, Range::ClosedOpen(0, 1)));
    if (variant_ != FedOptVariant::kAdagrad) {  // FedAdagrad has no beta2: refuse it
      FT_ASSIGN_OR_RETURN(o.beta2, p.Number("beta2", 0.99, Range::ClosedOpen(0, 1)));
    }
    FT_ASSIGN_OR_RETURN(o.tau, p.Number("tau", 1e-3, Range::GreaterThan(0)));
    FT_ASSIGN_OR_RETURN(std::string v_init, p.String("v_init", "tau2", {"tau2", "zero"}));
    o.v_init_zero = v_init == "zero";
    FT_RETURN_IF_ERROR(p.Finish());
    return o;
  }

  FedOptVariant variant_;
  std::string name_;
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewFedOptFactory(FedOptVariant variant) {
  const char* name = variant == FedOptVariant::kAdagrad ? "fedadagrad"
                     : variant == FedOptVariant::kAdam  ? "fedadam"
                                                        : "fedyogi";
  return std::make_unique<FedOptFactory>(variant, name);
}

}  // namespace fedtrain
