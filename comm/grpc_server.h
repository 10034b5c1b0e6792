// The server end of the deployed transport (proto/fedtrain/v1/service.proto) over gRPC's
// callback API, and its worker registry. Workers Join with the run's token and receive the
// experiment config and a session secret; every later call proves the worker's identity with
// that session, so a worker can act only as itself (its own Leave, Heartbeat, task stream and
// pushes). Credentials travel in the call's initial metadata and are checked before any
// message of the call is read; a call without them is refused with UNAUTHENTICATED, changes
// nothing, is counted in security_refusals() (not in the round's metrics) and logged at a
// bounded rate. Once `expected_workers` (W) have joined, membership is closed and client i is
// routed to the worker holding slot (i mod W), so a client's state stays with one worker. A
// worker that rejoins asks for its old slot and takes it over once the old holder is gone
// (left, its task stream broke, or it joined and never opened one within three heartbeat
// intervals); the tasks the old holder had not answered are re-sent to the new holder, and
// the old holder's in-flight updates are refused as not routed. A live holder keeps its slot.
// Tasks for a worker that left or whose task stream broke are refused; tasks for one that has
// not opened its stream yet wait in its queue until it does (or another worker takes the slot
// over).
// Tasks go down a server stream in ~1 MiB chunks of the serialized message; updates come back
// up client streams in chunks, their tensors' bytes after the rest of the message
// (UpdateChunk in service.proto), and are size-checked and reassembled here: the rest parsed,
// the tensors' bytes left in gRPC's receive buffers (ReceivedUpdate::part_data).
// Limits against a hostile network: every message is at most kMaxWireMessageBytes; a worker
// has at most `max_concurrent_pushes` pushes open; the pushes in progress hold at most
// `receive_budget_bytes` (announced sizes) together, and a push that would exceed the budget
// waits, unread, until others finish (back-pressure through HTTP/2 flow control).
// Reactors only parse, size-check and enqueue; nothing here knows rounds or models.
// With a certificate and key the server speaks TLS; with a client CA as well it requires
// and verifies client certificates (mutual TLS). The token is checked either way.
// The slots' bookkeeping (which worker holds which, and whether it is live) is Membership
// (comm/membership.h); the Push reactor is in comm/grpc_push_reader.cc.
// Thread-safe.
#ifndef FEDTRAIN_COMM_GRPC_SERVER_H_
#define FEDTRAIN_COMM_GRPC_SERVER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "comm/membership.h"
#include "comm/push_decoder.h"
#include "comm/transport.h"
#include "fedtrain/v1/config.pb.h"
#include "fedtrain/v1/service.pb.h"

namespace grpc {
class CallbackServerContext;
class ResourceQuota;
class Server;
class Status;
}

namespace fedtrain {

// The size of the pieces large messages travel in.
inline constexpr size_t kGrpcChunkBytes = size_t{1} << 20;
// The largest message either end accepts: a chunk and its few header fields. gRPC refuses
// larger ones before handing them over, so no call makes the receiver hold more than this in
// one message.
inline constexpr size_t kMaxWireMessageBytes = kGrpcChunkBytes + (size_t{64} << 10);
// The metadata keys of the credentials (service.proto): the run's token on Join, then
// "<worker id>.<session secret in hex>" on every other call.
inline constexpr char kTokenMetadataKey[] = "x-fedtrain-token";
inline constexpr char kSessionMetadataKey[] = "x-fedtrain-session";
// The most bytes of JoinRequest.worker_name and LeaveRequest.reason.
inline constexpr size_t kMaxWorkerNameBytes = 256;
inline constexpr size_t kMaxLeaveReasonBytes = 1024;
// kMaxPushParts, the most tensors one pushed update may carry: comm/push_decoder.h.
// gRPC channel arguments for bulk model transfers, set on both ends (server and worker).
std::vector<std::pair<std::string, int>> BulkTransferArgs();

struct GrpcServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free one
  std::string token;                   // the run's shared token (Join); must not be empty
  // Per-worker tokens (name, token): a worker that joins with one is that name, holds one
  // slot and only it can take that slot over (Membership::Join). Names and tokens must be
  // unique and differ from `token`.
  std::vector<std::pair<std::string, std::string>> worker_tokens;
  v1::ExperimentConfig config;         // handed to each worker on Join
  int expected_workers = 1;            // membership closes when this many have joined
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // A task for a slot whose worker is gone waits this long for a worker to rejoin the slot
  // before it is refused (0: refused at once; the round goes on without the slot's clients).
  absl::Duration rejoin_grace = absl::ZeroDuration();
  uint64_t max_update_bytes = uint64_t{1} << 30;  // serialized UpdateMsg limit
  // Push calls one worker may have open at once (JoinReply.max_concurrent_pushes).
  uint32_t max_concurrent_pushes = 16;
  // The announced bytes of all pushes in progress together; a push that would exceed it
  // waits unread until others finish. 0: twice an update from every worker, at least 32 MiB.
  // Never below max_update_bytes (one push always fits).
  uint64_t receive_budget_bytes = 0;
  // gRPC's memory quota for everything it buffers for this server, whoever sent it: the
  // bound on what callers without credentials can make the server hold. 0: the receive
  // budget plus 64 MiB.
  uint64_t memory_quota_bytes = 0;
  // Pieces of a pushed tensor at least this long are left in gRPC's receive buffers and
  // referenced (ReceivedUpdate::part_data); shorter ones are copied. A reference costs an
  // allocation of its own (~100 bytes), which a sender of many tiny chunks could otherwise
  // multiply; gRPC's receive buffers of bulk data are far larger. At least 1.
  uint64_t min_referenced_piece = uint64_t{16} << 10;
  // TLS (PEM text, not paths): plain TCP when tls_cert_pem is empty. A non-empty
  // tls_client_ca_pem requires client certificates signed by it (mutual TLS).
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string tls_client_ca_pem;
  // Under mutual TLS: a worker that joins with the shared token is the identity of its
  // client certificate (its first subject alternative name, else its common name), with the
  // same slot binding as a per-worker token. Only for per-worker certificates: workers that
  // share one certificate would share one slot.
  bool identity_from_certificate = false;
};

// Reads a PEM file named by a command-line option (for the TLS options of `fedtrain server`
// and `fedtrain worker`). The error names the option and the file: NotFound / Unavailable
// when it cannot be read, InvalidArgument when it holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(const std::string& option, const std::string& path);

class GrpcServerTransport final : public ServerTransport {
 public:
  // Binds and starts serving. InvalidArgument for an empty token, Unavailable when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServerTransport>> Start(GrpcServerOptions opts);
  ~GrpcServerTransport() override;

  // HOST:PORT actually bound (the port resolved when 0 was asked for).
  const std::string& address() const { return address_; }
  // Until `expected_workers` have joined; DeadlineExceeded otherwise.
  absl::Status WaitForWorkers(absl::Time deadline);
  // Larger pushes are refused (RESOURCE_EXHAUSTED) and never buffered. Resizes the automatic
  // receive budget and memory quota.
  void SetMaxUpdateBytes(uint64_t bytes);
  // The memory quota in force (GrpcServerOptions::memory_quota_bytes).
  uint64_t memory_quota() const;
  // The worker id holding each slot (empty until membership closed).
  std::vector<uint64_t> routing() const;
  // Updates refused before they reached the round loop (bad token, unknown or replaced
  // worker, oversized, truncated, unparseable, not routed to the sender), each with its
  // reason and sender, since the last call.
  std::vector<std::string> TakeRefused() override;
  // Calls refused for want of credentials (no or wrong token or session) since the start:
  // a security counter, kept apart from the round's metrics.
  uint64_t security_refusals() const;
  // Bytes announced by the pushes in progress (receive_budget_bytes bounds it), and the
  // pushes waiting for room in the budget.
  uint64_t receive_bytes_in_use() const;

  absl::Status SendTask(Task task) override;
  absl::StatusOr<ReceivedUpdate> ReceiveUpdate(absl::Time deadline) override;

  // Tells every worker that the session is over, after the tasks already queued for it, and
  // waits (until `deadline`) for their task streams to close.
  void FinishRun(absl::Time deadline);
  // Stops serving; calls still open are cancelled at `deadline`. Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  class Service;
  class TaskWriter;
  class UpdateReader;  // comm/grpc_push_reader.h
  class Refuser;      // ends a Push call at once, unread
  // A worker's tasks on their way down its task stream.
  struct Outbox {
    std::deque<v1::TaskChunk> queue;  // chunks not yet handed to the stream
    TaskWriter* writer = nullptr;     // the open Tasks stream, if any
  };

  explicit GrpcServerTransport(GrpcServerOptions opts);
  // A gRPC server of this transport (a new Service) listening on `listen`; `port` the port
  // bound.
  absl::StatusOr<std::unique_ptr<grpc::Server>> BuildServer(const std::string& listen, int* port);
  // Restarts the server when its listener stopped accepting (see grpc_server.cc).
  void GuardListener();
  // Whether gRPC logged a failed accept() since the last call.
  static bool AcceptFailed();
  // Whether the process has some file descriptors to spare.
  static bool FileDescriptorsToSpare();
  // The refusal of a call with the wrong token.
  static const grpc::Status& BadToken();
  bool TokenOk(const std::string& token) const;
  // The worker a call comes from, proven by its session metadata; UNAUTHENTICATED (counted
  // and logged as a security refusal, naming `what` and the peer) otherwise.
  absl::StatusOr<uint64_t> Authenticate(const grpc::CallbackServerContext* ctx,
                                        const char* what) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts a call refused for want of credentials and logs it, at most a few lines a minute.
  void SecurityRefusalLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefuseLocked(std::string why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Serializes a task into chunks; false when it does not serialize.
  static bool ChunkTaskMessage(const Task& task, std::vector<v1::TaskChunk>* chunks);
  // Queues `task` for worker `wid` and remembers it as unanswered.
  void EnqueueLocked(uint64_t wid, std::vector<v1::TaskChunk> chunks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sizes the receive budget and the memory quota from the options and max_update_bytes_.
  void SizeBudgetsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A push may take `bytes` of the receive budget now (taken when true).
  bool ReserveReceiveLocked(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives `bytes` back; returns the waiting pushes that now have room (in the order they
  // came, their room taken), for the caller to Resume() once it has let go of mu_.
  std::vector<UpdateReader*> ReleaseReceiveLocked(uint64_t bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands the next chunk (or the end of the session) to `out`'s stream when it is idle.
  void PumpLocked(Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `w`, worker `worker_id`'s task stream, is over: forgotten unless another took its place.
  void DropWriterLocked(uint64_t worker_id, const TaskWriter* w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GrpcServerOptions opts_;
  std::string address_;
  std::unique_ptr<grpc::ResourceQuota> quota_;
  std::vector<std::unique_ptr<Service>> services_;  // the last one serves server_
  // server_ is replaced when the listener is restarted (GuardListener).
  absl::Mutex server_mu_;
  std::unique_ptr<grpc::Server> server_ ABSL_GUARDED_BY(server_mu_);
  std::vector<std::unique_ptr<grpc::Server>> retired_servers_ ABSL_GUARDED_BY(server_mu_);
  std::thread guard_;
  absl::Notification guard_stop_;

  // Guards everything below. Membership has a mutex of its own; it is changed and read only
  // under mu_ as well, so that a membership change and the queues it affects (a take-over
  // drops the old holder's tasks) change together, and so that waits on mu_ (SendTask's
  // rejoin grace, WaitForWorkers) see every change. Lock order: mu_, then Membership's.
  mutable absl::Mutex mu_;
  Membership members_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Outbox> outboxes_ ABSL_GUARDED_BY(mu_);  // by worker id
  std::deque<std::string> refused_ ABSL_GUARDED_BY(mu_);
  std::deque<ReceivedUpdate> updates_ ABSL_GUARDED_BY(mu_);
  uint64_t max_update_bytes_ ABSL_GUARDED_BY(mu_);
  // The tasks sent to each slot and not answered yet, by client id: re-sent to a worker that
  // takes the slot over. A task replaces the client's earlier one; an update answers it.
  std::vector<std::map<uint64_t, Task>> unanswered_ ABSL_GUARDED_BY(mu_);
  uint64_t latest_round_ ABSL_GUARDED_BY(mu_) = 0;  // of the tasks sent so far
  std::map<uint64_t, uint32_t> open_pushes_ ABSL_GUARDED_BY(mu_);  // by worker id
  uint64_t receive_in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t receive_budget_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t memory_quota_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<UpdateReader*> waiting_for_budget_ ABSL_GUARDED_BY(mu_);
  uint64_t security_refusals_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time security_log_window_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t security_logged_in_window_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t security_unlogged_ ABSL_GUARDED_BY(mu_) = 0;
  bool run_over_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_GRPC_SERVER_H_
