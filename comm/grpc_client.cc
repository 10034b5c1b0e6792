#include "comm/grpc_client.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "comm/grpc_server.h"  // kGrpcChunkBytes
#include "fedtrain/v1/service.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace fedtrain {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

// The update without its tensors' bytes, which travel after it (UpdateChunk in
// service.proto). Field by field, so the tensors are never copied: a field added to UpdateMsg,
// Payload or Tensor must be added here (comm/grpc_push_test counts their fields).
v1::UpdateMsg UpdateEnvelope(const v1::UpdateMsg& update) {
  v1::UpdateMsg e;
  e.set_round(update.round());
  e.set_client_id(update.client_id());
  e.set_num_samples(update.num_samples());
  e.set_local_steps(update.local_steps());
  e.set_train_loss(update.train_loss());
  e.set_error(update.error());
  if (update.has_up()) {
    v1::Payload* up = e.mutable_up();
    *up->mutable_scalars() = update.up().scalars();
    for (const v1::Tensor& t : update.up().parts()) {
      v1::Tensor* c = up->add_parts();
      c->set_codec(t.codec());
      c->set_dim(t.dim());
    }
  }
  return e;
}

}  // namespace

struct GrpcWorkerClient::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::FedTrain::Stub> stub;
  absl::Mutex mu;
  grpc::ClientContext* tasks_ctx ABSL_GUARDED_BY(mu) = nullptr;  // ReceiveTasks' call
  bool cancelled ABSL_GUARDED_BY(mu) = false;
  uint32_t pushes_open ABSL_GUARDED_BY(mu) = 0;
};

void GrpcWorkerClient::AddSession(grpc::ClientContext* ctx) const {
  ctx->AddMetadata(kSessionMetadataKey,
                   absl::StrCat(joined_.worker_id(), ".", absl::BytesToHexString(joined_.session())));
}

void GrpcWorkerClient::Cancel() {
  absl::MutexLock lock(&impl_->mu);
  impl_->cancelled = true;
  if (impl_->tasks_ctx != nullptr) impl_->tasks_ctx->TryCancel();
}

GrpcWorkerClient::GrpcWorkerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcWorkerClient::~GrpcWorkerClient() = default;

absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> GrpcWorkerClient::Join(
    const GrpcWorkerOptions& opts, absl::Time deadline, const std::atomic<bool>* cancel) {
  if (opts.tls_ca_pem.empty() &&
      !(opts.tls_cert_pem.empty() && opts.tls_key_pem.empty() && opts.tls_server_name.empty()))
    return absl::InvalidArgumentError("TLS options need the CA certificate of the server");
  if (opts.tls_cert_pem.empty() != opts.tls_key_pem.empty())
    return absl::InvalidArgumentError("a client certificate needs its key and the reverse");
  auto impl = std::make_unique<Impl>();
  const bool tls = !opts.tls_ca_pem.empty();
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  for (const auto& [name, value] : BulkTransferArgs()) args.SetInt(name, value);
  if (tls) {
    grpc::SslCredentialsOptions so;
    so.pem_root_certs = opts.tls_ca_pem;
    so.pem_private_key = opts.tls_key_pem;
    so.pem_cert_chain = opts.tls_cert_pem;
    creds = grpc::SslCredentials(so);
    if (!creds) return absl::InvalidArgumentError("the TLS certificates are not usable");
    if (!opts.tls_server_name.empty()) args.SetSslTargetNameOverride(opts.tls_server_name);
  }
  impl->channel = grpc::CreateCustomChannel(opts.server, creds, args);
  impl->stub = v1::FedTrain::NewStub(impl->channel);
  std::unique_ptr<GrpcWorkerClient> c(new GrpcWorkerClient(std::move(impl)));
  c->opts_ = opts;
  v1::JoinRequest req;
  req.set_worker_name(opts.name.substr(0, kMaxWorkerNameBytes));
  if (opts.slot >= 0) req.set_slot(static_cast<uint32_t>(opts.slot));
  // The server may still be starting: retry while the connection is refused, until the
  // deadline. A failure after the TCP connect (a refused TLS handshake, a plain/TLS mismatch)
  // does not heal by itself: give up after a few of those.
  constexpr int kMaxHandshakeFailures = 5;
  int handshake_failures = 0;
  grpc::Status s;
  std::string last_unavailable;
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.AddMetadata(kTokenMetadataKey, opts.token);
    s = c->impl_->stub->Join(&ctx, req, &c->joined_);
    if (s.ok()) return c;
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() >= deadline) break;
    last_unavailable = s.error_message();
    if (!absl::StrContains(s.error_message(), "refused") &&
        ++handshake_failures >= kMaxHandshakeFailures)
      break;
    if (cancel != nullptr && cancel->load())
      return absl::CancelledError(absl::StrCat("join ", opts.server, ": cancelled"));
    // Wait for the channel to try again (it backs off between connection attempts).
    const grpc_connectivity_state state = c->impl_->channel->GetState(/*try_to_connect=*/true);
    c->impl_->channel->WaitForStateChange(
        state, absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Milliseconds(500))));
  }
  absl::Status st = FromGrpc(s, absl::StrCat("join ", opts.server));
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", opts.server, tls ? " over TLS" : " over plain TCP", ": ",
        s.error_message(),
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && !last_unavailable.empty()
            ? absl::StrCat("; last error: ", last_unavailable)
            : "",
        tls ? " (TLS handshake or connection failed: check --tls-ca, --tls-server-name, and "
              "--tls-cert/--tls-key if the server requires client certificates)"
            : " (connection failed: if the server uses TLS, pass --tls-ca)"));
  return st;
}

absl::Status GrpcWorkerClient::ReceiveTasks(const std::function<void(v1::TaskMsg)>& on_task) {
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->cancelled) return absl::CancelledError("the worker is stopping");
    impl_->tasks_ctx = &ctx;
  }
  struct Unregister {
    Impl* impl;
    ~Unregister() {
      absl::MutexLock lock(&impl->mu);
      impl->tasks_ctx = nullptr;
    }
  } unregister{impl_.get()};
  v1::TasksRequest req;
  AddSession(&ctx);
  std::unique_ptr<grpc::ClientReader<v1::TaskChunk>> reader = impl_->stub->Tasks(&ctx, req);
  v1::TaskChunk chunk;
  std::string buf;
  uint64_t total = 0;
  bool in_task = false, over = false;
  absl::Status bad;
  while (reader->Read(&chunk)) {
    if (chunk.run_over()) {
      over = true;
      continue;
    }
    if (!in_task) {
      total = chunk.total_bytes();
      buf.clear();
      buf.reserve(total);
      in_task = true;
    }
    if (buf.size() + chunk.data().size() > total) {
      bad = absl::DataLossError("task chunks exceed the announced size");
      ctx.TryCancel();
      break;
    }
    buf.append(chunk.data());
    if (chunk.last()) {
      in_task = false;
      v1::TaskMsg task;
      if (buf.size() != total || !task.ParseFromString(buf)) {
        bad = absl::DataLossError("a task does not parse");
        ctx.TryCancel();
        break;
      }
      on_task(std::move(task));
    }
  }
  grpc::Status s = reader->Finish();
  if (!bad.ok()) return bad;
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->cancelled) return absl::CancelledError("the worker is stopping");
  }
  if (!s.ok()) return FromGrpc(s, "task stream");
  if (!over) return absl::UnavailableError("task stream ended before the run was over");
  return absl::OkStatus();
}

absl::Status GrpcWorkerClient::Push(const v1::UpdateMsg& update) {
  // The envelope (the update without its tensors' bytes) is serialized; the tensors' bytes
  // go out from where they lie (UpdateChunk in service.proto).
  if (update.up().parts_size() > static_cast<int>(kMaxPushParts))
    return absl::InvalidArgumentError(absl::StrCat("update of client ", update.client_id(),
                                                   " has ", update.up().parts_size(),
                                                   " tensors; at most ", kMaxPushParts));
  std::string envelope;
  if (!UpdateEnvelope(update).SerializeToString(&envelope))
    return absl::InvalidArgumentError("update does not serialize");
  // The pieces in order: the envelope, then each tensor's bytes.
  std::vector<std::pair<const char*, size_t>> pieces;
  pieces.emplace_back(envelope.data(), envelope.size());
  uint64_t total = envelope.size();
  for (const v1::Tensor& t : update.up().parts()) {
    pieces.emplace_back(t.data().data(), t.data().size());
    total += t.data().size();
  }
  // Each chunk is a raw UpdateChunk message encoded here: a small header slice and a slice
  // that points into one piece (no copy; the pieces outlive the call), over a generic call on
  // the Push method. A typed stub would copy each chunk twice (into the message, then into
  // gRPC's buffer).
  auto varint = [](uint64_t v, std::string* out) {
    while (v >= 0x80) {
      out->push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out->push_back(static_cast<char>(v));
  };
  size_t piece = 0, off = 0;
  bool first = true;
  grpc::ClientContext ctx;
  AddSession(&ctx);
  // At most max_concurrent_pushes of this worker's pushes at once: the server refuses more.
  {
    absl::MutexLock lock(&impl_->mu);
    const uint32_t most = std::max<uint32_t>(1, joined_.max_concurrent_pushes());
    Impl* impl = impl_.get();
    auto room = [impl, most]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu) {
      return impl->pushes_open < most;
    };
    impl_->mu.Await(absl::Condition(&room));
    ++impl_->pushes_open;
  }
  struct Done {
    Impl* impl;
    ~Done() {
      absl::MutexLock lock(&impl->mu);
      --impl->pushes_open;
    }
  } done{impl_.get()};
  const grpc::Status status = PushRawChunks(impl_->channel, &ctx, [&](grpc::ByteBuffer* chunk) {
    while (piece < pieces.size() && off == pieces[piece].second) {
      ++piece;
      off = 0;
    }
    if (!first && piece == pieces.size()) return false;
    // (An update of all-default fields has no bytes at all: its one chunk has no data.)
    const bool any = piece < pieces.size();
    const size_t n = any ? std::min(kGrpcChunkBytes, pieces[piece].second - off) : 0;
    std::string head;
    if (first) {  // UpdateChunk fields 3 total_bytes, 5 part_bytes
      head.push_back(0x18);
      varint(total, &head);
      if (pieces.size() > 1) {
        std::string sizes;
        for (size_t i = 1; i < pieces.size(); ++i) varint(pieces[i].second, &sizes);
        head.push_back(0x2A);
        varint(sizes.size(), &head);
        head.append(sizes);
      }
      first = false;
    }
    head.push_back(0x22);  // 4 data
    varint(n, &head);
    grpc::Slice parts[2] = {grpc::Slice(head), grpc::Slice()};
    if (any) parts[1] = grpc::Slice(pieces[piece].first + off, n, grpc::Slice::STATIC_SLICE);
    *chunk = grpc::ByteBuffer(parts, any ? 2 : 1);
    off += n;
    return true;
  });
  return FromGrpc(status, absl::StrCat("push update of client ", update.client_id()));
}

grpc::Status PushRawChunks(const std::shared_ptr<grpc::Channel>& channel,
                           grpc::ClientContext* ctx,
                           const std::function<bool(grpc::ByteBuffer*)>& next) {
  grpc::CompletionQueue cq;
  grpc::GenericStub generic(channel);
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      generic.PrepareCall(ctx, "/fedtrain.v1.FedTrain/Push", &cq);
  auto wait = [&cq]() {
    void* tag = nullptr;
    bool ok = false;
    return cq.Next(&tag, &ok) && ok;
  };
  call->StartCall(nullptr);
  bool open = wait();
  grpc::ByteBuffer chunk;
  while (open && next(&chunk)) {
    call->Write(chunk, nullptr);
    open = wait();  // false: the server ended the call; Finish says why
  }
  if (open) {
    call->WritesDone(nullptr);
    (void)wait();
  }
  grpc::ByteBuffer reply;
  call->Read(&reply, nullptr);
  (void)wait();
  grpc::Status status;
  call->Finish(&status, nullptr);
  (void)wait();
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

absl::StatusOr<bool> GrpcWorkerClient::Heartbeat() {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::HeartbeatRequest req;
  AddSession(&ctx);
  v1::HeartbeatReply reply;
  grpc::Status s = impl_->stub->Heartbeat(&ctx, req, &reply);
  if (!s.ok()) return FromGrpc(s, "heartbeat");
  return reply.run_over();
}

absl::Status GrpcWorkerClient::Leave(const std::string& reason) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::LeaveRequest req;
  AddSession(&ctx);
  req.set_reason(reason.substr(0, kMaxLeaveReasonBytes));
  v1::LeaveReply reply;
  return FromGrpc(impl_->stub->Leave(&ctx, req, &reply), "leave");
}

}  // namespace fedtrain
