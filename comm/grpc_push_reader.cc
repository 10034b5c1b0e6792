// The server's Push reactor (GrpcServerTransport::UpdateReader, comm/grpc_push_reader.h): reads
// an update's raw UpdateChunk stream into a PushDecoder. Thread-safety and ownership: see the
// header.
#include "comm/grpc_push_reader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/slice.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace fedtrain {

GrpcServerTransport::UpdateReader::UpdateReader(GrpcServerTransport* t, std::string peer,
                                                uint64_t worker_id)
    : t_(t),
      peer_(std::move(peer)),
      worker_id_(worker_id),
      decoder_(0, t->opts_.min_referenced_piece, [this]() -> absl::StatusOr<uint64_t> {
        // The first chunk's header is there: still a member? The limit, read now.
        absl::MutexLock lock(&t_->mu_);
        if (!t_->members_.IsMember(worker_id_))
          return absl::FailedPreconditionError(
              absl::StrCat("worker ", worker_id_, " has not joined or was replaced"));
        return t_->max_update_bytes_;
      }) {
  StartRead(&raw_);
}

void GrpcServerTransport::UpdateReader::OnReadDone(bool ok) {
  if (!ok) return Complete();
  const bool was_started = decoder_.started();
  std::vector<PushDecoder::Span> spans;  // the data fields
  if (grpc::Status st = Parse(&spans); !st.ok()) return Refuse(st);
  // Parse's reader of raw_ is gone; the chunk moves out so the next read has a buffer of
  // its own (gRPC fills it, maybe on another thread, as soon as it is asked to).
  grpc::ByteBuffer chunk;
  chunk.Swap(&raw_);
  if (!was_started) {  // the first chunk announced the size: room in the receive budget?
    absl::MutexLock lock(&t_->mu_);
    if (finished_) return;
    if (t_->ReserveReceiveLocked(decoder_.total())) {
      reserved_ = decoder_.total();
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
  const std::vector<PushDecoder::Span> spans = std::move(parked_spans_);
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

grpc::Status GrpcServerTransport::UpdateReader::Parse(std::vector<PushDecoder::Span>* spans) {
  grpc::ProtoBufferReader stream(&raw_);
  const absl::Status st = decoder_.Parse(&stream, spans);
  if (st.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

bool GrpcServerTransport::UpdateReader::Take(const grpc::ByteBuffer& chunk,
                                             const std::vector<PushDecoder::Span>& spans) {
  if (spans.empty()) return true;
  std::vector<grpc::Slice> slices;
  if (!chunk.Dump(&slices).ok()) return false;
  size_t i = 0;
  uint64_t base = 0;  // offset of slices[i] in the chunk
  for (const PushDecoder::Span& span : spans) {
    uint64_t off = span.offset, len = span.length;
    while (len > 0) {
      if (i == slices.size()) return false;
      const uint64_t size = slices[i].size();
      if (off >= base + size) {
        base += size;
        ++i;
        continue;
      }
      const uint64_t take = std::min(len, base + size - off);
      const grpc::Slice& slice = slices[i];
      // An inlined slice (no refcount: a few bytes kept inside the grpc_slice itself) has no
      // storage of its own to reference; a copy of it would hold its bytes elsewhere.
      // (c_slice() returns a new reference, given back at once.)
      grpc_slice raw = slice.c_slice();
      const bool can_reference = raw.refcount != nullptr;
      grpc_slice_unref(raw);
      auto reference = [&slice](absl::string_view bytes) {
        return absl::MakeCordFromExternal(bytes, [held = slice](absl::string_view) {});
      };
      decoder_.Put(
          absl::string_view(reinterpret_cast<const char*>(slice.begin()) + (off - base), take),
          can_reference ? std::optional<PushDecoder::MakePiece>(reference) : std::nullopt);
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
  absl::StatusOr<ReceivedUpdate> decoded = decoder_.Finish();
  if (!decoded.ok())
    return Refuse(grpc::Status(static_cast<grpc::StatusCode>(decoded.status().code()),
                               std::string(decoded.status().message())));
  ReceivedUpdate u = *std::move(decoded);
  const v1::UpdateMsg& m = u.msg;
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
  decoder_.Drop();  // lets go of gRPC's slices at once
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
