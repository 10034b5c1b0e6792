// Membership, the deployed server's slots bookkeeping, without gRPC: joins fill the slots and
// close membership, a rejoin takes over only the slot of a holder that is gone (left, task
// stream broke, or no stream and no sign of life for three heartbeat intervals), a live holder
// keeps its slot, and routing follows the slots. Time is passed in, so nothing here sleeps.
#include "comm/membership.h"

#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

MATCHER_P(HoldsValue, value, "is OK and holds " + ::testing::PrintToString(value)) {
  if (!arg.ok()) *result_listener << "status is " << arg.status().ToString();
  return arg.ok() && *arg == value;
}

constexpr absl::Duration kBeat = absl::Seconds(2);
const absl::Time kT0 = absl::FromUnixSeconds(1000);

Membership::Joined MustJoin(Membership& m, const std::string& name,
                            std::optional<uint32_t> slot = std::nullopt, absl::Time now = kT0) {
  absl::StatusOr<Membership::Joined> j = m.Join(name, slot, now);
  EXPECT_THAT(j, IsOk());
  return j.ok() ? *j : Membership::Joined{};
}

TEST(MembershipTest, JoinsFillTheSlotsInOrderAndCloseMembership) {
  Membership m(3, kBeat);
  EXPECT_EQ(m.num_slots(), 3u);
  EXPECT_FALSE(m.full());
  EXPECT_THAT(m.routing(), IsEmpty());
  EXPECT_THAT(m.SlotOfClient(7), StatusIs(absl::StatusCode::kUnavailable,
                                          HasSubstr("not every worker has joined")));

  const Membership::Joined a = MustJoin(m, "a");
  EXPECT_EQ(a.worker_id, 1u);
  EXPECT_EQ(a.slot, 0u);
  EXPECT_EQ(a.num_slots, 3u);
  EXPECT_EQ(a.replaced, 0u);
  const Membership::Joined b = MustJoin(m, "b");
  EXPECT_EQ(b.worker_id, 2u);
  EXPECT_EQ(b.slot, 1u);
  EXPECT_FALSE(m.full());
  EXPECT_THAT(m.routing(), IsEmpty());  // only once every slot is filled
  EXPECT_FALSE(m.RoutedTo(0, a.worker_id));
  EXPECT_EQ(m.num_joined(), 2u);

  const Membership::Joined c = MustJoin(m, "c");
  EXPECT_EQ(c.worker_id, 3u);
  EXPECT_EQ(c.slot, 2u);
  EXPECT_TRUE(m.full());
  EXPECT_THAT(m.routing(), ElementsAre(1, 2, 3));
  EXPECT_EQ(m.num_joined(), 3u);

  // Client i goes to slot i mod W.
  EXPECT_THAT(m.SlotOfClient(7), HoldsValue(1u));
  EXPECT_TRUE(m.RoutedTo(7, b.worker_id));
  EXPECT_FALSE(m.RoutedTo(7, a.worker_id));
  EXPECT_TRUE(m.RoutedTo(9, a.worker_id));
  EXPECT_TRUE(m.RoutedTo(5, c.worker_id));
  for (uint64_t id : {a.worker_id, b.worker_id, c.worker_id}) EXPECT_TRUE(m.IsMember(id));
  EXPECT_FALSE(m.IsMember(0));
  EXPECT_FALSE(m.IsMember(4));
}

TEST(MembershipTest, AFullRunOfLiveWorkersRefusesAnotherJoin) {
  Membership m(2, kBeat);
  MustJoin(m, "a");
  MustJoin(m, "b");
  EXPECT_THAT(m.Join("c", std::nullopt, kT0 + absl::Seconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("the run already has its 2 workers")));
  EXPECT_EQ(m.num_joined(), 2u);
}

TEST(MembershipTest, ASlotThatDoesNotExistIsRefused) {
  Membership m(2, kBeat);
  EXPECT_THAT(m.Join("a", 2, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("slot 2 does not exist: the run has 2 workers (slots 0 to 1)")));
  EXPECT_EQ(m.num_joined(), 0u);
}

TEST(MembershipTest, AJoinMayAskForAVacantSlot) {
  Membership m(3, kBeat);
  const Membership::Joined a = MustJoin(m, "a", 2);
  EXPECT_EQ(a.slot, 2u);
  EXPECT_EQ(a.replaced, 0u);
  // Without a slot: the first vacant one.
  EXPECT_EQ(MustJoin(m, "b").slot, 0u);
  EXPECT_EQ(MustJoin(m, "c").slot, 1u);
  EXPECT_THAT(m.routing(), ElementsAre(2, 3, 1));
}

TEST(MembershipTest, ALiveHolderKeepsItsSlot) {
  Membership m(2, kBeat);
  const Membership::Joined a = MustJoin(m, "alpha");
  MustJoin(m, "b");
  // Joined, no task stream yet: live for three heartbeat intervals after its last sign.
  EXPECT_THAT(m.Join("a2", 0, kT0 + 3 * kBeat - absl::Milliseconds(1)),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("slot 0 is held by live worker 1 (alpha)")));
  // A heartbeat moves that on.
  EXPECT_TRUE(m.Heartbeat(a.worker_id, kT0 + 2 * kBeat));
  EXPECT_THAT(m.Join("a2", 0, kT0 + 4 * kBeat),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("live worker 1")));
  EXPECT_TRUE(m.SlotLive(0, kT0 + 4 * kBeat));
  // With its task stream open it is live however long it stays silent.
  FT_ASSERT_OK(m.OpenStream(a.worker_id));
  EXPECT_THAT(m.Join("a2", 0, kT0 + absl::Hours(1)),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("live worker 1")));
  EXPECT_TRUE(m.SlotLive(0, kT0 + absl::Hours(1)));
  EXPECT_THAT(m.routing(), ElementsAre(1, 2));
  EXPECT_EQ(m.num_joined(), 2u);
}

TEST(MembershipTest, AHolderWithoutAStreamExpiresAfterThreeSilentHeartbeatIntervals) {
  Membership m(2, kBeat);
  const Membership::Joined a = MustJoin(m, "a");
  const Membership::Joined b = MustJoin(m, "b");
  FT_ASSERT_OK(m.OpenStream(b.worker_id));
  EXPECT_TRUE(m.SlotLive(0, kT0 + 3 * kBeat - absl::Nanoseconds(1)));
  EXPECT_FALSE(m.SlotLive(0, kT0 + 3 * kBeat));  // exactly three intervals: gone

  // A join without a slot takes over the first slot whose holder is gone.
  const absl::Time later = kT0 + 3 * kBeat;
  const Membership::Joined a2 = MustJoin(m, "a2", std::nullopt, later);
  EXPECT_EQ(a2.slot, 0u);
  EXPECT_EQ(a2.replaced, a.worker_id);
  EXPECT_EQ(a2.worker_id, 3u);
  EXPECT_THAT(m.routing(), ElementsAre(3, 2));
  EXPECT_EQ(m.num_joined(), 3u);  // the replaced worker still counts
  // The replaced worker is no longer a member: no heartbeats, no stream, no routing.
  EXPECT_FALSE(m.IsMember(a.worker_id));
  EXPECT_FALSE(m.Heartbeat(a.worker_id, later));
  EXPECT_THAT(m.OpenStream(a.worker_id), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                  HasSubstr("worker 1 has not joined")));
  EXPECT_FALSE(m.RoutedTo(0, a.worker_id));
  EXPECT_TRUE(m.RoutedTo(0, a2.worker_id));
  // The newcomer starts its own three intervals.
  EXPECT_TRUE(m.SlotLive(0, later + 3 * kBeat - absl::Nanoseconds(1)));
  FT_EXPECT_OK(m.TaskRecipient(0));
}

TEST(MembershipTest, AWorkerRejoinsItsSlotAfterItsTaskStreamBroke) {
  Membership m(2, kBeat);
  const Membership::Joined a = MustJoin(m, "a");
  const Membership::Joined b = MustJoin(m, "b");
  FT_ASSERT_OK(m.OpenStream(a.worker_id));
  FT_ASSERT_OK(m.OpenStream(b.worker_id));
  EXPECT_THAT(m.TaskRecipient(1), HoldsValue(b.worker_id));
  m.CloseStream(b.worker_id);
  // Gone at once, though its last heartbeat is recent: tasks for it are refused.
  EXPECT_TRUE(m.Heartbeat(b.worker_id, kT0 + absl::Milliseconds(10)));
  EXPECT_FALSE(m.SlotLive(1, kT0 + absl::Milliseconds(20)));
  EXPECT_THAT(m.TaskRecipient(1),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("worker 2 (slot 1, b) is gone: its task stream broke")));
  const Membership::Joined b2 = MustJoin(m, "b2", 1, kT0 + absl::Milliseconds(30));
  EXPECT_EQ(b2.slot, 1u);
  EXPECT_EQ(b2.replaced, b.worker_id);
  EXPECT_THAT(m.routing(), ElementsAre(a.worker_id, b2.worker_id));
  // The newcomer has not opened its stream yet: its tasks wait for it.
  EXPECT_THAT(m.TaskRecipient(1), HoldsValue(b2.worker_id));
  EXPECT_TRUE(m.RoutedTo(3, b2.worker_id));
  EXPECT_FALSE(m.RoutedTo(3, b.worker_id));
}

TEST(MembershipTest, AWorkerThatLeftIsGoneAndItsSlotCanBeTakenOver) {
  Membership m(2, kBeat);
  MustJoin(m, "a");
  const Membership::Joined b = MustJoin(m, "b");
  FT_ASSERT_OK(m.OpenStream(b.worker_id));
  m.Leave(b.worker_id);
  m.Leave(99);  // unknown: nothing happens
  EXPECT_FALSE(m.IsMember(b.worker_id));
  EXPECT_FALSE(m.Heartbeat(b.worker_id, kT0));
  EXPECT_FALSE(m.SlotLive(1, kT0));
  EXPECT_THAT(m.TaskRecipient(1),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("worker 2 (slot 1) has left")));
  // Routing still names it until another worker takes the slot.
  EXPECT_TRUE(m.RoutedTo(1, b.worker_id));
  // Slot 0's holder is live (within its intervals): a join without a slot gets slot 1.
  const Membership::Joined c = MustJoin(m, "c", std::nullopt, kT0 + absl::Seconds(1));
  EXPECT_EQ(c.slot, 1u);
  EXPECT_EQ(c.replaced, b.worker_id);
}

TEST(MembershipTest, AVacantSlotComesBeforeTheSlotOfAHolderThatIsGone) {
  Membership m(3, kBeat);
  const Membership::Joined a = MustJoin(m, "a");
  m.Leave(a.worker_id);
  // A vacant slot comes before the slot of a holder that is gone.
  EXPECT_EQ(MustJoin(m, "b").slot, 1u);
  EXPECT_EQ(MustJoin(m, "c").slot, 2u);
  EXPECT_TRUE(m.full());
  const Membership::Joined d = MustJoin(m, "d");
  EXPECT_EQ(d.slot, 0u);
  EXPECT_EQ(d.replaced, a.worker_id);
  EXPECT_THAT(m.routing(), ElementsAre(4, 2, 3));
  EXPECT_EQ(m.num_joined(), 4u);
}

TEST(MembershipTest, OneTaskStreamAtATime) {
  Membership m(1, kBeat);
  EXPECT_THAT(m.OpenStream(1), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("worker 1 has not joined")));
  const Membership::Joined a = MustJoin(m, "a");
  FT_ASSERT_OK(m.OpenStream(a.worker_id));
  EXPECT_THAT(m.OpenStream(a.worker_id),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("this worker already has a task stream")));
  m.CloseStream(a.worker_id);
  EXPECT_FALSE(m.SlotLive(0, kT0));
  // A member whose stream closed may open another, and is live again.
  FT_ASSERT_OK(m.OpenStream(a.worker_id));
  EXPECT_TRUE(m.SlotLive(0, kT0 + absl::Hours(1)));
  FT_EXPECT_OK(m.TaskRecipient(0));
  m.CloseStream(42);  // unknown: nothing happens
}

TEST(MembershipTest, ConcurrentJoinsTakeDistinctSlots) {
  constexpr uint32_t kSlots = 8;
  Membership m(kSlots, kBeat);
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<Membership::Joined>> got(2 * kSlots,
                                                      absl::UnknownError("not run"));
  for (uint32_t i = 0; i < 2 * kSlots; ++i)
    threads.emplace_back([&m, &got, i] { got[i] = m.Join("w", std::nullopt, kT0); });
  for (std::thread& t : threads) t.join();
  std::set<uint32_t> slots;
  std::set<uint64_t> ids;
  int refused = 0;
  for (const auto& j : got) {
    if (!j.ok()) {
      EXPECT_THAT(j, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already")));
      ++refused;
      continue;
    }
    slots.insert(j->slot);
    ids.insert(j->worker_id);
  }
  EXPECT_EQ(refused, static_cast<int>(kSlots));
  EXPECT_EQ(slots.size(), kSlots);
  EXPECT_EQ(ids.size(), kSlots);
  EXPECT_TRUE(m.full());
  EXPECT_EQ(m.routing().size(), kSlots);
}

// Sessions: a worker proves itself with the exact secret it joined with, and nothing else.
TEST(MembershipTest, SessionsMatchOnlyTheirOwnSecret) {
  Membership m(2, kBeat);
  const uint64_t a = m.Join("a", std::nullopt, kT0, std::string(32, 'A'))->worker_id;
  const uint64_t b = m.Join("b", std::nullopt, kT0, std::string(32, 'B'))->worker_id;
  EXPECT_TRUE(m.SessionMatches(a, std::string(32, 'A')));
  EXPECT_FALSE(m.SessionMatches(a, std::string(32, 'B')));  // another worker's secret
  EXPECT_FALSE(m.SessionMatches(b, std::string(32, 'A')));
  EXPECT_FALSE(m.SessionMatches(a, std::string(31, 'A')));  // a prefix
  EXPECT_FALSE(m.SessionMatches(a, ""));
  EXPECT_FALSE(m.SessionMatches(b + 7, std::string(32, 'B')));  // no such worker
  // A worker that joined without a session can never be acted for.
  Membership n(1, kBeat);
  const uint64_t x = n.Join("x", std::nullopt, kT0)->worker_id;
  EXPECT_FALSE(n.SessionMatches(x, ""));
}

// Identified workers (per-worker token, client certificate) keep one slot each, and only
// they can take it over; anonymous (shared-token) workers take over only anonymous slots.
TEST(MembershipTest, IdentifiedWorkersOwnTheirSlot) {
  Membership m(3, kBeat);
  const Membership::Joined alice = *m.Join("a1", std::nullopt, kT0, "s", "alice");
  const Membership::Joined anon = *m.Join("x1", std::nullopt, kT0, "s", "");
  const Membership::Joined bob = *m.Join("b1", std::nullopt, kT0, "s", "bob");
  ASSERT_EQ(alice.slot, 0u);
  ASSERT_EQ(anon.slot, 1u);
  ASSERT_EQ(bob.slot, 2u);
  // Alice joining again while her worker is live: refused; asking for another slot: refused.
  EXPECT_THAT(m.Join("a2", std::nullopt, kT0, "s", "alice"),
              StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  EXPECT_THAT(m.Join("a2", 1u, kT0, "s", "alice"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  // Every holder gone: nobody else may take alice's or bob's slot.
  const absl::Time later = kT0 + 10 * kBeat;
  EXPECT_THAT(m.Join("b2", 0u, later, "s", "bob"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(m.Join("x2", 0u, later, "s", ""), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(m.Join("c1", 2u, later, "s", "carol"),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  // Without a slot, an anonymous worker gets the anonymous slot, carol gets nothing.
  const Membership::Joined anon2 = *m.Join("x2", std::nullopt, later, "s", "");
  EXPECT_EQ(anon2.slot, 1u);
  EXPECT_THAT(m.Join("c1", std::nullopt, later, "s", "carol"),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  // Alice and bob retake their own slots, asked for or not.
  EXPECT_EQ(m.Join("a2", std::nullopt, later, "s", "alice")->slot, 0u);
  EXPECT_EQ(m.Join("b2", 2u, later, "s", "bob")->slot, 2u);
}

}  // namespace
}  // namespace fedtrain
