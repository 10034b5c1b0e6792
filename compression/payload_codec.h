// Payload <-> wire (v1::Payload) through a Compressor: the last step of the uplink pipeline
// and the first step of the Coordinator's validation. Thread-compatible, no state.
#ifndef FEDTRAIN_COMPRESSION_PAYLOAD_CODEC_H_
#define FEDTRAIN_COMPRESSION_PAYLOAD_CODEC_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/types/span.h"
#include "compression/compressor.h"
#include "core/rng.h"
#include "fedtrain/v1/messages.pb.h"
#include "wire/payload.h"

namespace fedtrain {

absl::Status EncodePayload(const Payload& p, const Compressor& c, RngStream& rng,
                           v1::Payload* out);

// Decodes and validates: exactly `expected_parts` parts of `dim` floats each, the
// compressor's codec, finite values. InvalidArgument naming the part and the problem.
// `dense` (may be null) is a second accepted codec: an error-feedback tracker's dense
// initialisation; `is_dense` (may be null) then receives, per part, whether it was used.
// `part_data`, when not empty, holds each part's bytes in place of the (then empty)
// `in.parts(i).data()`, as a transport may deliver them (ReceivedUpdate::part_data); they are
// decoded from where they lie.
absl::Status DecodePayload(const v1::Payload& in, absl::Span<const absl::Cord> part_data,
                           const Compressor& c, size_t expected_parts, size_t dim, Payload* out,
                           const Compressor* dense = nullptr,
                           std::vector<bool>* is_dense = nullptr);
inline absl::Status DecodePayload(const v1::Payload& in, const Compressor& c,
                                  size_t expected_parts, size_t dim, Payload* out,
                                  const Compressor* dense = nullptr,
                                  std::vector<bool>* is_dense = nullptr) {
  return DecodePayload(in, {}, c, expected_parts, dim, out, dense, is_dense);
}

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_PAYLOAD_CODEC_H_
