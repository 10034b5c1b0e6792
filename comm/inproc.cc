#include "comm/inproc.h"

#include <memory>

#include "absl/strings/str_cat.h"

namespace fedtrain {

InProcHub::~InProcHub() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  mu_.Await(absl::Condition(&idle));
}

absl::Status InProcHub::SendTask(Task task) {
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  // The task (its common part shared, not copied) goes to the pool as it is.
  pool_->Schedule([this, t = std::move(task)](int thread_index) {
    v1::UpdateMsg reply = ReplyOrError(t, handler_(thread_index, t));
    absl::MutexLock lock(&mu_);
    replies_.push_back(std::move(reply));
    --in_flight_;
  });
  return absl::OkStatus();
}

absl::StatusOr<ReceivedUpdate> InProcHub::ReceiveUpdate(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !replies_.empty(); };
  if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline))
    return absl::DeadlineExceededError("no update arrived before the round deadline");
  ReceivedUpdate u{std::move(replies_.front()), {}};
  replies_.pop_front();
  return u;
}

}  // namespace fedtrain
