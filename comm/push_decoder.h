// The decoder of one update's raw UpdateChunk stream (the Push call of service.proto), without
// gRPC: the server's Push reactor (comm/grpc_push_reader.h) feeds it the chunks it reads, and
// fuzz/push_decoder_fuzzer.cc feeds it arbitrary bytes. It size-checks and reassembles the
// update: the envelope (the serialized UpdateMsg without its tensors' bytes) is copied and
// parsed; each tensor's bytes are appended as absl::Cord pieces that the caller makes, so the
// reactor can reference them where gRPC received them instead of copying.
//
// Use: Parse() each chunk, which checks its fields and returns where its data lie; Put() those
// data bytes, in order; Finish() once the stream ends. A refusal from Parse() ends the update.
// Thread-compatible: one push at a time.
#ifndef FEDTRAIN_COMM_PUSH_DECODER_H_
#define FEDTRAIN_COMM_PUSH_DECODER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "comm/transport.h"
#include "google/protobuf/io/zero_copy_stream.h"

namespace fedtrain {

// The most tensors one pushed update may carry outside its envelope (UpdateChunk.part_bytes).
inline constexpr uint32_t kMaxPushParts = 1 << 16;

class PushDecoder {
 public:
  // Where a chunk's data bytes lie in it.
  struct Span {
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  // Makes a Cord piece of a tensor's bytes `bytes` that the caller keeps readable as long as
  // the piece lives (the reactor references gRPC's slice; a copy is fine too).
  using MakePiece = absl::FunctionRef<absl::Cord(absl::string_view bytes)>;

  // Updates over `max_update_bytes` serialized bytes are refused; a tensor's share of a piece
  // of at least `min_referenced_piece` bytes is made by Put()'s `make`, shorter ones copied.
  // `admit`, when set, is asked once the first chunk's header is there, before its sizes are
  // checked: a refusal ends the update, otherwise it gives the size limit to check against
  // (the reactor checks there that the worker is still a member and reads the limit).
  PushDecoder(uint64_t max_update_bytes, uint64_t min_referenced_piece,
              std::function<absl::StatusOr<uint64_t>()> admit = nullptr);
  PushDecoder(const PushDecoder&) = delete;
  PushDecoder& operator=(const PushDecoder&) = delete;

  // Decodes one serialized UpdateChunk read from `chunk`: the header fields (3 total_bytes, 5
  // part_bytes; the first chunk only) and where its data (field 4) lie, appended to `spans`
  // (offsets from the chunk's start), checked to be all there and within the announced size.
  // OK, or the refusal: InvalidArgument (malformed; over the announced size),
  // ResourceExhausted (over the limit), or what `admit` returned.
  absl::Status Parse(google::protobuf::io::ZeroCopyInputStream* chunk, std::vector<Span>* spans);

  // Appends `piece`, the next data bytes of the stream (a part of a span Parse() returned),
  // to the envelope (copied) and the tensors (pieces of at least min_referenced_piece bytes
  // made by `make` when given, else copied). A piece beyond what Parse() accepted is a bug.
  void Put(absl::string_view piece, std::optional<MakePiece> make);

  // The stream ended: the update, or InvalidArgument (truncated; the envelope does not parse;
  // tensors that do not match part_bytes).
  absl::StatusOr<ReceivedUpdate> Finish();

  // Lets go of the tensors' pieces (and what they reference) at once.
  void Drop() { parts_.clear(); }

  // The first chunk was accepted; the size it announced.
  bool started() const { return started_; }
  uint64_t total() const { return total_; }

 private:
  static absl::Status Malformed(absl::string_view what);
  // The first chunk: announced size and the tensors' sizes.
  absl::Status Start(bool has_header, uint64_t total, const std::vector<uint64_t>& part_bytes);
  // Bytes destination i has so far (0: the envelope, i > 0: tensor i - 1).
  uint64_t Have(size_t i) const;

  const uint64_t max_update_bytes_;
  const uint64_t min_referenced_piece_;
  const std::function<absl::StatusOr<uint64_t>()> admit_;
  bool started_ = false;
  // Announced, accepted by Parse(), appended by Put().
  uint64_t total_ = 0, filled_ = 0, put_ = 0;
  // The envelope, then the tensors: want_[i] bytes each, filled in order (cursor_ is the
  // first that is not full).
  std::vector<uint64_t> want_;
  std::string envelope_;
  std::vector<absl::Cord> parts_;
  size_t cursor_ = 0;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_PUSH_DECODER_H_
