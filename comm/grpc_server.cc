#include "comm/grpc_server.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include <sys/random.h>
#include <sys/resource.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "comm/grpc_push_reader.h"
#include "core/log.h"
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
#include "grpc/support/log.h"
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

// The value of metadata `key` of the call (the first, if several), or nullopt.
std::optional<std::string> MetadataValue(const grpc::CallbackServerContext* ctx,
                                         const char* key) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

// 32 bytes from the kernel's cryptographically secure generator.
std::string NewSessionSecret() {
  std::string s(32, '\0');
  size_t got = 0;
  while (got < s.size()) {
    const ssize_t n = getrandom(s.data() + got, s.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // getrandom cannot fail for 32 bytes once the pool is initialised
      std::perror("fedtrain server: getrandom");
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
  return s;
}

// The peer, shortened for a log line (a hostile peer chooses nothing in it but its address).
std::string PeerOf(const grpc::CallbackServerContext* ctx) { return ctx->peer(); }

std::atomic<bool> accept_failed{false};

// gRPC's log, as gRPC prints it (severity, place, message), watched for the listener's
// "Failed accept4" (see GrpcServerTransport::GuardListener).
void WatchGrpcLog(gpr_log_func_args* a) {
  if (a->message != nullptr && std::strstr(a->message, "Failed accept4") != nullptr)
    accept_failed = true;
  const LogLevel level = a->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : a->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                : LogLevel::kDebug;
  if (LogEnabled(level))
    LogLine(level, absl::StrCat("grpc ", a->file, ":", a->line, "] ",
                                a->message != nullptr ? a->message : ""));
}

// Raises the soft limit of open files to the hard one: a server holds a descriptor per
// connection, and gRPC 1.51's listener stops accepting for good once accept() fails with
// EMFILE (see comm/grpc_server.h).
void RaiseFileLimit() {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  lim.rlim_cur = lim.rlim_max;
  (void)setrlimit(RLIMIT_NOFILE, &lim);
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

// Ends a Push call with `status` before reading any of it: gRPC drops whatever the sender
// had in flight, so a refused caller costs the server nothing it keeps.
class GrpcServerTransport::Refuser final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit Refuser(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

class GrpcServerTransport::Service final
    : public v1::FedTrain::WithRawCallbackMethod_Push<v1::FedTrain::CallbackService> {
 public:
  explicit Service(GrpcServerTransport* t) : t_(t) {}

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* ctx, const v1::JoinRequest* req,
                                 v1::JoinReply* reply) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    const std::optional<std::string> token = MetadataValue(ctx, kTokenMetadataKey);
    // Who the credentials say the worker is: a per-worker token's name, else the client
    // certificate's identity under mutual TLS, else nobody in particular (shared token).
    std::string identity;
    bool known = token.has_value() && t_->TokenOk(*token);
    if (token.has_value())
      for (const auto& [name, tok] : t_->opts_.worker_tokens)
        if (SameSecret(*token, tok)) {  // every entry compared: constant time in which
          known = true;
          identity = absl::StrCat("worker token ", name);
        }
    if (known && identity.empty() && t_->opts_.identity_from_certificate &&
        !t_->opts_.tls_client_ca_pem.empty()) {
      const std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
      const std::vector<grpc::string_ref> ids =
          auth ? auth->GetPeerIdentity() : std::vector<grpc::string_ref>();
      if (!ids.empty())
        identity = absl::StrCat("certificate ", std::string(ids[0].data(), ids[0].size()));
    }
    if (!known) {
      absl::MutexLock lock(&t_->mu_);
      t_->SecurityRefusalLocked(absl::StrCat("join from ", PeerOf(ctx), ": ",
                                             token.has_value() ? "wrong token" : "no token"));
      r->Finish(BadToken());
      return r;
    }
    if (req->worker_name().size() > kMaxWorkerNameBytes) {
      r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             absl::StrCat("worker_name is ", req->worker_name().size(),
                                          " bytes; the most is ", kMaxWorkerNameBytes)));
      return r;
    }
    std::string session = NewSessionSecret();
    {
      absl::MutexLock lock(&t_->mu_);
      absl::StatusOr<Membership::Joined> joined = t_->members_.Join(
          req->worker_name(),
          req->has_slot() ? std::optional<uint32_t>(req->slot()) : std::nullopt, absl::Now(),
          session, identity);
      if (!joined.ok()) {
        r->Finish(ToGrpc(joined.status()));
        return r;
      }
      if (joined->replaced != 0) {  // took the slot over from a holder that is gone
        if (auto it = t_->outboxes_.find(joined->replaced); it != t_->outboxes_.end())
          it->second.queue.clear();
        // The old holder's unanswered tasks go to the new one.
        size_t resent = 0;
        if (joined->slot < t_->unanswered_.size()) {
          for (const auto& [client, task] : t_->unanswered_[joined->slot]) {
            if (task.round() != t_->latest_round_) continue;  // its round is over
            std::vector<v1::TaskChunk> chunks;
            if (!ChunkTaskMessage(task, &chunks)) continue;
            Outbox& out = t_->outboxes_[joined->worker_id];
            for (v1::TaskChunk& c : chunks) out.queue.push_back(std::move(c));
            ++resent;
          }
        }
        FT_LOG(kInfo, "fedtrain server: worker ", req->worker_name(), " rejoined slot ",
               joined->slot, " (was worker ", joined->replaced, "); ", resent,
               " unanswered task(s) re-sent");
      }
      reply->set_worker_id(joined->worker_id);
      reply->set_max_update_bytes(t_->max_update_bytes_);
      reply->set_slot(joined->slot);
      reply->set_num_slots(joined->num_slots);
    }
    reply->set_session(std::move(session));
    reply->set_max_concurrent_pushes(t_->opts_.max_concurrent_pushes);
    *reply->mutable_config() = t_->opts_.config;
    reply->set_heartbeat_interval_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(t_->opts_.heartbeat_interval)));
    r->Finish(grpc::Status::OK);
    return r;
  }

  grpc::ServerWriteReactor<v1::TaskChunk>* Tasks(grpc::CallbackServerContext* ctx,
                                                 const v1::TasksRequest* req) override {
    const absl::StatusOr<uint64_t> id = t_->Authenticate(ctx, "task stream");
    auto* w = new TaskWriter(t_, id.ok() ? *id : 0);
    if (!id.ok()) {
      w->FinishOnce(ToGrpc(id.status()));
      return w;
    }
    absl::MutexLock lock(&t_->mu_);
    if (absl::Status st = t_->members_.OpenStream(*id); !st.ok()) {
      w->FinishOnce(ToGrpc(st));
    } else {
      Outbox& out = t_->outboxes_[*id];
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
    const absl::StatusOr<uint64_t> id = t_->Authenticate(ctx, "push");
    if (!id.ok()) return new Refuser(ToGrpc(id.status()));
    {
      absl::MutexLock lock(&t_->mu_);
      uint32_t& open = t_->open_pushes_[*id];
      if (open >= t_->opts_.max_concurrent_pushes) {
        const std::string why =
            absl::StrCat("worker ", *id, " already has ", open,
                         " pushes open (the most is ", t_->opts_.max_concurrent_pushes, ")");
        t_->RefuseLocked(absl::StrCat("push from ", PeerOf(ctx), ": ", why));
        return new Refuser(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why));
      }
      ++open;
    }
    return new UpdateReader(t_, PeerOf(ctx), *id);
  }

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply* reply) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    const absl::StatusOr<uint64_t> id = t_->Authenticate(ctx, "heartbeat");
    if (!id.ok()) {
      r->Finish(ToGrpc(id.status()));
      return r;
    }
    grpc::Status s = grpc::Status::OK;
    {
      absl::MutexLock lock(&t_->mu_);
      if (!t_->members_.Heartbeat(*id, absl::Now())) {
        s = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                         absl::StrCat("worker ", *id, " has left or was replaced"));
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
    const absl::StatusOr<uint64_t> id = t_->Authenticate(ctx, "leave");
    if (!id.ok()) {
      r->Finish(ToGrpc(id.status()));
      return r;
    }
    {
      absl::MutexLock lock(&t_->mu_);
      t_->members_.Leave(*id);  // only itself: the session names the worker
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
      quota_(std::make_unique<grpc::ResourceQuota>("fedtrain-server")),
      members_(static_cast<uint32_t>(opts_.expected_workers), opts_.heartbeat_interval),
      max_update_bytes_(opts_.max_update_bytes) {}

void GrpcServerTransport::DropWriterLocked(uint64_t worker_id, const TaskWriter* w) {
  auto it = outboxes_.find(worker_id);
  if (it == outboxes_.end() || it->second.writer != w) return;
  it->second.writer = nullptr;
  members_.CloseStream(worker_id);
}

absl::StatusOr<uint64_t> GrpcServerTransport::Authenticate(
    const grpc::CallbackServerContext* ctx, const char* what) {
  const std::optional<std::string> session = MetadataValue(ctx, kSessionMetadataKey);
  const std::optional<SessionCredential> cred =
      session.has_value() ? ParseSessionCredential(*session) : std::nullopt;
  absl::MutexLock lock(&mu_);
  if (cred.has_value() && members_.SessionMatches(cred->worker_id, cred->secret))
    return cred->worker_id;
  SecurityRefusalLocked(absl::StrCat(what, " from ", PeerOf(ctx), ": ",
                                     session.has_value() ? "wrong session" : "no session"));
  return absl::UnauthenticatedError(
      "no valid worker session: join the run first (with the run's token)");
}

void GrpcServerTransport::SecurityRefusalLocked(const std::string& why) {
  ++security_refusals_;
  // At most kLines lines a window; the rest are counted and summed up when the next window
  // opens, so a flood costs neither memory nor a log that grows with it.
  constexpr uint64_t kLines = 5;
  constexpr absl::Duration kWindow = absl::Seconds(60);
  const absl::Time now = absl::Now();
  if (now - security_log_window_ >= kWindow) {
    if (security_unlogged_ > 0)
      FT_LOG(kWarning, "fedtrain server: ", security_unlogged_,
             " more calls without valid credentials refused");
    security_log_window_ = now;
    security_logged_in_window_ = 0;
    security_unlogged_ = 0;
  }
  if (security_logged_in_window_ < kLines) {
    ++security_logged_in_window_;
    FT_LOG(kWarning, "fedtrain server: refused ", absl::string_view(why).substr(0, 300),
           security_logged_in_window_ == kLines ? " (further refusals this minute are "
                                                  "counted, not logged)"
                                                : "");
  } else {
    ++security_unlogged_;
  }
}

uint64_t GrpcServerTransport::security_refusals() const {
  absl::MutexLock lock(&mu_);
  return security_refusals_;
}

uint64_t GrpcServerTransport::receive_bytes_in_use() const {
  absl::MutexLock lock(&mu_);
  return receive_in_use_;
}

void GrpcServerTransport::RefuseLocked(std::string why) {
  FT_LOG(kWarning, "fedtrain server: refused ", absl::string_view(why).substr(0, 500));
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
  if (opts.max_concurrent_pushes < 1)
    return absl::InvalidArgumentError("max_concurrent_pushes must be at least 1");
  {
    std::set<std::string> names, tokens = {opts.token};
    for (const auto& [name, tok] : opts.worker_tokens) {
      if (name.empty() || tok.empty())
        return absl::InvalidArgumentError("a worker token needs a name and a token");
      if (!names.insert(name).second)
        return absl::InvalidArgumentError(absl::StrCat("worker name ", name, " appears twice"));
      if (!tokens.insert(tok).second)
        return absl::InvalidArgumentError(absl::StrCat(
            "the token of worker ", name, " is the run's token or another worker's"));
    }
  }
  RaiseFileLimit();
  static std::once_flag log_hook;
  std::call_once(log_hook, [] { gpr_set_log_function(WatchGrpcLog); });
  if (opts.tls_cert_pem.empty() != opts.tls_key_pem.empty())
    return absl::InvalidArgumentError("TLS needs both a certificate and its key");
  if (opts.tls_cert_pem.empty() && !opts.tls_client_ca_pem.empty())
    return absl::InvalidArgumentError("client certificates (mutual TLS) need TLS");
  if (opts.identity_from_certificate && opts.tls_client_ca_pem.empty())
    return absl::InvalidArgumentError(
        "identities from client certificates need mutual TLS (a client CA)");
  const std::string listen = opts.listen;
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("listen address ", listen, " is not HOST:PORT"));
  std::unique_ptr<GrpcServerTransport> t(new GrpcServerTransport(std::move(opts)));
  {
    absl::MutexLock lock(&t->mu_);
    t->SizeBudgetsLocked();
  }
  const bool tls = !t->opts_.tls_cert_pem.empty();
  int port = 0;
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = t->BuildServer(listen, &port);
  if (!server.ok() || port == 0) {
    absl::MutexLock lock(&t->mu_);
    t->shut_down_ = true;
    if (!server.ok()) return server.status();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen,
        tls ? " (with TLS: check that the certificate and key are valid PEM and match)" : ""));
  }
  t->address_ = absl::StrCat(listen.substr(0, colon), ":", port);
  {
    absl::MutexLock lock(&t->server_mu_);
    t->server_ = std::move(server).value();
  }
  GrpcServerTransport* raw = t.get();
  t->guard_ = std::thread([raw] { raw->GuardListener(); });
  return t;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> GrpcServerTransport::BuildServer(
    const std::string& listen, int* port) {
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!opts_.tls_cert_pem.empty()) {
    const bool mutual = !opts_.tls_client_ca_pem.empty();
    grpc::SslServerCredentialsOptions so(
        mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    so.pem_root_certs = opts_.tls_client_ca_pem;
    so.pem_key_cert_pairs.push_back({opts_.tls_key_pem, opts_.tls_cert_pem});
    creds = grpc::SslServerCredentials(so);
    if (!creds) return absl::InvalidArgumentError("the TLS certificate or key is not usable");
  }
  grpc::ServerBuilder b;
  for (const auto& [name, value] : BulkTransferArgs()) b.AddChannelArgument(name, value);
  // Per connection: a worker's task stream, its pushes, a heartbeat and a leave.
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                       static_cast<int>(opts_.max_concurrent_pushes) + 8);
  // A connection that has not finished its HTTP/2 (and TLS) handshake within 10 s is
  // closed, and one without calls for 5 minutes (workers always hold their task stream).
  b.AddChannelArgument("grpc.server_handshake_timeout_ms", 10000);
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
  // Everything gRPC buffers for this server (messages on their way in, whoever sent them)
  // counts against one quota; past it gRPC shrinks flow-control windows and, under
  // pressure, closes connections: the bound on what unauthenticated peers can make it hold.
  b.SetResourceQuota(*quota_);
  b.AddListeningPort(listen, creds, port);
  // A service serves one server; one that served a server that was restarted stays alive
  // (its reactors may still be finishing) until the transport goes.
  services_.push_back(std::make_unique<Service>(this));
  b.RegisterService(services_.back().get());
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server) return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  return server;
}

void GrpcServerTransport::GuardListener() {
  // gRPC 1.51's listener gives up for good when accept() fails (it logs "Failed accept4",
  // e.g. EMFILE: out of file descriptors, and never accepts again). The log hook raises
  // AcceptFailed(); once descriptors are free again, the server is rebuilt on the same port.
  // Its calls are cancelled: the workers rejoin, and their unanswered tasks are re-sent.
  while (!guard_stop_.WaitForNotificationWithTimeout(absl::Milliseconds(200))) {
    if (!AcceptFailed()) continue;
    while (!guard_stop_.HasBeenNotified() && !FileDescriptorsToSpare())
      guard_stop_.WaitForNotificationWithTimeout(absl::Milliseconds(200));
    if (guard_stop_.HasBeenNotified()) return;
    std::unique_ptr<grpc::Server> old;
    {
      absl::MutexLock lock(&server_mu_);
      old = std::move(server_);
    }
    // Shut down, but not destroyed until the transport goes: gRPC may still be finishing
    // work of that server (handshakes of connections it had accepted) on its own threads.
    if (old) old->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    int port = 0;
    absl::StatusOr<std::unique_ptr<grpc::Server>> fresh;
    {
      absl::MutexLock lock(&server_mu_);
      if (old) retired_servers_.push_back(std::move(old));
      fresh = BuildServer(address_, &port);
      if (fresh.ok()) server_ = std::move(fresh).value();
    }
    (void)AcceptFailed();  // the old listener's last complaints
    FT_LOG(kError,
           "fedtrain server: the listener stopped accepting connections (out of file "
           "descriptors); ",
           fresh.ok() ? "restarted it on the same port: workers rejoin" : "could not restart it");
  }
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
      {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, static_cast<int>(kMaxWireMessageBytes)},
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

bool GrpcServerTransport::AcceptFailed() { return accept_failed.exchange(false); }

bool GrpcServerTransport::FileDescriptorsToSpare() {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return true;
  std::error_code ec;
  size_t open = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++open;
  if (ec) return false;  // could not even open the folder: none to spare
  return open + 64 < lim.rlim_cur;
}

bool GrpcServerTransport::TokenOk(const std::string& token) const {
  return SameSecret(token, opts_.token);
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
  SizeBudgetsLocked();
}

void GrpcServerTransport::SizeBudgetsLocked() {
  receive_budget_ = opts_.receive_budget_bytes;
  if (receive_budget_ == 0)  // two updates from every worker at once, at least 32 MiB
    receive_budget_ = std::max<uint64_t>(
        uint64_t{32} << 20, 2 * static_cast<uint64_t>(opts_.expected_workers) * max_update_bytes_);
  receive_budget_ = std::max(receive_budget_, max_update_bytes_);  // one push always fits
  uint64_t quota = opts_.memory_quota_bytes;
  if (quota == 0) quota = receive_budget_ + (uint64_t{64} << 20);
  quota_->Resize(static_cast<size_t>(quota));
  memory_quota_ = quota;
}

uint64_t GrpcServerTransport::memory_quota() const {
  absl::MutexLock lock(&mu_);
  return memory_quota_;
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

bool GrpcServerTransport::ChunkTaskMessage(const Task& task,
                                           std::vector<v1::TaskChunk>* chunks) {
  std::string bytes;
  if (!task.Message().SerializeToString(&bytes)) return false;  // serialized per stream
  *chunks = ChunkTask(bytes);
  return true;
}

absl::Status GrpcServerTransport::SendTask(Task task) {
  std::vector<v1::TaskChunk> chunks;
  if (!ChunkTaskMessage(task, &chunks))
    return absl::InvalidArgumentError("task does not serialize (over 2 GiB?)");
  absl::MutexLock lock(&mu_);
  const absl::StatusOr<uint32_t> slot = members_.SlotOfClient(task.client_id);
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
  if (unanswered_.size() < members_.num_slots()) unanswered_.resize(members_.num_slots());
  // A task of a later round: the earlier rounds are over, and so are their tasks.
  std::map<uint64_t, Task>& pending = unanswered_[*slot];
  for (auto it = pending.begin(); it != pending.end();)
    it = it->second.round() < task.round() ? pending.erase(it) : std::next(it);
  latest_round_ = std::max(latest_round_, task.round());
  pending.insert_or_assign(task.client_id, std::move(task));
  Outbox& out = outboxes_[*wid];
  for (v1::TaskChunk& c : chunks) out.queue.push_back(std::move(c));
  PumpLocked(&out);
  return absl::OkStatus();
}

bool GrpcServerTransport::ReserveReceiveLocked(uint64_t bytes) {
  // One push always fits when nothing else is in progress (the budget is at least the
  // largest update), so a waiting push is never starved for good.
  if (receive_in_use_ > 0 && receive_in_use_ + bytes > receive_budget_) return false;
  receive_in_use_ += bytes;
  return true;
}

std::vector<GrpcServerTransport::UpdateReader*> GrpcServerTransport::ReleaseReceiveLocked(
    uint64_t bytes) {
  receive_in_use_ -= bytes;
  std::vector<UpdateReader*> resume;
  while (!waiting_for_budget_.empty()) {
    UpdateReader* r = waiting_for_budget_.front();
    if (!ReserveReceiveLocked(r->decoder_.total())) break;
    waiting_for_budget_.pop_front();
    r->reserved_ = r->decoder_.total();
    r->parked_ = false;
    resume.push_back(r);
  }
  return resume;
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
  guard_stop_.Notify();
  if (guard_.joinable()) guard_.join();
  absl::MutexLock lock(&server_mu_);
  if (server_) server_->Shutdown(absl::ToChronoTime(deadline));
}

}  // namespace fedtrain
