// libFuzzer target: the server's Push decoder (comm/push_decoder.h) on arbitrary chunk streams.
//
// Input: byte 0 picks the options (bits 0-1: the size limit, 2: the admission check refuses,
// 3-4: min_referenced_piece), byte 1 the size of the pieces the chunks arrive in (as gRPC's
// slices; 0: one piece), then chunks, each a little-endian u16 length and that many bytes (the
// last one may be cut short). The tensors' pieces are made as Cords that reference the chunk's
// buffer (kept alive by the Cord, as the reactor keeps gRPC's slices), so ASan sees any piece
// that outlives what it points into. Checks: no crash, spans inside their chunk, the sizes of
// an accepted update add up to what its first chunk announced.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "comm/push_decoder.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/stubs/logging.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "push_decoder_fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

// Once, before the first input: protobuf logs an error for every string field that is not
// UTF-8; at a line per input the log, not the code, would set the pace.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fedtrain::PushDecoder;
  if (size < 2) return 0;
  const uint8_t opts = data[0];
  const size_t piece_size = data[1];
  data += 2;
  size -= 2;
  constexpr uint64_t kLimits[4] = {uint64_t{1} << 20, 64, 4096, uint64_t{1} << 30};
  constexpr uint64_t kMinPiece[4] = {0, 1, 16, uint64_t{16} << 10};
  const uint64_t limit = kLimits[opts & 3];
  const bool refuse = (opts >> 2) & 1;
  PushDecoder decoder(limit, kMinPiece[(opts >> 3) & 3],
                      [refuse, limit]() -> absl::StatusOr<uint64_t> {
                        if (refuse) return absl::FailedPreconditionError("not a member");
                        return limit;
                      });
  uint64_t taken = 0;
  bool refused = false;
  while (size > 0 && !refused) {
    size_t len = data[0];
    if (size >= 2) len |= static_cast<size_t>(data[1]) << 8;
    const size_t head = size >= 2 ? 2 : 1;
    data += head;
    size -= head;
    if (len > size) len = size;
    // The chunk in a buffer of its own that the tensors' pieces keep alive.
    auto chunk = std::make_shared<const std::string>(reinterpret_cast<const char*>(data), len);
    data += len;
    size -= len;
    google::protobuf::io::ArrayInputStream stream(
        chunk->data(), static_cast<int>(chunk->size()),
        piece_size == 0 ? -1 : static_cast<int>(piece_size));
    std::vector<PushDecoder::Span> spans;
    const bool was_started = decoder.started();
    const absl::Status st = decoder.Parse(&stream, &spans);
    if (!st.ok()) {
      refused = true;
      break;
    }
    Check(decoder.started(), "an accepted chunk starts the update");
    Check(was_started || !refuse, "the admission check refused the first chunk");
    Check(decoder.total() > 0 && decoder.total() <= limit, "announced size within the limit");
    for (const PushDecoder::Span& s : spans) {
      Check(s.offset <= chunk->size() && s.length <= chunk->size() - s.offset,
            "span inside its chunk");
      // In pieces of piece_size, as gRPC's slices would cut them.
      uint64_t off = s.offset, left = s.length;
      while (left > 0) {
        uint64_t take = left;
        if (piece_size > 0) take = std::min<uint64_t>(left, piece_size - off % piece_size);
        const absl::string_view piece(chunk->data() + off, take);
        auto reference = [&chunk](absl::string_view bytes) {
          return absl::MakeCordFromExternal(bytes, [held = chunk](absl::string_view) {});
        };
        decoder.Put(piece, (off & 1) ? std::nullopt
                                     : std::optional<PushDecoder::MakePiece>(reference));
        taken += take;
        off += take;
        left -= take;
      }
    }
    Check(taken <= decoder.total(), "data within the announced size");
  }
  if (refused) {
    decoder.Drop();
    return 0;
  }
  absl::StatusOr<fedtrain::ReceivedUpdate> u = decoder.Finish();
  if (!u.ok()) return 0;
  Check(decoder.started() && taken == decoder.total(), "a finished update is complete");
  uint64_t tensor_bytes = 0;
  for (const absl::Cord& c : u->part_data) {
    tensor_bytes += c.size();
    volatile char sink = 0;  // read every byte: a dangling piece shows up under ASan
    for (absl::string_view chunk : c.Chunks())
      for (char ch : chunk) sink = sink ^ ch;
  }
  Check(tensor_bytes < decoder.total(), "the envelope is never empty");
  Check(u->part_data.empty() ||
            static_cast<size_t>(u->msg.up().parts_size()) == u->part_data.size(),
        "one piece list per tensor");
  return 0;
}
