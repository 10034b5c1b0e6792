// Test fixture: a library that claims a plug-in ABI fedtrain does not have (the loader must
// refuse it before calling its registration).
#include "absl/status/status.h"
#include "aggregators/registry.h"

extern "C" __attribute__((visibility("default"))) int fedtrain_plugin_abi() { return 999; }
extern "C" __attribute__((visibility("default"))) void fedtrain_plugin_register(
    fedtrain::AlgorithmRegistry*, absl::Status* out) {
  *out = absl::InternalError("registration of a plug-in with the wrong ABI must not run");
}
