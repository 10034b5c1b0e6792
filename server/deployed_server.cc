#include "server/deployed_server.h"

#include <cstdio>
#include <utility>

#include "absl/time/clock.h"
#include "core/log.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::StatusOr<std::unique_ptr<DeployedServer>> DeployedServer::Start(
    GrpcServerOptions o, absl::Duration join_timeout) {
  FT_ASSIGN_OR_RETURN(std::unique_ptr<GrpcServerTransport> t, GrpcServerTransport::Start(o));
  return std::unique_ptr<DeployedServer>(
      new DeployedServer(std::move(o), join_timeout, std::move(t)));
}

DeployedServer::DeployedServer(GrpcServerOptions o, absl::Duration join_timeout,
                               std::shared_ptr<GrpcServerTransport> t)
    : opts_(std::move(o)), join_timeout_(join_timeout), transport_(std::move(t)) {}

DeployedServer::~DeployedServer() { Finish(); }

const std::string& DeployedServer::address() const { return transport_->address(); }

absl::StatusOr<std::shared_ptr<ServerTransport>> DeployedServer::WaitForWorkers(size_t dim) {
  // Four dense float64 parts plus 1 MiB of framing: every codec and algorithm fits.
  transport_->SetMaxUpdateBytes(uint64_t{32} * dim + (uint64_t{1} << 20));
  FT_LOG(kInfo, "fedtrain server: waiting for ", opts_.expected_workers, " workers");
  FT_RETURN_IF_ERROR(transport_->WaitForWorkers(absl::Now() + join_timeout_));
  FT_LOG(kInfo, "fedtrain server: ", opts_.expected_workers, " workers joined");
  return std::shared_ptr<ServerTransport>(transport_);
}

void DeployedServer::Finish() {
  if (finished_) return;
  finished_ = true;
  transport_->FinishRun(absl::Now() + absl::Seconds(10));
  transport_->Shutdown(absl::Now() + absl::Seconds(2));
  if (const uint64_t n = transport_->security_refusals(); n > 0)
    FT_LOG(kWarning, "fedtrain server: ", n, " calls without valid credentials were refused");
}

}  // namespace fedtrain
