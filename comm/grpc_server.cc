#include "comm/grpc_server.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
// The generated WithRawCallbackMethod_Push declares a Push overload with another signature
// on purpose (raw bytes instead of UpdateChunk); clang's -Woverloaded-virtual flags it.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Woverloaded-virtual"
#endif
#include "fedtrain/v1/service.grpc.pb.h"
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
#include "google/protobuf/io/coded_stream.h"
#include "grpc/slice.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace fedtrain {
namespace {

const grpc::Status& BadToken() {
  static const grpc::Status* s = new grpc::Status(
      grpc::StatusCode::UNAUTHENTICATED, "wrong token: this server runs with another token");
  return *s;
}

// The serialized message in chunks of at most kGrpcChunkBytes; the first carries the total.
std::vector<v1::TaskChunk> ChunkTask(const std::string& bytes) {
  std::vector<v1::TaskChunk> out;
  size_t off = 0;
  do {
    v1::TaskChunk c;
    if (off == 0) c.set_total_bytes(bytes.size());
    const size_t n = std::min(kGrpcChunkBytes, bytes.size() - off);
    c.set_data(bytes.substr(off, n));
    off += n;
    c.set_last(off == bytes.size());
    out.push_back(std::move(c));
  } while (off < bytes.size());
  return out;
}

// The same code and message (gRPC's codes are absl's).
grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace

// Server stream of one worker's tasks. Lives from the Tasks call until OnDone; `busy` and
// `finished` are guarded by the transport's mutex.
class GrpcServerTransport::TaskWriter final : public grpc::ServerWriteReactor<v1::TaskChunk> {
 public:
  TaskWriter(GrpcServerTransport* t, uint64_t id) : t_(t), id_(id) {}

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&t_->mu_);
    busy = false;
    if (!ok) {
      t_->DropWriterLocked(id_, this);
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "task stream broken"));
      return;
    }
    auto it = t_->outboxes_.find(id_);
    if (it != t_->outboxes_.end() && it->second.writer == this) t_->PumpLocked(&it->second);
  }
  void OnCancel() override {
    absl::MutexLock lock(&t_->mu_);
    t_->DropWriterLocked(id_, this);
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "task stream cancelled"));
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&t_->mu_);
      t_->DropWriterLocked(id_, this);
    }
    delete this;
  }
  void FinishOnce(const grpc::Status& s) {
    if (finished) return;
    finished = true;
    Finish(s);
  }

  bool busy = false;
  bool finished = false;
  v1::TaskChunk current;

 private:
  GrpcServerTransport* const t_;
  const uint64_t id_;
};

// Client stream of one update: size-checks, reassembles, parses, enqueues. Reads the
// UpdateChunk messages as raw bytes (the method is registered as a raw callback method) and
// decodes their few fields here. The envelope (the serialized UpdateMsg without its tensors'
// bytes) is copied out and parsed; each tensor's bytes are not copied at all: they stay in
// the slices gRPC received them in, referenced (absl::Cord pieces that hold the slices) from
// the ReceivedUpdate's part_data, where DecodePayload reads them. Where a parsed UpdateChunk
// and a parsed UpdateMsg would copy every byte three times in user space, the reactor only
// parses, size-checks and enqueues, and gRPC reads on.
class GrpcServerTransport::UpdateReader final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  UpdateReader(GrpcServerTransport* t, std::string peer) : t_(t), peer_(std::move(peer)) {
    StartRead(&raw_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return Complete();
    std::vector<std::pair<uint64_t, uint64_t>> spans;  // the data fields: (offset, length)
    if (grpc::Status st = Parse(&spans); !st.ok()) return Refuse(st);
    // Parse's reader of raw_ is gone; the chunk moves out so the next read has a buffer of
    // its own (gRPC fills it, maybe on another thread, as soon as it is asked to).
    grpc::ByteBuffer chunk;
    chunk.Swap(&raw_);
    if (!Take(chunk, spans)) return Refuse(MalformedStatus("data"));
    StartRead(&raw_);
  }
  void OnDone() override { delete this; }

 private:
  // Decodes the chunk in raw_: header fields (starting the update on the first chunk) and
  // where its data lie, checked to be all there; OK or the refusal.
  grpc::Status Parse(std::vector<std::pair<uint64_t, uint64_t>>* spans) {
    // UpdateChunk (service.proto): 1 token, 2 worker_id, 3 total_bytes, 5 part_bytes (first
    // chunk only), 4 data. Anything else is refused: only our own client writes this stream.
    grpc::ProtoBufferReader stream(&raw_);
    google::protobuf::io::CodedInputStream in(&stream);
    std::string token;
    uint64_t worker_id = 0, total = 0;
    std::vector<uint64_t> part_bytes;
    bool has_header = false;
    for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
      uint32_t len = 0;
      if (tag == 0x0A) {  // 1: token
        if (!in.ReadVarint32(&len) || len > 4096 || !in.ReadString(&token, static_cast<int>(len)))
          return MalformedStatus("token");
        has_header = true;
      } else if (tag == 0x10) {  // 2: worker_id
        if (!in.ReadVarint64(&worker_id)) return MalformedStatus("worker_id");
        has_header = true;
      } else if (tag == 0x18) {  // 3: total_bytes
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
          if (absl::Status st = Start(has_header, token, worker_id, total, part_bytes);
              !st.ok())
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
      if (absl::Status st = Start(has_header, token, worker_id, total, part_bytes); !st.ok())
        return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
    }
    return grpc::Status::OK;
  }
  // The first chunk: token, sender, announced size and the tensors' sizes.
  absl::Status Start(bool has_header, const std::string& token, uint64_t worker_id,
                     uint64_t total, const std::vector<uint64_t>& part_bytes) {
    if (!has_header || !t_->TokenOk(token))
      return absl::UnauthenticatedError("wrong token");
    worker_id_ = worker_id;
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
  // Bytes destination i has so far (0: the envelope, i > 0: tensor i - 1).
  uint64_t Have(size_t i) const { return i == 0 ? envelope_.size() : parts_[i - 1].size(); }
  // Appends `piece`, which lies in `slice`, to the destinations, in order: the envelope is
  // copied, the tensors' bytes referenced. The caller checked that it fits.
  void Put(absl::string_view piece, const grpc::Slice& slice) {
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
  // Takes the data `spans` of `chunk` into the destinations; false when they do not lie
  // within it (Parse checked that they do).
  bool Take(const grpc::ByteBuffer& chunk,
            const std::vector<std::pair<uint64_t, uint64_t>>& spans) {
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
  static grpc::Status MalformedStatus(const std::string& what) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("malformed update chunk: ", what));
  }
  void Complete() {
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
    absl::MutexLock lock(&t_->mu_);
    if (!t_->members_.RoutedTo(m.client_id(), worker_id_)) {
      grpc::Status s(grpc::StatusCode::PERMISSION_DENIED,
                     absl::StrCat("client ", m.client_id(), " is not routed to worker ",
                                  worker_id_));
      t_->RefuseLocked(absl::StrCat("push from ", peer_, ": ", s.error_message()));
      return Finish(s);
    }
    t_->updates_.push_back(std::move(u));
    Finish(grpc::Status::OK);
  }
  // Ends the call with `s` and records the refusal for the round's metrics.
  void Refuse(const grpc::Status& s) {
    parts_.clear();  // lets go of gRPC's slices at once
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      absl::MutexLock lock(&t_->mu_);
      t_->RefuseLocked(absl::StrCat("push from ", peer_, ": wrong token"));
      Finish(BadToken());
      return;
    }
    {
      absl::MutexLock lock(&t_->mu_);
      t_->RefuseLocked(absl::StrCat("push from ", peer_, " (worker ", worker_id_,
                                    "): ", s.error_message()));
    }
    Finish(s);
  }

  GrpcServerTransport* const t_;
  const std::string peer_;
  grpc::ByteBuffer raw_;
  bool started_ = false;
  uint64_t worker_id_ = 0, total_ = 0, filled_ = 0;
  // The envelope, then the tensors: want_[i] bytes each, filled in order (cursor_ is the
  // first that is not full).
  std::vector<uint64_t> want_;
  std::string envelope_;
  std::vector<absl::Cord> parts_;
  size_t cursor_ = 0;
};

class GrpcServerTransport::Service final
    : public v1::FedTrain::WithRawCallbackMethod_Push<v1::FedTrain::CallbackService> {
 public:
  explicit Service(GrpcServerTransport* t) : t_(t) {}

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* ctx, const v1::JoinRequest* req,
                                 v1::JoinReply* reply) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    if (!t_->TokenOk(req->token())) {
      absl::MutexLock lock(&t_->mu_);
      t_->RefuseLocked(absl::StrCat("join from ", ctx->peer(), " (", req->worker_name(),
                                    "): wrong token"));
      r->Finish(BadToken());
      return r;
    }
    {
      absl::MutexLock lock(&t_->mu_);
      absl::StatusOr<Membership::Joined> joined = t_->members_.Join(
          req->worker_name(),
          req->has_slot() ? std::optional<uint32_t>(req->slot()) : std::nullopt, absl::Now());
      if (!joined.ok()) {
        r->Finish(ToGrpc(joined.status()));
        return r;
      }
      if (joined->replaced != 0) {  // took the slot over from a holder that is gone
        if (auto it = t_->outboxes_.find(joined->replaced); it != t_->outboxes_.end())
          it->second.queue.clear();
        std::fprintf(stderr, "fedtrain server: worker %s rejoined slot %u (was worker %llu)\n",
                     req->worker_name().c_str(), joined->slot,
                     static_cast<unsigned long long>(joined->replaced));
      }
      reply->set_worker_id(joined->worker_id);
      reply->set_max_update_bytes(t_->max_update_bytes_);
      reply->set_slot(joined->slot);
      reply->set_num_slots(joined->num_slots);
    }
    *reply->mutable_config() = t_->opts_.config;
    reply->set_heartbeat_interval_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(t_->opts_.heartbeat_interval)));
    r->Finish(grpc::Status::OK);
    return r;
  }

  grpc::ServerWriteReactor<v1::TaskChunk>* Tasks(grpc::CallbackServerContext* ctx,
                                                 const v1::TasksRequest* req) override {
    auto* w = new TaskWriter(t_, req->worker_id());
    if (!t_->TokenOk(req->token())) {
      w->FinishOnce(BadToken());
      return w;
    }
    absl::MutexLock lock(&t_->mu_);
    if (absl::Status st = t_->members_.OpenStream(req->worker_id()); !st.ok()) {
      w->FinishOnce(ToGrpc(st));
    } else {
      Outbox& out = t_->outboxes_[req->worker_id()];
      out.writer = w;
      t_->PumpLocked(&out);
    }
    return w;
  }

  grpc::ServerReadReactor<grpc::ByteBuffer>* Push(grpc::CallbackServerContext* ctx,
                                                  grpc::ByteBuffer* reply) override {
    // The reply is an empty PushReply, which serializes to no bytes.
    grpc::Slice none;
    *reply = grpc::ByteBuffer(&none, 1);
    return new UpdateReader(t_, ctx->peer());
  }

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply* reply) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    if (!t_->TokenOk(req->token())) {
      r->Finish(BadToken());
      return r;
    }
    grpc::Status s = grpc::Status::OK;
    {
      absl::MutexLock lock(&t_->mu_);
      if (!t_->members_.Heartbeat(req->worker_id(), absl::Now())) {
        s = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                         absl::StrCat("worker ", req->worker_id(), " has not joined"));
      } else {
        reply->set_run_over(t_->run_over_);
      }
    }
    r->Finish(s);
    return r;
  }

  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* ctx, const v1::LeaveRequest* req,
                                  v1::LeaveReply* reply) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    if (!t_->TokenOk(req->token())) {
      r->Finish(BadToken());
      return r;
    }
    {
      absl::MutexLock lock(&t_->mu_);
      t_->members_.Leave(req->worker_id());
    }
    r->Finish(grpc::Status::OK);
    return r;
  }

 private:
  GrpcServerTransport* const t_;
};

GrpcServerTransport::GrpcServerTransport(GrpcServerOptions opts)
    : opts_(std::move(opts)),
      members_(static_cast<uint32_t>(opts_.expected_workers), opts_.heartbeat_interval),
      max_update_bytes_(opts_.max_update_bytes) {}

void GrpcServerTransport::DropWriterLocked(uint64_t worker_id, const TaskWriter* w) {
  auto it = outboxes_.find(worker_id);
  if (it == outboxes_.end() || it->second.writer != w) return;
  it->second.writer = nullptr;
  members_.CloseStream(worker_id);
}

void GrpcServerTransport::RefuseLocked(std::string why) {
  std::fprintf(stderr, "fedtrain server: refused %s\n", why.c_str());
  constexpr size_t kMaxKept = 1000;  // a flood of bad pushes must not grow memory
  if (refused_.size() < kMaxKept) refused_.push_back(std::move(why));
}

std::vector<std::string> GrpcServerTransport::TakeRefused() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out(std::make_move_iterator(refused_.begin()),
                               std::make_move_iterator(refused_.end()));
  refused_.clear();
  return out;
}

GrpcServerTransport::~GrpcServerTransport() { Shutdown(absl::Now() + absl::Seconds(1)); }

absl::StatusOr<std::unique_ptr<GrpcServerTransport>> GrpcServerTransport::Start(
    GrpcServerOptions opts) {
  if (opts.token.empty()) return absl::InvalidArgumentError("the server needs a token");
  if (opts.expected_workers < 1)
    return absl::InvalidArgumentError("the server needs at least one worker");
  if (opts.min_referenced_piece < 1)
    return absl::InvalidArgumentError("min_referenced_piece must be at least 1");
  if (opts.tls_cert_pem.empty() != opts.tls_key_pem.empty())
    return absl::InvalidArgumentError("TLS needs both a certificate and its key");
  if (opts.tls_cert_pem.empty() && !opts.tls_client_ca_pem.empty())
    return absl::InvalidArgumentError("client certificates (mutual TLS) need TLS");
  const std::string listen = opts.listen;
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("listen address ", listen, " is not HOST:PORT"));
  std::unique_ptr<GrpcServerTransport> t(new GrpcServerTransport(std::move(opts)));
  t->service_ = std::make_unique<Service>(t.get());
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  const bool tls = !t->opts_.tls_cert_pem.empty();
  if (tls) {
    const bool mutual = !t->opts_.tls_client_ca_pem.empty();
    grpc::SslServerCredentialsOptions so(
        mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    so.pem_root_certs = t->opts_.tls_client_ca_pem;
    so.pem_key_cert_pairs.push_back({t->opts_.tls_key_pem, t->opts_.tls_cert_pem});
    creds = grpc::SslServerCredentials(so);
    if (!creds) return absl::InvalidArgumentError("the TLS certificate or key is not usable");
  }
  grpc::ServerBuilder b;
  for (const auto& [name, value] : BulkTransferArgs()) b.AddChannelArgument(name, value);
  int port = 0;
  b.AddListeningPort(listen, creds, &port);
  b.RegisterService(t->service_.get());
  t->server_ = b.BuildAndStart();
  if (!t->server_ || port == 0) {
    absl::MutexLock lock(&t->mu_);
    t->shut_down_ = true;
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen,
        tls ? " (with TLS: check that the certificate and key are valid PEM and match)" : ""));
  }
  t->address_ = absl::StrCat(listen.substr(0, colon), ":", port);
  return t;
}

std::vector<std::pair<std::string, int>> BulkTransferArgs() {
  return {
      // HTTP/2 frames up to 16 MiB - 1 (the protocol's maximum) instead of 16 KiB: a 1 MiB
      // chunk goes out as one frame.
      {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (1 << 24) - 1},
      // A receive window of 64 MiB from the start, instead of growing it from 64 KiB by
      // bandwidth-delay probes: a sender never waits for window updates over a fast link.
      {GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20},
      {GRPC_ARG_HTTP2_BDP_PROBE, 0},
      {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20},
      {GRPC_ARG_TCP_READ_CHUNK_SIZE, 4 << 20},
      {GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 1 << 20},
      {GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 16 << 20},
  };
}

absl::StatusOr<std::string> ReadPemFile(const std::string& option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string why = absl::StrCat(option, ": cannot read ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(why) : absl::UnavailableError(why);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return absl::UnavailableError(absl::StrCat(option, ": cannot read ", path));
  std::string pem = text.str();
  if (pem.find("-----BEGIN ") == std::string::npos)
    return absl::InvalidArgumentError(
        absl::StrCat(option, ": ", path, " is not a PEM file (no -----BEGIN line)"));
  return pem;
}

bool GrpcServerTransport::TokenOk(const std::string& token) const {
  // Constant time in the token's content.
  const std::string& want = opts_.token;
  unsigned char diff = token.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < token.size(); ++i)
    diff |= static_cast<unsigned char>(token[i] ^ want[i % want.size()]);
  return diff == 0;
}

absl::Status GrpcServerTransport::WaitForWorkers(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return members_.full(); };
  if (!mu_.AwaitWithDeadline(absl::Condition(&full), deadline))
    return absl::DeadlineExceededError(absl::StrCat(members_.num_joined(), " of ",
                                                    opts_.expected_workers,
                                                    " workers joined before the deadline"));
  return absl::OkStatus();
}

void GrpcServerTransport::SetMaxUpdateBytes(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  max_update_bytes_ = bytes;
}

std::vector<uint64_t> GrpcServerTransport::routing() const {
  absl::MutexLock lock(&mu_);
  return members_.routing();
}

void GrpcServerTransport::PumpLocked(Outbox* out) {
  TaskWriter* w = out->writer;
  if (w == nullptr || w->busy || w->finished) return;
  if (!out->queue.empty()) {
    w->current = std::move(out->queue.front());
    out->queue.pop_front();
    w->busy = true;
    w->StartWrite(&w->current);
  } else if (run_over_) {
    w->current.Clear();
    w->current.set_run_over(true);
    w->busy = true;
    w->finished = true;
    w->StartWriteAndFinish(&w->current, grpc::WriteOptions(), grpc::Status::OK);
  }
}

absl::Status GrpcServerTransport::SendTask(v1::TaskMsg task) {
  std::string bytes;
  if (!task.SerializeToString(&bytes))
    return absl::InvalidArgumentError("task does not serialize (over 2 GiB?)");
  std::vector<v1::TaskChunk> chunks = ChunkTask(bytes);
  bytes.clear();
  absl::MutexLock lock(&mu_);
  const absl::StatusOr<uint32_t> slot = members_.SlotOfClient(task.client_id());
  if (!slot.ok()) return slot.status();
  if (opts_.rejoin_grace > absl::ZeroDuration()) {
    // A slot whose worker is gone gets this long for a worker to rejoin it.
    auto held = [this, slot = *slot]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return members_.SlotLive(slot, absl::Now());
    };
    if (!held())
      (void)mu_.AwaitWithDeadline(absl::Condition(&held), absl::Now() + opts_.rejoin_grace);
  }
  // Refused when the slot's worker left or its task stream broke; queued for one that has
  // not opened its stream yet.
  const absl::StatusOr<uint64_t> wid = members_.TaskRecipient(*slot);
  if (!wid.ok()) return wid.status();
  Outbox& out = outboxes_[*wid];
  for (v1::TaskChunk& c : chunks) out.queue.push_back(std::move(c));
  PumpLocked(&out);
  return absl::OkStatus();
}

absl::StatusOr<ReceivedUpdate> GrpcServerTransport::ReceiveUpdate(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !updates_.empty(); };
  if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline))
    return absl::DeadlineExceededError("no update arrived before the deadline");
  ReceivedUpdate u = std::move(updates_.front());
  updates_.pop_front();
  return u;
}

void GrpcServerTransport::FinishRun(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  run_over_ = true;
  for (auto& [id, out] : outboxes_) PumpLocked(&out);
  auto closed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [id, out] : outboxes_)
      if (out.writer != nullptr) return false;
    return true;
  };
  mu_.AwaitWithDeadline(absl::Condition(&closed), deadline);
}

void GrpcServerTransport::Shutdown(absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (server_) server_->Shutdown(absl::ToChronoTime(deadline));
}

}  // namespace fedtrain
