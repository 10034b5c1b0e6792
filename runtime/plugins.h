// Loads algorithm plug-ins (shared libraries with a FEDTRAIN_PLUGIN block, see
// aggregators/plugin.h) into a registry. Libraries stay loaded for the life of the process.
// Not thread-safe: call before any algorithm is created.
#ifndef FEDTRAIN_RUNTIME_PLUGINS_H_
#define FEDTRAIN_RUNTIME_PLUGINS_H_

#include <string>

#include "absl/status/status.h"
#include "aggregators/registry.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

// NotFound naming the path when it cannot be loaded (with the loader's reason);
// FailedPrecondition when it is not a fedtrain plug-in or was built for another
// FEDTRAIN_PLUGIN_ABI; the plug-in's own error (e.g. AlreadyExists) prefixed with the path.
absl::Status LoadPlugin(const std::string& path, AlgorithmRegistry* registry);

// The built-in algorithms and the plug-ins `cfg.plugins` names, in that order.
absl::Status RegisterAlgorithms(const v1::ExperimentConfig& cfg, AlgorithmRegistry* registry);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_PLUGINS_H_
