// Registry entry "dsgd" (dsgd.h): FedAvg's server half without momentum, DsgdClient. The only
// place that reads its proto config (typed fields as fedavg; no algorithm.params).
#include <memory>
#include <string>

#include "aggregators/dsgd.h"
#include "aggregators/fedavg.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

class DsgdFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return "dsgd"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(ValidateFedAvgServer(c, /*momentum=*/false, reducers()));
    return ParamReader(c.params(), name()).Finish();  // typed fields only
  }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    return MakeFedAvgServer(c, /*momentum=*/false, reducers());
  }
  AlgorithmTraits traits(const Cfg&) const override { return FedAvgServerTraits(); }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg&) const override {
    return std::unique_ptr<ClientAlgorithm>(new DsgdClient());
  }
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewDsgdFactory() { return std::make_unique<DsgdFactory>(); }

}  // namespace fedtrain
