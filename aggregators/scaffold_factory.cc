// Registry entry "scaffold" (docs/federated.md §2): the only place that reads its proto config.
//   params.option: "II" (default) | "I".
//   algorithm.server_lr = eta_g (> 0, default 1).
//   algorithm.weighting, when set, weights the x average ("samples" or "uniform"); when unset
//   the spec's uniform mean_S is used (the proto default "samples" does not apply). The c update
//   always uses 1/N. algorithm.reducer is the Reducer of the x average.
#include <memory>
#include <string>

#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "aggregators/scaffold.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

absl::StatusOr<ScaffoldOptions> ParseScaffold(const Cfg& c, const ReducerRegistry* r) {
  FT_RETURN_IF_ERROR(CheckServerLr(c));
  ScaffoldOptions o;
  o.server_lr = c.server_lr();
  FT_ASSIGN_OR_RETURN(o.weighting, CheckAveraging(c, "uniform", r));
  ParamReader p(c.params(), "scaffold");
  FT_ASSIGN_OR_RETURN(const std::string option, p.String("option", "II", {"II", "I"}));
  o.option = option == "I" ? ScaffoldOptions::Variate::kOptionI
                           : ScaffoldOptions::Variate::kOptionII;
  FT_RETURN_IF_ERROR(p.Finish());
  return o;
}

class ScaffoldFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return "scaffold"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return ParseScaffold(c, reducers()).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(ScaffoldOptions o, ParseScaffold(c, reducers()));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer(), reducers()));
    return std::unique_ptr<ServerAlgorithm>(new ScaffoldServer(o, std::move(reducer)));
  }
  AlgorithmTraits traits(const Cfg&) const override {
    AlgorithmTraits t;
    t.commit_sent = true;  // c_i advances by the decoded Delta c_i
    return t;
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(ScaffoldOptions o, ParseScaffold(c, reducers()));
    return std::unique_ptr<ClientAlgorithm>(new ScaffoldClient(o));
  }
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewScaffoldFactory() {
  return std::make_unique<ScaffoldFactory>();
}

}  // namespace fedtrain
