// libFuzzer target: what the deployed server's Join, Leave, Heartbeat and task-stream handlers
// do (comm/membership.h), and the session credential every call after Join carries
// (ParseSessionCredential).
//
// Input: byte 0 picks the number of slots (1 to 8), byte 1 the heartbeat interval; then
// operations, one byte each (the low 4 bits the operation, the high 4 bits its argument) with
// a few more bytes for some. Time advances with the input. A shadow model of the documented
// rules is checked after every operation: worker ids count up from 1 and are never reused; a
// member is a worker that joined and neither left nor was replaced; the routing is empty until
// every slot has been filled and then names each slot's holder; a client is routed to the
// holder of its slot; a session matches only the exact secret its worker joined with.
// Operation 15 instead feeds the rest of the input to ParseSessionCredential.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "comm/membership.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "membership_fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

// What the rules say about one worker.
struct Shadow {
  std::string session;
  bool member = true;
};

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return size_ == 0; }
  uint8_t Byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  absl::string_view Rest() {
    absl::string_view r(reinterpret_cast<const char*>(data_), size_);
    size_ = 0;
    return r;
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

void CheckCredential(absl::string_view value) {
  const std::optional<fedtrain::SessionCredential> c = fedtrain::ParseSessionCredential(value);
  if (!c.has_value()) return;
  Check(value.size() <= 96, "credential within 96 bytes");
  Check(c->worker_id != 0, "credential names a worker");
  Check(c->secret.size() == 32, "credential secret of 32 bytes");
  Check(value.substr(value.size() - 64) == absl::BytesToHexString(c->secret),
        "credential secret is the hex digits it ends with");
  // The form the worker sends parses back to the same.
  const std::optional<fedtrain::SessionCredential> again = fedtrain::ParseSessionCredential(
      absl::StrCat(c->worker_id, ".", absl::BytesToHexString(c->secret)));
  Check(again.has_value() && again->worker_id == c->worker_id && again->secret == c->secret,
        "credential round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fedtrain::Membership;
  Input in(data, size);
  const uint32_t w = 1 + in.Byte() % 8;
  const absl::Duration beat = absl::Milliseconds(1 + in.Byte());
  Membership m(w, beat);
  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
  std::vector<Shadow> workers(1);  // index = worker id; 0 unused
  std::vector<uint64_t> slots(w, 0);
  auto pick = [&](uint8_t arg) -> uint64_t {  // mostly a known id, sometimes not
    return arg == 15 ? 0 : arg % (workers.size() + 1);
  };
  auto check_member = [&](uint64_t id) {
    Check(m.IsMember(id) == (id != 0 && id < workers.size() && workers[id].member),
          "members are those that joined and neither left nor were replaced");
  };
  // At most 128 operations: long enough to fill, lose and retake every slot.
  for (int ops = 0; ops < 128 && !in.empty(); ++ops) {
    const uint8_t op = in.Byte();
    const uint8_t arg = op >> 4;
    switch (op & 15) {
      case 0:
      case 1: {  // Join, into any slot (0) or into slot `arg` (1)
        std::optional<uint32_t> slot;
        if ((op & 15) == 1) slot = arg;
        std::string session(32, '\0');
        for (size_t i = 0; i < 4; ++i) session[i] = static_cast<char>(in.Byte());
        session[31] = static_cast<char>(workers.size());  // distinct secrets
        const bool was_live = slot.has_value() && m.SlotLive(*slot, now);
        absl::StatusOr<Membership::Joined> j =
            m.Join(absl::StrCat("w", workers.size()), slot, now, session);
        if (!j.ok()) {
          const absl::StatusCode code = j.status().code();
          if (!slot.has_value()) {  // only when every slot is held by a live worker
            Check(code == absl::StatusCode::kFailedPrecondition, "a full run's join code");
            for (uint32_t i = 0; i < w; ++i)
              Check(m.SlotLive(i, now), "a join fails only while every holder is live");
          } else if (*slot >= w) {
            Check(code == absl::StatusCode::kInvalidArgument, "no such slot");
          } else {
            Check(code == absl::StatusCode::kAlreadyExists && was_live,
                  "a slot is refused only while its holder is live");
          }
          break;
        }
        Check(j->worker_id == workers.size(), "worker ids count up and are never reused");
        Check(j->slot < w && j->num_slots == w, "slot within the run");
        Check(!slot.has_value() || j->slot == *slot, "the slot asked for");
        Check(j->replaced == slots[j->slot], "the previous holder is the one replaced");
        if (j->replaced != 0) workers[j->replaced].member = false;
        slots[j->slot] = j->worker_id;
        workers.push_back(Shadow{session, true});
        break;
      }
      case 2:
        m.Leave(pick(arg));
        if (pick(arg) != 0 && pick(arg) < workers.size()) workers[pick(arg)].member = false;
        break;
      case 3:
        Check(m.Heartbeat(pick(arg), now) ==
                  (pick(arg) < workers.size() && pick(arg) != 0 && workers[pick(arg)].member),
              "a heartbeat is accepted from members only");
        break;
      case 4: {
        const absl::Status st = m.OpenStream(pick(arg));
        const bool member =
            pick(arg) < workers.size() && pick(arg) != 0 && workers[pick(arg)].member;
        Check(member || st.code() == absl::StatusCode::kFailedPrecondition,
              "only members open task streams");
        break;
      }
      case 5:
        m.CloseStream(pick(arg));
        break;
      case 6:  // time passes: up to 15 heartbeat intervals, in quarters
        now += beat * arg / 4;
        break;
      case 7: {  // sessions: the exact secret, one bit off, shorter, empty
        const uint64_t id = pick(arg);
        const std::string want = id < workers.size() ? workers[id].session : std::string();
        Check(m.SessionMatches(id, want) == (id != 0 && id < workers.size()),
              "the exact secret matches");
        if (!want.empty()) {
          std::string off = want;
          off[in.Byte() % off.size()] ^= static_cast<char>(1 << (in.Byte() % 8));
          Check(!m.SessionMatches(id, off), "a secret one bit off does not match");
          Check(!m.SessionMatches(id, want.substr(0, want.size() - 1)),
                "a prefix of the secret does not match");
          Check(!m.SessionMatches(id + workers.size(), want), "another id does not match");
        }
        Check(!m.SessionMatches(id, ""), "an empty secret never matches");
        break;
      }
      case 8: {  // task routing for slot `arg`
        const absl::StatusOr<uint64_t> r = m.TaskRecipient(arg);
        if (r.ok()) {
          Check(arg < w && *r == slots[arg], "tasks go to the slot's holder");
          Check(m.IsMember(*r), "tasks go to a member");
        }
        (void)m.SlotLive(arg, now);
        break;
      }
      case 9: {  // clients
        uint64_t client = in.Byte();
        client = (client << 8 | in.Byte()) * (arg + 1);
        const absl::StatusOr<uint32_t> s = m.SlotOfClient(client);
        Check(s.ok() == m.full(), "clients are routed once membership is full");
        if (s.ok()) Check(*s == client % w, "client i goes to slot i mod W");
        std::vector<uint64_t> ids = slots;  // every holder, nobody, a worker yet to come
        ids.push_back(0);
        ids.push_back(workers.size());
        for (uint64_t id : ids)
          Check(m.RoutedTo(client, id) == (m.full() && id != 0 && slots[client % w] == id),
                "RoutedTo names the holder of the client's slot");
        break;
      }
      case 15:
        CheckCredential(in.Rest());
        break;
      default:
        break;
    }
    // After every operation.
    bool all_filled = true;
    for (uint64_t s : slots) all_filled = all_filled && s != 0;
    Check(m.full() == all_filled, "full() once every slot has been filled");
    const std::vector<uint64_t> routing = m.routing();
    Check(routing.empty() == !all_filled, "routing only when full");
    if (!routing.empty()) Check(routing == slots, "routing names each slot's holder");
    Check(m.num_joined() == workers.size() - 1, "every join counted");
    // The workers this operation may have touched (all of them once the input is done).
    for (uint64_t id : {uint64_t{0}, pick(arg), workers.size() - 1, uint64_t{workers.size()}})
      check_member(id);
  }
  for (uint64_t id = 0; id <= workers.size(); ++id) check_member(id);
  return 0;
}
