// The deployed run under faults, with real processes over loopback (port 0 or the port the
// first server got): a server killed mid-run and restarted with --resume ends with the weights
// of an uninterrupted run (SCAFFOLD, whose client states must roll back with the server); a
// worker killed mid-run makes its round close at the deadline with the others, and when
// restarted with its --state-dir it rejoins its slot and carries on with its clients' states;
// a SIGSTOPped worker hangs nothing and, once SIGCONTed, catches up or is refused as stale; a
// worker that sends malformed, oversized, NaN, wrong-dimension, wrong-codec and stale updates
// has every one refused with its reason while the run completes.
// Tests wait on a child's output or exit, or on a line appearing in its log; a watchdog kills
// children that hang.
#include <signal.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "comm/grpc_client.h"
#include "comm/grpc_server.h"
#include "fedtrain/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::Child;
using ::fedtrain::testing::ReadAll;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::ReadLine;
using ::fedtrain::testing::SourceDir;
using ::fedtrain::testing::Spawn;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::Wait;
using ::fedtrain::testing::WaitForText;
using ::fedtrain::testing::Watchdog;
using ::testing::HasSubstr;

constexpr const char* kRunName = ::fedtrain::testing::kSyntheticRunName;
constexpr char kToken[] = "s3cret";

std::string Config() { return ::fedtrain::testing::SyntheticConfig(); }

// SCAFFOLD (per-client control variates) on the tiny synthetic config; a line per round.
std::vector<std::string> RunArgs(const std::string& out, const std::vector<std::string>& sets) {
  std::vector<std::string> a = {"--config", Config(), "--out", out};
  for (const char* s : {"rounds=10", "eval_every=1", "output.progress=lines",
                        "algorithm.name=scaffold", "algorithm.weighting=", "local.epochs=2"}) {
    a.push_back("--set");
    a.push_back(s);
  }
  for (const std::string& s : sets) {
    a.push_back("--set");
    a.push_back(s);
  }
  return a;
}

std::string Model(const TempDir& dir, const std::string& out) {
  return ReadFileBytes(dir.File(absl::StrCat(out, "/", kRunName, "/model.ftw")));
}

struct Server {
  Child child;
  std::string addr;  // HOST:PORT
};

Server StartServer(const TempDir& dir, const std::string& err, int workers,
                   const std::vector<std::string>& sets, const std::string& listen,
                   std::vector<std::string> extra, Watchdog* dog) {
  std::vector<std::string> args = {"server"};
  for (const std::string& a : RunArgs(dir.File("grpc"), sets)) args.push_back(a);
  for (const std::string& a : {std::string("--listen"), listen, std::string("--token"),
                               std::string(kToken), std::string("--workers"),
                               std::to_string(workers)})
    args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  Server s;
  s.child = Spawn(args, dir.File(err), true);
  dog->Add(s.child.pid);
  const std::string first = ReadLine(s.child.pipe_fd);
  EXPECT_TRUE(absl::StartsWith(first, "listening on 127.0.0.1:")) << first;
  if (absl::StartsWith(first, "listening on ")) s.addr = first.substr(13);
  return s;
}

Child StartWorker(const TempDir& dir, const std::string& err, const std::string& addr,
                  std::vector<std::string> extra, Watchdog* dog) {
  std::vector<std::string> a = {"worker", "--server", addr, "--token", kToken};
  a.insert(a.end(), extra.begin(), extra.end());
  Child c = Spawn(a, dir.File(err), false);
  dog->Add(c.pid);
  return c;
}

int FinishServer(Server* s) {
  (void)ReadAll(s->child.pipe_fd);
  return Wait(s->child.pid);
}

// metrics.csv column `name` of the finished run.
std::vector<int64_t> Column(const TempDir& dir, const std::string& name) {
  return ::fedtrain::testing::MetricsColumn(
      dir.File(absl::StrCat("grpc/", kRunName, "/metrics.csv")), name);
}

TEST(FaultToleranceTest, ServerKilledAndResumedEndsWithTheUninterruptedWeights) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  {
    std::vector<std::string> args = {"simulate"};
    for (const std::string& a : RunArgs(dir.File("sim"), {})) args.push_back(a);
    Child sim = Spawn(args, dir.File("sim.err"), false);
    dog.Add(sim.pid);
    ASSERT_EQ(Wait(sim.pid), 0) << ReadFileBytes(dir.File("sim.err"));
  }
  const std::string want = Model(dir, "sim");
  ASSERT_FALSE(want.empty());

  Server s1 = StartServer(dir, "server1.err", 2, {}, "127.0.0.1:0", {"--checkpoint-every", "1"},
                          &dog);
  ASSERT_FALSE(s1.addr.empty());
  std::vector<Child> ws;
  for (int i = 0; i < 2; ++i)
    ws.push_back(StartWorker(dir, absl::StrCat("worker", i, ".err"), s1.addr,
                             {"--reconnect-timeout", "60"}, &dog));
  ASSERT_TRUE(WaitForText(dir.File("server1.err"), "round 4/10"))
      << ReadFileBytes(dir.File("server1.err"));
  kill(s1.child.pid, SIGKILL);
  EXPECT_EQ(FinishServer(&s1), -1);
  EXPECT_TRUE(std::filesystem::exists(dir.File(absl::StrCat("grpc/", kRunName, ".partial/checkpoint.ftc"))));

  // Same address: the workers rejoin it.
  Server s2 = StartServer(dir, "server2.err", 2, {}, s1.addr, {"--resume"}, &dog);
  ASSERT_EQ(s2.addr, s1.addr);
  EXPECT_EQ(FinishServer(&s2), 0) << ReadFileBytes(dir.File("server2.err"));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Wait(ws[i].pid), 0) << ReadFileBytes(ws[i].err_path);
    EXPECT_THAT(ReadFileBytes(ws[i].err_path), HasSubstr("rejoined"));
  }
  EXPECT_THAT(ReadFileBytes(dir.File("server2.err")), HasSubstr("resuming"));
  const std::string got = Model(dir, "grpc");
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "model.ftw after kill + --resume differs from the simulated run";
  EXPECT_EQ(Column(dir, "round").size(), 10u);  // one metrics row per round, none twice
}

// A server for two workers with `sets` (tasks for a missing worker's slot wait up to 60 s for
// it to rejoin), worker 0 in slot 0, and worker 1 in slot 1 with its client states in
// <dir>/state1; returns once `round` appears in the server's log.
struct SlottedRun {
  Server s;
  Child w0, w1;
};
SlottedRun StartSlottedRun(const TempDir& dir, const std::vector<std::string>& sets,
                           const std::string& round, Watchdog* dog) {
  SlottedRun r;
  r.s = StartServer(dir, "server.err", 2, sets, "127.0.0.1:0", {"--rejoin-grace", "60"}, dog);
  EXPECT_FALSE(r.s.addr.empty());
  if (r.s.addr.empty()) return r;
  r.w0 = StartWorker(dir, "worker0.err", r.s.addr, {"--slot", "0"}, dog);
  r.w1 = StartWorker(dir, "worker1.err", r.s.addr,
                     {"--slot", "1", "--state-dir", dir.File("state1")}, dog);
  EXPECT_TRUE(WaitForText(dir.File("server.err"), round));
  return r;
}

TEST(FaultToleranceTest, KilledWorkerRoundClosesByDeadlineAndRestartedWorkerContinues) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  const std::vector<std::string> sets = {"federation.round_timeout_s=2",
                                         "federation.min_updates=1", "rounds=8"};
  // Tasks for the dead worker's slot wait for it to come back (rather than running the
  // rest of the run without its clients before it has restarted).
  SlottedRun run = StartSlottedRun(dir, sets, "round 2/8", &dog);
  ASSERT_FALSE(HasFailure());
  Server& s = run.s;
  Child& w0 = run.w0;
  Child& w1 = run.w1;
  // Stopped, worker 1 holds its slot but answers nothing: the round in progress closes at its
  // deadline with worker 0's updates. Killed while stopped, mid-round.
  kill(w1.pid, SIGSTOP);
  ASSERT_TRUE(WaitForText(dir.File("server.err"), "no reply by the round deadline"));
  kill(w1.pid, SIGKILL);
  EXPECT_EQ(Wait(w1.pid), -1);
  // The slot is taken from the state folder's SLOT file.
  Child w1b = StartWorker(dir, "worker1b.err", s.addr, {"--state-dir", dir.File("state1")}, &dog);
  EXPECT_EQ(FinishServer(&s), 0) << ReadFileBytes(dir.File("server.err"));
  EXPECT_EQ(Wait(w0.pid), 0) << ReadFileBytes(w0.err_path);
  EXPECT_EQ(Wait(w1b.pid), 0) << ReadFileBytes(w1b.err_path);
  const std::string werr = ReadFileBytes(w1b.err_path);
  EXPECT_THAT(werr, HasSubstr("in slot 1 of 2"));
  const std::string serr = ReadFileBytes(dir.File("server.err"));
  EXPECT_THAT(serr, HasSubstr("rejoined slot 1"));
  EXPECT_THAT(serr, HasSubstr("no reply by the round deadline"));
  // Rounds without worker 1 closed with worker 0's updates.
  const std::vector<int64_t> received = Column(dir, "received");
  const std::vector<int64_t> sampled = Column(dir, "sampled");
  ASSERT_EQ(received.size(), 8u);
  bool short_round = false;
  for (size_t i = 0; i < received.size(); ++i) short_round |= received[i] < sampled[i];
  EXPECT_TRUE(short_round);
  EXPECT_EQ(received.back(), sampled.back()) << "the restarted worker did not take part";
  // Its clients' SCAFFOLD states came back from --state-dir: no task failed for lack of them.
  EXPECT_THAT(serr, ::testing::Not(HasSubstr("worker failed")));
}

// SIGTERM is an orderly stop (client/remote_worker.h, core/signal_watcher.h): the worker
// leaves the run and exits 0 on its own (no _Exit from a signal thread), and a worker started
// on the same state folder takes its slot back and finishes the run.
TEST(FaultToleranceTest, TerminatedWorkerLeavesAndExitsZero) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  const std::vector<std::string> sets = {"federation.round_timeout_s=2",
                                         "federation.min_updates=1", "rounds=6"};
  SlottedRun run = StartSlottedRun(dir, sets, "round 2/6", &dog);
  ASSERT_FALSE(HasFailure());
  Server& s = run.s;
  Child& w0 = run.w0;
  Child& w1 = run.w1;
  kill(w1.pid, SIGTERM);
  EXPECT_EQ(Wait(w1.pid), 0) << ReadFileBytes(w1.err_path);
  EXPECT_THAT(ReadFileBytes(w1.err_path), HasSubstr("signal 15: leaving the run"));
  Child w1b = StartWorker(dir, "worker1b.err", s.addr, {"--state-dir", dir.File("state1")}, &dog);
  EXPECT_EQ(FinishServer(&s), 0) << ReadFileBytes(dir.File("server.err"));
  EXPECT_EQ(Wait(w0.pid), 0) << ReadFileBytes(w0.err_path);
  EXPECT_EQ(Wait(w1b.pid), 0) << ReadFileBytes(w1b.err_path);
  EXPECT_THAT(ReadFileBytes(w1b.err_path), HasSubstr("in slot 1 of 2"));
  EXPECT_EQ(Column(dir, "round").size(), 6u);
}

// SIGTERM while the worker is still trying to reach its server (nothing listens on the port)
// ends the wait at once: exit 0 well before --connect-timeout (100 s; the watchdog would kill
// it at 30 s).
TEST(FaultToleranceTest, TerminatedWhileConnectingExitsZeroAtOnce) {
  TempDir dir;
  Watchdog dog(absl::Seconds(30));
  Child w = StartWorker(dir, "worker.err", "127.0.0.1:1", {"--connect-timeout", "100"}, &dog);
  ASSERT_TRUE(WaitForText(w.err_path, "connecting to 127.0.0.1:1"));
  kill(w.pid, SIGTERM);
  EXPECT_EQ(Wait(w.pid), 0) << ReadFileBytes(w.err_path);
  EXPECT_THAT(ReadFileBytes(w.err_path), HasSubstr("signal 15: leaving the run"));
}

TEST(FaultToleranceTest, StoppedWorkerHangsNothingAndIsRefusedAsStaleOrCatchesUp) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  const std::vector<std::string> sets = {"federation.round_timeout_s=1",
                                         "federation.min_updates=1", "rounds=40"};
  Server s = StartServer(dir, "server.err", 2, sets, "127.0.0.1:0", {}, &dog);
  ASSERT_FALSE(s.addr.empty());
  Child w0 = StartWorker(dir, "worker0.err", s.addr, {}, &dog);
  Child w1 = StartWorker(dir, "worker1.err", s.addr, {}, &dog);
  // 40 rounds: a healthy round takes ~20 ms here, so with 6 the whole run could end between
  // "round 1" appearing in the log and the SIGSTOP below (seen under load).
  ASSERT_TRUE(WaitForText(dir.File("server.err"), "round 1/40"));
  kill(w1.pid, SIGSTOP);
  // A round closes at its deadline without it; its reply to that round comes late.
  ASSERT_TRUE(WaitForText(dir.File("server.err"), "no reply by the round deadline"));
  kill(w1.pid, SIGCONT);
  EXPECT_EQ(FinishServer(&s), 0) << ReadFileBytes(dir.File("server.err"));
  EXPECT_EQ(Wait(w0.pid), 0) << ReadFileBytes(w0.err_path);
  EXPECT_EQ(Wait(w1.pid), 0) << ReadFileBytes(w1.err_path);
  const std::string serr = ReadFileBytes(dir.File("server.err"));
  EXPECT_THAT(serr, HasSubstr("no reply by the round deadline"));
  // Its late replies were refused as stale, not folded into a later round.
  EXPECT_THAT(serr, HasSubstr(", current round is "));
  EXPECT_THAT(serr, ::testing::Not(HasSubstr("worker failed")));
  EXPECT_EQ(Column(dir, "round").size(), 40u);
}

// A worker of our own that answers every task with bad updates, through the real client and
// the raw stub (for bytes the client would never send).
class BadWorker {
 public:
  BadWorker(const std::string& addr) : addr_(addr) {}

  absl::Status Run() {
    GrpcWorkerOptions o;
    o.server = addr_;
    o.token = kToken;
    o.name = "bad-worker";
    absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> c =
        GrpcWorkerClient::Join(o, absl::Now() + absl::Seconds(30));
    if (!c.ok()) return c.status();
    client_ = std::move(c).value();
    stub_ = v1::FedTrain::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
    return client_->ReceiveTasks([this](v1::TaskMsg t) { Answer(t); });
  }
  std::vector<std::string> push_errors;

 private:
  // The task's own (identity-coded, d-dimensional) model as a well-formed update to spoil.
  v1::UpdateMsg Base(const v1::TaskMsg& t) {
    v1::UpdateMsg m;
    m.set_round(t.round());
    m.set_client_id(t.client_id());
    m.set_num_samples(10);
    m.set_local_steps(1);
    m.set_train_loss(1.0);
    *m.mutable_up()->add_parts() = t.down().parts(0);
    return m;
  }
  void Push(const v1::UpdateMsg& m) {
    if (absl::Status s = client_->Push(m); !s.ok()) push_errors.push_back(s.ToString());
  }
  // Raw chunks: `total` announced, `data` sent.
  void PushRaw(uint64_t total, const std::string& data, uint64_t worker_id = 0) {
    grpc::ClientContext ctx;
    v1::PushReply reply;
    if (worker_id == 0) {
      client_->AddSession(&ctx);
    } else {  // another worker's id with this worker's secret
      ctx.AddMetadata(kSessionMetadataKey,
                      absl::StrCat(worker_id, ".",
                                   absl::BytesToHexString(client_->joined().session())));
    }
    std::unique_ptr<grpc::ClientWriter<v1::UpdateChunk>> w = stub_->Push(&ctx, &reply);
    v1::UpdateChunk c;
    c.set_total_bytes(total);
    c.set_data(data);
    w->Write(c);
    w->WritesDone();
    grpc::Status s = w->Finish();
    if (!s.ok()) push_errors.push_back(s.error_message());
  }
  void Answer(const v1::TaskMsg& t) {
    v1::UpdateMsg stale = Base(t);
    stale.set_round(t.round() + 1000);
    Push(stale);
    v1::UpdateMsg m = Base(t);
    v1::Tensor* part = m.mutable_up()->mutable_parts(0);
    switch (n_++ % 6) {
      case 0: {  // NaN in the last value
        const float nan = std::nanf("");
        std::string* d = part->mutable_data();
        std::memcpy(d->data() + d->size() - sizeof(float), &nan, sizeof(float));
        Push(m);
        break;
      }
      case 1:  // one value short
        part->set_dim(part->dim() - 1);
        part->mutable_data()->resize(part->data().size() - sizeof(float));
        Push(m);
        break;
      case 2:
        part->set_codec("bogus/1");
        Push(m);
        break;
      case 3:  // bytes that are no UpdateMsg, then the oversized announcement
        PushRaw(8, std::string(8, '\xff'));
        PushRaw(client_->joined().max_update_bytes() + 1, "x");
        // As another worker: refused for want of credentials (a security refusal, not
        // counted in the round's columns).
        PushRaw(8, std::string(8, '\xff'), client_->joined().worker_id() + 1000);
        m.set_error("gave up");  // resolves the task
        Push(m);
        break;
      case 4:
        m.set_num_samples(0);
        Push(m);
        break;
      default:  // a weight beyond its client's share (the data has no client this large)
        m.set_num_samples(uint64_t{1} << 63);
        Push(m);
        break;
    }
  }

  const std::string addr_;
  std::unique_ptr<GrpcWorkerClient> client_;
  std::unique_ptr<v1::FedTrain::Stub> stub_;
  int n_ = 0;
};

TEST(FaultToleranceTest, MalformedOversizedNanWrongDimensionAndStaleUpdatesAreRefused) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  const std::vector<std::string> sets = {"algorithm.name=fedavg", "rounds=3",
                                         "federation.round_timeout_s=30"};
  Server s = StartServer(dir, "server.err", 2, sets, "127.0.0.1:0", {}, &dog);
  ASSERT_FALSE(s.addr.empty());
  Child good = StartWorker(dir, "worker.err", s.addr, {}, &dog);
  BadWorker bad(s.addr);
  absl::Status bad_status;
  std::thread t([&] { bad_status = bad.Run(); });
  t.join();
  EXPECT_TRUE(bad_status.ok()) << bad_status;
  EXPECT_EQ(FinishServer(&s), 0) << ReadFileBytes(dir.File("server.err"));
  EXPECT_EQ(Wait(good.pid), 0) << ReadFileBytes(good.err_path);
  const std::string serr = ReadFileBytes(dir.File("server.err"));
  for (const char* why : {"non-finite", "current round is", "bogus/1", "does not parse",
                          "exceeds the limit", "reported 0 training samples", "gave up",
                          "reported 9223372036854775808 training samples; the client holds",
                          "wrong session"})
    EXPECT_THAT(serr, HasSubstr(why));
  int64_t refused = 0, rejected = 0;
  for (int64_t v : Column(dir, "refused")) refused += v;
  for (int64_t v : Column(dir, "rejected")) rejected += v;
  EXPECT_GE(refused, 2);  // at least one task of kind 3: two refusals of the worker's own pushes
  EXPECT_GT(rejected, 0);
  EXPECT_FALSE(bad.push_errors.empty());
}

}  // namespace
}  // namespace fedtrain
