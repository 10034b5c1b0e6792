// A ServerTransport for Coordinator tests: answers each task at once with `reply(task)` (no
// reply: the client never answers), delivers the replies in the order the tasks were sent (or
// the reverse), and reports DeadlineExceeded when none is left. Not thread-safe.
#ifndef FEDTRAIN_TESTS_TESTING_SCRIPTED_TRANSPORT_H_
#define FEDTRAIN_TESTS_TESTING_SCRIPTED_TRANSPORT_H_

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compression/payload_codec.h"
#include "comm/transport.h"
#include "compression/compressor.h"
#include "core/rng.h"
#include "gtest/gtest.h"

namespace fedtrain::testing {

class ScriptedTransport final : public ServerTransport {
 public:
  std::function<std::vector<v1::UpdateMsg>(const v1::TaskMsg&)> reply;
  bool reverse = false;           // deliver the newest reply first
  // Deliver each part's bytes outside the message (ReceivedUpdate::part_data), split into
  // pieces of at most this many bytes at odd offsets, as a network transport may (0: inside).
  size_t split_parts = 0;
  std::vector<v1::TaskMsg> tasks;  // every task sent, in order

  absl::Status SendTask(Task task) override {
    v1::TaskMsg t = task.Message();
    for (auto& m : reply(t)) queue_.push_back(std::move(m));
    tasks.push_back(std::move(t));
    return absl::OkStatus();
  }
  absl::StatusOr<ReceivedUpdate> ReceiveUpdate(absl::Time) override {
    if (queue_.empty()) return absl::DeadlineExceededError("none left");
    v1::UpdateMsg m;
    if (reverse) {
      m = std::move(queue_.back());
      queue_.pop_back();
    } else {
      m = std::move(queue_.front());
      queue_.pop_front();
    }
    ReceivedUpdate u{std::move(m), {}};
    if (split_parts > 0 && u.msg.has_up()) {
      for (v1::Tensor& t : *u.msg.mutable_up()->mutable_parts()) {
        absl::Cord& c = u.part_data.emplace_back();
        auto data = std::make_shared<const std::string>(std::move(*t.mutable_data()));
        t.clear_data();
        for (size_t off = 0, piece = 1; off < data->size(); off += piece) {
          piece = std::min({split_parts, data->size() - off, piece * 3 + 1});
          c.Append(absl::MakeCordFromExternal(absl::string_view(*data).substr(off, piece),
                                              [data](absl::string_view) {}));
        }
      }
    }
    return u;
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

// The update of client c in the scripted tests: delta_j = (c + 1) * 0.01 * (j + 1).
inline Payload ScriptedDelta(ClientId c, size_t dim) {
  Payload p;
  p.parts.emplace_back(dim);
  for (size_t j = 0; j < dim; ++j) p.parts[0][j] = static_cast<float>((c + 1) * 0.01 * (j + 1));
  return p;
}

// A well-formed reply to `t`: ScriptedDelta, identity-coded, n_i = client + 1, one step, loss 1.
inline v1::UpdateMsg ScriptedGoodReply(const v1::TaskMsg& t, size_t dim) {
  v1::UpdateMsg m;
  m.set_round(t.round());
  m.set_client_id(t.client_id());
  m.set_num_samples(t.client_id() + 1);
  m.set_local_steps(1);
  m.set_train_loss(1.0);
  IdentityCompressor c;
  RngStream rng = RngStream::For(0, 0, 0, Purpose::kTest);
  EXPECT_TRUE(EncodePayload(ScriptedDelta(t.client_id(), dim), c, rng, m.mutable_up()).ok());
  return m;
}

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_SCRIPTED_TRANSPORT_H_
