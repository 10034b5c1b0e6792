// Coordinator checkpoint / resume and the straggler options, with the real Coordinator:
//  (a) a run stopped after K rounds, snapshotted (directly or through a checkpoint file), and
//      continued by a fresh Coordinator + algorithm gives the uninterrupted run's model and
//      round summaries bit for bit: FedAvg, FedAvgM (server momentum), SCAFFOLD (server c and
//      client c_i), EF21 through TrackerServer (tracker h and initialised bits); also when the
//      round after the snapshot was run and lost (workers roll their states back with
//      WorkerOptions::versioned_state and track_accepted);
//  (b) Restore refuses a snapshot that does not fit, naming what, and changes nothing;
//  (c) over_selection: sample ceil(cpr (1 + over)) (at most N), close after cpr accepted;
//  (d) min_updates: a round with too few accepted updates fails and leaves the model alone;
//  (e) track_accepted: TaskMsg.accepted_through is 1 + the last accepted round of the client.
// Clients are the quadratic fixture (tests/testing/quadratic.h) run by real Workers behind the
// in-process hub; (c)-(e) use a scripted transport to control which replies arrive and when.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/fedavg.h"
#include "aggregators/registry.h"
#include "client/client_state_store.h"
#include "compression/uplink_codec.h"
#include "client/worker.h"
#include "comm/inproc.h"
#include "compression/payload_codec.h"
#include "compression/privacy_accountant.h"
#include "core/clock.h"
#include "core/status_macros.h"
#include "core/thread_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/checkpoint.h"
#include "server/coordinator.h"
#include "aggregators/tracker_server.h"
#include "tests/testing/bits.h"
#include "tests/testing/quadratic.h"
#include "tests/testing/scripted_transport.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::Bits;
using ::fedtrain::testing::ScriptedTransport;
using ::fedtrain::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr size_t kDim = 5;


// Time moves only when the test says so (one second per round), so wall_s is deterministic
// and a restarted server's clock can start anywhere. Read and advanced by the test thread only.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_;
};

// Every RoundSummary field, bit for bit (doubles compared as bits).
void ExpectSameSummary(const RoundSummary& got, const RoundSummary& want) {
  SCOPED_TRACE(::testing::Message() << "round " << want.round);
  EXPECT_EQ(got.round, want.round);
  EXPECT_EQ(got.sampled, want.sampled);
  EXPECT_EQ(got.received, want.received);
  EXPECT_EQ(got.rejected, want.rejected);
  EXPECT_EQ(got.refused, want.refused);
  EXPECT_EQ(Bits(got.train_loss), Bits(want.train_loss));
  ASSERT_EQ(got.test.has_value(), want.test.has_value());
  if (want.test) {
    EXPECT_EQ(Bits(got.test->loss), Bits(want.test->loss));
    EXPECT_EQ(Bits(got.test->accuracy), Bits(want.test->accuracy));
    EXPECT_EQ(got.test->count, want.test->count);
  }
  EXPECT_EQ(got.bytes_up, want.bytes_up);
  EXPECT_EQ(got.bytes_down, want.bytes_down);
  EXPECT_EQ(got.cum_bytes_up, want.cum_bytes_up);
  EXPECT_EQ(got.cum_bytes_down, want.cum_bytes_down);
  EXPECT_EQ(Bits(got.lr), Bits(want.lr));
  EXPECT_EQ(Bits(got.wall_s), Bits(want.wall_s));
  EXPECT_EQ(got.rejections, want.rejections);
  ASSERT_EQ(got.privacy.has_value(), want.privacy.has_value());
  if (want.privacy) {
    EXPECT_EQ(Bits(got.privacy->epsilon), Bits(want.privacy->epsilon));
    EXPECT_EQ(Bits(got.privacy->order), Bits(want.privacy->order));
    EXPECT_EQ(got.privacy_guarantee, want.privacy_guarantee);
  }
}

void ExpectSameSnapshot(const CoordinatorSnapshot& got, const CoordinatorSnapshot& want) {
  EXPECT_EQ(got.state.round, want.state.round);
  EXPECT_EQ(Bits(got.state.x), Bits(want.state.x));
  ASSERT_EQ(got.state.vectors.size(), want.state.vectors.size());
  for (const auto& [k, v] : want.state.vectors) {
    ASSERT_EQ(got.state.vectors.count(k), 1u) << k;
    EXPECT_EQ(Bits(got.state.vectors.at(k)), Bits(v)) << k;
  }
  ASSERT_EQ(got.algorithm_extra.size(), want.algorithm_extra.size());
  for (const auto& [k, v] : want.algorithm_extra) {
    ASSERT_EQ(got.algorithm_extra.count(k), 1u) << k;
    EXPECT_EQ(Bits(got.algorithm_extra.at(k)), Bits(v)) << k;
  }
  EXPECT_EQ(got.accepted_through, want.accepted_through);
  EXPECT_EQ(got.cum_bytes_up, want.cum_bytes_up);
  EXPECT_EQ(got.cum_bytes_down, want.cum_bytes_down);
}

// ---------------------------------------------------------------------------------------------
// (a) Real workers: the job, the client side (survives a server restart, as deployed workers
// keep running) and the server side (rebuilt from nothing on a restart).

struct Spec {
  std::string algorithm = "fedavg";
  v1::AlgorithmConfig cfg;
  bool ef21 = false;  // EF21 uplink (Top-2) with TrackerServer around the server half
  bool track_accepted = false;
  bool versioned_state = false;
  int64_t num_clients = 6, clients_per_round = 3, rounds = 6;
  std::shared_ptr<const PrivacyAccountant> privacy;  // CoordinatorOptions::privacy
};

// The algorithm's factory from a registry of the built-ins (each caller builds its own: no
// process-wide registry).
const AlgorithmFactory& Factory(const AlgorithmRegistry& reg, const std::string& name) {
  absl::StatusOr<const AlgorithmFactory*> f = reg.Find(name);
  FT_CHECK(f.ok());
  return **f;
}

std::vector<float> X0() {
  std::vector<float> x0(kDim);
  for (size_t j = 0; j < kDim; ++j) x0[j] = 0.25f * static_cast<float>(j) - 0.5f;
  return x0;
}

Spec MakeSpec(const std::string& algorithm) {
  Spec s;
  s.algorithm = algorithm;
  s.cfg.set_name(algorithm);
  return s;
}

class Clients {
 public:
  explicit Clients(const Spec& spec)
      : data_(testing::QuadraticClients(/*seed=*/3, spec.num_clients, kDim)), pool_(2) {
    for (int64_t i = 0; i < spec.num_clients; ++i) idx_.push_back({static_cast<uint32_t>(i)});
    AlgorithmRegistry reg;
    RegisterBuiltinAlgorithms(&reg);
    const AlgorithmFactory& f = Factory(reg, spec.algorithm);
    absl::StatusOr<std::unique_ptr<ClientAlgorithm>> c = f.MakeClient(spec.cfg);
    FT_CHECK(c.ok());
    algo_ = std::move(*c);
    absl::StatusOr<std::unique_ptr<ServerAlgorithm>> server = f.MakeServer(spec.cfg);
    FT_CHECK(server.ok());
    CompressorOptions co;
    if (spec.ef21) {
      co.compressor = "topk";
      co.k = 2;
    }
    absl::StatusOr<std::unique_ptr<Compressor>> codec = MakeCompressor(co, kDim);
    FT_CHECK(codec.ok());
    codec_ = std::move(*codec);
    UplinkOptions uo;
    if (spec.ef21) {
      uo.feedback.method = Feedback::kEf21;
      absl::StatusOr<std::unique_ptr<Compressor>> dense = MakeCompressor(CompressorOptions{}, kDim);
      FT_CHECK(dense.ok());
      dense_ = std::move(*dense);
    }
    feedback_ = uo.feedback;
    uplink_ = std::make_unique<UplinkCodec>(uo, codec_.get(), dense_.get());
    WorkerOptions wo;
    wo.sgd.steps = 3;
    wo.sgd.batch_size = 1;
    wo.num_up_parts = (*server)->num_up_parts();
    wo.versioned_state = spec.versioned_state;
    wo.commit_sent = f.traits(spec.cfg).commit_sent;
    ClientDataFn fn = [this](ClientId id) -> absl::StatusOr<DataView> {
      if (id >= idx_.size()) return absl::NotFoundError(absl::StrCat("no client ", id));
      return DataView::Of(data_, idx_[id]);
    };
    for (int i = 0; i < pool_.size(); ++i)
      workers_.push_back(std::make_unique<Worker>(
          wo, algo_.get(), std::make_unique<testing::QuadraticTrainer>(kDim), fn, &store_,
          uplink_.get()));
    hub_ = std::make_unique<InProcHub>(&pool_, [this](int tid, const Task& t) {
      return workers_[tid]->Handle(t);
    });
  }

  ServerTransport* transport() { return hub_.get(); }
  const UplinkCodec* uplink() const { return uplink_.get(); }
  const FeedbackOptions& feedback() const { return feedback_; }
  const Dataset& data() const { return data_; }
  ThreadPool* pool() { return &pool_; }

 private:
  Dataset data_;
  std::vector<std::vector<uint32_t>> idx_;
  MemoryClientStateStore store_;
  std::unique_ptr<ClientAlgorithm> algo_;
  std::unique_ptr<Compressor> codec_, dense_;
  FeedbackOptions feedback_;
  std::unique_ptr<UplinkCodec> uplink_;
  ThreadPool pool_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<InProcHub> hub_;  // last: destroyed first, waits for running tasks
};

// One server process: algorithm (built from the registry like the simulation does), clock,
// evaluator and Coordinator.
class Server {
 public:
  Server(const Spec& spec, Clients* clients, absl::Time clock_start)
      : clock_(clock_start), eval_(kDim), data_(&clients->data()) {
    AlgorithmRegistry reg;
    RegisterBuiltinAlgorithms(&reg);
    absl::StatusOr<std::unique_ptr<ServerAlgorithm>> s =
        Factory(reg, spec.algorithm).MakeServer(spec.cfg);
    FT_CHECK(s.ok());
    algo_ = std::move(*s);
    if (spec.ef21)
      algo_ = std::make_unique<TrackerServer>(std::move(algo_), clients->feedback(),
                                              static_cast<uint64_t>(spec.num_clients));
    CoordinatorOptions o;
    o.num_clients = spec.num_clients;
    o.clients_per_round = spec.clients_per_round;
    o.rounds = spec.rounds;
    o.seed = 11;
    o.sampling_seed = 12;
    o.lr = 0.1;
    o.lr_decay = 0.9;
    o.eval_every = 2;
    o.track_accepted = spec.track_accepted;
    o.privacy = spec.privacy;
    coord_ = std::make_unique<Coordinator>(
        o, algo_.get(), clients->transport(), clients->uplink(),
        [this](ConstVec w) { return eval_.Evaluate(w, DataView::All(*data_)); }, nullptr,
        &clock_, clients->pool());
  }

  absl::Status Init() { return coord_->Init(X0()); }
  // RunRound, then one second passes.
  absl::StatusOr<RoundSummary> RunRound() {
    absl::StatusOr<RoundSummary> s = coord_->RunRound();
    clock_.Advance(absl::Seconds(1));
    return s;
  }
  Coordinator& coord() { return *coord_; }
  ServerAlgorithm& algo() { return *algo_; }
  ManualClock& clock() { return clock_; }

 private:
  ManualClock clock_;
  testing::QuadraticTrainer eval_;
  const Dataset* data_;
  std::unique_ptr<ServerAlgorithm> algo_;
  std::unique_ptr<Coordinator> coord_;
};

struct Restart {
  int64_t after = -1;    // snapshot after this many rounds (-1: run uninterrupted)
  int64_t lost = 0;      // rounds the first server runs after the snapshot (their results lost)
  bool via_disk = false;  // snapshot through SaveCheckpoint / LoadCheckpoint
};

struct Trace {
  std::vector<RoundSummary> rounds;  // the run's rounds (the lost ones excluded)
  std::vector<float> model;
  CoordinatorSnapshot snapshot;      // taken after `after` rounds (or `probe` rounds)
};

// Runs the job, restarting the server as `restart` says. With restart.after < 0 it still
// takes a snapshot after `probe` rounds (Snapshot() must not disturb the run).
void RunJob(const Spec& spec, const Restart& restart, int64_t probe, Trace* out) {
  Clients clients(spec);
  const absl::Time t0 = absl::Now();
  auto first = std::make_unique<Server>(spec, &clients, t0);
  FT_ASSERT_OK(first->Init());
  const int64_t stop = restart.after >= 0 ? restart.after : spec.rounds;
  for (int64_t r = 0; r < spec.rounds; ++r) {
    if (r == (restart.after >= 0 ? restart.after : probe)) {
      FT_ASSERT_OK_AND_ASSIGN(out->snapshot, first->coord().Snapshot());
    }
    if (r == stop) break;
    FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, first->RunRound());
    out->rounds.push_back(s);
  }
  if (restart.after < 0) {
    out->model.assign(first->coord().model().begin(), first->coord().model().end());
    return;
  }
  // Rounds that run after the snapshot and are then lost with the server.
  for (int64_t r = 0; r < restart.lost; ++r) {
    FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, first->RunRound());
    (void)s;
  }
  first.reset();

  CoordinatorSnapshot snap = out->snapshot;
  testing::TempDir dir;
  if (restart.via_disk) {
    const CheckpointIdentity id{spec.algorithm, "fingerprint"};
    const std::string path = dir.File("checkpoint.ftc");
    FT_ASSERT_OK(SaveCheckpoint(path, snap, id));
    FT_ASSERT_OK_AND_ASSIGN(snap, LoadCheckpoint(path, id));
  }
  // A fresh server process, started much later (its clock says so).
  Server second(spec, &clients, t0 + absl::Hours(5));
  FT_ASSERT_OK(second.Init());
  FT_ASSERT_OK(second.coord().Restore(std::move(snap)));
  EXPECT_EQ(second.coord().rounds_done(), restart.after);
  FT_ASSERT_OK(second.coord().Run([&](const RoundSummary& s) {
    out->rounds.push_back(s);
    second.clock().Advance(absl::Seconds(1));
  }));
  out->model.assign(second.coord().model().begin(), second.coord().model().end());
}

void ExpectResumeMatches(const Spec& spec, const Restart& restart) {
  Trace straight, resumed;
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, Restart{}, restart.after, &straight));
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, restart, -1, &resumed));
  ASSERT_EQ(straight.rounds.size(), static_cast<size_t>(spec.rounds));
  ASSERT_EQ(resumed.rounds.size(), static_cast<size_t>(spec.rounds));
  for (size_t r = 0; r < straight.rounds.size(); ++r)
    ExpectSameSummary(resumed.rounds[r], straight.rounds[r]);
  EXPECT_EQ(Bits(resumed.model), Bits(straight.model));
  EXPECT_NE(Bits(straight.model), Bits(X0()));  // the model moved: not two untouched x0
  // Snapshot() is deterministic and pure: the uninterrupted run's snapshot at the same round
  // equals the one the restart used (the wall clock included: one second per round).
  ExpectSameSnapshot(resumed.snapshot, straight.snapshot);
  EXPECT_EQ(Bits(resumed.snapshot.wall_s), Bits(static_cast<double>(restart.after)));
}

TEST(CoordinatorResumeTest, FedAvgResumeIsBitIdentical) {
  const Spec spec = MakeSpec("fedavg");
  ExpectResumeMatches(spec, Restart{2, 0, false});
  ExpectResumeMatches(spec, Restart{3, 0, true});
}

// Privacy accounting after a restart: the resumed server rebuilds every client's message
// count from the seeded sampling, so epsilon continues exactly; and epsilon after each round
// is the accountant's for the most-used client's count, replayed here.
TEST(CoordinatorResumeTest, PrivacyAccountingResumesExactly) {
  Spec spec = MakeSpec("fedavg");
  AccountantOptions ao;  // RQM, untrusted server: epsilon follows the most-used client
  ao.dim = kDim;
  FT_ASSERT_OK_AND_ASSIGN(PrivacyAccountant acc, PrivacyAccountant::Create(ao));
  spec.privacy = std::make_shared<const PrivacyAccountant>(std::move(acc));
  ExpectResumeMatches(spec, Restart{2, 0, false});
  ExpectResumeMatches(spec, Restart{3, 0, true});
  Trace t;
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, Restart{}, 0, &t));
  std::vector<uint64_t> sends(static_cast<size_t>(spec.num_clients), 0);
  uint64_t most = 0;
  for (size_t r = 0; r < t.rounds.size(); ++r) {
    for (ClientId id : SampleClients(12, r, spec.num_clients, spec.clients_per_round))
      most = std::max(most, ++sends[id]);
    ASSERT_TRUE(t.rounds[r].privacy.has_value());
    EXPECT_EQ(t.rounds[r].privacy->epsilon, spec.privacy->After(r + 1, most).epsilon) << r;
    EXPECT_EQ(t.rounds[r].privacy_guarantee, "untrusted_server");
  }
}

TEST(CoordinatorResumeTest, FedAvgMomentumResumeIsBitIdentical) {
  Spec spec = MakeSpec("fedavgm");
  spec.cfg.set_momentum(0.7);
  ExpectResumeMatches(spec, Restart{2, 0, false});
  ExpectResumeMatches(spec, Restart{4, 0, true});
  // The momentum really is server state that must be restored: resuming from a snapshot whose
  // momentum was zeroed gives another model.
  Trace straight, tampered;
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, Restart{}, 2, &straight));
  {
    Clients clients(spec);
    Server s1(spec, &clients, absl::Now());
    FT_ASSERT_OK(s1.Init());
    for (int r = 0; r < 2; ++r) FT_ASSERT_OK(s1.RunRound().status());
    FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot snap, s1.coord().Snapshot());
    ASSERT_EQ(snap.state.vectors.count("momentum"), 1u);
    for (float& m : snap.state.vectors["momentum"]) m = 0.0f;
    Server s2(spec, &clients, absl::Now());
    FT_ASSERT_OK(s2.Init());
    FT_ASSERT_OK(s2.coord().Restore(snap));
    FT_ASSERT_OK(s2.coord().Run(nullptr));
    tampered.model.assign(s2.coord().model().begin(), s2.coord().model().end());
  }
  EXPECT_NE(Bits(tampered.model), Bits(straight.model));
}

// Centered clipping keeps its centre (the previous output) in ServerState::vectors: a server
// checkpoint carries it, a resumed run equals the uninterrupted one, and zeroing it in the
// snapshot changes the result (so it really is state that matters).
TEST(CoordinatorResumeTest, CenteredClippingReducerResumeIsBitIdentical) {
  Spec spec = MakeSpec("fedavg");
  spec.cfg.mutable_reducer()->set_name("centered_clipping");
  (*spec.cfg.mutable_reducer()->mutable_params()->mutable_fields())["tau"].set_number_value(0.05);
  ExpectResumeMatches(spec, Restart{2, 0, false});
  ExpectResumeMatches(spec, Restart{3, 0, true});
  Trace straight, tampered;
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, Restart{}, 2, &straight));
  {
    Clients clients(spec);
    Server s1(spec, &clients, absl::Now());
    FT_ASSERT_OK(s1.Init());
    for (int r = 0; r < 2; ++r) FT_ASSERT_OK(s1.RunRound().status());
    FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot snap, s1.coord().Snapshot());
    const std::string key = "reducer.fedavg.delta.cc_v";
    ASSERT_EQ(snap.state.vectors.count(key), 1u);
    for (float& m : snap.state.vectors[key]) m = 0.0f;
    Server s2(spec, &clients, absl::Now());
    FT_ASSERT_OK(s2.Init());
    FT_ASSERT_OK(s2.coord().Restore(snap));
    FT_ASSERT_OK(s2.coord().Run(nullptr));
    tampered.model.assign(s2.coord().model().begin(), s2.coord().model().end());
  }
  EXPECT_NE(Bits(tampered.model), Bits(straight.model));
}

TEST(CoordinatorResumeTest, ScaffoldResumeIsBitIdentical) {
  Spec spec = MakeSpec("scaffold");
  ExpectResumeMatches(spec, Restart{2, 0, false});
  ExpectResumeMatches(spec, Restart{3, 0, true});
  spec.track_accepted = true;
  spec.versioned_state = true;
  ExpectResumeMatches(spec, Restart{3, 0, true});
}

// The server ran a round after its last checkpoint and died: the restarted server runs that
// round again. Workers that took part had already moved their c_i; with versioned states and
// accepted_through they roll back to the version the checkpoint accepted, so the run equals
// the uninterrupted one bit for bit.
TEST(CoordinatorResumeTest, ScaffoldLostRoundIsReplayedBitIdenticallyWithVersionedStates) {
  Spec spec = MakeSpec("scaffold");
  spec.track_accepted = true;
  spec.versioned_state = true;
  ExpectResumeMatches(spec, Restart{2, 1, true});
  ExpectResumeMatches(spec, Restart{0, 1, false});  // lost the very first round
}

// Negative control for the test above: without versioned states the replayed round starts
// from client states one round ahead, and the result differs (so the comparison can fail).
TEST(CoordinatorResumeTest, ScaffoldLostRoundDiffersWithoutVersionedStates) {
  const Spec spec = MakeSpec("scaffold");
  Trace straight, resumed;
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, Restart{}, 2, &straight));
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, Restart{2, 1, false}, -1, &resumed));
  EXPECT_NE(Bits(resumed.model), Bits(straight.model));
}

TEST(CoordinatorResumeTest, Ef21TrackerServerResumeIsBitIdentical) {
  Spec spec = MakeSpec("fedavg");
  spec.cfg.set_weighting("uniform");  // required with tracker feedback
  spec.ef21 = true;
  spec.rounds = 8;
  ExpectResumeMatches(spec, Restart{3, 0, false});
  ExpectResumeMatches(spec, Restart{5, 0, true});
  spec.track_accepted = true;
  spec.versioned_state = true;
  ExpectResumeMatches(spec, Restart{3, 1, true});  // a lost round: EF states roll back too
}

// TrackerServer's extra state (h and the initialised bits) survives SaveExtraState ->
// LoadExtraState into a fresh Init()ed server bit for bit, and the loaded server continues
// exactly as the original.
TEST(CoordinatorResumeTest, TrackerServerExtraStateRoundTrip) {
  Spec spec = MakeSpec("fedavg");
  spec.cfg.set_weighting("uniform");
  spec.ef21 = true;
  Clients clients(spec);
  Server a(spec, &clients, absl::Now());
  FT_ASSERT_OK(a.Init());
  FT_ASSERT_OK(a.RunRound().status());  // 3 of 6 clients initialise their trackers
  std::map<std::string, std::vector<double>> extra;
  FT_ASSERT_OK(a.algo().SaveExtraState(&extra));
  ASSERT_EQ(extra.size(), 2u);
  ASSERT_EQ(extra.count("tracker.0.h"), 1u);
  ASSERT_EQ(extra.count("tracker.0.initialised"), 1u);
  const auto& ta = static_cast<const TrackerServer&>(a.algo()).trackers();
  ASSERT_EQ(ta.size(), 1u);
  // Partial participation: the round's 3 clients are initialised, the other 3 are not.
  int initialised = 0;
  for (uint64_t i = 0; i < ta[0].num_clients(); ++i) {
    EXPECT_EQ(extra["tracker.0.initialised"][i], ta[0].initialised(i) ? 1.0 : 0.0);
    initialised += ta[0].initialised(i);
  }
  EXPECT_EQ(initialised, 3);
  EXPECT_EQ(Bits(extra["tracker.0.h"]),
            Bits(std::vector<double>(ta[0].h().begin(), ta[0].h().end())));

  FedAvgOptions fo;
  fo.weighting = "uniform";
  TrackerServer b(std::make_unique<FedAvgServer>(fo), clients.feedback(),
                  static_cast<uint64_t>(spec.num_clients));
  ServerState sb;
  std::vector<float> x0(kDim, 0.0f);
  FT_ASSERT_OK(b.Init(x0, &sb));
  FT_ASSERT_OK(b.LoadExtraState(extra));
  std::map<std::string, std::vector<double>> again;
  FT_ASSERT_OK(b.SaveExtraState(&again));
  ASSERT_EQ(again.size(), extra.size());
  for (const auto& [k, v] : extra) EXPECT_EQ(Bits(again.at(k)), Bits(v)) << k;
  for (uint64_t i = 0; i < ta[0].num_clients(); ++i)
    EXPECT_EQ(b.trackers()[0].initialised(i), ta[0].initialised(i)) << i;

  // Refusals name the entry.
  auto missing = extra;
  missing.erase("tracker.0.initialised");
  EXPECT_THAT(b.LoadExtraState(missing),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tracker.0.initialised"), HasSubstr("missing"))));
  auto short_h = extra;
  short_h["tracker.0.h"].pop_back();
  EXPECT_THAT(b.LoadExtraState(short_h),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tracker.0.h"), HasSubstr("wrong size"))));
  auto unknown = extra;
  unknown["tracker.1.h"] = {1.0};
  EXPECT_THAT(b.LoadExtraState(unknown),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tracker.1.h")));
}

// A refused snapshot must not change the tracker: TrackerServer::LoadExtraState checks every
// entry (and lets the wrapped algorithm refuse first) before it assigns anything.
TEST(CoordinatorResumeTest, RefusedTrackerRestoreLeavesTheTrackerUnchanged) {
  Spec spec = MakeSpec("fedavg");
  spec.cfg.set_weighting("uniform");
  spec.ef21 = true;
  Clients clients(spec);
  Server a(spec, &clients, absl::Now());
  FT_ASSERT_OK(a.Init());
  for (int r = 0; r < 2; ++r) FT_ASSERT_OK(a.RunRound().status());
  const auto& tr = static_cast<const TrackerServer&>(a.algo()).trackers();
  const std::vector<double> h_before(tr[0].h().begin(), tr[0].h().end());
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot bad, a.coord().Snapshot());
  for (double& h : bad.algorithm_extra["tracker.0.h"]) h = 42.0;
  bad.algorithm_extra.erase("tracker.0.initialised");
  EXPECT_THAT(a.coord().Restore(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("tracker.0.initialised")));
  EXPECT_EQ(Bits(std::vector<double>(tr[0].h().begin(), tr[0].h().end())), Bits(h_before));
}

// ---------------------------------------------------------------------------------------------
// (b) Restore refusals.

TEST(CoordinatorResumeTest, RestoreRefusesSnapshotsThatDoNotFitAndChangesNothing) {
  Spec spec = MakeSpec("fedavgm");
  spec.track_accepted = true;
  // Reference: the same job, never refused anything (snapshot after 2 rounds).
  Trace reference;
  ASSERT_NO_FATAL_FAILURE(RunJob(spec, Restart{}, 2, &reference));

  Clients clients(spec);
  Server s(spec, &clients, absl::Now());
  FT_ASSERT_OK(s.Init());
  FT_ASSERT_OK(s.RunRound().status());
  FT_ASSERT_OK_AND_ASSIGN(const CoordinatorSnapshot good, s.coord().Snapshot());
  ASSERT_EQ(good.state.round, 1u);
  ASSERT_EQ(good.accepted_through.size(), 3u);  // three clients took part in round 0

  struct Case {
    const char* name;
    std::function<void(CoordinatorSnapshot*)> damage;
    std::vector<std::string> says;
  };
  const ClientId some = good.accepted_through.begin()->first;
  const std::vector<Case> cases = {
      {"bigger model", [](CoordinatorSnapshot* c) { c->state.x.push_back(1.0f); },
       {"model has 6 floats", "this run's has 5"}},
      {"smaller model", [](CoordinatorSnapshot* c) { c->state.x.pop_back(); },
       {"model has 4 floats"}},
      {"missing vector", [](CoordinatorSnapshot* c) { c->state.vectors.erase("momentum"); },
       {"'momentum'", "missing"}},
      {"vector of another size",
       [](CoordinatorSnapshot* c) { c->state.vectors["momentum"].push_back(0.0f); },
       {"'momentum'", "another size"}},
      {"extra vector", [](CoordinatorSnapshot* c) { c->state.vectors["c"].assign(kDim, 0.0f); },
       {"'c'", "lacks"}},
      {"client id out of range",
       [&](CoordinatorSnapshot* c) { c->accepted_through[static_cast<ClientId>(6)] = 1; },
       {"client 6", "out of range"}},
      {"accepted after the checkpoint's round",
       [&](CoordinatorSnapshot* c) { c->accepted_through[some] = 2; },
       {absl::StrCat("client ", some), "out of range"}},
      {"round after the run's end", [](CoordinatorSnapshot* c) { c->state.round = 7; },
       {"after round 7", "6 rounds"}},
      {"algorithm state the algorithm does not read",
       [](CoordinatorSnapshot* c) { c->algorithm_extra["tracker.0.h"] = {1.0}; },
       {"tracker.0.h"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    CoordinatorSnapshot bad = good;
    c.damage(&bad);
    const absl::Status st = s.coord().Restore(bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    for (const std::string& what : c.says) EXPECT_THAT(std::string(st.message()), HasSubstr(what));
    FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot now, s.coord().Snapshot());
    ExpectSameSnapshot(now, good);
    EXPECT_EQ(s.coord().rounds_done(), 1);
  }
  // Boundaries that are accepted: accepted_through equal to the round, round equal to the
  // run's length (resumed after the last round).
  {
    CoordinatorSnapshot edge = good;
    edge.accepted_through[some] = edge.state.round;
    FT_EXPECT_OK(s.coord().Restore(edge));
    edge = good;
    edge.state.round = 6;
    FT_EXPECT_OK(s.coord().Restore(edge));
    EXPECT_EQ(s.coord().rounds_done(), 6);
  }
  // Back to the good snapshot; the run goes on exactly as one that was never refused anything.
  FT_ASSERT_OK(s.coord().Restore(good));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary r1, s.RunRound());
  ExpectSameSummary(r1, reference.rounds[1]);
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot after, s.coord().Snapshot());
  ExpectSameSnapshot(after, reference.snapshot);  // the reference's snapshot after 2 rounds
}

// ---------------------------------------------------------------------------------------------
// (c)-(e) A scripted transport: replies built per task, delivered in the order tasks were sent
// (ascending client id), DeadlineExceeded when none is left (tests/testing/scripted_transport.h).

Payload DeltaOf(ClientId c, size_t dim) { return ::fedtrain::testing::ScriptedDelta(c, dim); }
v1::UpdateMsg GoodReply(const v1::TaskMsg& t, size_t dim) {
  return ::fedtrain::testing::ScriptedGoodReply(t, dim);
}

v1::UpdateMsg FailedReply(const v1::TaskMsg& t) {
  v1::UpdateMsg m;
  m.set_round(t.round());
  m.set_client_id(t.client_id());
  m.set_error("worker crashed");
  return m;
}

struct Scripted {
  FedAvgServer algo{FedAvgOptions{}};
  ScriptedTransport net;
  IdentityCompressor codec;
  UplinkCodec uplink{UplinkOptions{}, &codec, nullptr};
  MemoryMetricsSink sink;
  RealClock clock;
  std::unique_ptr<Coordinator> coord;
  explicit Scripted(const CoordinatorOptions& o) {
    coord = std::make_unique<Coordinator>(o, &algo, &net, &uplink, nullptr, &sink, &clock,
                                          nullptr);
  }
};

CoordinatorOptions Opts(int64_t n, int64_t m, int64_t rounds) {
  CoordinatorOptions o;
  o.num_clients = n;
  o.clients_per_round = m;
  o.rounds = rounds;
  o.seed = 5;
  o.sampling_seed = 6;
  return o;
}

// FedAvg's model after one round from x0 with the replies of `ids` (the same server code, so
// the expectation is exact).
std::vector<float> FedAvgAfter(const std::vector<float>& x0, const std::vector<ClientId>& ids) {
  FedAvgServer algo{FedAvgOptions{}};
  ServerState s;
  EXPECT_TRUE(algo.Init(x0, &s).ok());
  std::vector<Payload> payloads;
  for (ClientId id : ids) payloads.push_back(DeltaOf(id, x0.size()));
  std::vector<ClientUpdate> ups;
  for (size_t i = 0; i < ids.size(); ++i) {
    ClientUpdate u;
    u.id = ids[i];
    u.num_samples = ids[i] + 1;
    u.steps = 1;
    u.parts.push_back(payloads[i].parts[0]);
    ups.push_back(u);
  }
  RoundInfo info;
  EXPECT_TRUE(algo.Update(ups, info, &s).ok());
  return s.x;
}

std::string Joined(const RoundSummary& s) { return ::testing::PrintToString(s.rejections); }

TEST(CoordinatorOverSelectionTest, SamplesCeilAndClosesAfterEnoughAccepted) {
  CoordinatorOptions o = Opts(10, 3, 1);
  o.over_selection = 0.5;  // ceil(3 * 1.5) = 5
  Scripted h(o);
  h.net.reply = [](const v1::TaskMsg& t) { return std::vector<v1::UpdateMsg>{GoodReply(t, 4)}; };
  const std::vector<float> x0(4, 0.5f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  const std::vector<ClientId> sampled = SampleClients(6, 0, 10, 5);
  EXPECT_EQ(h.net.TaskIds(0), sampled);
  EXPECT_EQ(s.sampled, 5);
  EXPECT_EQ(s.received, 3);
  EXPECT_EQ(s.rejected, 2);
  ASSERT_EQ(s.rejections.size(), 2u);
  for (size_t i = 3; i < 5; ++i)
    EXPECT_THAT(Joined(s), HasSubstr(absl::StrCat("client ", sampled[i], ": over-selected")));
  // The model moved by the first three replies (arrival order) only.
  EXPECT_EQ(Bits(h.coord->model()), Bits(FedAvgAfter(x0, {sampled[0], sampled[1], sampled[2]})));
}

TEST(CoordinatorOverSelectionTest, SampleCountIsCappedAtTheNumberOfClients) {
  CoordinatorOptions o = Opts(10, 8, 1);
  o.over_selection = 0.5;  // ceil(12) > 10
  Scripted h(o);
  h.net.reply = [](const v1::TaskMsg& t) { return std::vector<v1::UpdateMsg>{GoodReply(t, 2)}; };
  FT_ASSERT_OK(h.coord->Init(std::vector<float>(2, 0.0f)));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  EXPECT_EQ(s.sampled, 10);
  EXPECT_EQ(h.net.TaskIds(0), SampleClients(6, 0, 10, 10));
  EXPECT_EQ(s.received, 8);
  EXPECT_EQ(s.rejected, 2);
  EXPECT_THAT(Joined(s), HasSubstr("client 8: over-selected"));
  EXPECT_THAT(Joined(s), HasSubstr("client 9: over-selected"));
}

TEST(CoordinatorOverSelectionTest, RejectedRepliesDoNotCountTowardsTheQuota) {
  CoordinatorOptions o = Opts(10, 3, 1);
  o.over_selection = 1.0;  // 6 sampled
  Scripted h(o);
  const std::vector<ClientId> sampled = SampleClients(6, 0, 10, 6);
  h.net.reply = [&](const v1::TaskMsg& t) {
    return std::vector<v1::UpdateMsg>{t.client_id() == sampled[0] ? FailedReply(t)
                                                                  : GoodReply(t, 3)};
  };
  const std::vector<float> x0(3, 0.0f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  EXPECT_EQ(s.sampled, 6);
  EXPECT_EQ(s.received, 3);
  EXPECT_EQ(s.rejected, 3);  // one failed, two over-selected
  EXPECT_THAT(Joined(s), HasSubstr(absl::StrCat("client ", sampled[0], ": worker failed")));
  EXPECT_THAT(Joined(s), HasSubstr(absl::StrCat("client ", sampled[4], ": over-selected")));
  EXPECT_THAT(Joined(s), HasSubstr(absl::StrCat("client ", sampled[5], ": over-selected")));
  EXPECT_EQ(Bits(h.coord->model()), Bits(FedAvgAfter(x0, {sampled[1], sampled[2], sampled[3]})));
}

// Fewer replies than the quota: the round waits for every sampled client (here: until the
// transport has nothing left) and aggregates what came; nobody is "over-selected".
TEST(CoordinatorOverSelectionTest, TooFewRepliesCloseAtTheDeadlineWithoutOverSelectedDrops) {
  CoordinatorOptions o = Opts(10, 3, 1);
  o.over_selection = 0.5;  // 5 sampled
  Scripted h(o);
  const std::vector<ClientId> sampled = SampleClients(6, 0, 10, 5);
  h.net.reply = [&](const v1::TaskMsg& t) {
    if (t.client_id() == sampled[1] || t.client_id() == sampled[2] || t.client_id() == sampled[3])
      return std::vector<v1::UpdateMsg>{};  // silent
    return std::vector<v1::UpdateMsg>{GoodReply(t, 2)};
  };
  const std::vector<float> x0(2, 0.0f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  EXPECT_EQ(s.received, 2);
  EXPECT_EQ(s.rejected, 3);
  EXPECT_THAT(Joined(s), Not(HasSubstr("over-selected")));
  EXPECT_THAT(Joined(s), HasSubstr("no reply by the round deadline"));
  EXPECT_EQ(Bits(h.coord->model()), Bits(FedAvgAfter(x0, {sampled[0], sampled[4]})));
}

TEST(CoordinatorOverSelectionTest, ZeroOverSelectionIsTheDefaultBehaviour) {
  for (double over : {0.0, -0.0}) {
    CoordinatorOptions o = Opts(10, 4, 3);
    o.over_selection = over;
    Scripted h(o), d(Opts(10, 4, 3));  // `d`: options left at their defaults
    for (Scripted* x : {&h, &d})
      x->net.reply = [](const v1::TaskMsg& t) {
        return std::vector<v1::UpdateMsg>{GoodReply(t, 3)};
      };
    const std::vector<float> x0(3, 1.0f);
    FT_ASSERT_OK(h.coord->Init(x0));
    FT_ASSERT_OK(d.coord->Init(x0));
    for (uint64_t r = 0; r < 3; ++r) {
      FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
      FT_ASSERT_OK_AND_ASSIGN(RoundSummary sd, d.coord->RunRound());
      EXPECT_EQ(h.net.TaskIds(r), SampleClients(6, r, 10, 4));
      EXPECT_EQ(s.sampled, 4);
      EXPECT_EQ(s.received, 4);
      EXPECT_EQ(s.rejected, 0);
      EXPECT_TRUE(s.rejections.empty()) << Joined(s);
      EXPECT_EQ(s.bytes_up, sd.bytes_up);
      EXPECT_EQ(s.bytes_down, sd.bytes_down);
    }
    EXPECT_EQ(Bits(h.coord->model()), Bits(d.coord->model()));
  }
}

// The sample count is ceil(cpr * over) on top of cpr, exactly: in floating point 100 * 1.1 is
// 110.00000000000001, whose ceiling would be 111 (likewise 50 / 0.1 -> 56, 25 / 0.12 -> 29).
TEST(CoordinatorOverSelectionTest, SampleCountIsTheExactCeiling) {
  struct Case { int64_t cpr; double over; int64_t want; };
  for (const Case& c : {Case{100, 0.1, 110}, Case{50, 0.1, 55}, Case{25, 0.12, 28}}) {
    CoordinatorOptions o = Opts(1000, c.cpr, 1);
    o.over_selection = c.over;
    Scripted h(o);
    h.net.reply = [](const v1::TaskMsg& t) {
      return std::vector<v1::UpdateMsg>{GoodReply(t, 1)};
    };
    FT_ASSERT_OK(h.coord->Init(std::vector<float>(1, 0.0f)));
    FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
    EXPECT_EQ(s.sampled, c.want) << "cpr " << c.cpr << " over " << c.over;
  }
}

// ---------------------------------------------------------------------------------------------
// (d) min_updates.

TEST(CoordinatorMinUpdatesTest, TooFewAcceptedUpdatesFailTheRoundAndLeaveTheModel) {
  CoordinatorOptions o = Opts(4, 4, 3);
  o.min_updates = 3;
  o.track_accepted = true;
  Scripted h(o);
  h.net.reply = [](const v1::TaskMsg& t) {
    // Round 0: client 3 fails (3 accepted: exactly enough). Round 1: clients 0 and 2 fail.
    const bool fail = (t.round() == 0 && t.client_id() == 3) ||
                      (t.round() == 1 && (t.client_id() == 0 || t.client_id() == 2));
    return std::vector<v1::UpdateMsg>{fail ? FailedReply(t) : GoodReply(t, 3)};
  };
  const std::vector<float> x0(3, 0.25f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s0, h.coord->RunRound());
  EXPECT_EQ(s0.received, 3);
  FT_ASSERT_OK_AND_ASSIGN(const CoordinatorSnapshot before, h.coord->Snapshot());
  ASSERT_EQ(h.sink.rows.size(), 1u);

  const absl::StatusOr<RoundSummary> s1 = h.coord->RunRound();
  EXPECT_THAT(s1, StatusIs(absl::StatusCode::kUnavailable,
                           AllOf(HasSubstr("round 2"), HasSubstr("2 accepted updates"),
                                 HasSubstr("federation.min_updates (3)"),
                                 HasSubstr("client 0: worker failed"))));
  // Nothing moved: model, round, byte counters, accepted_through; no metrics row.
  FT_ASSERT_OK_AND_ASSIGN(const CoordinatorSnapshot after, h.coord->Snapshot());
  ExpectSameSnapshot(after, before);
  EXPECT_EQ(h.coord->rounds_done(), 1);
  EXPECT_EQ(h.sink.rows.size(), 1u);
}

TEST(CoordinatorMinUpdatesTest, ZeroMeansAnEmptyRoundIsAccepted) {
  Scripted h(Opts(3, 3, 1));
  h.net.reply = [](const v1::TaskMsg& t) { return std::vector<v1::UpdateMsg>{FailedReply(t)}; };
  const std::vector<float> x0(2, 0.25f);
  FT_ASSERT_OK(h.coord->Init(x0));
  FT_ASSERT_OK_AND_ASSIGN(RoundSummary s, h.coord->RunRound());
  EXPECT_EQ(s.received, 0);
  EXPECT_EQ(Bits(h.coord->model()), Bits(x0));  // FedAvg does not move without updates
  EXPECT_EQ(h.coord->rounds_done(), 1);
}

// ---------------------------------------------------------------------------------------------
// (e) track_accepted.

TEST(CoordinatorTrackAcceptedTest, TasksCarryOnePlusTheLastAcceptedRound) {
  CoordinatorOptions o = Opts(3, 3, 4);
  o.track_accepted = true;
  Scripted h(o);
  h.net.reply = [](const v1::TaskMsg& t) {
    if (t.round() == 1 && t.client_id() == 1) return std::vector<v1::UpdateMsg>{FailedReply(t)};
    v1::UpdateMsg m = GoodReply(t, 2);
    if (t.round() == 2 && t.client_id() == 2) m.mutable_up()->mutable_parts(0)->set_dim(3);
    if (t.round() == 3 && t.client_id() == 0) return std::vector<v1::UpdateMsg>{};  // silent
    return std::vector<v1::UpdateMsg>{m};
  };
  FT_ASSERT_OK(h.coord->Init(std::vector<float>(2, 0.0f)));
  for (int r = 0; r < 4; ++r) FT_ASSERT_OK(h.coord->RunRound().status());
  std::map<std::pair<uint64_t, ClientId>, uint64_t> got;
  for (const v1::TaskMsg& t : h.net.tasks) got[{t.round(), t.client_id()}] = t.accepted_through();
  const std::map<std::pair<uint64_t, ClientId>, uint64_t> want = {
      {{0, 0}, 0}, {{0, 1}, 0}, {{0, 2}, 0},  // never accepted
      {{1, 0}, 1}, {{1, 1}, 1}, {{1, 2}, 1},  // all accepted in round 0
      {{2, 0}, 2}, {{2, 1}, 1}, {{2, 2}, 2},  // client 1 failed in round 1
      {{3, 0}, 3}, {{3, 1}, 3}, {{3, 2}, 2},  // client 2's round-2 reply was rejected
  };
  EXPECT_EQ(got, want);
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot snap, h.coord->Snapshot());
  // Round 3: client 0 never answered (dropped at the deadline): no advance.
  EXPECT_EQ(snap.accepted_through, (std::map<ClientId, uint64_t>{{0, 3}, {1, 4}, {2, 4}}));
}

TEST(CoordinatorTrackAcceptedTest, PartialParticipationFollowsTheAcceptedRounds) {
  CoordinatorOptions o = Opts(8, 3, 10);
  o.track_accepted = true;
  Scripted h(o);
  // Client 5 always fails; everyone else always answers.
  h.net.reply = [](const v1::TaskMsg& t) {
    return std::vector<v1::UpdateMsg>{t.client_id() == 5 ? FailedReply(t) : GoodReply(t, 2)};
  };
  FT_ASSERT_OK(h.coord->Init(std::vector<float>(2, 0.0f)));
  std::map<ClientId, uint64_t> model;  // what the tasks should say
  size_t seen = 0;
  for (uint64_t r = 0; r < 10; ++r) {
    FT_ASSERT_OK(h.coord->RunRound().status());
    for (; seen < h.net.tasks.size(); ++seen) {
      const v1::TaskMsg& t = h.net.tasks[seen];
      EXPECT_EQ(t.accepted_through(), model.count(t.client_id()) ? model[t.client_id()] : 0u)
          << "round " << r << " client " << t.client_id();
    }
    for (ClientId id : h.net.TaskIds(r))
      if (id != 5) model[id] = r + 1;
  }
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot snap, h.coord->Snapshot());
  EXPECT_EQ(snap.accepted_through, model);
  EXPECT_EQ(snap.accepted_through.count(5), 0u);
}

TEST(CoordinatorTrackAcceptedTest, OffSendsZeroAndKeepsNothing) {
  Scripted h(Opts(3, 3, 3));
  h.net.reply = [](const v1::TaskMsg& t) { return std::vector<v1::UpdateMsg>{GoodReply(t, 2)}; };
  FT_ASSERT_OK(h.coord->Init(std::vector<float>(2, 0.0f)));
  FT_ASSERT_OK(h.coord->Run(nullptr));
  ASSERT_EQ(h.net.tasks.size(), 9u);
  for (const v1::TaskMsg& t : h.net.tasks) EXPECT_EQ(t.accepted_through(), 0u);
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot snap, h.coord->Snapshot());
  EXPECT_TRUE(snap.accepted_through.empty());
}

}  // namespace
}  // namespace fedtrain
