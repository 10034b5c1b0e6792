#include "aggregators/registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedtrain {

absl::Status AlgorithmRegistry::Register(std::unique_ptr<AlgorithmFactory> f) {
  const std::string name = f->name();
  if (name.empty()) return absl::InvalidArgumentError("algorithm factory with an empty name");
  if (factories_.count(name))
    return absl::AlreadyExistsError(absl::StrCat("algorithm '", name, "' is already registered"));
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

}  // namespace fedtrain
