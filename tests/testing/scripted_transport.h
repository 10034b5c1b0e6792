// A ServerTransport for Coordinator tests: answers each task at once with `reply(task)` (no
// reply: the client never answers), delivers the replies in the order the tasks were sent (or
// the reverse), and reports DeadlineExceeded when none is left. Not thread-safe.
#ifndef FEDTRAIN_TESTS_TESTING_SCRIPTED_TRANSPORT_H_
#define FEDTRAIN_TESTS_TESTING_SCRIPTED_TRANSPORT_H_

#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "comm/transport.h"

namespace fedtrain::testing {

class ScriptedTransport final : public ServerTransport {
 public:
  std::function<std::vector<v1::UpdateMsg>(const v1::TaskMsg&)> reply;
  bool reverse = false;           // deliver the newest reply first
  std::vector<v1::TaskMsg> tasks;  // every task sent, in order

  absl::Status SendTask(v1::TaskMsg t) override {
    for (auto& m : reply(t)) queue_.push_back(std::move(m));
    tasks.push_back(std::move(t));
    return absl::OkStatus();
  }
  absl::StatusOr<v1::UpdateMsg> ReceiveUpdate(absl::Time) override {
    if (queue_.empty()) return absl::DeadlineExceededError("none left");
    v1::UpdateMsg m;
    if (reverse) {
      m = std::move(queue_.back());
      queue_.pop_back();
    } else {
      m = std::move(queue_.front());
      queue_.pop_front();
    }
    return m;
  }
  // The client ids of the tasks of `round`, in the order they were sent.
  std::vector<ClientId> TaskIds(uint64_t round) const {
    std::vector<ClientId> ids;
    for (const v1::TaskMsg& t : tasks)
      if (t.round() == round) ids.push_back(t.client_id());
    return ids;
  }

 private:
  std::deque<v1::UpdateMsg> queue_;
};

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_SCRIPTED_TRANSPORT_H_
