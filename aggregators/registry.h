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
#include "aggregators/reducer.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

// Declared in aggregators/client_algorithm.h; a factory that makes a client half includes it.
class ClientAlgorithm;

using Cfg = v1::AlgorithmConfig;  // typed fields for built-ins, `params` Struct for plug-ins

// What the rest of a run must know about an algorithm to check a config at load time.
struct AlgorithmTraits {
  // The server half steps x <- x + server_lr * (weighted mean of the one up part), as FedAvg
  // does (fedavg, fedprox, dsgd). The error-feedback tracker (aggregators/tracker_server.h) is
  // exact only around such a server half.
  bool fedavg_server = false;
  // The client half implements ClientAlgorithm::CommitSent: it advances its state by the
  // up payload as the server decodes it. Error feedback changes what is sent into a correction
  // or tracker increment, so such an algorithm needs compression.feedback "none". The Worker
  // decodes its own message only for these algorithms.
  bool commit_sent = false;
};

class AlgorithmFactory {
 public:
  virtual ~AlgorithmFactory() = default;
  virtual std::string name() const = 0;  // "fedavg"; a contract: stored in checkpoints
  virtual int state_version() const = 0;  // bump when the state layout changes
  // At config load; InvalidArgument naming the field.
  virtual absl::Status Validate(const Cfg& c) const = 0;
  virtual absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const = 0;
  virtual absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg& c) const = 0;
  // Defaults: neither (the safe answer for a plug-in: no tracker feedback around it; CommitSent
  // is still called when the plug-in's client half overrides it).
  virtual AlgorithmTraits traits(const Cfg& c) const {
    (void)c;
    return {};
  }
  // The reducers of the registry this factory was registered in (set by
  // AlgorithmRegistry::Register), for MakeReducer/CheckAveraging; null before registration,
  // which those helpers read as "the built-in reducers".
  const ReducerRegistry* reducers() const { return reducers_; }
  void set_reducers(const ReducerRegistry* r) { reducers_ = r; }

 private:
  const ReducerRegistry* reducers_ = nullptr;
};

class AlgorithmRegistry {
 public:
  // AlreadyExists on a duplicate name.
  absl::Status Register(std::unique_ptr<AlgorithmFactory> f);
  // NotFound listing the registered names.
  absl::StatusOr<const AlgorithmFactory*> Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  // The registry's reducers (algorithm.reducer.name): built-ins are added by
  // RegisterBuiltinAlgorithms; plug-ins add theirs with reducers()->Register(...).
  ReducerRegistry* reducers() { return reducers_.get(); }
  const ReducerRegistry* reducers() const { return reducers_.get(); }

 private:
  std::map<std::string, std::unique_ptr<AlgorithmFactory>> factories_;
  // Heap-held so that factories' pointers to it survive a move of the registry.
  std::unique_ptr<ReducerRegistry> reducers_ = std::make_unique<ReducerRegistry>();
};

// Registers fedtrain's own algorithms (and, into r->reducers(), the built-in reducers): the one list of built-ins is in registry.cc; each
// algorithm's factory is in its own <algorithm>_factory.cc.
void RegisterBuiltinAlgorithms(AlgorithmRegistry* r);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_REGISTRY_H_
