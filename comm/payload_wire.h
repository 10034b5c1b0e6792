// Payload <-> wire (v1::Payload) through a Compressor: the last step of the uplink pipeline
// and the first step of the Coordinator's validation. Thread-compatible, no state.
#ifndef FEDTRAIN_COMM_PAYLOAD_WIRE_H_
#define FEDTRAIN_COMM_PAYLOAD_WIRE_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "aggregators/algorithm.h"
#include "compression/compressor.h"
#include "core/rng.h"
#include "fedtrain/v1/messages.pb.h"

namespace fedtrain {

absl::Status EncodePayload(const Payload& p, const Compressor& c, RngStream& rng,
                           v1::Payload* out);

// Decodes and validates: exactly `expected_parts` parts of `dim` floats each, the
// compressor's codec, finite values. InvalidArgument naming the part and the problem.
// `dense` (may be null) is a second accepted codec: an error-feedback tracker's dense
// initialisation; `is_dense` (may be null) then receives, per part, whether it was used.
absl::Status DecodePayload(const v1::Payload& in, const Compressor& c, size_t expected_parts,
                           size_t dim, Payload* out, const Compressor* dense = nullptr,
                           std::vector<bool>* is_dense = nullptr);

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_PAYLOAD_WIRE_H_
