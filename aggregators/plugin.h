// Plug-in entry point for algorithms built outside fedtrain (a shared library the config
// names in `plugins`). A plug-in is one or more AlgorithmFactory classes and one
// registration block:
//
//   #include "aggregators/plugin.h"
//   #include "aggregators/client_algorithm.h"  // only if the plug-in writes its own client half
//   FEDTRAIN_PLUGIN(registry) {
//     return registry->Register(std::make_unique<MyFactory>());
//   }
//
// A reducer plug-in (algorithm.reducer.name) registers a ReducerFactory the same way:
//   FEDTRAIN_PLUGIN(registry) {
//     return registry->reducers()->Register(std::make_unique<MyReducerFactory>());
//   }
//
// Build it against the installed package (find_package(fedtrain), target
// fedtrain::plugin_api) as a MODULE library. Do not link fedtrain's own libraries into it:
// the plug-in uses the symbols of the `fedtrain` binary that loads it, so there is exactly
// one copy of every fedtrain type and of the protobuf descriptors. The loader refuses a
// plug-in whose FEDTRAIN_PLUGIN_ABI differs from its own.
#ifndef FEDTRAIN_AGGREGATORS_PLUGIN_H_
#define FEDTRAIN_AGGREGATORS_PLUGIN_H_

#include "absl/status/status.h"
#include "aggregators/registry.h"

// Bump whenever a type a plug-in sees (AlgorithmFactory, ServerAlgorithm, ClientAlgorithm,
// Payload, ServerState, ClientState, ClientUpdate, RoundInfo, LocalContext, Trainer, the
// config messages) changes layout or virtual functions.
#define FEDTRAIN_PLUGIN_ABI 5  // 2: CheckUpdate, CommitSent, ClientState::wide, ClientUpdate::dense
                               // 3: SaveExtraState, LoadExtraState (checkpoints)
                               // 4: AlgorithmFactory::traits
                               // 5: RoundInfo::lr; reducer registry, ReducerConfig, Reducer::Reduce context

#define FEDTRAIN_PLUGIN(registry)                                                          \
  static ::absl::Status FedtrainPluginRegister(::fedtrain::AlgorithmRegistry* registry);   \
  extern "C" __attribute__((visibility("default"))) int fedtrain_plugin_abi() {            \
    return FEDTRAIN_PLUGIN_ABI;                                                             \
  }                                                                                         \
  extern "C" __attribute__((visibility("default"))) void fedtrain_plugin_register(          \
      ::fedtrain::AlgorithmRegistry* r, ::absl::Status* out) {                              \
    *out = FedtrainPluginRegister(r);                                                       \
  }                                                                                         \
  static ::absl::Status FedtrainPluginRegister(::fedtrain::AlgorithmRegistry* registry)

#endif  // FEDTRAIN_AGGREGATORS_PLUGIN_H_
