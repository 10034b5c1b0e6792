// The worker's uplink pipeline (docs/compression.md §2): for every up vector of the
// algorithm's payload, in order:
//   update -> l2 clip (optional) -> error feedback (EF14 / EF21 / EControl state in
//   ClientState::wide) -> compressor -> codec -> v1::Tensor.
// The feedback state is updated with the decoded message (what the server will see), and
// only in `state`: the caller commits it once the whole reply is built.
// Pure: no threads, files or clocks; thread-compatible.
#ifndef FEDTRAIN_CLIENT_UPLINK_H_
#define FEDTRAIN_CLIENT_UPLINK_H_

#include <memory>

#include "absl/status/status.h"
#include "aggregators/algorithm.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"
#include "core/rng.h"
#include "fedtrain/v1/messages.pb.h"

namespace fedtrain {

struct UplinkOptions {
  FeedbackOptions feedback;
  double clip_norm = 0.0;  // l2 clip of each up vector before feedback; 0 = off
};

// Borrows the compressors (they must outlive it). `dense` encodes trackers' dense
// initialisations (the identity codec with the compressor's value type); it may be null when
// the feedback method has no tracker.
class UplinkEncoder {
 public:
  UplinkEncoder(UplinkOptions o, const Compressor* compressor, const Compressor* dense)
      : o_(std::move(o)), compressor_(compressor), dense_(dense) {}

  const UplinkOptions& options() const { return o_; }
  const Compressor& compressor() const { return *compressor_; }

  // Encodes `up` into `out`. Errors (a non-finite update, a size that does not match the
  // compressor) leave `state` unchanged.
  // `decoded` (may be null) receives the payload exactly as the server decodes `out`: each
  // part run through the Decode() of the codec that encoded it (the compressor, or `dense` for
  // a tracker's dense initialisation), as float32, scalars copied. With feedback "none" that
  // is each part's reconstructed value (clipped and compressed); with error feedback it is the
  // decoded message (see ClientAlgorithm::CommitSent). The identity codec decodes a float
  // input bit for bit. Asking for it changes nothing else (the same bytes, rng draws, state).
  absl::Status Encode(const Payload& up, RngStream& rng, ClientState* state, v1::Payload* out,
                      Payload* decoded = nullptr) const;

 private:
  UplinkOptions o_;
  const Compressor* compressor_;
  const Compressor* dense_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CLIENT_UPLINK_H_
