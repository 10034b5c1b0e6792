// Resuming a deployed run (issue 18 item 6), with real `fedtrain server` and `fedtrain
// worker` processes over loopback (port 0): a second server on a run folder that another one
// holds fails at once naming the folder and the holder's pid; a resume rewrites a damaged
// config.json and leaves no temporary file in the finished folder; --resume-if-any on a run
// that finished exits 0 saying so instead of training it again; a worker that lost its
// clients' states (restarted without --state-dir) fails the run with that reason instead of
// having its clients rejected every round while the run "succeeds".
//
// An interrupted run is made deterministically: one worker, a checkpoint every round, and
// once round 2 is logged the worker is SIGSTOPped, so the server waits in the next round
// (federation.round_timeout_s = 60 is far beyond the test) holding its run folder, with the
// checkpoint of the rounds before. Tests wait on output, exits or log lines, never a fixed
// time, and stop their children by pid; a watchdog kills what hangs.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

namespace fs = std::filesystem;
using ::fedtrain::testing::Child;
using ::fedtrain::testing::ReadAll;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::ReadLine;
using ::fedtrain::testing::Spawn;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::Wait;
using ::fedtrain::testing::WaitForText;
using ::fedtrain::testing::Watchdog;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kRunName = ::fedtrain::testing::kSyntheticRunName;
constexpr char kToken[] = "s3cret";

// The experiment of every run here (simulate and server alike, so that they are the same
// experiment): the synthetic example, 6 rounds, a progress line per round.
std::vector<std::string> ConfigArgs(const TempDir& dir, const std::vector<std::string>& sets) {
  std::vector<std::string> a = {"--config", ::fedtrain::testing::SyntheticConfig(), "--out",
                                dir.File("out")};
  std::vector<std::string> all = {"rounds=6", "eval_every=1", "output.progress=lines",
                                  "federation.round_timeout_s=60"};
  all.insert(all.end(), sets.begin(), sets.end());
  for (const std::string& s : all) {
    a.push_back("--set");
    a.push_back(s);
  }
  return a;
}

struct Server {
  Child child;
  std::string first_line;  // "listening on HOST:PORT", or what came instead
  std::string addr;
};

Server StartServer(const TempDir& dir, const std::string& err, int workers,
                   const std::vector<std::string>& sets, const std::vector<std::string>& extra,
                   Watchdog* dog) {
  std::vector<std::string> args = {"server"};
  for (const std::string& a : ConfigArgs(dir, sets)) args.push_back(a);
  for (const std::string& a : {std::string("--listen"), std::string("127.0.0.1:0"),
                               std::string("--token"), std::string(kToken),
                               std::string("--workers"), std::to_string(workers)})
    args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  Server s;
  s.child = Spawn(args, dir.File(err), true);
  dog->Add(s.child.pid);
  s.first_line = ReadLine(s.child.pipe_fd);
  if (absl::StartsWith(s.first_line, "listening on ")) s.addr = s.first_line.substr(13);
  return s;
}

Child StartWorker(const TempDir& dir, const std::string& err, const std::string& addr,
                  const std::vector<std::string>& extra, Watchdog* dog) {
  std::vector<std::string> a = {"worker", "--server", addr, "--token", kToken};
  a.insert(a.end(), extra.begin(), extra.end());
  Child c = Spawn(a, dir.File(err), false);
  dog->Add(c.pid);
  return c;
}

// Exit status, once stdout is drained.
int Finish(Server* s) {
  (void)ReadAll(s->child.pipe_fd);
  return Wait(s->child.pid);
}

std::string Partial(const TempDir& dir) {
  return dir.File(absl::StrCat("out/", kRunName, ".partial"));
}

// A server with checkpoints and one worker, stopped in round 3 or later (see the top).
struct Interrupted {
  Server s;
  Child w;
};
Interrupted StartInterruptedRun(const TempDir& dir, Watchdog* dog) {
  Interrupted r;
  r.s = StartServer(dir, "server1.err", 1, {}, {"--checkpoint-every", "1"}, dog);
  EXPECT_FALSE(r.s.addr.empty()) << r.s.first_line << ReadFileBytes(dir.File("server1.err"));
  if (r.s.addr.empty()) return r;
  r.w = StartWorker(dir, "worker1.err", r.s.addr, {}, dog);
  EXPECT_TRUE(WaitForText(dir.File("server1.err"), "round 2/6"))
      << ReadFileBytes(dir.File("server1.err"));
  kill(r.w.pid, SIGSTOP);
  EXPECT_TRUE(fs::exists(Partial(dir) + "/checkpoint.ftc"));
  return r;
}

void KillInterruptedRun(Interrupted* r) {
  kill(r->s.child.pid, SIGKILL);
  (void)Finish(&r->s);
  kill(r->w.pid, SIGKILL);
  (void)Wait(r->w.pid);
}

// Two `--resume` of one folder used to run side by side (3 of 5 finished folders lacked
// metrics rows). Now the second fails at once (it does not wait for workers).
TEST(ResumeTest, ResumingAFolderAnotherServerHoldsFailsAtOnceNamingItAndThePid) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  Interrupted run = StartInterruptedRun(dir, &dog);
  ASSERT_FALSE(HasFailure());
  // --join-timeout bounds how long a server that does not check the lock would wait.
  Server s2 = StartServer(dir, "server2.err", 1, {}, {"--resume", "--join-timeout", "5"}, &dog);
  EXPECT_EQ(Finish(&s2), 1);
  const std::string err = ReadFileBytes(dir.File("server2.err"));
  EXPECT_THAT(err, HasSubstr(absl::StrCat("run folder ", Partial(dir), " is in use")));
  EXPECT_THAT(err, HasSubstr(absl::StrCat("(pid ", run.s.child.pid, ")")));
  EXPECT_THAT(err, Not(HasSubstr("waiting for")));  // failed before waiting for workers
  KillInterruptedRun(&run);
}

// A config.json garbled before the resume used to stay garbled in the finished folder, and a
// stale checkpoint.ftc.tmp.PID was carried into it.
TEST(ResumeTest, ResumeRewritesADamagedConfigAndLeavesNoTemporaryFiles) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  Interrupted run = StartInterruptedRun(dir, &dog);
  ASSERT_FALSE(HasFailure());
  KillInterruptedRun(&run);
  const std::string config = ReadFileBytes(Partial(dir) + "/config.json");
  ASSERT_THAT(config, HasSubstr("\"rounds\""));
  ::fedtrain::testing::WriteFileBytes(Partial(dir) + "/config.json", "{\"rounds\": ");
  ::fedtrain::testing::WriteFileBytes(Partial(dir) + "/checkpoint.ftc.tmp.4242", "half a checkpoint");
  ::fedtrain::testing::WriteFileBytes(Partial(dir) + "/model.ftw.tmp", "half a model");

  // The same command line as the first server's, as a restarting scheduler would use: then
  // config.json is byte for byte the first one (threads, output and checkpoint settings may
  // differ on resume, and config.json records the ones the run finished with).
  Server s = StartServer(dir, "server2.err", 1, {}, {"--checkpoint-every", "1", "--resume"}, &dog);
  ASSERT_FALSE(s.addr.empty()) << s.first_line << ReadFileBytes(dir.File("server2.err"));
  Child w = StartWorker(dir, "worker2.err", s.addr, {}, &dog);
  EXPECT_EQ(Finish(&s), 0) << ReadFileBytes(dir.File("server2.err"));
  EXPECT_EQ(Wait(w.pid), 0) << ReadFileBytes(w.err_path);

  const std::string done = dir.File(absl::StrCat("out/", kRunName));
  EXPECT_EQ(ReadFileBytes(done + "/config.json"), config);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(done)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    EXPECT_FALSE(absl::StrContains(n, ".tmp")) << n << " reached the finished folder";
    EXPECT_NE(n, "lock") << "the lock file reached the finished folder";
  }
  EXPECT_THAT(names, ::testing::Contains("summary.json"));
  const std::string csv = ReadFileBytes(done + "/metrics.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7) << csv;  // header + 6 rounds
}

// A scheduler that restarts a finished server (a Kubernetes Job) used to make it train the
// experiment again as "<name>-2", "-3", ...
TEST(ResumeTest, ResumeIfAnyOnAFinishedRunExitsZeroSayingSo) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  {
    std::vector<std::string> args = {"simulate"};
    for (const std::string& a : ConfigArgs(dir, {})) args.push_back(a);
    Child sim = Spawn(args, dir.File("sim.err"), false);
    dog.Add(sim.pid);
    ASSERT_EQ(Wait(sim.pid), 0) << ReadFileBytes(dir.File("sim.err"));
  }
  // --join-timeout bounds how long a server that starts a new run would wait for workers.
  Server s = StartServer(dir, "server.err", 1, {}, {"--resume-if-any", "--join-timeout", "5"},
                         &dog);
  EXPECT_THAT(s.first_line, HasSubstr("finished already"));
  EXPECT_EQ(Finish(&s), 0) << ReadFileBytes(dir.File("server.err"));
  EXPECT_THAT(ReadFileBytes(dir.File("server.err")), HasSubstr("has finished already"));
  EXPECT_FALSE(fs::exists(dir.File(absl::StrCat("out/", kRunName, "-2.partial"))));
  EXPECT_FALSE(fs::exists(dir.File(absl::StrCat("out/", kRunName, "-2"))));

  // A plain --resume has nothing to continue either: an error that says why.
  Server s2 = StartServer(dir, "server2.err", 1, {}, {"--resume"}, &dog);
  EXPECT_EQ(Finish(&s2), 1);
  EXPECT_THAT(ReadFileBytes(dir.File("server2.err")), HasSubstr("has finished already"));
}

// SCAFFOLD keeps a control variate per client on its worker. A worker restarted without
// --state-dir has lost them; its clients' tasks fail with "the state was lost", which the run
// used to count as rejections every round and still exit 0.
TEST(ResumeTest, AWorkerThatLostItsClientStatesFailsTheRun) {
  TempDir dir;
  Watchdog dog(absl::Seconds(120));
  const std::vector<std::string> sets = {"algorithm.name=scaffold", "algorithm.weighting=",
                                         "rounds=40", "federation.round_timeout_s=5"};
  // Tasks for the dead worker's slot wait for it to rejoin rather than being dropped.
  Server s = StartServer(dir, "server.err", 2, sets, {"--rejoin-grace", "60"}, &dog);
  ASSERT_FALSE(s.addr.empty()) << s.first_line << ReadFileBytes(dir.File("server.err"));
  Child w0 = StartWorker(dir, "worker0.err", s.addr, {"--slot", "0"}, &dog);
  Child w1 = StartWorker(dir, "worker1.err", s.addr, {"--slot", "1"}, &dog);
  ASSERT_TRUE(WaitForText(dir.File("server.err"), "round 3/40"))
      << ReadFileBytes(dir.File("server.err"));
  kill(w1.pid, SIGKILL);
  EXPECT_EQ(Wait(w1.pid), -1);
  Child w1b = StartWorker(dir, "worker1b.err", s.addr, {"--slot", "1"}, &dog);
  EXPECT_EQ(Finish(&s), 1) << ReadFileBytes(dir.File("server.err"));
  const std::string err = ReadFileBytes(dir.File("server.err"));
  EXPECT_THAT(err, HasSubstr("cannot train it"));
  EXPECT_THAT(err, HasSubstr("the state was lost"));
  EXPECT_THAT(ReadFileBytes(Partial(dir) + "/error.txt"), HasSubstr("the state was lost"));
  EXPECT_FALSE(fs::exists(dir.File(absl::StrCat("out/", kRunName))));
  // The server tells the workers the run is over: they leave on their own.
  (void)Wait(w0.pid);
  (void)Wait(w1b.pid);
}

}  // namespace
}  // namespace fedtrain
