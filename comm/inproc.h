// In-process transport for simulation: tasks run on a ThreadPool through a handler (a
// Worker's Handle), replies queue up for the Coordinator. Thread-safe. The destructor waits
// for tasks still running (the pool outlives the hub; tasks never outlive the hub).
#ifndef FEDTRAIN_COMM_INPROC_H_
#define FEDTRAIN_COMM_INPROC_H_

#include <deque>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "comm/transport.h"
#include "core/thread_pool.h"

namespace fedtrain {

class InProcHub final : public ServerTransport {
 public:
  // `handler(thread_index, task)` runs on pool thread `thread_index`; a handler error is
  // turned into an UpdateMsg whose `error` names it (the round goes on without it).
  using Handler = std::function<absl::StatusOr<v1::UpdateMsg>(int, const Task&)>;
  InProcHub(ThreadPool* pool, Handler handler) : pool_(pool), handler_(std::move(handler)) {}
  ~InProcHub() override;

  absl::Status SendTask(Task task) override;
  absl::StatusOr<ReceivedUpdate> ReceiveUpdate(absl::Time deadline) override;

 private:
  ThreadPool* pool_;
  Handler handler_;
  absl::Mutex mu_;
  std::deque<v1::UpdateMsg> replies_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_INPROC_H_
