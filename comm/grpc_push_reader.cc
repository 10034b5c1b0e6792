// The server's Push reactor (GrpcServerTransport::UpdateReader, comm/grpc_push_reader.h): the
// decoder of an update's raw UpdateChunk stream. Thread-safety and ownership: see the header.
#include "comm/grpc_push_reader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/io/coded_stream.h"
#include "grpc/slice.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace fedtrain {

GrpcServerTransport::UpdateReader::UpdateReader(GrpcServerTransport* t, std::string peer,
                                                uint64_t worker_id)
    : t_(t), peer_(std::move(peer)), worker_id_(worker_id) {
  StartRead(&raw_);
}

void GrpcServerTransport::UpdateReader::OnReadDone(bool ok) {
  if (!ok) return Complete();
  const bool was_started = started_;
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // the data fields: (offset, length)
  if (grpc::Status st = Parse(&spans); !st.ok()) return Refuse(st);
  // Parse's reader of raw_ is gone; the chunk moves out so the next read has a buffer of
  // its own (gRPC fills it, maybe on another thread, as soon as it is asked to).
  grpc::ByteBuffer chunk;
  chunk.Swap(&raw_);
  if (!was_started) {  // the first chunk announced the size: room in the receive budget?
    absl::MutexLock lock(&t_->mu_);
    if (finished_) return;
    if (t_->ReserveReceiveLocked(total_)) {
      reserved_ = total_;
    } else {  // wait unread: HTTP/2 flow control holds the sender back meanwhile
      parked_ = true;
      parked_chunk_.Swap(&chunk);
      parked_spans_ = std::move(spans);
      t_->waiting_for_budget_.push_back(this);
      return;
    }
  }
  if (!Take(chunk, spans)) return Refuse(MalformedStatus("data"));
  StartRead(&raw_);
}

void GrpcServerTransport::UpdateReader::Resume() {
  grpc::ByteBuffer chunk;
  chunk.Swap(&parked_chunk_);
  const std::vector<std::pair<uint64_t, uint64_t>> spans = std::move(parked_spans_);
  if (!Take(chunk, spans)) return Refuse(MalformedStatus("data"));
  StartRead(&raw_);
}

void GrpcServerTransport::UpdateReader::OnCancel() {
  // Only a push waiting for room has no read of its own to end it.
  {
    absl::MutexLock lock(&t_->mu_);
    if (!parked_) return;
    parked_ = false;
    auto& w = t_->waiting_for_budget_;
    w.erase(std::remove(w.begin(), w.end(), this), w.end());
  }
  FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "push cancelled"));
}

void GrpcServerTransport::UpdateReader::OnDone() {
  std::vector<UpdateReader*> resume;
  {
    absl::MutexLock lock(&t_->mu_);
    if (auto it = t_->open_pushes_.find(worker_id_); it != t_->open_pushes_.end())
      if (--it->second == 0) t_->open_pushes_.erase(it);
    resume = t_->ReleaseReceiveLocked(reserved_);
  }
  for (UpdateReader* r : resume) r->Resume();
  delete this;
}

bool GrpcServerTransport::UpdateReader::FinishOnce(const grpc::Status& s) {
  {
    absl::MutexLock lock(&t_->mu_);
    if (finished_) return false;
    finished_ = true;
  }
  Finish(s);
  return true;
}

grpc::Status GrpcServerTransport::UpdateReader::Parse(
    std::vector<std::pair<uint64_t, uint64_t>>* spans) {
  // UpdateChunk (service.proto): 3 total_bytes, 5 part_bytes (first chunk only), 4 data.
  // Anything else is refused: only our own client writes this stream.
  grpc::ProtoBufferReader stream(&raw_);
  google::protobuf::io::CodedInputStream in(&stream);
  uint64_t total = 0;
  std::vector<uint64_t> part_bytes;
  bool has_header = false;
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    uint32_t len = 0;
    if (tag == 0x18) {  // 3: total_bytes
      if (!in.ReadVarint64(&total)) return MalformedStatus("total_bytes");
      has_header = true;
    } else if (tag == 0x2A) {  // 5: part_bytes, packed, before the first data
      constexpr uint32_t kMaxPartsField = 10 * kMaxPushParts;  // <= 10 bytes a varint
      if (started_ || !in.ReadVarint32(&len) || len > kMaxPartsField)
        return MalformedStatus("part_bytes");
      const google::protobuf::io::CodedInputStream::Limit limit =
          in.PushLimit(static_cast<int>(len));
      while (in.BytesUntilLimit() > 0) {
        uint64_t v = 0;
        if (!in.ReadVarint64(&v) || part_bytes.size() == kMaxPushParts)
          return MalformedStatus("part_bytes");
        part_bytes.push_back(v);
      }
      in.PopLimit(limit);
      has_header = true;
    } else if (tag == 0x22) {  // 4: data
      if (!in.ReadVarint32(&len)) return MalformedStatus("data");
      if (!started_) {
        if (absl::Status st = Start(has_header, total, part_bytes); !st.ok())
          return grpc::Status(static_cast<grpc::StatusCode>(st.code()),
                              std::string(st.message()));
      }
      if (filled_ + len > total_)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("update chunks exceed the announced ", total_,
                                         " bytes"));
      // Taken below; here only checked to be all there.
      spans->emplace_back(static_cast<uint64_t>(in.CurrentPosition()), len);
      if (!in.Skip(static_cast<int>(len))) return MalformedStatus("data");
      filled_ += len;
    } else {
      return MalformedStatus(absl::StrCat("field tag ", tag));
    }
  }
  if (!in.ConsumedEntireMessage()) return MalformedStatus("a truncated field");
  if (!started_) {  // a header without data: an empty update
    if (absl::Status st = Start(has_header, total, part_bytes); !st.ok())
      return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
  }
  return grpc::Status::OK;
}

absl::Status GrpcServerTransport::UpdateReader::Start(bool has_header, uint64_t total,
                                                      const std::vector<uint64_t>& part_bytes) {
  if (!has_header)
    return absl::InvalidArgumentError("the first chunk has no header (total_bytes)");
  total_ = total;
  uint64_t max;
  bool known;
  {
    absl::MutexLock lock(&t_->mu_);
    known = t_->members_.IsMember(worker_id_);
    max = t_->max_update_bytes_;
  }
  if (!known)
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", worker_id_, " has not joined or was replaced"));
  if (total_ == 0)  // every update serializes to some bytes (a client, a payload)
    return absl::InvalidArgumentError("the first chunk announces no bytes (total_bytes)");
  if (total_ > max)
    return absl::ResourceExhaustedError(
        absl::StrCat("update of ", total_, " bytes exceeds the limit of ", max, " bytes"));
  uint64_t envelope = total_;
  for (uint64_t n : part_bytes) {
    if (n >= envelope)  // the envelope lists every tensor, so it is never empty
      return absl::InvalidArgumentError(absl::StrCat(
          "the tensor sizes (part_bytes) leave no room for the update's envelope in its ",
          total_, " bytes"));
    envelope -= n;
  }
  want_.assign(1, envelope);
  want_.insert(want_.end(), part_bytes.begin(), part_bytes.end());
  envelope_.reserve(envelope);  // within the limit: no regrowth copies
  parts_.assign(part_bytes.size(), absl::Cord());
  started_ = true;
  return absl::OkStatus();
}

uint64_t GrpcServerTransport::UpdateReader::Have(size_t i) const {
  return i == 0 ? envelope_.size() : parts_[i - 1].size();
}

void GrpcServerTransport::UpdateReader::Put(absl::string_view piece, const grpc::Slice& slice) {
  // An inlined slice (no refcount: a few bytes kept inside the grpc_slice itself) has no
  // storage of its own to reference; a copy of it would hold its bytes elsewhere.
  // (c_slice() returns a new reference, given back at once.)
  grpc_slice raw = slice.c_slice();
  const bool can_reference = raw.refcount != nullptr;
  grpc_slice_unref(raw);
  while (!piece.empty()) {
    while (Have(cursor_) == want_[cursor_]) ++cursor_;  // the sizes add to total_
    const absl::string_view take = piece.substr(0, want_[cursor_] - Have(cursor_));
    if (cursor_ == 0) {
      envelope_.append(take.data(), take.size());
    } else if (take.size() < t_->opts_.min_referenced_piece || !can_reference) {
      parts_[cursor_ - 1].Append(take);
    } else {
      parts_[cursor_ - 1].Append(
          absl::MakeCordFromExternal(take, [held = slice](absl::string_view) {}));
    }
    piece.remove_prefix(take.size());
  }
}

bool GrpcServerTransport::UpdateReader::Take(
    const grpc::ByteBuffer& chunk, const std::vector<std::pair<uint64_t, uint64_t>>& spans) {
  if (spans.empty()) return true;
  std::vector<grpc::Slice> slices;
  if (!chunk.Dump(&slices).ok()) return false;
  size_t i = 0;
  uint64_t base = 0;  // offset of slices[i] in the chunk
  for (auto [off, len] : spans) {
    while (len > 0) {
      if (i == slices.size()) return false;
      const uint64_t size = slices[i].size();
      if (off >= base + size) {
        base += size;
        ++i;
        continue;
      }
      const uint64_t take = std::min(len, base + size - off);
      Put(absl::string_view(reinterpret_cast<const char*>(slices[i].begin()) + (off - base),
                            take),
          slices[i]);
      off += take;
      len -= take;
    }
  }
  return true;
}

grpc::Status GrpcServerTransport::UpdateReader::MalformedStatus(const std::string& what) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("malformed update chunk: ", what));
}

void GrpcServerTransport::UpdateReader::Complete() {
  if (!started_ || filled_ != total_)
    return Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                               absl::StrCat("update truncated: got ", filled_, " of ",
                                            total_, " bytes")));
  ReceivedUpdate u;
  v1::UpdateMsg& m = u.msg;
  if (!m.ParseFromString(envelope_))
    return Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "update does not parse"));
  if (!parts_.empty()) {  // the tensors' bytes came after the envelope
    if (static_cast<size_t>(m.up().parts_size()) != parts_.size())
      return Refuse(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("update has ", m.up().parts_size(), " tensors but its chunks carry ",
                       parts_.size(), " (part_bytes)")));
    for (int i = 0; i < m.up().parts_size(); ++i)
      if (!m.up().parts(i).data().empty())
        return Refuse(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("tensor ", i, " has bytes both in the envelope and after it")));
    u.part_data = std::move(parts_);
  }
  {
    absl::MutexLock lock(&t_->mu_);
    if (!t_->members_.RoutedTo(m.client_id(), worker_id_)) {
      grpc::Status s(grpc::StatusCode::PERMISSION_DENIED,
                     absl::StrCat("client ", m.client_id(), " is not routed to worker ",
                                  worker_id_));
      t_->RefuseLocked(absl::StrCat("push from ", peer_, ": ", s.error_message()));
      finished_ = true;
      Finish(s);
      return;
    }
    // The client's task is answered (an update of an earlier round answers nothing).
    const uint32_t slot = static_cast<uint32_t>(m.client_id() % t_->members_.num_slots());
    if (slot < t_->unanswered_.size()) {
      auto& pending = t_->unanswered_[slot];
      auto it = pending.find(m.client_id());
      if (it != pending.end() && it->second.round() == m.round()) pending.erase(it);
    }
    t_->updates_.push_back(std::move(u));
    finished_ = true;
  }
  Finish(grpc::Status::OK);
}

void GrpcServerTransport::UpdateReader::Refuse(const grpc::Status& s) {
  parts_.clear();  // lets go of gRPC's slices at once
  {
    absl::MutexLock lock(&t_->mu_);
    if (finished_) return;
    t_->RefuseLocked(absl::StrCat("push from ", peer_, " (worker ", worker_id_,
                                  "): ", s.error_message()));
    finished_ = true;
  }
  Finish(s);
}

}  // namespace fedtrain
