// Registry entries for FedAvg and FedAvgM: the only place that reads their proto config.
#include <memory>

#include "absl/strings/str_cat.h"
#include "aggregators/dsgd.h"
#include "aggregators/fedavg.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

class FedAvgFactory final : public AlgorithmFactory {
 public:
  explicit FedAvgFactory(bool momentum) : momentum_(momentum) {}
  std::string name() const override { return momentum_ ? "fedavgm" : "fedavg"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(CheckServerLr(c));
    FT_RETURN_IF_ERROR(ResolveWeighting(c, "samples").status());
    if (momentum_ && !(c.momentum() >= 0 && c.momentum() < 1))
      return absl::InvalidArgumentError(
          absl::StrCat("algorithm.momentum (FedAvgM beta) must be in [0, 1), got ", c.momentum()));
    FT_RETURN_IF_ERROR(MakeReducer(c.reducer()).status());
    return ParamReader(c.params(), name()).Finish();  // typed fields only
  }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    if (absl::Status s = Validate(c); !s.ok()) return s;
    FedAvgOptions o;
    o.server_lr = c.server_lr();
    FT_ASSIGN_OR_RETURN(o.weighting, ResolveWeighting(c, "samples"));
    o.server_momentum = momentum_;
    o.beta = c.momentum();
    o.nesterov = c.nesterov();
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer()));
    return std::unique_ptr<ServerAlgorithm>(new FedAvgServer(o, std::move(reducer)));
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg&) const override {
    return std::unique_ptr<ClientAlgorithm>(new FedAvgClient());
  }

 private:
  bool momentum_;
};

}  // namespace

void RegisterBuiltinAlgorithms(AlgorithmRegistry* r) {
  // Registration of fedtrain's own distinct names cannot collide.
  (void)r->Register(std::make_unique<FedAvgFactory>(false));
  (void)r->Register(std::make_unique<FedAvgFactory>(true));
  (void)r->Register(MakeDsgdFactory());
  RegisterProxFamily(r);
  RegisterScaffoldFamily(r);
  RegisterFedSpeed(r);
  RegisterScallionFamily(r);
}

}  // namespace fedtrain
