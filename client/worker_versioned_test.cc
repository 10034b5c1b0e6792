// Worker with WorkerOptions::versioned_state (client/worker.h): the client state a task starts
// from follows TaskMsg.accepted_through. Checked against reference workers that only ever saw
// the accepted history (bitwise equal replies), for a stateful algorithm (SCAFFOLD's client
// half, state "c") and for stateful uplink feedback (FedAvg + EF14, state in ClientState::wide):
//  - accepted_through == the last produced version: continue from it;
//  - accepted_through == the version before: roll back (repeatedly, if replies keep being lost);
//  - accepted_through == 0: start from the empty state;
//  - a stored state matching neither: FailedPrecondition naming client and rounds, state kept;
//  - no stored state but accepted_through > 0: FailedPrecondition "the state was lost";
//  - a state written without versions is taken as it is;
//  - stateless algorithms store nothing.
#include "client/worker.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/registry.h"
#include "client/client_state_store.h"
#include "compression/uplink_codec.h"
#include "compression/payload_codec.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/quadratic.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr size_t kDim = 4;

struct Flavour {
  const char* name;
  const char* algorithm;
  Feedback feedback;
};

// Clients' data, the client half (from the registry), the uplink and task construction.
class World {
 public:
  explicit World(const Flavour& s) : data_(testing::QuadraticClients(/*seed=*/3, 2, kDim)) {
    idx_ = {{0}, {1}};
    AlgorithmRegistry reg;
    RegisterBuiltinAlgorithms(&reg);
    absl::StatusOr<const AlgorithmFactory*> f = reg.Find(s.algorithm);
    FT_CHECK(f.ok());
    v1::AlgorithmConfig cfg;
    cfg.set_name(s.algorithm);
    absl::StatusOr<std::unique_ptr<ClientAlgorithm>> c = (*f)->MakeClient(cfg);
    FT_CHECK(c.ok());
    algo_ = std::move(*c);
    absl::StatusOr<std::unique_ptr<ServerAlgorithm>> server = (*f)->MakeServer(cfg);
    FT_CHECK(server.ok());
    num_parts_ = (*server)->num_up_parts();
    commit_sent_ = (*f)->traits(cfg).commit_sent;
    CompressorOptions co;
    if (s.feedback != Feedback::kNone) {
      co.compressor = "topk";
      co.k = 1;
    }
    absl::StatusOr<std::unique_ptr<Compressor>> codec = MakeCompressor(co, kDim);
    FT_CHECK(codec.ok());
    codec_ = std::move(*codec);
    UplinkOptions uo;
    uo.feedback.method = s.feedback;
    uplink_ = std::make_unique<UplinkCodec>(uo, codec_.get(), nullptr);
  }

  std::unique_ptr<Worker> NewWorker(bool versioned, ClientStateStore* store) const {
    WorkerOptions o;
    o.sgd.steps = 2;
    o.sgd.batch_size = 1;
    o.num_up_parts = num_parts_;
    o.versioned_state = versioned;
    o.commit_sent = commit_sent_;
    ClientDataFn fn = [this](ClientId id) -> absl::StatusOr<DataView> {
      if (id >= idx_.size()) return absl::NotFoundError(absl::StrCat("no client ", id));
      return DataView::Of(data_, idx_[id]);
    };
    return std::make_unique<Worker>(o, algo_.get(),
                                    std::make_unique<testing::QuadraticTrainer>(kDim), fn, store,
                                    uplink_.get());
  }

  // The server's down payload of `round` (a model and, for SCAFFOLD, a c that change every
  // round, as a server's would).
  v1::TaskMsg Task(uint64_t round, ClientId id, uint64_t accepted_through) const {
    Payload down;
    down.parts.emplace_back(kDim);
    for (size_t j = 0; j < kDim; ++j)
      down.parts[0][j] = static_cast<float>(0.3 * std::sin(1.0 + round + 0.7 * j));
    if (num_parts_ == 2) {
      down.parts.emplace_back(kDim);
      for (size_t j = 0; j < kDim; ++j)
        down.parts[1][j] = static_cast<float>(0.05 * std::cos(2.0 * round + j));
    }
    v1::TaskMsg t;
    t.set_round(round);
    t.set_client_id(id);
    t.set_lr(0.05);
    t.set_seed(9);
    t.set_accepted_through(accepted_through);
    IdentityCompressor c;
    RngStream rng = RngStream::For(0, round, 0, Purpose::kCompression);
    FT_CHECK(EncodePayload(down, c, rng, t.mutable_down()).ok());
    return t;
  }

 private:
  Dataset data_;
  std::vector<std::vector<uint32_t>> idx_;
  std::unique_ptr<ClientAlgorithm> algo_;
  size_t num_parts_ = 1;
  std::unique_ptr<Compressor> codec_;
  std::unique_ptr<UplinkCodec> uplink_;
  bool commit_sent_ = false;
};

// A reply as bytes (UpdateMsg with an empty scalars map serializes deterministically): equal
// bytes mean equal updates, losses and step counts, bit for bit.
absl::StatusOr<std::string> Handle(Worker& w, const v1::TaskMsg& t) {
  absl::StatusOr<v1::UpdateMsg> m = w.Handle(t);
  if (!m.ok()) return m.status();
  return m->SerializeAsString();
}

// Feeds (round, accepted_through) tasks of client `id` to a fresh worker and returns the
// last reply: what a worker that only ever saw this history produces.
absl::StatusOr<std::string> Reference(const World& world, bool versioned, ClientId id,
                                      const std::vector<std::pair<uint64_t, uint64_t>>& tasks) {
  MemoryClientStateStore store;
  std::unique_ptr<Worker> w = world.NewWorker(versioned, &store);
  std::string last;
  for (const auto& [round, acc] : tasks) {
    FT_ASSIGN_OR_RETURN(last, Handle(*w, world.Task(round, id, acc)));
  }
  return last;
}

bool SameState(const ClientState& a, const ClientState& b) {
  if (a.vectors.size() != b.vectors.size() || a.wide.size() != b.wide.size()) return false;
  for (const auto& [k, v] : a.vectors) {
    auto it = b.vectors.find(k);
    if (it == b.vectors.end() || it->second.size() != v.size() ||
        std::memcmp(v.data(), it->second.data(), v.size() * sizeof(float)) != 0)
      return false;
  }
  for (const auto& [k, v] : a.wide) {
    auto it = b.wide.find(k);
    if (it == b.wide.end() || it->second.size() != v.size() ||
        std::memcmp(v.data(), it->second.data(), v.size() * sizeof(double)) != 0)
      return false;
  }
  return true;
}

class VersionedStateTest : public ::testing::TestWithParam<Flavour> {
 protected:
  World world_{GetParam()};
  MemoryClientStateStore store_;
  std::unique_ptr<Worker> worker_ = world_.NewWorker(/*versioned=*/true, &store_);
};

TEST_P(VersionedStateTest, ContinuesFromTheLastProducedState) {
  // Every reply accepted: accepted_through is always 1 + the previous round.
  std::vector<std::pair<uint64_t, uint64_t>> history;
  uint64_t acc = 0;
  for (uint64_t round : {0, 1, 3, 4}) {
    history.emplace_back(round, acc);
    FT_ASSERT_OK_AND_ASSIGN(std::string got, Handle(*worker_, world_.Task(round, 0, acc)));
    // The same as a worker without versions (nothing is ever rolled back here).
    FT_ASSERT_OK_AND_ASSIGN(std::string want, Reference(world_, false, 0, history));
    EXPECT_EQ(got, want) << "round " << round;
    acc = round + 1;
  }
  EXPECT_EQ(store_.size(), 1u);
}

TEST_P(VersionedStateTest, RollsBackToTheAcceptedVersion) {
  FT_ASSERT_OK(Handle(*worker_, world_.Task(0, 0, 0)).status());  // accepted
  FT_ASSERT_OK(Handle(*worker_, world_.Task(1, 0, 1)).status());  // reply lost
  // Round 2: the server still says "accepted through round 0": start from round 0's state.
  FT_ASSERT_OK_AND_ASSIGN(std::string r2, Handle(*worker_, world_.Task(2, 0, 1)));
  FT_ASSERT_OK_AND_ASSIGN(std::string want2, Reference(world_, true, 0, {{0, 0}, {2, 1}}));
  EXPECT_EQ(r2, want2);
  // The state matters (so the comparison can fail): continuing from round 1's state differs.
  FT_ASSERT_OK_AND_ASSIGN(std::string wrong2,
                          Reference(world_, false, 0, {{0, 0}, {1, 1}, {2, 2}}));
  EXPECT_NE(r2, wrong2);
  // Lost again: round 3 rolls back to round 0's state once more.
  FT_ASSERT_OK_AND_ASSIGN(std::string r3, Handle(*worker_, world_.Task(3, 0, 1)));
  FT_ASSERT_OK_AND_ASSIGN(std::string want3, Reference(world_, true, 0, {{0, 0}, {3, 1}}));
  EXPECT_EQ(r3, want3);
  // Round 3's reply was accepted: round 5 continues from it.
  FT_ASSERT_OK_AND_ASSIGN(std::string r5, Handle(*worker_, world_.Task(5, 0, 4)));
  FT_ASSERT_OK_AND_ASSIGN(std::string want5,
                          Reference(world_, true, 0, {{0, 0}, {3, 1}, {5, 4}}));
  EXPECT_EQ(r5, want5);
  FT_ASSERT_OK_AND_ASSIGN(std::string want5_plain,
                          Reference(world_, false, 0, {{0, 0}, {3, 1}, {5, 4}}));
  EXPECT_EQ(r5, want5_plain);
}

TEST_P(VersionedStateTest, AcceptedThroughZeroStartsFromTheEmptyState) {
  FT_ASSERT_OK(Handle(*worker_, world_.Task(0, 1, 0)).status());
  FT_ASSERT_OK(Handle(*worker_, world_.Task(1, 1, 1)).status());
  // The server never accepted anything from client 1 (e.g. restarted from a checkpoint of
  // before its first round).
  FT_ASSERT_OK_AND_ASSIGN(std::string got, Handle(*worker_, world_.Task(2, 1, 0)));
  FT_ASSERT_OK_AND_ASSIGN(std::string want, Reference(world_, true, 1, {{2, 0}}));
  EXPECT_EQ(got, want);
  FT_ASSERT_OK_AND_ASSIGN(std::string continued,
                          Reference(world_, false, 1, {{0, 0}, {1, 1}, {2, 2}}));
  EXPECT_NE(got, continued);
}

TEST_P(VersionedStateTest, StateMatchingNeitherVersionFailsAndIsKept) {
  FT_ASSERT_OK(Handle(*worker_, world_.Task(0, 0, 0)).status());
  // Versions: round 0's state (accepted_through 1), initial (0). accepted_through 2 claims a
  // round-1 reply this worker never produced.
  ClientState before, after;
  FT_ASSERT_OK(store_.Load(0, &before));
  EXPECT_THAT(Handle(*worker_, world_.Task(3, 0, 2)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("client 0, round 4"),  // messages count rounds from 1
                             HasSubstr("stored state is from round 1 but"),
                             HasSubstr("accepted this client through round 2"))));
  FT_ASSERT_OK(store_.Load(0, &after));
  EXPECT_TRUE(SameState(before, after));

  FT_ASSERT_OK(Handle(*worker_, world_.Task(1, 0, 1)).status());
  // Versions: round 1's state (2) and round 0's (1). 3 and 7 match neither.
  FT_ASSERT_OK(store_.Load(0, &before));
  for (uint64_t acc : {3, 7}) {
    EXPECT_THAT(Handle(*worker_, world_.Task(4, 0, acc)),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("client 0, round 5"),
                               HasSubstr("stored state is from round 2 (and round 1)"),
                               HasSubstr(absl::StrCat("through round ", acc)))))
        << acc;
    FT_ASSERT_OK(store_.Load(0, &after));
    EXPECT_TRUE(SameState(before, after)) << acc;
  }
  // The kept state still serves a task that matches it.
  FT_ASSERT_OK_AND_ASSIGN(std::string got, Handle(*worker_, world_.Task(4, 0, 2)));
  FT_ASSERT_OK_AND_ASSIGN(std::string want, Reference(world_, false, 0, {{0, 0}, {1, 1}, {4, 2}}));
  EXPECT_EQ(got, want);
}

TEST_P(VersionedStateTest, NoStoredStateWithAcceptedRoundsFailsAsLost) {
  EXPECT_THAT(Handle(*worker_, world_.Task(4, 1, 3)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("client 1, round 5"), HasSubstr("round 3"),
                             HasSubstr("the state was lost"))));
  EXPECT_EQ(store_.size(), 0u);  // nothing was saved
  // accepted_through 0 is fine for the same worker.
  FT_EXPECT_OK(Handle(*worker_, world_.Task(4, 1, 0)));
  EXPECT_EQ(store_.size(), 1u);
}

// A state saved by a worker without versions (e.g. before versioned states were turned on)
// carries no tag: it is taken as the accepted one.
TEST_P(VersionedStateTest, UntaggedStateIsTakenAsItIs) {
  std::unique_ptr<Worker> plain = world_.NewWorker(/*versioned=*/false, &store_);
  FT_ASSERT_OK(Handle(*plain, world_.Task(0, 0, 0)).status());
  FT_ASSERT_OK_AND_ASSIGN(std::string got, Handle(*worker_, world_.Task(1, 0, 1)));
  FT_ASSERT_OK_AND_ASSIGN(std::string want, Reference(world_, false, 0, {{0, 0}, {1, 1}}));
  EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(
    Stateful, VersionedStateTest,
    ::testing::Values(Flavour{"Scaffold", "scaffold", Feedback::kNone},
                      Flavour{"FedAvgEf14", "fedavg", Feedback::kEf14}),
    [](const ::testing::TestParamInfo<Flavour>& i) { return std::string(i.param.name); });

TEST(VersionedStateStatelessTest, StatelessAlgorithmsStoreNothing) {
  const World world(Flavour{"FedAvg", "fedavg", Feedback::kNone});
  MemoryClientStateStore store;
  std::unique_ptr<Worker> w = world.NewWorker(/*versioned=*/true, &store);
  MemoryClientStateStore plain_store;
  std::unique_ptr<Worker> plain = world.NewWorker(/*versioned=*/false, &plain_store);
  // Any accepted_through, even one with no state behind it, is fine: there is no state.
  for (const auto& [round, acc] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 0}, {1, 1}, {2, 1}, {3, 0}, {4, 9}}) {
    FT_ASSERT_OK_AND_ASSIGN(std::string got, Handle(*w, world.Task(round, 0, acc)));
    FT_ASSERT_OK_AND_ASSIGN(std::string want, Handle(*plain, world.Task(round, 0, acc)));
    EXPECT_EQ(got, want) << round;
    EXPECT_EQ(store.size(), 0u) << round;
  }
}

}  // namespace
}  // namespace fedtrain
