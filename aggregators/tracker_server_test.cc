// The tracker error-feedback methods through the real uplink pipeline: UplinkCodec on the
// workers (state in ClientState), TrackerServer around FedAvg on the server. Checks
// docs/compression.md §2.2/§2.4 in the partial-participation form: h = (1/N) sum_i h_i (U9), the
// init protocol, and that FedAvg (uniform, eta_g = 1) then steps by exactly h.
#include "aggregators/tracker_server.h"

#include <cmath>
#include <map>
#include <vector>

#include "aggregators/fedavg.h"
#include "compression/uplink_codec.h"
#include "compression/payload_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

constexpr size_t kDim = 40;
constexpr uint64_t kClients = 6;

std::unique_ptr<Compressor> Make(const std::string& name) {
  CompressorOptions o;
  o.compressor = name;
  o.k = 3;
  auto c = MakeCompressor(o, kDim);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// A client's "update" in round t: a fixed client-specific direction plus a round-dependent
// wiggle, so trackers have something to follow.
std::vector<float> UpdateOf(uint64_t client, uint64_t round) {
  RngStream r = RngStream::For(11, round, client, Purpose::kTest);
  std::vector<float> u(kDim);
  for (size_t j = 0; j < kDim; ++j)
    u[j] = static_cast<float>(0.1 * std::sin(static_cast<double>(client * kDim + j)) +
                              0.01 * r.Normal());
  return u;
}

double RelErr(absl::Span<const double> a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t j = 0; j < a.size(); ++j) {
    num += (a[j] - b[j]) * (a[j] - b[j]);
    den += b[j] * b[j];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

void RunPipeline(Feedback method, double eta) {
  std::unique_ptr<Compressor> topk = Make("topk");
  std::unique_ptr<Compressor> dense = Make("identity");
  ASSERT_NE(topk, nullptr);
  UplinkOptions uo;
  uo.feedback.method = method;
  uo.feedback.eta = eta;
  UplinkCodec enc(uo, topk.get(), dense.get());
  FedAvgOptions fo;
  fo.weighting = "uniform";
  TrackerServer server(std::make_unique<FedAvgServer>(fo), uo.feedback, kClients);
  ServerState s;
  std::vector<float> x0(kDim, 0.5f);
  FT_ASSERT_OK(server.Init(x0, &s));

  std::map<ClientId, ClientState> states;
  std::map<ClientId, int> messages;
  for (uint64_t round = 0; round < 30; ++round) {
    // Partial participation: a round-dependent subset of 3 clients, in id order.
    std::vector<ClientId> sampled;
    for (ClientId id = 0; id < kClients; ++id)
      if ((id + round) % 2 == 0 || id == round % kClients) sampled.push_back(id);
    std::vector<Payload> decoded(sampled.size());
    std::vector<ClientUpdate> updates;
    for (size_t i = 0; i < sampled.size(); ++i) {
      const ClientId id = sampled[i];
      Payload up;
      up.parts.push_back(UpdateOf(id, round));
      RngStream rng = RngStream::For(1, round, id, Purpose::kCompression);
      v1::Payload wire;
      FT_ASSERT_OK(enc.Encode(up, rng, &states[id], &wire));
      // The first message of a client is its dense tracker initialisation.
      EXPECT_EQ(wire.parts(0).codec(), messages[id]++ == 0 ? "identity/1" : "topk/1");
      std::vector<bool> is_dense;
      FT_ASSERT_OK(DecodePayload(wire, *topk, 1, kDim, &decoded[i], dense.get(), &is_dense));
      ClientUpdate u;
      u.id = id;
      u.num_samples = 1;
      u.parts.push_back(decoded[i].parts[0]);
      u.dense = is_dense;
      FT_ASSERT_OK(server.CheckUpdate(u));
      updates.push_back(u);
    }
    const std::vector<float> before = s.x;
    RoundInfo info;
    info.round = round;
    FT_ASSERT_OK(server.Update(updates, info, &s));

    // U9 (partial participation): server h == (1/N) sum of every client's h_i.
    std::vector<double> mean(kDim, 0.0);
    for (const auto& [id, st] : states) {
      const std::vector<double>& h = st.wide.at("ef.h.0");
      for (size_t j = 0; j < kDim; ++j) mean[j] += h[j] / static_cast<double>(kClients);
    }
    // 1e-12: the two sides add the same float32 messages in different orders (double).
    EXPECT_LT(RelErr(server.trackers()[0].h(), mean), 1e-12) << "round " << round;
    // FedAvg (uniform, eta_g = 1) steps by h^{t+1}; 1e-6 relative: v_i are float32.
    for (size_t j = 0; j < kDim; ++j)
      EXPECT_NEAR(s.x[j] - before[j], server.trackers()[0].h()[j],
                  1e-6 * (1.0 + std::fabs(server.trackers()[0].h()[j])))
          << "round " << round << " j " << j;
  }
}

TEST(TrackerServerTest, Ef21PipelineKeepsTheServerTrackerEqualToTheClientMean) {
  RunPipeline(Feedback::kEf21, 0.0);
}

TEST(TrackerServerTest, EControlPipelineKeepsTheServerTrackerEqualToTheClientMean) {
  RunPipeline(Feedback::kEControl, 0.05);
}

TEST(TrackerServerTest, InitProtocolViolationsAreRefusedWithoutChangingState) {
  FedAvgOptions fo;
  fo.weighting = "uniform";
  FeedbackOptions fb;
  fb.method = Feedback::kEControl;
  fb.eta = 0.01;
  TrackerServer server(std::make_unique<FedAvgServer>(fo), fb, kClients);
  ServerState s;
  std::vector<float> x0(kDim, 0.0f), msg(kDim, 1.0f);
  FT_ASSERT_OK(server.Init(x0, &s));
  ClientUpdate u;
  u.id = 2;
  u.num_samples = 1;
  u.parts.push_back(msg);
  u.dense = {false};
  EXPECT_THAT(server.CheckUpdate(u), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("client 2")));
  u.dense = {true};
  FT_ASSERT_OK(server.CheckUpdate(u));
  RoundInfo info;
  FT_ASSERT_OK(server.Update({u}, info, &s));
  EXPECT_THAT(server.CheckUpdate(u), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("client 2")));
  u.id = kClients;  // outside the population
  EXPECT_THAT(server.CheckUpdate(u), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("6")));
  // h moved by exactly msg / N and nothing else.
  for (double h : server.trackers()[0].h()) EXPECT_EQ(h, 1.0 / kClients);
}

TEST(UplinkCodecTest, FailedEncodeLeavesTheStateUnchanged) {
  std::unique_ptr<Compressor> topk = Make("topk");
  ASSERT_NE(topk, nullptr);
  UplinkOptions uo;
  uo.feedback.method = Feedback::kEf14;
  UplinkCodec enc(uo, topk.get(), nullptr);
  ClientState st;
  Payload up;
  up.parts.push_back(UpdateOf(1, 0));
  RngStream rng = RngStream::For(1, 0, 1, Purpose::kCompression);
  v1::Payload wire;
  FT_ASSERT_OK(enc.Encode(up, rng, &st, &wire));
  // EF14: the stored error is p - C(p) with p = update (e was 0): the 3 sent entries are 0.
  const std::vector<double> e = st.wide.at("ef.e.0");
  int zeros = 0;
  for (size_t j = 0; j < kDim; ++j) {
    if (e[j] == 0.0) ++zeros;
    else EXPECT_EQ(e[j], static_cast<double>(up.parts[0][j]));
  }
  EXPECT_EQ(zeros, 3);
  up.parts[0][7] = NAN;
  EXPECT_THAT(enc.Encode(up, rng, &st, &wire),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 7")));
  EXPECT_EQ(st.wide.at("ef.e.0"), e);
}

TEST(UplinkCodecTest, ClippingScalesTheUpdateBeforeCompression) {
  std::unique_ptr<Compressor> id = Make("identity");
  UplinkOptions uo;
  uo.clip_norm = 0.5;
  UplinkCodec enc(uo, id.get(), nullptr);
  ClientState st;
  Payload up;
  up.parts.push_back(std::vector<float>(kDim, 1.0f));  // norm sqrt(40)
  RngStream rng = RngStream::For(1, 0, 1, Purpose::kCompression);
  v1::Payload wire;
  FT_ASSERT_OK(enc.Encode(up, rng, &st, &wire));
  Payload back;
  FT_ASSERT_OK(DecodePayload(wire, *id, 1, kDim, &back));
  double sq = 0;
  for (float v : back.parts[0]) sq += static_cast<double>(v) * v;
  EXPECT_NEAR(std::sqrt(sq), 0.5, 1e-6);  // float32 values
  EXPECT_TRUE(st.wide.empty());           // no feedback, no state
}

}  // namespace
}  // namespace fedtrain
