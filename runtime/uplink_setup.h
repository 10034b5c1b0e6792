// The uplink codec (compression/uplink_codec.h) a config's compression and privacy sections ask
// for: the only place that reads compression.*. With privacy.mechanism rqm the compressor is
// RQM with the parameters of the run's privacy plan (runtime/privacy_setup.h). The workers
// encode and the Coordinator decodes with a codec made here.
#ifndef FEDTRAIN_RUNTIME_UPLINK_SETUP_H_
#define FEDTRAIN_RUNTIME_UPLINK_SETUP_H_

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "compression/uplink_codec.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

// InvalidArgument naming the compression.* (or privacy.*) field that is out of range for a
// model of `dim`.
absl::StatusOr<std::unique_ptr<UplinkCodec>> MakeUplinkCodec(const v1::ExperimentConfig& cfg,
                                                             size_t dim);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_UPLINK_SETUP_H_
