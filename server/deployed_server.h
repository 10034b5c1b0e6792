// The deployed server's transport life cycle (`fedtrain server`): listen (plain TCP or TLS),
// wait until the expected workers joined, size the largest update a worker may push from the
// model, and at the end tell the workers the run is over and stop serving. The rounds
// themselves run in server/server_loop.h like a simulation's; membership (slots, rejoins,
// tokens) is the transport's (comm/grpc_server.h).
// Thread-safety: one thread drives it; the transport it hands out is thread-safe.
#ifndef FEDTRAIN_SERVER_DEPLOYED_SERVER_H_
#define FEDTRAIN_SERVER_DEPLOYED_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "comm/grpc_server.h"
#include "comm/transport.h"

namespace fedtrain {

class DeployedServer {
 public:
  // Starts listening on o.listen; the bound address is address() (port 0 picks one).
  static absl::StatusOr<std::unique_ptr<DeployedServer>> Start(GrpcServerOptions o,
                                                               absl::Duration join_timeout);
  // Finish(), if not called yet.
  ~DeployedServer();

  const std::string& address() const;
  bool tls() const { return !opts_.tls_cert_pem.empty(); }
  bool client_certificates() const { return !opts_.tls_client_ca_pem.empty(); }

  // The transport for the run of a model of `dim` floats, once opts.expected_workers workers
  // joined (DeadlineExceeded after join_timeout). Logs the wait on stderr.
  absl::StatusOr<std::shared_ptr<ServerTransport>> WaitForWorkers(size_t dim);
  // Tells the workers the run is over (also after a failure), then stops serving.
  void Finish();

 private:
  DeployedServer(GrpcServerOptions o, absl::Duration join_timeout,
                 std::shared_ptr<GrpcServerTransport> t);
  GrpcServerOptions opts_;
  absl::Duration join_timeout_;
  std::shared_ptr<GrpcServerTransport> transport_;
  bool finished_ = false;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_SERVER_DEPLOYED_SERVER_H_
