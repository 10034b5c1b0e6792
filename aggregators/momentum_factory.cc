// Registry entries of the momentum family (docs/federated.md §3): "fedavg_m", "scaffold_m",
// "fedavg_m_vr", "scaffold_m_vr". The only place that reads their proto config.
//   params.beta in (0, 1], default 0.1 (weight of the fresh gradient; 1 = none).
//   params.gamma > 0: explicit global step x^{r+1} = x^r - gamma g^{r+1}.
//   Absent: gamma = server_lr * eta^r * K, eta^r the local rate that produced the round's
//   updates (algorithm.server_lr is then the eta_g-equivalent, default 1, i.e. gamma = eta K
//   as in §6; exact under local.lr_decay). Setting both params.gamma and
//   algorithm.server_lr != 1 is refused.
//   g^0 = 0 (no warm-up round is implemented).
//   algorithm.weighting, when set, weights the x and g averages ("samples" or "uniform"); when
//   unset the spec's uniform mean_S is used. The c update always uses 1/N. algorithm.reducer is
//   the Reducer of the x/g average.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "aggregators/momentum.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

class MomentumFactory final : public AlgorithmFactory {
 public:
  MomentumFactory(bool control_variates, bool variance_reduction)
      : cv_(control_variates), vr_(variance_reduction) {}
  std::string name() const override {
    return absl::StrCat(cv_ ? "scaffold_m" : "fedavg_m", vr_ ? "_vr" : "");
  }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return Parse(c).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(MomentumOptions o, Parse(c));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer(), reducers()));
    return std::unique_ptr<ServerAlgorithm>(new MomentumServer(o, std::move(reducer)));
  }
  AlgorithmTraits traits(const Cfg&) const override {
    AlgorithmTraits t;
    t.commit_sent = cv_;  // SCAFFOLD-M's c_i advances by the decoded Delta c_i
    return t;
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(MomentumOptions o, Parse(c));
    return std::unique_ptr<ClientAlgorithm>(new MomentumClient(o));
  }

 private:
  absl::StatusOr<MomentumOptions> Parse(const Cfg& c) const {
    const std::string n = name();
    FT_RETURN_IF_ERROR(CheckServerLr(c));
    MomentumOptions o;
    o.control_variates = cv_;
    o.variance_reduction = vr_;
    o.server_lr = c.server_lr();
    FT_ASSIGN_OR_RETURN(o.weighting, CheckAveraging(c, "uniform", reducers()));
    ParamReader p(c.params(), n);
    FT_ASSIGN_OR_RETURN(o.beta, p.Number("beta", 0.1, Range::OpenClosed(0, 1)));
    const bool has_gamma = c.params().fields().count("gamma") > 0;
    FT_ASSIGN_OR_RETURN(const double gamma, p.Number("gamma", 1.0, Range::Positive()));
    p.DefaultIsComputed("gamma");  // absent: eta * K of the round (docs/federated.md)
    FT_RETURN_IF_ERROR(p.Finish());
    if (has_gamma) {
      if (c.server_lr() != 1.0)
        return absl::InvalidArgumentError(absl::StrCat(
            "algorithm.server_lr of ", n, " must be left at 1 when algorithm.params.gamma is set "
            "(gamma is the global step); got server_lr = ", c.server_lr()));
      o.gamma = gamma;
    }
    return o;
  }

  bool cv_, vr_;
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewMomentumFactory(bool control_variates,
                                                     bool variance_reduction) {
  return std::make_unique<MomentumFactory>(control_variates, variance_reduction);
}

}  // namespace fedtrain
