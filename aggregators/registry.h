// The algorithm registry: name -> factory that validates a config and builds the two halves
// (grpc's load-balancing-policy registry shape). Explicit registration, no static
// initialisers: a process can hold several independent registries (tests build two worlds).
// Thread-compatible: register everything first, then look up from any thread.
#ifndef FEDTRAIN_AGGREGATORS_REGISTRY_H_
#define FEDTRAIN_AGGREGATORS_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aggregators/algorithm.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

// Declared in aggregators/client_algorithm.h; a factory that makes a client half includes it.
class ClientAlgorithm;

using Cfg = v1::AlgorithmConfig;  // typed fields for built-ins, `params` Struct for plug-ins

class AlgorithmFactory {
 public:
  virtual ~AlgorithmFactory() = default;
  virtual std::string name() const = 0;  // "fedavg"; a contract: stored in checkpoints
  virtual int state_version() const = 0;  // bump when the state layout changes
  // At config load; InvalidArgument naming the field.
  virtual absl::Status Validate(const Cfg& c) const = 0;
  virtual absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const = 0;
  virtual absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const = 0;
};

class AlgorithmRegistry {
 public:
  // AlreadyExists on a duplicate name.
  absl::Status Register(std::unique_ptr<AlgorithmFactory> f);
  // NotFound listing the registered names.
  absl::StatusOr<const AlgorithmFactory*> Find(const std::string& name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, std::unique_ptr<AlgorithmFactory>> factories_;
};

// Registers fedtrain's own algorithms: the one list of built-ins is in registry.cc; each
// algorithm's factory is in its own <algorithm>_factory.cc.
void RegisterBuiltinAlgorithms(AlgorithmRegistry* r);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_REGISTRY_H_
