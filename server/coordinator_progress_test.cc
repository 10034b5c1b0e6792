// The Coordinator's two rules that end a run which cannot make progress (issue 18):
// federation.max_rejected_rounds consecutive rounds whose replies were all rejected, and a
// worker that cannot train a client for a reason that will not go away (FailedPrecondition:
// its client state was lost). Scripted transport, tiny model: the replies are exact.
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/fedavg.h"
#include "compression/payload_codec.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "tests/testing/scripted_transport.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::ScriptedTransport;
using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

constexpr size_t kDim = 4;

struct Harness {
  FedAvgServer algo{FedAvgOptions{}};
  ScriptedTransport net;
  IdentityCompressor codec;
  UplinkCodec uplink{UplinkOptions{}, &codec, nullptr};
  RealClock clock;
  std::unique_ptr<Coordinator> coord;
  Harness(int64_t rounds, int64_t max_rejected_rounds) {
    CoordinatorOptions o;
    o.num_clients = 4;
    o.clients_per_round = 2;
    o.rounds = rounds;
    o.seed = 5;
    o.sampling_seed = 6;
    o.max_rejected_rounds = max_rejected_rounds;
    // Only the rounds without any reply wait for it; the scripted replies come at once.
    o.round_timeout = absl::Milliseconds(1);
    coord = std::make_unique<Coordinator>(o, &algo, &net, &uplink, nullptr, nullptr, &clock,
                                          nullptr);
    const std::vector<float> x0(kDim, 0.5f);
    FT_CHECK(coord->Init(x0).ok());
  }
};

// Every reply of the rounds in `bad` fails as a worker reports a non-finite update; the
// others are good; rounds in `silent` get no reply at all.
std::function<std::vector<v1::UpdateMsg>(const v1::TaskMsg&)> Script(
    std::vector<uint64_t> bad, std::vector<uint64_t> silent = {}) {
  return [bad, silent](const v1::TaskMsg& t) {
    auto in = [&](const std::vector<uint64_t>& v) {
      return std::find(v.begin(), v.end(), t.round()) != v.end();
    };
    if (in(silent)) return std::vector<v1::UpdateMsg>{};
    v1::UpdateMsg m = ::fedtrain::testing::ScriptedGoodReply(t, kDim);
    if (in(bad)) m.set_error("INVALID_ARGUMENT: up part 0 has a non-finite value (nan)");
    return std::vector<v1::UpdateMsg>{m};
  };
}

TEST(CoordinatorProgressTest, KRoundsWithAllRepliesRejectedFailTheRunWithTheReasons) {
  Harness h(/*rounds=*/10, /*max_rejected_rounds=*/3);
  h.net.reply = Script({0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_THAT(h.coord->Run(nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("rounds 1 to 3 accepted no update: every "
                                                  "reply was rejected in 3 of them"),
                                        HasSubstr("non-finite value"))));
  EXPECT_EQ(h.coord->rounds_done(), 2);  // the failing round leaves the model alone
}

TEST(CoordinatorProgressTest, AnAcceptedUpdateResetsTheCountAndZeroTurnsTheRuleOff) {
  {
    Harness h(/*rounds=*/6, /*max_rejected_rounds=*/3);
    h.net.reply = Script({0, 1, 3, 4});  // 2 and 5 accept updates: never 3 in a row
    FT_EXPECT_OK(h.coord->Run(nullptr));
  }
  {
    Harness h(/*rounds=*/6, /*max_rejected_rounds=*/0);
    h.net.reply = Script({0, 1, 2, 3, 4, 5});
    FT_EXPECT_OK(h.coord->Run(nullptr));
  }
}

// Rounds in which nothing arrived (workers gone) are federation.min_updates' business: they
// neither count towards the streak nor reset it.
TEST(CoordinatorProgressTest, RoundsWithoutRepliesDoNotCount) {
  {
    Harness h(/*rounds=*/6, /*max_rejected_rounds=*/2);
    h.net.reply = Script({}, /*silent=*/{0, 1, 2, 3, 4, 5});
    FT_EXPECT_OK(h.coord->Run(nullptr));
  }
  {
    Harness h(/*rounds=*/6, /*max_rejected_rounds=*/2);
    h.net.reply = Script({0, 2}, /*silent=*/{1});
    EXPECT_THAT(h.coord->Run(nullptr),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("rounds 1 to 3 accepted no update: every reply was "
                                   "rejected in 2 of them")));
  }
}

// client/worker.cc fails a task with FailedPrecondition "... the state was lost ..." when the
// server accepted an earlier update of the client but the worker holds no state for it; the
// transport carries it as Status::ToString().
TEST(CoordinatorProgressTest, AWorkerThatCannotTrainAClientFailsTheRunAtOnce) {
  Harness h(/*rounds=*/5, /*max_rejected_rounds=*/0);
  h.net.reply = [](const v1::TaskMsg& t) {
    v1::UpdateMsg m = ::fedtrain::testing::ScriptedGoodReply(t, kDim);
    if (t.round() == 1)
      m.set_error(absl::StrCat("FAILED_PRECONDITION: client ", t.client_id(),
                               ", round 1: the state was lost (run workers with --state-dir)"));
    return std::vector<v1::UpdateMsg>{m};
  };
  FT_ASSERT_OK(h.coord->RunRound().status());
  EXPECT_THAT(h.coord->RunRound(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("round 2: the worker of client"),  // 1-based
                                        HasSubstr("cannot train it: client"),
                                        HasSubstr("the state was lost"))));
  EXPECT_EQ(h.coord->rounds_done(), 1);
}

}  // namespace
}  // namespace fedtrain
