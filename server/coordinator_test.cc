// Coordinator round loop with a scripted transport: validation of replies (round, sender,
// codec, dimension, finiteness, worker errors), the deadline, client-order invariance (U2),
// sampling (U5) and byte accounting.
#include "server/coordinator.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <set>
#include <vector>

#include "aggregators/fedavg.h"
#include "compression/payload_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/scripted_transport.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::ScriptedTransport;
using ::testing::HasSubstr;

v1::UpdateMsg GoodReply(const v1::TaskMsg& t, size_t dim) {
  return ::fedtrain::testing::ScriptedGoodReply(t, dim);
}

struct Harness {
  FedAvgServer algo{FedAvgOptions{}};
  ScriptedTransport net;
  IdentityCompressor codec;
  UplinkCodec uplink{UplinkOptions{}, &codec, nullptr};
  MemoryMetricsSink sink;
  RealClock clock;
  CoordinatorOptions opts;
  std::unique_ptr<Coordinator> coord;
  explicit Harness(int64_t n = 10, int64_t m = 4, int64_t rounds = 3,
                   const std::function<void(CoordinatorOptions*)>& tweak = nullptr) {
    opts.num_clients = n;
    opts.clients_per_round = m;
    opts.rounds = rounds;
    opts.seed = 5;
    opts.sampling_seed = 6;
    if (tweak) tweak(&opts);
    coord = std::make_unique<Coordinator>(opts, &algo, &net, &uplink, nullptr, &sink, &clock,
                                          nullptr);
  }
};

TEST(SampleClientsTest, U5DistinctSortedAndSeeded) {
  for (int64_t n : {1, 7, 100, 1000000}) {
    for (int64_t m : {int64_t{1}, std::min<int64_t>(n, 5), n == 1000000 ? 1000 : n}) {
      std::vector<ClientId> s = SampleClients(3, 2, n, m);
      ASSERT_EQ(static_cast<int64_t>(s.size()), m);
      EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
      EXPECT_EQ(std::set<ClientId>(s.begin(), s.end()).size(), s.size());
      EXPECT_LT(s.back(), static_cast<ClientId>(n));
      EXPECT_EQ(s, SampleClients(3, 2, n, m));  // same (seed, round): same set
    }
  }
  EXPECT_NE(SampleClients(3, 2, 1000, 10), SampleClients(3, 3, 1000, 10));
  EXPECT_NE(SampleClients(3, 2, 1000, 10), SampleClients(4, 2, 1000, 10));
}

TEST(CoordinatorTest, U2ArrivalOrderDoesNotChangeTheModel) {
  std::vector<float> x0(6, 0.5f);
  std::vector<std::vector<float>> finals;
  for (bool reverse : {false, true}) {
    Harness h;
    h.net.reverse = reverse;
    h.net.reply = [](const v1::TaskMsg& t) { return std::vector<v1::UpdateMsg>{GoodReply(t, 6)}; };
    FT_ASSERT_OK(h.coord->Init(x0));
    FT_ASSERT_OK(h.coord->Run(nullptr));
    finals.emplace_back(h.coord->model().begin(), h.coord->model().end());
  }
  EXPECT_EQ(finals[0], finals[1]);  // bitwise
  EXPECT_NE(finals[0], x0);
}

// The server knows each client's sample count: a reply that claims another is rejected (a
// worker could otherwise weight its update by 2^63), and the round counts it as missing.
TEST(CoordinatorTest, SampleCountsOtherThanTheClientsAreRejected) {
  Harness h(6, 6, 1, [](CoordinatorOptions* o) {
    o->client_samples = [](ClientId id) { return static_cast<uint64_t>(id) + 1; };
  });
  h.net.reply = [](const v1::TaskMsg& t) {
    v1::UpdateMsg m = GoodReply(t, 4);  // reports id + 1 samples
    if (t.client_id() == 3) m.set_num_samples(uint64_t{1} << 63);
    if (t.client_id() == 4) m.set_num_samples(4);  // one short
    return std::vector<v1::UpdateMsg>{m};
  };
  std::vector<float> x0(4, 0.0f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  EXPECT_EQ(s.received, 4);
  EXPECT_EQ(s.missing, 2);
  const std::string all = ::testing::PrintToString(s.rejections);
  EXPECT_THAT(all, HasSubstr("client 3: reported 9223372036854775808 training samples; the "
                             "client holds 4"));
  EXPECT_THAT(all, HasSubstr("client 4: reported 4 training samples; the client holds 5"));
}

// federation.require_all: a round that would go on without a sampled client's update fails
// the run, and the model is not changed; without it the round is counted as missing one.
TEST(CoordinatorTest, RequireAllFailsARoundWithAMissingUpdate) {
  for (bool require_all : {false, true}) {
    Harness h(5, 5, 1, [require_all](CoordinatorOptions* o) { o->require_all = require_all; });
    h.net.reply = [](const v1::TaskMsg& t) {
      v1::UpdateMsg m = GoodReply(t, 4);
      if (t.client_id() == 2) m.set_error("out of memory");
      return std::vector<v1::UpdateMsg>{m};
    };
    std::vector<float> x0(4, 0.25f);
    FT_ASSERT_OK(h.coord->Init(x0));
    absl::StatusOr<RoundSummary> s = h.coord->RunRound();
    if (require_all) {
      ASSERT_FALSE(s.ok());
      EXPECT_THAT(std::string(s.status().message()),
                  HasSubstr("round 1 closed without 1 of its 5 sampled clients' updates and "
                            "federation.require_all is set"));
      EXPECT_EQ(std::vector<float>(h.coord->model().begin(), h.coord->model().end()), x0);
    } else {
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->missing, 1);
      EXPECT_EQ(s->received, 4);
    }
  }
}

TEST(CoordinatorTest, BadRepliesAreRejectedWithReasonsAndTheRoundGoesOn) {
  Harness h(10, 10, 1);
  h.net.reply = [](const v1::TaskMsg& t) {
    v1::UpdateMsg m = GoodReply(t, 4);
    switch (t.client_id()) {
      case 1: m.set_round(t.round() + 7); break;                    // stale / future round
      case 2: m.mutable_up()->mutable_parts(0)->set_dim(5); break;   // wrong dimension
      case 3: {                                                     // NaN value
        std::string* d = m.mutable_up()->mutable_parts(0)->mutable_data();
        const float nan = std::nanf("");
        std::memcpy(d->data(), &nan, 4);
        break;
      }
      case 4: m.mutable_up()->mutable_parts(0)->set_codec("topk/1"); break;
      case 5: m.set_error("out of memory"); break;
      case 6: m.set_client_id(42); break;                           // not sampled
      case 7: m.set_num_samples(0); break;
      default: break;
    }
    std::vector<v1::UpdateMsg> out{m};
    if (t.client_id() == 8) out.push_back(GoodReply(t, 4));          // duplicate reply
    return out;
  };
  std::vector<float> x0(4, 0.0f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  EXPECT_EQ(s.sampled, 10);
  EXPECT_EQ(s.received, 3);  // clients 0, 8 and 9; 8's duplicate is refused
  const std::string all = ::testing::PrintToString(s.rejections);
  EXPECT_THAT(all, HasSubstr("client 1: update for round 8, current round is 1"));
  EXPECT_THAT(all, HasSubstr("client 2: part 0 has 5 floats; model has 4"));
  EXPECT_THAT(all, HasSubstr("client 3: part 0: decoded vector has a non-finite value"));
  EXPECT_THAT(all, HasSubstr("client 4: part 0: codec 'topk/1'"));
  EXPECT_THAT(all, HasSubstr("client 5: worker failed: out of memory"));
  EXPECT_THAT(all, HasSubstr("client 42: was not asked this round"));
  EXPECT_THAT(all, HasSubstr("client 7: reported 0 training samples"));
  EXPECT_THAT(all, HasSubstr("client 8: was not asked this round or already replied"));
  EXPECT_THAT(all, HasSubstr("no reply by the round deadline"));  // 1 and 6 never answered
  // The model moved by the weighted mean of the accepted replies only.
  for (float v : h.coord->model()) EXPECT_TRUE(std::isfinite(v));
}

// A transport may deliver tensors' bytes outside the message, in pieces (a network transport
// does): the round's model, byte count and rejections are those of the same replies whole.
TEST(CoordinatorTest, TensorsDeliveredOutsideTheMessageGiveTheSameRound) {
  std::vector<std::vector<float>> models;
  std::vector<RoundSummary> sums;
  for (size_t split : {size_t{0}, size_t{5}}) {
    Harness h(6, 6, 1);
    h.net.split_parts = split;
    h.net.reply = [](const v1::TaskMsg& t) {
      v1::UpdateMsg m = GoodReply(t, 40);
      if (t.client_id() == 2) {  // NaN in a value that straddles two pieces
        const float nan = std::nanf("");
        std::memcpy(m.mutable_up()->mutable_parts(0)->mutable_data()->data() + 12, &nan, 4);
      }
      if (t.client_id() == 3) m.mutable_up()->mutable_parts(0)->mutable_data()->resize(157);
      return std::vector<v1::UpdateMsg>{m};
    };
    FT_ASSERT_OK(h.coord->Init(std::vector<float>(40, 0.25f)));
    FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
    models.emplace_back(h.coord->model().begin(), h.coord->model().end());
    sums.push_back(s);
  }
  EXPECT_EQ(models[0], models[1]);  // bitwise
  EXPECT_EQ(sums[0].received, 4);
  EXPECT_EQ(sums[1].received, sums[0].received);
  EXPECT_EQ(sums[1].bytes_up, sums[0].bytes_up);
  EXPECT_EQ(sums[1].rejections, sums[0].rejections);
  const std::string all = ::testing::PrintToString(sums[1].rejections);
  EXPECT_THAT(all, HasSubstr("client 2: part 0: decoded vector has a non-finite value (nan) at index 3"));
  EXPECT_THAT(all, HasSubstr("client 3: part 0: identity/1 payload of 157 bytes for 40 floats"));
}

TEST(CoordinatorTest, AcceptedSetAndModelMatchTheFormula) {
  Harness h(3, 3, 1);
  h.net.reply = [](const v1::TaskMsg& t) {
    v1::UpdateMsg m = GoodReply(t, 2);
    if (t.client_id() == 1) m.set_error("boom");
    return std::vector<v1::UpdateMsg>{m};
  };
  std::vector<float> x0 = {1.0f, 1.0f};
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  EXPECT_EQ(s.received, 2);
  EXPECT_EQ(s.rejected, 1);
  // Clients 0 (n=1) and 2 (n=3): weights 1/4, 3/4; deltas 0.01(j+1) and 0.03(j+1).
  for (size_t j = 0; j < 2; ++j) {
    const float d0 = static_cast<float>(0.01 * (j + 1)), d2 = static_cast<float>(0.03 * (j + 1));
    EXPECT_EQ(h.coord->model()[j], 1.0f + static_cast<float>(0.25 * d0 + 0.75 * d2));
  }
}

TEST(CoordinatorTest, AccountsBytesAndWritesMetricsRows) {
  Harness h(10, 4, 2);
  h.net.reply = [](const v1::TaskMsg& t) { return std::vector<v1::UpdateMsg>{GoodReply(t, 8)}; };
  std::vector<float> x0(8, 0.0f);
  FT_ASSERT_OK(h.coord->Init(x0));
  uint64_t down = 0;
  FT_ASSERT_OK(h.coord->Run([&](const RoundSummary& s) { down += s.bytes_down; }));
  ASSERT_EQ(h.sink.rows.size(), 2u);
  uint64_t expect_down = 0;
  for (const v1::TaskMsg& t : h.net.tasks) expect_down += t.ByteSizeLong();
  EXPECT_EQ(down, expect_down);
  EXPECT_EQ(std::get<int64_t>(*h.sink.rows[1].Get("cum_bytes_down")), static_cast<int64_t>(expect_down));
  EXPECT_GT(std::get<int64_t>(*h.sink.rows[1].Get("cum_bytes_up")), 2 * 4 * 8 * 4);
  EXPECT_EQ(std::get<int64_t>(*h.sink.rows[0].Get("round")), 1);  // 1-based
}

// FedAvg's server half that records the learning rate each Update is told.
class LrRecordingServer final : public ServerAlgorithm {
 public:
  absl::Status Init(ConstVec x0, ServerState* s) override { return inner_.Init(x0, s); }
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override {
    lrs.push_back(info.lr);
    return inner_.Update(updates, info, s);
  }
  std::vector<double> lrs;

 private:
  FedAvgServer inner_{FedAvgOptions{}};
};

TEST(CoordinatorTest, LearningRateDecaysPerRound) {
  Harness h(4, 2, 3);
  h.opts.lr = 0.1;
  h.opts.lr_decay = 0.5;
  LrRecordingServer algo;
  h.coord = std::make_unique<Coordinator>(h.opts, &algo, &h.net, &h.uplink, nullptr, &h.sink,
                                          &h.clock, nullptr);
  h.net.reply = [](const v1::TaskMsg& t) { return std::vector<v1::UpdateMsg>{GoodReply(t, 1)}; };
  std::vector<float> x0(1, 0.0f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK(h.coord->Run(nullptr));
  ASSERT_EQ(h.net.tasks.size(), 6u);
  EXPECT_EQ(h.net.tasks[0].lr(), 0.1);
  EXPECT_EQ(h.net.tasks[2].lr(), 0.05);
  EXPECT_EQ(h.net.tasks[4].lr(), 0.025);
  // The server half is told the rate its round's updates were produced with (RoundInfo::lr).
  EXPECT_EQ(algo.lrs, (std::vector<double>{0.1, 0.05, 0.025}));
}

// A compressed uplink: corrupt Top-K messages (truncated, an index out of range, a header
// for another k) are rejected with the sender named and counted; the round goes on with the
// rest, and the model moves by their mean only.
TEST(CoordinatorTest, CorruptCompressedMessagesAreRejectedAndCounted) {
  CompressorOptions o;
  o.compressor = "topk";
  o.k = 2;
  o.index_encoding = "u32";
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Compressor> topk, MakeCompressor(o, 6));
  o.k = 3;
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Compressor> topk3, MakeCompressor(o, 6));
  FedAvgServer algo{FedAvgOptions{}};
  ScriptedTransport net;
  MemoryMetricsSink sink;
  RealClock clock;
  CoordinatorOptions opts;
  opts.num_clients = 5;
  opts.clients_per_round = 5;
  opts.rounds = 1;
  UplinkCodec uplink(UplinkOptions{}, topk.get(), nullptr);
  Coordinator coord(opts, &algo, &net, &uplink, nullptr, &sink, &clock, nullptr);
  net.reply = [&](const v1::TaskMsg& t) {
    v1::UpdateMsg m;
    m.set_round(t.round());
    m.set_client_id(t.client_id());
    m.set_num_samples(1);
    m.set_train_loss(1.0);
    Payload p;
    p.parts.push_back({0.f, 1.f, 0.f, -2.f, 0.5f, 0.f});
    RngStream rng = RngStream::For(0, 0, t.client_id(), Purpose::kCompression);
    const Compressor& c = t.client_id() == 3 ? *topk3 : *topk;
    EXPECT_TRUE(EncodePayload(p, c, rng, m.mutable_up()).ok());
    std::string* d = m.mutable_up()->mutable_parts(0)->mutable_data();
    if (t.client_id() == 1) d->resize(d->size() - 3);  // truncated
    if (t.client_id() == 2) {                         // last index -> 0xffffffff
      for (size_t b = d->size() - 12; b < d->size() - 8; ++b) (*d)[b] = '\xff';
    }
    return std::vector<v1::UpdateMsg>{m};
  };
  std::vector<float> x0(6, 0.0f);
  FT_ASSERT_OK(coord.Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, coord.RunRound());
  EXPECT_EQ(s.received, 2);  // clients 0 and 4
  EXPECT_EQ(s.rejected, 3);
  EXPECT_EQ(std::get<int64_t>(*sink.rows[0].Get("rejected")), 3);
  const std::string all = ::testing::PrintToString(s.rejections);
  EXPECT_THAT(all, HasSubstr("client 1: part 0:"));
  EXPECT_THAT(all, HasSubstr("client 2: part 0:"));
  EXPECT_THAT(all, HasSubstr("client 3: part 0:"));
  // Top-2 of (0, 1, 0, -2, 0.5, 0) keeps indices 1 and 3; the mean of two equal messages.
  const std::vector<float> want = {0.f, 1.f, 0.f, -2.f, 0.f, 0.f};
  for (size_t j = 0; j < 6; ++j) EXPECT_EQ(coord.model()[j], want[j]) << j;
}

}  // namespace
}  // namespace fedtrain
