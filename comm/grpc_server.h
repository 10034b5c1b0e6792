// The server end of the deployed transport (proto/fedtrain/v1/service.proto) over gRPC's
// callback API, and its worker registry. Workers Join with the run's token and receive the
// experiment config; every RPC checks the token (UNAUTHENTICATED, nothing changes). Once
// `expected_workers` (W) have joined, membership is closed and client i is routed to the
// worker holding slot (i mod W), so a client's state stays with one worker. A worker that
// rejoins asks for its old slot and takes it over once the old holder is gone (left, its task
// stream broke, or it joined and never opened one within three heartbeat intervals); tasks
// still queued for the old holder are dropped (the round's deadline covers them), and its
// in-flight updates are refused as not routed. A live holder keeps its slot. Tasks for a
// worker that left or whose task stream broke are refused; tasks for one that has not opened
// its stream yet wait in its queue until it does (or another worker takes the slot over).
// Tasks go down a server stream in ~1 MiB chunks of the serialized message; updates come back
// up client streams in chunks, their tensors' bytes after the rest of the message
// (UpdateChunk in service.proto), and are size-checked and reassembled here: the rest parsed,
// the tensors' bytes left in gRPC's receive buffers (ReceivedUpdate::part_data).
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
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "comm/membership.h"
#include "comm/transport.h"
#include "fedtrain/v1/config.pb.h"
#include "fedtrain/v1/service.pb.h"

namespace grpc {
class Server;
class Status;
}

namespace fedtrain {

// The size of the pieces large messages travel in.
inline constexpr size_t kGrpcChunkBytes = size_t{1} << 20;
// The most tensors one pushed update may carry outside its envelope (UpdateChunk.part_bytes).
inline constexpr uint32_t kMaxPushParts = 1 << 16;
// gRPC channel arguments for bulk model transfers, set on both ends (server and worker).
std::vector<std::pair<std::string, int>> BulkTransferArgs();

struct GrpcServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free one
  std::string token;                   // required on every RPC; must not be empty
  v1::ExperimentConfig config;         // handed to each worker on Join
  int expected_workers = 1;            // membership closes when this many have joined
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // A task for a slot whose worker is gone waits this long for a worker to rejoin the slot
  // before it is refused (0: refused at once; the round goes on without the slot's clients).
  absl::Duration rejoin_grace = absl::ZeroDuration();
  uint64_t max_update_bytes = uint64_t{1} << 30;  // serialized UpdateMsg limit
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
  // Larger pushes are refused (RESOURCE_EXHAUSTED) and never buffered.
  void SetMaxUpdateBytes(uint64_t bytes);
  // The worker id holding each slot (empty until membership closed).
  std::vector<uint64_t> routing() const;
  // Updates refused before they reached the round loop (bad token, unknown or replaced
  // worker, oversized, truncated, unparseable, not routed to the sender), each with its
  // reason and sender, since the last call.
  std::vector<std::string> TakeRefused() override;

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
  // A worker's tasks on their way down its task stream.
  struct Outbox {
    std::deque<v1::TaskChunk> queue;  // chunks not yet handed to the stream
    TaskWriter* writer = nullptr;     // the open Tasks stream, if any
  };

  explicit GrpcServerTransport(GrpcServerOptions opts);
  // The refusal of a call with the wrong token.
  static const grpc::Status& BadToken();
  bool TokenOk(const std::string& token) const;
  void RefuseLocked(std::string why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands the next chunk (or the end of the session) to `out`'s stream when it is idle.
  void PumpLocked(Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `w`, worker `worker_id`'s task stream, is over: forgotten unless another took its place.
  void DropWriterLocked(uint64_t worker_id, const TaskWriter* w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GrpcServerOptions opts_;
  std::string address_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;

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
  bool run_over_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_GRPC_SERVER_H_
