// The uplink codec of a run: everything between a client half's up payload and the bytes on
// the wire, and back (docs/compression.md §2). One object, built once from the config and
// used by both ends:
//   client  Encode: for every up vector, in order: update -> l2 clip (optional) -> error
//           feedback (EF14 / EF21 / EControl; memory in ClientState::wide) -> compressor ->
//           v1::Tensor. A tracker method's first message is its dense initialisation, sent
//           through the dense codec (the identity codec with the compressor's value type).
//   server  Decode: each part through the codec that encoded it (the compressor or, for a
//           tracker's initialisation, the dense codec), validated (parts, dimension, finite).
// The feedback memory is updated with the decoded message (what the server will see).
// Pure: no threads, files or clocks. Thread-compatible (const methods run concurrently).
#ifndef FEDTRAIN_COMPRESSION_UPLINK_CODEC_H_
#define FEDTRAIN_COMPRESSION_UPLINK_CODEC_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/types/span.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"
#include "core/rng.h"
#include "fedtrain/v1/messages.pb.h"
#include "wire/client_state.h"
#include "wire/payload.h"

namespace fedtrain {

struct UplinkOptions {
  FeedbackOptions feedback;
  double clip_norm = 0.0;  // l2 clip of each up vector before feedback; 0 = off
};

// The error feedback's keys in ClientState::wide ("ef." prefix): its error e and its tracker h
// of up part `part`.
std::string FeedbackErrorKey(size_t part);    // "ef.e.<part>"
std::string FeedbackTrackerKey(size_t part);  // "ef.h.<part>"

class UplinkCodec {
 public:
  // Makes the compressor for a model of `dim` floats and, when the feedback has a tracker, the
  // dense codec. InvalidArgument naming the setting that is out of range.
  static absl::StatusOr<std::unique_ptr<UplinkCodec>> Create(const CompressorOptions& c,
                                                             const UplinkOptions& o, size_t dim);
  // Borrows the compressors (they must outlive it). `dense` may be null when the feedback
  // method has no tracker.
  UplinkCodec(UplinkOptions o, const Compressor* compressor, const Compressor* dense)
      : o_(std::move(o)), compressor_(compressor), dense_(dense) {}

  const UplinkOptions& options() const { return o_; }
  const Compressor& compressor() const { return *compressor_; }

  // Client side. Encodes `up` into `out`, updating the feedback memory in `state->wide`.
  // `state` is the caller's working copy, updated in place: after an error (a non-finite
  // update, a size that does not match the compressor) the part that failed is left as it was,
  // but earlier parts of a multi-part payload may have moved on, so the caller discards it
  // (the Worker saves a client's state only when its whole task succeeded).
  // `decoded` (may be null) receives the payload exactly as Decode() will reconstruct `out`:
  // each part run through the Decode() of the codec that encoded it, as float32, scalars
  // copied. With feedback "none" that is each part's reconstructed value (clipped and
  // compressed); with error feedback it is the decoded message. Asking for it changes nothing
  // else (the same bytes, rng draws, state).
  absl::Status Encode(const Payload& up, RngStream& rng, ClientState* state, v1::Payload* out,
                      Payload* decoded = nullptr) const;

  // Server side: DecodePayload (compression/payload_codec.h) with the compressor and, for
  // tracker feedback, the dense codec; `is_dense` (may be null) tells per part which was used.
  absl::Status Decode(const v1::Payload& in, absl::Span<const absl::Cord> part_data,
                      size_t expected_parts, size_t dim, Payload* out,
                      std::vector<bool>* is_dense = nullptr) const;

 private:
  UplinkCodec() = default;
  UplinkOptions o_;
  std::unique_ptr<Compressor> owned_compressor_, owned_dense_;  // set by Create
  const Compressor* compressor_ = nullptr;
  const Compressor* dense_ = nullptr;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_UPLINK_CODEC_H_
