// The worker end of the deployed transport (proto/fedtrain/v1/service.proto): Join with the
// run's token, receive tasks (reassembled from their chunks), push updates in ~1 MiB chunks,
// heartbeats, Leave. Moves messages and reports failures; the task loop belongs to the
// caller. Thread-safe (gRPC stubs are): Push and Heartbeat may run while ReceiveTasks does.
// With a CA certificate the channel uses TLS and verifies the server against it; a client
// certificate and key are presented to servers that require them (mutual TLS).
#ifndef FEDTRAIN_COMM_GRPC_CLIENT_H_
#define FEDTRAIN_COMM_GRPC_CLIENT_H_

#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedtrain/v1/messages.pb.h"
#include "fedtrain/v1/service.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/byte_buffer.h"

namespace fedtrain {

struct GrpcWorkerOptions {
  std::string server;  // HOST:PORT
  std::string token;
  std::string name;    // shown in the server's logs
  int64_t slot = -1;   // the slot to ask for (JoinRequest.slot); -1: any free one
  // TLS (PEM text, not paths): plain TCP when tls_ca_pem is empty.
  std::string tls_ca_pem;       // verifies the server's certificate
  std::string tls_cert_pem;     // client certificate (mutual TLS), with tls_key_pem
  std::string tls_key_pem;
  std::string tls_server_name;  // name checked against the server's certificate, if not HOST
};

class GrpcWorkerClient {
 public:
  // Connects and joins. UNAUTHENTICATED when the server refuses the token; ALREADY_EXISTS
  // when the asked-for slot is still held by a live worker; Unavailable when
  // it cannot be reached by `deadline`, or sooner when connections keep failing after the
  // TCP connect (TLS handshake refused, plain TCP against a TLS server or the reverse).
  // `cancel` (may be null), checked between connection attempts (at most ~0.5 s apart while
  // the server cannot be reached): once true, Join gives up with Cancelled.
  static absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> Join(
      const GrpcWorkerOptions& opts, absl::Time deadline,
      const std::atomic<bool>* cancel = nullptr);
  ~GrpcWorkerClient();

  const v1::JoinReply& joined() const { return joined_; }

  // Calls `on_task` for each task in the order the server sent them; returns OK when the
  // server ends the session, an error when the stream breaks or a task is malformed.
  // Cancelled when Cancel() was called before or during the call.
  absl::Status ReceiveTasks(const std::function<void(v1::TaskMsg)>& on_task);
  // Ends a ReceiveTasks call in progress on another thread, and every later one, with
  // Cancelled. Thread-safe; for an orderly stop (a signal) when the server may not answer.
  void Cancel();
  // Sends one update in chunks.
  absl::Status Push(const v1::UpdateMsg& update);
  // Returns whether the session is over.
  absl::StatusOr<bool> Heartbeat();
  absl::Status Leave(const std::string& reason);
  // Adds this worker's session credential to a call's metadata (for raw calls, e.g. tests).
  void AddSession(grpc::ClientContext* ctx) const;

 private:
  struct Impl;
  explicit GrpcWorkerClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  GrpcWorkerOptions opts_;
  v1::JoinReply joined_;
};

// One Push call that carries raw UpdateChunk messages (the wire form the server decodes
// itself, comm/grpc_push_reader.cc) over a generic gRPC call: `next` fills the next message and
// returns false after the last. Returns the call's status. GrpcWorkerClient::Push builds its
// chunks with it; tests use it to send bytes the client never would.
grpc::Status PushRawChunks(const std::shared_ptr<grpc::Channel>& channel,
                           grpc::ClientContext* ctx,
                           const std::function<bool(grpc::ByteBuffer*)>& next);

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_GRPC_CLIENT_H_
