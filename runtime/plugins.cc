#include "runtime/plugins.h"

#include <dlfcn.h>

#include "absl/strings/str_cat.h"
#include "aggregators/plugin.h"

namespace fedtrain {

absl::Status LoadPlugin(const std::string& path, AlgorithmRegistry* registry) {
  // dlopen searches the library path for a bare name; a path with a slash is taken as is.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return absl::NotFoundError(
        absl::StrCat("plugin ", path, ": cannot load: ", why ? why : "unknown error"));
  }
  using AbiFn = int (*)();
  using RegisterFn = void (*)(AlgorithmRegistry*, absl::Status*);
  auto abi = reinterpret_cast<AbiFn>(dlsym(handle, "fedtrain_plugin_abi"));
  auto reg = reinterpret_cast<RegisterFn>(dlsym(handle, "fedtrain_plugin_register"));
  if (abi == nullptr || reg == nullptr) {
    dlclose(handle);
    return absl::FailedPreconditionError(absl::StrCat(
        "plugin ", path, ": not a fedtrain plugin (no FEDTRAIN_PLUGIN block)"));
  }
  if (abi() != FEDTRAIN_PLUGIN_ABI) {
    const int got = abi();
    dlclose(handle);
    return absl::FailedPreconditionError(
        absl::StrCat("plugin ", path, ": built for plugin ABI ", got, "; this fedtrain has ABI ",
                     FEDTRAIN_PLUGIN_ABI, " (rebuild the plugin against this fedtrain)"));
  }
  absl::Status s;
  reg(registry, &s);
  // The library stays loaded even on error: factories it registered before failing live in it.
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("plugin ", path, ": ", s.message()));
  return absl::OkStatus();
}

absl::Status RegisterAlgorithms(const v1::ExperimentConfig& cfg, AlgorithmRegistry* registry) {
  RegisterBuiltinAlgorithms(registry);
  for (const std::string& plugin : cfg.plugins())
    if (absl::Status s = LoadPlugin(plugin, registry); !s.ok()) return s;
  return absl::OkStatus();
}

}  // namespace fedtrain
