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
#include "comm/grpc_push_reader.h"
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
#include "grpcpp/grpcpp.h"

namespace fedtrain {
namespace {

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

const grpc::Status& GrpcServerTransport::BadToken() {
  static const grpc::Status* s = new grpc::Status(
      grpc::StatusCode::UNAUTHENTICATED, "wrong token: this server runs with another token");
  return *s;
}

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

absl::Status GrpcServerTransport::SendTask(Task shared) {
  v1::TaskMsg task = shared.Message();  // serialized per worker stream
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
