// The deployed run end to end with real processes over loopback: `fedtrain server` (port 0)
// and 4 `fedtrain worker` processes give a model.ftw byte-identical to `fedtrain simulate`
// on the same config; a worker with a wrong token is refused (exit 1, stderr names the
// token) and the run completes with the others. No sleeps: the test waits on the server's
// "listening on" line and on the children's exits; a watchdog kills children that hang.
// Over TLS and mutual TLS (certificates from deploy/make_certs.sh): the same bit-identical
// run; a worker without a client certificate, or speaking plain TCP, is refused.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
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
using ::fedtrain::testing::Wait;
using ::fedtrain::testing::Watchdog;
using ::fedtrain::testing::TempDir;
using ::testing::HasSubstr;

constexpr const char* kRunName = ::fedtrain::testing::kSyntheticRunName;

std::string Config() { return ::fedtrain::testing::SyntheticConfig(); }

std::vector<std::string> RunArgs(const std::string& out, const std::vector<std::string>& sets) {
  std::vector<std::string> a = {"--config", Config(), "--set", "rounds=4", "--set",
                                "output.progress=none", "--out", out};
  for (const std::string& s : sets) {
    a.push_back("--set");
    a.push_back(s);
  }
  return a;
}

std::string SimulatedModel(const TempDir& dir, const std::vector<std::string>& sets = {}) {
  std::vector<std::string> args = {"simulate"};
  for (const std::string& a : RunArgs(dir.File("sim"), sets)) args.push_back(a);
  Watchdog dog;
  Child c = Spawn(args, dir.File("sim.err"), false);
  dog.Add(c.pid);
  EXPECT_EQ(Wait(c.pid), 0) << ReadFileBytes(c.err_path);
  return ReadFileBytes(dir.File(absl::StrCat("sim/", kRunName, "/model.ftw")));
}

struct ClusterRun {
  int server_rc = -1;
  std::string server_out;
  std::vector<int> worker_rc;
  int bad_worker_rc = -1;
  std::string bad_worker_err;
};

struct ClusterOptions {
  bool bad_token = false;  // one more worker, with a wrong token
  std::vector<std::string> sets;
  std::vector<std::string> server_args;      // e.g. TLS options
  std::vector<std::string> worker_args;      // for the good workers
  std::vector<std::string> bad_worker_args;  // one more worker with these (token included)
  std::function<std::vector<std::string>(int)> per_worker;  // more args for good worker i
};

// Server + `workers` good workers (+ one refused worker per `o`).
ClusterRun RunCluster(const TempDir& dir, int workers, const ClusterOptions& o) {
  ClusterRun r;
  Watchdog dog;
  std::vector<std::string> args = {"server"};
  for (const std::string& a : RunArgs(dir.File("grpc"), o.sets)) args.push_back(a);
  for (const char* a : {"--listen", "127.0.0.1:0", "--token", "s3cret"}) args.push_back(a);
  args.push_back("--workers");
  args.push_back(std::to_string(workers));
  args.insert(args.end(), o.server_args.begin(), o.server_args.end());
  Child server = Spawn(args, dir.File("server.err"), true);
  dog.Add(server.pid);
  const std::string first = ReadLine(server.pipe_fd);
  EXPECT_TRUE(absl::StartsWith(first, "listening on 127.0.0.1:")) << first;
  const std::string addr = first.substr(std::string("listening on ").size());
  if (!absl::StartsWith(first, "listening on ")) {
    kill(server.pid, SIGKILL);
    Wait(server.pid);
    return r;
  }
  std::vector<std::string> bad_args = o.bad_worker_args;
  if (o.bad_token) bad_args = {"--token", "wrong"};
  if (!bad_args.empty()) {  // refused before the good workers join: it must change nothing
    std::vector<std::string> a = {"worker", "--server", addr};
    a.insert(a.end(), bad_args.begin(), bad_args.end());
    Child bad = Spawn(a, dir.File("bad.err"), false);
    dog.Add(bad.pid);
    r.bad_worker_rc = Wait(bad.pid);
    r.bad_worker_err = ReadFileBytes(bad.err_path);
  }
  std::vector<Child> ws;
  for (int i = 0; i < workers; ++i) {
    std::vector<std::string> a = {"worker", "--server", addr, "--token", "s3cret", "--threads",
                                  std::to_string(1 + i % 2)};
    a.insert(a.end(), o.worker_args.begin(), o.worker_args.end());
    if (o.per_worker) {
      const std::vector<std::string> more = o.per_worker(i);
      a.insert(a.end(), more.begin(), more.end());
    }
    ws.push_back(Spawn(a, dir.File(absl::StrCat("worker", i, ".err")), false));
    dog.Add(ws.back().pid);
  }
  for (Child& w : ws) {
    r.worker_rc.push_back(Wait(w.pid));
    EXPECT_EQ(r.worker_rc.back(), 0) << ReadFileBytes(w.err_path);
  }
  r.server_out = first + "\n" + ReadAll(server.pipe_fd);
  r.server_rc = Wait(server.pid);
  EXPECT_EQ(r.server_rc, 0) << ReadFileBytes(server.err_path);
  return r;
}

// Server + `workers` workers on `sets` must write `sim`'s model.ftw, byte for byte.
void ExpectClusterMatches(const TempDir& dir, int workers, const std::vector<std::string>& sets,
                          const std::string& sim) {
  ClusterOptions o;
  o.sets = sets;
  ClusterRun run = RunCluster(dir, workers, o);
  ASSERT_EQ(run.server_rc, 0);
  const std::string grpc = ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw")));
  EXPECT_TRUE(grpc == sim) << "model.ftw differs between simulate and server + " << workers
                           << " workers";
}

TEST(GrpcClusterTest, FourWorkerProcessesMatchSimulationBitForBit) {
  TempDir dir;
  const std::string sim = SimulatedModel(dir);
  ASSERT_FALSE(sim.empty());
  ClusterRun run = RunCluster(dir, 4, ClusterOptions());
  ASSERT_EQ(run.server_rc, 0);
  EXPECT_THAT(run.server_out, HasSubstr(absl::StrCat("run folder: ", dir.File("grpc/"), kRunName)));
  const std::string grpc = ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw")));
  EXPECT_EQ(grpc.size(), sim.size());
  EXPECT_TRUE(grpc == sim) << "model.ftw differs between simulate and server + 4 workers";
  for (const char* f : {"config.json", "metrics.csv", "metrics.jsonl", "summary.json"})
    EXPECT_FALSE(ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/", f))).empty()) << f;
}

// Differential privacy over the wire: every update is an rqm/1 message (the workers quantize
// with RQM, the server decodes the level indices) with Δ calibrated on both ends from
// privacy.target_epsilon; server + 4 worker processes give the simulation's model and
// epsilon column bit for bit.
TEST(GrpcClusterTest, RqmRunMatchesSimulationBitForBit) {
  TempDir dir;
  const std::vector<std::string> sets = {"privacy.mechanism=rqm", "privacy.clip=0.05",
                                         "privacy.target_epsilon=20000", "privacy.levels=8",
                                         "privacy.keep_prob=0.5"};
  const std::string sim = SimulatedModel(dir, sets);
  ASSERT_FALSE(sim.empty());
  ClusterOptions o;
  o.sets = sets;
  ClusterRun run = RunCluster(dir, 4, o);
  ASSERT_EQ(run.server_rc, 0);
  EXPECT_THAT(run.server_out, HasSubstr("privacy: epsilon"));
  const std::string grpc = ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw")));
  EXPECT_TRUE(grpc == sim) << "model.ftw differs between simulate and server + 4 workers";
  const std::string csv_sim = ReadFileBytes(dir.File(absl::StrCat("sim/", kRunName, "/metrics.csv")));
  const std::string csv_grpc = ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/metrics.csv")));
  EXPECT_THAT(csv_grpc, HasSubstr(",epsilon,delta,privacy_guarantee"));
  // The epsilon column (third from last: epsilon, delta, privacy_guarantee) agrees row by row.
  auto eps_column = [](const std::string& csv) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < csv.size()) {
      size_t end = csv.find('\n', start);
      if (end == std::string::npos) end = csv.size();
      const std::string line = csv.substr(start, end - start);
      size_t c2 = line.rfind(','), c1 = line.rfind(',', c2 - 1), c0 = line.rfind(',', c1 - 1);
      out.push_back(line.substr(c0 + 1, c1 - c0 - 1));
      start = end + 1;
    }
    return out;
  };
  EXPECT_EQ(eps_column(csv_grpc), eps_column(csv_sim));
}

// Central DP-FedAvg noise is added by the server to each accepted update: the deployed
// server draws the same noise as the simulation.
TEST(GrpcClusterTest, CentralGaussianRunMatchesSimulationBitForBit) {
  TempDir dir;
  const std::vector<std::string> sets = {"privacy.mechanism=gaussian", "privacy.placement=central",
                                         "privacy.guarantee=trusted_aggregator",
                                         "algorithm.weighting=uniform", "privacy.clip=1",
                                         "privacy.noise_multiplier=0.5"};
  const std::string sim = SimulatedModel(dir, sets);
  ASSERT_FALSE(sim.empty());
  ExpectClusterMatches(dir, 4, sets, sim);
}

// A model of ~1.1 MiB (tasks and updates travel in two chunks) and an algorithm with
// per-client state (SCAFFOLD's control variates stay with the client's worker). Few local
// steps and clients keep it quick under the sanitizers.
TEST(GrpcClusterTest, ChunkedMessagesAndClientStateMatchSimulation) {
  TempDir dir;
  const std::vector<std::string> sets = {"model.type=mlp", "model.hidden=4000",
                                         "algorithm.name=scaffold", "local.steps=3",
                                         "federation.clients_per_round=4", "rounds=3",
                                         "eval_every=3"};
  const std::string sim = SimulatedModel(dir, sets);
  ASSERT_GT(sim.size(), size_t{1} << 20);
  ExpectClusterMatches(dir, 2, sets, sim);
}

// A robust reducer under attack: three faulty clients send ALIE vectors (injected by the
// server from the round's honest updates) and the Flag Aggregator reduces; server + 4 worker
// processes give the simulation's model bit for bit.
TEST(GrpcClusterTest, AttackedRunWithFlagAggregatorMatchesSimulation) {
  TempDir dir;
  const std::vector<std::string> sets = {"algorithm.reducer.name=flag",
                                         "algorithm.reducer.params.m=2", "attack.name=alie",
                                         "attack.clients=0,1,2"};
  const std::string sim = SimulatedModel(dir, sets);
  ASSERT_FALSE(sim.empty());
  ExpectClusterMatches(dir, 4, sets, sim);
  EXPECT_THAT(ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/metrics.csv"))),
              HasSubstr("reducer_diag"));
}

// Byzantine workers on a real cluster (issue acceptance): server + 15 worker processes, one
// client each (--slot i serves client i), and the workers of clients 0, 1, 2 started with
// --attack name=alie --attack clients=0,1,2. The server's config knows nothing of the attack;
// the three workers recompute the round's honest updates themselves and send ALIE vectors
// through the normal uplink; the Flag Aggregator reduces. The model equals, bit for bit, the
// simulation with the same attack placed on the worker and the one placed at the server.
TEST(GrpcClusterTest, FifteenWorkersThreeByzantineMatchSimulation) {
  TempDir dir;
  const std::vector<std::string> sets = {"data.synthetic.num_devices=15",
                                         "federation.num_clients=15",
                                         "federation.clients_per_round=15", "local.epochs=1",
                                         "algorithm.reducer.name=flag"};
  std::vector<std::string> attacked = sets;
  for (const char* a : {"attack.name=alie", "attack.clients=0,1,2", "attack.at=worker"})
    attacked.push_back(a);
  const std::string sim = SimulatedModel(dir, attacked);
  ASSERT_FALSE(sim.empty());
  std::vector<std::string> at_server = sets;
  for (const char* a : {"attack.name=alie", "attack.clients=0,1,2", "attack.at=server"})
    at_server.push_back(a);
  TempDir dir2;
  EXPECT_TRUE(SimulatedModel(dir2, at_server) == sim) << "worker- and server-placed ALIE differ";
  TempDir dir3;
  EXPECT_FALSE(SimulatedModel(dir3, sets) == sim) << "the attack changed nothing";
  ClusterOptions o;
  o.sets = sets;
  o.per_worker = [](int i) {
    std::vector<std::string> a = {"--slot", std::to_string(i)};
    if (i < 3)
      for (const char* x : {"--attack", "name=alie", "--attack", "clients=0,1,2"}) a.push_back(x);
    return a;
  };
  ClusterRun run = RunCluster(dir, 15, o);
  ASSERT_EQ(run.server_rc, 0);
  const std::string grpc = ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw")));
  EXPECT_TRUE(grpc == sim) << "model.ftw differs between simulate and server + 15 workers";
}

// A worker's --attack assignments are checked before it joins: a bad field is a usage error.
TEST(GrpcClusterTest, WorkerAttackFlagErrorsExitTwo) {
  TempDir dir;
  Watchdog dog;
  Child c = Spawn({"worker", "--server", "127.0.0.1:1", "--token", "t", "--attack", "nmae=alie"},
                  dir.File("w.err"), false);
  dog.Add(c.pid);
  EXPECT_EQ(Wait(c.pid), 2);
  EXPECT_THAT(ReadFileBytes(c.err_path), HasSubstr("--attack nmae=alie"));
}

TEST(GrpcClusterTest, WrongTokenIsRefusedAndTheRunCompletes) {
  TempDir dir;
  ClusterOptions o;
  o.bad_token = true;
  ClusterRun run = RunCluster(dir, 4, o);
  EXPECT_EQ(run.bad_worker_rc, 1);
  EXPECT_THAT(run.bad_worker_err, HasSubstr("token"));
  EXPECT_THAT(run.bad_worker_err, HasSubstr("UNAUTHENTICATED"));
  ASSERT_EQ(run.server_rc, 0);
  EXPECT_FALSE(ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw"))).empty());
}

// deploy/make_certs.sh into `dir`/certs; returns that folder ("" after a failure).
std::string MakeCerts(const TempDir& dir) {
  Watchdog dog;
  Child c = Spawn({"/bin/bash", SourceDir() + "/deploy/make_certs.sh", dir.File("certs")},
                  dir.File("certs.err"), false, dir.File("certs.out"));
  dog.Add(c.pid);
  const int rc = Wait(c.pid);
  EXPECT_EQ(rc, 0) << ReadFileBytes(dir.File("certs.err"));
  EXPECT_THAT(ReadFileBytes(dir.File("certs.out")), HasSubstr("server.crt"));
  return rc == 0 ? dir.File("certs") : "";
}

std::vector<std::string> ServerTls(const std::string& certs, bool mutual) {
  std::vector<std::string> a = {"--tls-cert", certs + "/server.crt", "--tls-key",
                                certs + "/server.key"};
  if (mutual) a.insert(a.end(), {"--tls-client-ca", certs + "/ca.crt"});
  return a;
}

std::vector<std::string> WorkerTls(const std::string& certs, bool client_cert) {
  std::vector<std::string> a = {"--tls-ca", certs + "/ca.crt", "--tls-server-name", "localhost"};
  if (client_cert)
    a.insert(a.end(), {"--tls-cert", certs + "/worker.crt", "--tls-key", certs + "/worker.key"});
  return a;
}

TEST(GrpcClusterTest, MutualTlsRunMatchesSimulationBitForBit) {
  TempDir dir;
  const std::string certs = MakeCerts(dir);
  ASSERT_FALSE(certs.empty());
  const std::string sim = SimulatedModel(dir);
  ASSERT_FALSE(sim.empty());
  ClusterOptions o;
  o.server_args = ServerTls(certs, true);
  o.worker_args = WorkerTls(certs, true);
  ClusterRun run = RunCluster(dir, 2, o);
  ASSERT_EQ(run.server_rc, 0);
  const std::string grpc = ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw")));
  EXPECT_TRUE(grpc == sim) << "model.ftw differs between simulate and a mutual-TLS run";
}

TEST(GrpcClusterTest, MutualTlsRefusesAWorkerWithoutClientCertificate) {
  TempDir dir;
  const std::string certs = MakeCerts(dir);
  ASSERT_FALSE(certs.empty());
  ClusterOptions o;
  o.server_args = ServerTls(certs, true);
  o.worker_args = WorkerTls(certs, true);
  o.bad_worker_args = WorkerTls(certs, false);  // the CA, but no client certificate
  o.bad_worker_args.insert(o.bad_worker_args.end(), {"--token", "s3cret"});
  ClusterRun run = RunCluster(dir, 2, o);
  EXPECT_EQ(run.bad_worker_rc, 1);
  EXPECT_THAT(run.bad_worker_err, HasSubstr("cannot connect"));
  EXPECT_THAT(run.bad_worker_err, HasSubstr("TLS handshake"));
  ASSERT_EQ(run.server_rc, 0);
  EXPECT_FALSE(ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw"))).empty());
}

TEST(GrpcClusterTest, TlsServerRefusesAPlainTcpWorker) {
  TempDir dir;
  const std::string certs = MakeCerts(dir);
  ASSERT_FALSE(certs.empty());
  ClusterOptions o;
  o.server_args = ServerTls(certs, false);
  o.worker_args = WorkerTls(certs, false);
  o.bad_worker_args = {"--token", "s3cret"};  // no --tls-ca: plain TCP
  ClusterRun run = RunCluster(dir, 1, o);
  EXPECT_EQ(run.bad_worker_rc, 1);
  EXPECT_THAT(run.bad_worker_err, HasSubstr("cannot connect"));
  EXPECT_THAT(run.bad_worker_err, HasSubstr("plain TCP"));
  ASSERT_EQ(run.server_rc, 0);
  EXPECT_FALSE(ReadFileBytes(dir.File(absl::StrCat("grpc/", kRunName, "/model.ftw"))).empty());
}

TEST(GrpcClusterTest, TlsUsageAndFileErrors) {
  TempDir dir;
  Watchdog dog;
  auto run = [&](std::vector<std::string> args) {
    Child c = Spawn(args, dir.File("err"), false);
    dog.Add(c.pid);
    const int rc = Wait(c.pid);  // before reading what it wrote
    return std::make_pair(rc, ReadFileBytes(dir.File("err")));
  };
  const std::vector<std::string> server = {"server", "--config", Config(), "--token", "t",
                                           "--workers", "1", "--listen", "127.0.0.1:0"};
  auto with = [](std::vector<std::string> a, const std::vector<std::string>& more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  auto [rc, err] = run(with(server, {"--tls-cert", "c.pem"}));
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(err, HasSubstr("--tls-key"));
  std::tie(rc, err) = run(with(server, {"--tls-client-ca", "ca.pem"}));
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(err, HasSubstr("--tls-cert"));
  const std::string missing = dir.File("missing.pem");
  std::tie(rc, err) = run(with(server, {"--tls-cert", missing, "--tls-key", missing}));
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(err, HasSubstr("--tls-cert: cannot read " + missing));
  const std::vector<std::string> worker = {"worker", "--server", "127.0.0.1:1", "--token", "t"};
  std::tie(rc, err) = run(with(worker, {"--tls-ca", missing}));
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(err, HasSubstr("--tls-ca: cannot read " + missing));
  std::tie(rc, err) = run(with(worker, {"--tls-key", "k.pem"}));
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(err, HasSubstr("--tls-cert"));
  std::tie(rc, err) = run(with(worker, {"--tls-cert", "c.pem", "--tls-key", "k.pem"}));
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(err, HasSubstr("--tls-ca"));
}

TEST(GrpcClusterTest, ServerUsageErrorsExitTwo) {
  TempDir dir;
  Watchdog dog;
  Child c = Spawn({"server", "--config", Config(), "--token", "t"}, dir.File("err"), false);
  dog.Add(c.pid);
  EXPECT_EQ(Wait(c.pid), 2);
  EXPECT_THAT(ReadFileBytes(dir.File("err")), HasSubstr("--workers"));
  Child w = Spawn({"worker", "--token", "t"}, dir.File("werr"), false);
  dog.Add(w.pid);
  EXPECT_EQ(Wait(w.pid), 2);
  EXPECT_THAT(ReadFileBytes(dir.File("werr")), HasSubstr("--server"));
  // The address may come from the environment instead (nothing listens on port 1).
  setenv("FEDTRAIN_SERVER", "127.0.0.1:1", 1);
  Child e = Spawn({"worker", "--token", "t", "--connect-timeout", "1"}, dir.File("eerr"), false);
  unsetenv("FEDTRAIN_SERVER");
  dog.Add(e.pid);
  EXPECT_EQ(Wait(e.pid), 1);
  EXPECT_THAT(ReadFileBytes(dir.File("eerr")), HasSubstr("cannot connect to 127.0.0.1:1"));
}

}  // namespace
}  // namespace fedtrain
