// Registry entries for FedProx, FedAdagrad/FedAdam/FedYogi and FedDyn (docs/federated.md
// §1.3-§1.5): the only place that reads their proto config.
//
//   name        typed fields used                      algorithm.params
//   fedprox     server_lr (>0, 1), weighting            mu in [0, inf), 0.01
//               (samples), reducer
//   fedadagrad  server_lr (>0; the paper's eta,         beta1 in [0, 1), 0.9
//   fedadam       suggest 1e-2), weighting (uniform     beta2 in [0, 1), 0.99 (not fedadagrad)
//   fedyogi       when unset, §1.4 [A]), reducer        tau in (0, inf), 1e-3
//                                                       v_init "tau2" (default) | "zero"
//   feddyn      reducer; server_lr must stay 1 and      alpha in (0, inf), 0.1
//               weighting uniform (the spec's server
//               step has no eta_g and uses mean_S)
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "aggregators/fedavg.h"
#include "aggregators/feddyn.h"
#include "aggregators/fedopt.h"
#include "aggregators/fedprox.h"
#include "aggregators/params.h"
#include "aggregators/registry.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// [lo, inf) and (lo, inf): infinity itself is never a valid setting (ParamReader also refuses
// non-finite numbers), and the messages then read as the spec writes the ranges.
Range AtLeast(double lo) { return Range{lo, kInf, false, true}; }
Range GreaterThan(double lo) { return Range{lo, kInf, true, true}; }

// ---------------------------------------------------------------------------------- fedprox

absl::StatusOr<FedProxOptions> ReadFedProx(const Cfg& c) {
  ParamReader p(c.params(), "fedprox");
  FedProxOptions o;
  FT_ASSIGN_OR_RETURN(o.mu, p.Number("mu", 0.01, AtLeast(0)));
  FT_RETURN_IF_ERROR(p.Finish());
  return o;
}

class FedProxFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return "fedprox"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(CheckServerLr(c));
    FT_RETURN_IF_ERROR(ResolveWeighting(c, "samples").status());
    FT_RETURN_IF_ERROR(MakeReducer(c.reducer()).status());
    return ReadFedProx(c).status();
  }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    FedAvgOptions o;  // FedProx's server is FedAvg's (no server momentum)
    o.server_lr = c.server_lr();
    FT_ASSIGN_OR_RETURN(o.weighting, ResolveWeighting(c, "samples"));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer()));
    return std::unique_ptr<ServerAlgorithm>(new FedAvgServer(o, std::move(reducer)));
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    FT_ASSIGN_OR_RETURN(FedProxOptions o, ReadFedProx(c));
    return std::unique_ptr<ClientAlgorithm>(new FedProxClient(o));
  }
};

// --------------------------------------------------------------- fedadagrad/fedadam/fedyogi

class FedOptFactory final : public AlgorithmFactory {
 public:
  FedOptFactory(FedOptVariant variant, std::string name)
      : variant_(variant), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return Read(c).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(FedOptOptions o, Read(c));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer()));
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
    FT_ASSIGN_OR_RETURN(o.weighting, ResolveWeighting(c, "uniform"));
    FT_RETURN_IF_ERROR(MakeReducer(c.reducer()).status());
    ParamReader p(c.params(), name_);
    FT_ASSIGN_OR_RETURN(o.beta1, p.Number("beta1", 0.9, Range::ClosedOpen(0, 1)));
    if (variant_ != FedOptVariant::kAdagrad) {  // FedAdagrad has no beta2: refuse it
      FT_ASSIGN_OR_RETURN(o.beta2, p.Number("beta2", 0.99, Range::ClosedOpen(0, 1)));
    }
    FT_ASSIGN_OR_RETURN(o.tau, p.Number("tau", 1e-3, GreaterThan(0)));
    FT_ASSIGN_OR_RETURN(std::string v_init, p.String("v_init", "tau2", {"tau2", "zero"}));
    o.v_init_zero = v_init == "zero";
    FT_RETURN_IF_ERROR(p.Finish());
    return o;
  }

  FedOptVariant variant_;
  std::string name_;
};

// ----------------------------------------------------------------------------------- feddyn

absl::StatusOr<FedDynOptions> ReadFedDyn(const Cfg& c) {
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
  FT_RETURN_IF_ERROR(MakeReducer(c.reducer()).status());
  ParamReader p(c.params(), "feddyn");
  FedDynOptions o;
  FT_ASSIGN_OR_RETURN(o.alpha, p.Number("alpha", 0.1, GreaterThan(0)));
  FT_RETURN_IF_ERROR(p.Finish());
  return o;
}

class FedDynFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return "feddyn"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override { return ReadFedDyn(c).status(); }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(FedDynOptions o, ReadFedDyn(c));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer()));
    return std::unique_ptr<ServerAlgorithm>(new FedDynServer(o, std::move(reducer)));
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const override {
    FT_ASSIGN_OR_RETURN(FedDynOptions o, ReadFedDyn(c));
    return std::unique_ptr<ClientAlgorithm>(new FedDynClient(o));
  }
};

}  // namespace

void RegisterProxFamily(AlgorithmRegistry* r) {
  // fedtrain's own names are distinct: registration cannot collide.
  (void)r->Register(std::make_unique<FedProxFactory>());
  (void)r->Register(std::make_unique<FedOptFactory>(FedOptVariant::kAdagrad, "fedadagrad"));
  (void)r->Register(std::make_unique<FedOptFactory>(FedOptVariant::kAdam, "fedadam"));
  (void)r->Register(std::make_unique<FedOptFactory>(FedOptVariant::kYogi, "fedyogi"));
  (void)r->Register(std::make_unique<FedDynFactory>());
}

}  // namespace fedtrain
