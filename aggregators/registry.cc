#include "aggregators/registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aggregators/dsgd.h"
#include "aggregators/fedavg.h"
#include "aggregators/feddyn.h"
#include "aggregators/fedopt.h"
#include "aggregators/fedprox.h"
#include "aggregators/fedspeed.h"
#include "aggregators/momentum.h"
#include "aggregators/scaffold.h"
#include "aggregators/scallion.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::Status AlgorithmRegistry::Register(std::unique_ptr<AlgorithmFactory> f) {
  const std::string name = f->name();
  if (name.empty()) return absl::InvalidArgumentError("algorithm factory with an empty name");
  if (factories_.count(name))
    return absl::AlreadyExistsError(absl::StrCat("algorithm '", name, "' is already registered"));
  f->set_reducers(reducers_.get());
  factories_.emplace(name, std::move(f));
  return absl::OkStatus();
}

absl::StatusOr<const AlgorithmFactory*> AlgorithmRegistry::Find(const std::string& name) const {
  auto it = factories_.find(name);
  if (it == factories_.end())
    return absl::NotFoundError(absl::StrCat("unknown algorithm '", name, "'; registered: ",
                                            absl::StrJoin(Names(), ", ")));
  return it->second.get();
}

std::vector<std::string> AlgorithmRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& kv : factories_) names.push_back(kv.first);
  return names;
}

// The built-in algorithms, one entry per registry name. Adding an algorithm: its .h/.cc
// (maths), its <name>_factory.cc (config -> halves) and one line here.
void RegisterBuiltinAlgorithms(AlgorithmRegistry* r) {
  std::unique_ptr<AlgorithmFactory> builtins[] = {
      NewFedAvgFactory(/*momentum=*/false),         // fedavg
      NewFedAvgFactory(/*momentum=*/true),          // fedavgm
      NewDsgdFactory(),                             // dsgd
      NewFedProxFactory(),                          // fedprox
      NewFedOptFactory(FedOptVariant::kAdagrad),    // fedadagrad
      NewFedOptFactory(FedOptVariant::kAdam),       // fedadam
      NewFedOptFactory(FedOptVariant::kYogi),       // fedyogi
      NewFedDynFactory(),                           // feddyn
      NewScaffoldFactory(),                         // scaffold
      NewMomentumFactory(false, false),             // fedavg_m
      NewMomentumFactory(true, false),              // scaffold_m
      NewMomentumFactory(false, true),              // fedavg_m_vr
      NewMomentumFactory(true, true),               // scaffold_m_vr
      NewFedSpeedFactory(),                         // fedspeed
      NewScallionFactory(/*momentum=*/false),       // scallion
      NewScallionFactory(/*momentum=*/true),        // scafcom
  };
  // fedtrain's own names are distinct: registration cannot collide.
  if (r->reducers()->Names().empty()) RegisterBuiltinReducers(r->reducers());
  for (std::unique_ptr<AlgorithmFactory>& f : builtins) FT_CHECK(r->Register(std::move(f)).ok());
}

}  // namespace fedtrain
