// Registry entries "scallion" and "scafcom" (docs/federated.md §5; scallion.h). The only place
// that reads their proto config.
//
//   scallion  params.alpha in (0, 1], default 1 (control-variate step; the spec recommends
//             1/(1+omega) for an unbiased compressor of variance omega, e.g. k/d with
//             compression.compressor=randk_scaled; 1 reproduces SCAFFOLD with no compression).
//   scafcom   params.alpha in (0, 1], default 1 (EF21-style); params.beta in (0, 1], default 0.2
//             (weight of the fresh average gradient in the client momentum; 1 = none).
//   Both: algorithm.server_lr = eta_g (> 0, default 1); global step gamma = eta_g eta_l K_i.
//   algorithm.weighting, when set, weights the x step ("samples" | "uniform"; default the
//   spec's uniform mean_S); the C update always uses 1/N. algorithm.reducer must be "mean" (the
//   x step is an exact K_i-weighted mean in double). The compressor is the uplink pipeline's
//   (compression.compressor), to be used with compression.feedback "none".
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "aggregators/scallion.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

class ScallionFactory final : public AlgorithmFactory {
 public:
  explicit ScallionFactory(bool momentum) : momentum_(momentum) {}
  std::string name() const override { return momentum_ ? "scafcom" : "scallion"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return Parse(c).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(ScallionOptions o, Parse(c));
    return std::unique_ptr<ServerAlgorithm>(new ScallionServer(o));
  }
  AlgorithmTraits traits(const Cfg&) const override {
    AlgorithmTraits t;
    t.commit_sent = true;  // C_i advances by the decoded D~_i
    return t;
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(ScallionOptions o, Parse(c));
    return std::unique_ptr<ClientAlgorithm>(new ScallionClient(o));
  }

 private:
  absl::StatusOr<ScallionOptions> Parse(const Cfg& c) const {
    const std::string n = name();
    FT_RETURN_IF_ERROR(CheckServerLr(c));
    if (c.reducer().name() != "mean")
      return absl::InvalidArgumentError(absl::StrCat(
          "algorithm.reducer of ", n, " must be \"mean\"; got \"", c.reducer().name(), "\""));
    ScallionOptions o;
    o.momentum = momentum_;
    o.server_lr = c.server_lr();
    FT_ASSIGN_OR_RETURN(o.weighting, ResolveWeighting(c, "uniform"));
    ParamReader p(c.params(), n);
    FT_ASSIGN_OR_RETURN(o.alpha, p.Number("alpha", 1.0, Range::OpenClosed(0, 1)));
    if (momentum_) {
      FT_ASSIGN_OR_RETURN(o.beta, p.Number("beta", 0.2, Range::OpenClosed(0, 1)));
    }
    FT_RETURN_IF_ERROR(p.Finish());
    return o;
  }

  bool momentum_;
};

}  // namespace

std::unique_ptr<AlgorithmFactory> NewScallionFactory(bool momentum) {
  return std::make_unique<ScallionFactory>(momentum);
}

}  // namespace fedtrain
