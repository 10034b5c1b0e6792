// The saved-model format (model.ftw), documented in the README:
//   bytes 0..7   magic "FTMODEL1"
//   bytes 8..11  little-endian uint32 H: length of the JSON header
//   next H bytes JSON header: {"format":1,"model":"mlp:784-200-10","dtype":"float32",
//                "dim":D,"round":R,"fnv1a64":"<16 hex digits of the weights' FNV-1a 64>",
//                "layout":[{"name":"fc0.weight","shape":[200,784],"offset":0},...]}
//   next 4*D     the weights, little-endian float32, in layout order
// Loading checks the magic, sizes and hash (DataLoss naming the file on any mismatch).
#ifndef FEDTRAIN_RUNTIME_MODEL_FILE_H_
#define FEDTRAIN_RUNTIME_MODEL_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/vec.h"

namespace fedtrain {

struct SavedModel {
  std::string model;  // description, e.g. "mlp:784-200-10"
  uint64_t round = 0;
  std::string header_json;
  std::vector<float> weights;
};

// Writes to `path` via a temporary file and rename, so a crash never leaves half a model.
absl::Status SaveModel(const std::string& path, const std::string& model_desc,
                       const ParamLayout& layout, uint64_t round, ConstVec weights);
absl::StatusOr<SavedModel> LoadModel(const std::string& path);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_MODEL_FILE_H_
