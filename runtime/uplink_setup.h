// The uplink pipeline a config's compression section asks for: the compressor, the dense
// codec of tracker feedback (ef21, econtrol) and the feedback options. Built here once for
// both ends: the workers encode with it, the Coordinator decodes with it.
// Thread-compatible (the compressors' const methods may run concurrently).
#ifndef FEDTRAIN_RUNTIME_UPLINK_SETUP_H_
#define FEDTRAIN_RUNTIME_UPLINK_SETUP_H_

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "client/uplink.h"
#include "compression/compressor.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

// The uplink pipeline of compression.*: compressor, the tracker's dense codec, feedback.
struct Uplink {
  std::unique_ptr<Compressor> compressor;
  std::unique_ptr<Compressor> dense;  // only for tracker feedback (ef21, econtrol)
  UplinkOptions options;
};

// InvalidArgument naming the compression.* field that is out of range for a model of `dim`.
absl::StatusOr<Uplink> MakeUplink(const v1::CompressionConfig& cc, size_t dim);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_UPLINK_SETUP_H_
