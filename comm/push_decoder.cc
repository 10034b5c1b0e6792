// PushDecoder: the raw UpdateChunk stream of one Push (see push_decoder.h).
#include "comm/push_decoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "google/protobuf/io/coded_stream.h"

namespace fedtrain {

PushDecoder::PushDecoder(uint64_t max_update_bytes, uint64_t min_referenced_piece,
                         std::function<absl::StatusOr<uint64_t>()> admit)
    : max_update_bytes_(max_update_bytes),
      min_referenced_piece_(min_referenced_piece),
      admit_(std::move(admit)) {}

absl::Status PushDecoder::Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed update chunk: ", what));
}

absl::Status PushDecoder::Parse(google::protobuf::io::ZeroCopyInputStream* chunk,
                                std::vector<Span>* spans) {
  // UpdateChunk (service.proto): 3 total_bytes, 5 part_bytes (first chunk only), 4 data.
  // Anything else is refused: only our own client writes this stream.
  google::protobuf::io::CodedInputStream in(chunk);
  uint64_t total = 0;
  std::vector<uint64_t> part_bytes;
  bool has_header = false;
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    uint32_t len = 0;
    if (tag == 0x18) {  // 3: total_bytes
      if (!in.ReadVarint64(&total)) return Malformed("total_bytes");
      has_header = true;
    } else if (tag == 0x2A) {  // 5: part_bytes, packed, before the first data
      constexpr uint32_t kMaxPartsField = 10 * kMaxPushParts;  // <= 10 bytes a varint
      if (started_ || !in.ReadVarint32(&len) || len > kMaxPartsField)
        return Malformed("part_bytes");
      const google::protobuf::io::CodedInputStream::Limit limit =
          in.PushLimit(static_cast<int>(len));
      while (in.BytesUntilLimit() > 0) {
        uint64_t v = 0;
        if (!in.ReadVarint64(&v) || part_bytes.size() == kMaxPushParts)
          return Malformed("part_bytes");
        part_bytes.push_back(v);
      }
      in.PopLimit(limit);
      has_header = true;
    } else if (tag == 0x22) {  // 4: data
      if (!in.ReadVarint32(&len)) return Malformed("data");
      if (!started_) {
        if (absl::Status st = Start(has_header, total, part_bytes); !st.ok()) return st;
      }
      if (filled_ + len > total_)
        return absl::InvalidArgumentError(
            absl::StrCat("update chunks exceed the announced ", total_, " bytes"));
      // Taken by the caller; here only checked to be all there.
      spans->push_back(Span{static_cast<uint64_t>(in.CurrentPosition()), len});
      if (!in.Skip(static_cast<int>(len))) return Malformed("data");
      filled_ += len;
    } else {
      return Malformed(absl::StrCat("field tag ", tag));
    }
  }
  if (!in.ConsumedEntireMessage()) return Malformed("a truncated field");
  if (!started_) return Start(has_header, total, part_bytes);  // a header without data
  return absl::OkStatus();
}

absl::Status PushDecoder::Start(bool has_header, uint64_t total,
                                const std::vector<uint64_t>& part_bytes) {
  if (!has_header)
    return absl::InvalidArgumentError("the first chunk has no header (total_bytes)");
  uint64_t max = max_update_bytes_;
  if (admit_) {
    absl::StatusOr<uint64_t> limit = admit_();
    if (!limit.ok()) return limit.status();
    max = *limit;
  }
  if (total == 0)  // every update serializes to some bytes (a client, a payload)
    return absl::InvalidArgumentError("the first chunk announces no bytes (total_bytes)");
  if (total > max)
    return absl::ResourceExhaustedError(
        absl::StrCat("update of ", total, " bytes exceeds the limit of ", max, " bytes"));
  uint64_t envelope = total;
  for (uint64_t n : part_bytes) {
    if (n >= envelope)  // the envelope lists every tensor, so it is never empty
      return absl::InvalidArgumentError(absl::StrCat(
          "the tensor sizes (part_bytes) leave no room for the update's envelope in its ",
          total, " bytes"));
    envelope -= n;
  }
  total_ = total;
  want_.assign(1, envelope);
  want_.insert(want_.end(), part_bytes.begin(), part_bytes.end());
  envelope_.reserve(envelope);  // within the limit: no regrowth copies
  parts_.assign(part_bytes.size(), absl::Cord());
  started_ = true;
  return absl::OkStatus();
}

uint64_t PushDecoder::Have(size_t i) const {
  return i == 0 ? envelope_.size() : parts_[i - 1].size();
}

void PushDecoder::Put(absl::string_view piece, std::optional<MakePiece> make) {
  FT_CHECK(put_ + piece.size() <= filled_);  // Parse() accepted these bytes
  put_ += piece.size();
  while (!piece.empty()) {
    while (Have(cursor_) == want_[cursor_]) ++cursor_;  // the sizes add to total_
    const absl::string_view take = piece.substr(0, want_[cursor_] - Have(cursor_));
    if (cursor_ == 0) {
      envelope_.append(take.data(), take.size());
    } else if (take.size() < min_referenced_piece_ || !make.has_value()) {
      parts_[cursor_ - 1].Append(take);
    } else {
      parts_[cursor_ - 1].Append((*make)(take));
    }
    piece.remove_prefix(take.size());
  }
}

absl::StatusOr<ReceivedUpdate> PushDecoder::Finish() {
  if (!started_ || put_ != total_)
    return absl::InvalidArgumentError(
        absl::StrCat("update truncated: got ", put_, " of ", total_, " bytes"));
  ReceivedUpdate u;
  v1::UpdateMsg& m = u.msg;
  if (!m.ParseFromString(envelope_))
    return absl::InvalidArgumentError("update does not parse");
  if (!parts_.empty()) {  // the tensors' bytes came after the envelope
    if (static_cast<size_t>(m.up().parts_size()) != parts_.size())
      return absl::InvalidArgumentError(absl::StrCat("update has ", m.up().parts_size(),
                                                     " tensors but its chunks carry ",
                                                     parts_.size(), " (part_bytes)"));
    for (int i = 0; i < m.up().parts_size(); ++i)
      if (!m.up().parts(i).data().empty())
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", i, " has bytes both in the envelope and after it"));
    u.part_data = std::move(parts_);
    parts_.clear();
  }
  return u;
}

}  // namespace fedtrain
