// sim_bench: the simulation at scale (docs/architecture.md "Simulate many clients on one node").
//
//   sim_bench [--rounds=20] [--clients=1000000] [--dir=/tmp]
//
// Prints, each against its goal (PASS/FAIL), on Synthetic(1,1) data (d = 60, 10 classes),
// softmax regression (610 parameters), FedAvg, 100 clients per round, 1 local step of batch
// 10, 2 worker threads:
//   (a) simulation throughput in client updates per second, rounds 2..R (round 1 is warm-up):
//       a 1,000-client population with its data pooled up front, and the --clients population
//       with each client's data generated when it is sampled (goal >= 2,000/s);
//   (b) bytes per dormant client: peak RSS of a --clients run minus that of a 1,000-client
//       run (both on demand, same rounds, each in a forked child so that peaks do not mix),
//       over the difference in clients (goal <= 800);
//   (c) the file-backed client state store (client/file_client_state_store.h) writing and
//       reading 100,000-parameter states (SCAFFOLD's c_i for a 100k model; goal >= 100 MB/s
//       each way without fsync), the same with fsync (informational), and the RSS it keeps
//       per stored client (goal <= 8 bytes: no index in memory).
// Results are checked: pooled and on-demand data must give bit-identical weights, every run
// must finish its rounds with a finite model, and every state read back must equal the one
// written. Exit status 1 when a result is wrong (2 on bad flags); the goals are printed as
// PASS/FAIL but never fail the run, since they are measurements on a shared, noisy machine.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "absl/strings/str_cat.h"
#include "aggregators/registry.h"
#include "client/file_client_state_store.h"
#include "core/vec.h"
#include "data/synthetic.h"
#include "proto/config_io.h"
#include "server/coordinator.h"
#include "sim/simulate.h"

namespace fedtrain {
namespace {

using bench::BestSeconds;
using bench::Clock;
using bench::Seconds;
using bench::Verdict;

constexpr double kGoalUpdatesPerSecond = 2000;
constexpr double kGoalDormantBytes = 800;
constexpr double kGoalStoreMBps = 100;
constexpr double kGoalStoreIndexBytes = 8;
constexpr int64_t kSmallPopulation = 1000;
constexpr int64_t kPerRound = 100;
constexpr size_t kStateParams = 100000;

struct Options {
  int64_t rounds = 20;
  int64_t clients = 1000000;
  std::string dir = "/tmp";
};

bool ParseFlags(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg, value;
    bench::SplitFlag(argc, argv, &i, &arg, &value);
    if (arg == "--dir" && !value.empty()) {
      opt->dir = value;
      continue;
    }
    unsigned long long u = 0;
    if (!bench::PositiveInt("sim_bench", arg, value, &u)) return false;
    const long long v = static_cast<long long>(std::min<unsigned long long>(u, 1ull << 62));
    if (arg == "--rounds" && v >= 2) {
      opt->rounds = v;
    } else if (arg == "--clients" && v > kSmallPopulation) {
      opt->clients = v;
    } else {
      std::fprintf(stderr,
                   "sim_bench: unknown flag or value '%s=%s' (known: --rounds>=2, "
                   "--clients>%lld, --dir)\n",
                   arg.c_str(), value.c_str(), static_cast<long long>(kSmallPopulation));
      return false;
    }
  }
  return true;
}

// VmRSS and VmHWM of this process, in bytes.
struct Rss {
  double now = 0, peak = 0;
};
Rss ReadRss() {
  Rss r;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) r.now = std::atof(line.c_str() + 6) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) r.peak = std::atof(line.c_str() + 6) * 1024;
  }
  return r;
}

v1::ExperimentConfig BenchConfig(int64_t clients, int64_t rounds) {
  v1::ExperimentConfig c;
  for (const std::string& o : std::vector<std::string>{
           "data.dataset=synthetic", absl::StrCat("data.synthetic.num_devices=", clients),
           "partition.method=natural", absl::StrCat("federation.num_clients=", clients),
           absl::StrCat("federation.clients_per_round=", kPerRound),
           "federation.eval_clients=100", "model.type=softmax", "local.steps=1",
           "local.batch_size=10", "local.lr=0.01", "algorithm.name=fedavg", "threads=2",
           absl::StrCat("rounds=", rounds), absl::StrCat("eval_every=", rounds), "seed=1",
           "output.progress=none"}) {
    const absl::Status s = ApplyOverride(o, &c);
    if (!s.ok()) std::fprintf(stderr, "sim_bench: %s: %s\n", o.c_str(), s.ToString().c_str());
  }
  return c;
}

struct SimRun {
  bool ok = false;
  std::string error;
  bool on_demand = false;
  uint64_t hash = 0;
  double updates_per_s = 0;
  double setup_s = 0;
  double rss_after_load = 0;  // bytes, once the data (or the population) is set up
};

SimRun RunOnce(int64_t clients, int64_t rounds, ClientDataMode mode) {
  SimRun out;
  AlgorithmRegistry reg;
  RegisterBuiltinAlgorithms(&reg);
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<v1::ExperimentConfig> cfg = ResolveConfig(BenchConfig(clients, rounds), reg);
  if (!cfg.ok()) {
    out.error = cfg.status().ToString();
    return out;
  }
  absl::StatusOr<ExperimentData> data = LoadExperimentData(*cfg, mode);
  if (!data.ok()) {
    out.error = data.status().ToString();
    return out;
  }
  out.on_demand = data->population != nullptr;
  out.rss_after_load = ReadRss().now;
  out.setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double first_round_end = 0, last_round_end = 0;
  int64_t updates_after_first = 0;
  absl::StatusOr<RunResult> r =
      RunSimulation(*cfg, reg, *data, nullptr, [&](const RoundSummary& s) {
        if (s.round == 0) {  // rounds count from 0
          first_round_end = s.wall_s;
        } else {
          updates_after_first += s.received;
        }
        last_round_end = s.wall_s;
      });
  if (!r.ok()) {
    out.error = r.status().ToString();
    return out;
  }
  bool finite = true;
  for (float x : r->model) finite = finite && std::isfinite(x);
  out.ok = r->rounds == rounds && finite && updates_after_first == (rounds - 1) * kPerRound;
  if (!out.ok) out.error = "a round lost updates or the model is not finite";
  out.hash = HashFloats(r->model);
  out.updates_per_s = static_cast<double>(updates_after_first) /
                      std::max(1e-9, last_round_end - first_round_end);
  return out;
}

// (b): a whole run in a forked child, reporting its peak RSS through a pipe.
struct ChildRun {
  bool ok = false;
  bool on_demand = false;
  double peak = 0, baseline = 0, loaded = 0, wall_s = 0;
};

ChildRun RunInChild(int64_t clients, int64_t rounds, ClientDataMode mode) {
  ChildRun result;
  int fds[2];
  if (pipe(fds) != 0) return result;
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return result;
  if (pid == 0) {
    close(fds[0]);
    ChildRun c;
    c.baseline = ReadRss().now;
    const auto t0 = std::chrono::steady_clock::now();
    SimRun r = RunOnce(clients, rounds, mode);
    c.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    c.ok = r.ok;
    c.on_demand = r.on_demand;
    c.peak = ReadRss().peak;
    c.loaded = r.rss_after_load;
    if (!r.ok) std::fprintf(stderr, "sim_bench: %lld clients: %s\n",
                            static_cast<long long>(clients), r.error.c_str());
    const ssize_t w = write(fds[1], &c, sizeof c);
    _exit(w == static_cast<ssize_t>(sizeof c) ? 0 : 1);
  }
  close(fds[1]);
  ChildRun c;
  const ssize_t got = read(fds[0], &c, sizeof c);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got == static_cast<ssize_t>(sizeof c) && WIFEXITED(status) && WEXITSTATUS(status) == 0)
    result = c;
  return result;
}

// (c): the file store with 100k-parameter states.
struct StoreRun {
  bool ok = false;
  double write_mbps = 0, read_mbps = 0, sync_write_mbps = 0;
  double write_states_s = 0, read_states_s = 0, sync_states_s = 0;
  double index_bytes_per_client = 0;
  uint64_t record_bytes = 0;
  size_t wrong = 0;
};

ClientState BenchState(ClientId id, size_t n) {
  ClientState s;
  std::vector<float>& c = s.vectors["c"];
  c.resize(n);
  for (size_t j = 0; j < n; ++j) c[j] = static_cast<float>((id * 31 + j) % 1000) * 1e-3f;
  return s;
}

StoreRun RunStore(const std::string& base) {
  StoreRun out;
  namespace fs = std::filesystem;
  std::string tmpl = base + "/fedtrain_sim_bench_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "sim_bench: cannot create a folder in %s\n", base.c_str());
    return out;
  }
  const std::string root = tmpl;
  auto open = [&](const std::string& name, uint64_t dim, bool sync) {
    FileStateStoreOptions o;
    o.dir = root + "/" + name;
    o.dim = dim;
    o.algorithm = "scaffold";
    o.state_version = 1;
    o.sync = sync;
    return FileClientStateStore::Open(o);
  };
  auto seconds = [](auto t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  bool ok = true;
  {
    constexpr int kClients = 200;
    absl::StatusOr<std::unique_ptr<FileClientStateStore>> store = open("big", kStateParams, false);
    if (!store.ok()) {
      std::fprintf(stderr, "sim_bench: %s\n", store.status().ToString().c_str());
      fs::remove_all(root);
      return out;
    }
    std::vector<ClientState> states;
    for (int i = 0; i < kClients; ++i) states.push_back(BenchState(i, kStateParams));
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kClients; ++i) ok = ok && (*store)->Save(i, states[i]).ok();
    const double tw = seconds(t0);
    t0 = std::chrono::steady_clock::now();
    ClientState back;
    for (int i = 0; i < kClients; ++i) {
      ok = ok && (*store)->Load(i, &back).ok();
      if (back.vectors != states[i].vectors) ++out.wrong;
    }
    const double tr = seconds(t0);
    const FileClientStateStore::Stats st = (*store)->stats();
    out.record_bytes = st.bytes_written / kClients;
    out.write_mbps = static_cast<double>(st.bytes_written) / tw / 1e6;
    out.read_mbps = static_cast<double>(st.bytes_read) / tr / 1e6;
    out.write_states_s = kClients / tw;
    out.read_states_s = kClients / tr;
  }
  {
    constexpr int kClients = 20;
    absl::StatusOr<std::unique_ptr<FileClientStateStore>> store = open("sync", kStateParams, true);
    ok = ok && store.ok();
    if (store.ok()) {
      const ClientState s = BenchState(1, kStateParams);
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kClients; ++i) ok = ok && (*store)->Save(i, s).ok();
      const double t = seconds(t0);
      out.sync_write_mbps = static_cast<double>((*store)->stats().bytes_written) / t / 1e6;
      out.sync_states_s = kClients / t;
    }
  }
  {
    // Memory per stored client: RSS growth while 20,000 small states are stored, after a
    // warm-up of 1,000 (so allocator pools that any store would use are already counted).
    constexpr int kWarm = 1000, kClients = 20000;
    absl::StatusOr<std::unique_ptr<FileClientStateStore>> store = open("many", 16, false);
    ok = ok && store.ok();
    if (store.ok()) {
      for (int i = 0; i < kWarm; ++i) ok = ok && (*store)->Save(i, BenchState(i, 16)).ok();
      const double before = ReadRss().now;
      for (int i = kWarm; i < kWarm + kClients; ++i)
        ok = ok && (*store)->Save(i, BenchState(i, 16)).ok();
      const double after = ReadRss().now;
      out.index_bytes_per_client = std::max(0.0, after - before) / kClients;
      ClientState back;
      for (int i : {0, kWarm, kWarm + kClients - 1}) {
        ok = ok && (*store)->Load(i, &back).ok();
        if (back.vectors != BenchState(i, 16).vectors) ++out.wrong;
      }
    }
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  out.ok = ok;
  return out;
}

// The largest client (in samples) that `rounds` rounds sample from a population of n.
uint64_t LargestSampled(int64_t n, int64_t rounds) {
  SyntheticOptions o;
  o.num_devices = static_cast<int>(n);
  o.seed = 1;
  absl::StatusOr<SyntheticPopulation> pop = SyntheticPopulation::Create(o);
  uint64_t most = 0;
  if (!pop.ok()) return 0;
  for (int64_t r = 0; r < rounds; ++r)
    for (ClientId id : SampleClients(/*seed=*/1, static_cast<uint64_t>(r), n, kPerRound))
      most = std::max(most, pop->DeviceSize(id));
  return most;
}


int Run(const Options& opt) {
  bool wrong = false;
  std::printf("# sim_bench: Synthetic(1,1) d=60 C=10, softmax (610 params), fedavg, %lld "
              "clients/round, 1 local step (batch 10), 2 threads, %lld rounds\n",
              static_cast<long long>(kPerRound), static_cast<long long>(opt.rounds));

  // (b) first: children are forked before this process starts any thread.
  const int64_t mem_rounds = 3;
  ChildRun small = RunInChild(kSmallPopulation, mem_rounds, ClientDataMode::kOnDemand);
  ChildRun big = RunInChild(opt.clients, mem_rounds, ClientDataMode::kAuto);
  if (!small.ok || !big.ok || !big.on_demand) {
    std::printf("# (b) memory runs FAILED (small ok=%d, big ok=%d, big on demand=%d)\n",
                small.ok, big.ok, big.on_demand);
    wrong = true;
  }
  const double dormant =
      (big.peak - small.peak) / static_cast<double>(opt.clients - kSmallPopulation);

  // (a) throughput.
  SimRun pooled = RunOnce(kSmallPopulation, opt.rounds, ClientDataMode::kPooled);
  SimRun pooled_check = RunOnce(kSmallPopulation, opt.rounds, ClientDataMode::kOnDemand);
  SimRun million = RunOnce(opt.clients, opt.rounds, ClientDataMode::kAuto);
  for (const SimRun* r : {&pooled, &pooled_check, &million}) {
    if (!r->ok) {
      std::printf("# run FAILED: %s\n", r->error.c_str());
      wrong = true;
    }
  }
  const bool same = pooled.ok && pooled_check.ok && pooled.hash == pooled_check.hash;
  if (!same) wrong = true;

  std::printf("# (a) throughput, client updates/s over rounds 2..%lld\n",
              static_cast<long long>(opt.rounds));
  std::printf("  %-36s %12s %10s\n", "population", "updates/s", "setup(s)");
  std::printf("  %-36s %12.0f %10.2f\n", "1,000 clients, data pooled", pooled.updates_per_s,
              pooled.setup_s);
  std::printf("  %-36s %12.0f %10.2f\n", "1,000 clients, data on demand",
              pooled_check.updates_per_s, pooled_check.setup_s);
  std::printf("  %-36s %12.0f %10.2f\n",
              absl::StrCat(opt.clients, " clients, data on demand").c_str(),
              million.updates_per_s, million.setup_s);
  std::printf("# pooled vs on-demand weights (%016llx, %016llx): %s\n",
              static_cast<unsigned long long>(pooled.hash),
              static_cast<unsigned long long>(pooled_check.hash),
              same ? "bit-identical" : "DIFFERENT (wrong)");
  std::printf("# goal >= %.0f updates/s (pooled): %s (%.0f)\n", kGoalUpdatesPerSecond,
              Verdict(pooled.updates_per_s >= kGoalUpdatesPerSecond), pooled.updates_per_s);
  std::printf("# goal >= %.0f updates/s (%lld clients, on demand): %s (%.0f)\n",
              kGoalUpdatesPerSecond, static_cast<long long>(opt.clients),
              Verdict(million.updates_per_s >= kGoalUpdatesPerSecond), million.updates_per_s);

  std::printf("# (b) dormant clients: peak RSS of %lld rounds x %lld clients, data on demand, "
              "stateless (fedavg), memory store\n",
              static_cast<long long>(mem_rounds), static_cast<long long>(kPerRound));
  std::printf("  %-10s %14s %16s %14s %10s\n", "clients", "start RSS(MiB)", "data set(MiB)",
              "peak RSS(MiB)", "wall(s)");
  for (const auto& [n, c] : {std::pair<int64_t, const ChildRun*>{kSmallPopulation, &small},
                             std::pair<int64_t, const ChildRun*>{opt.clients, &big}})
    std::printf("  %-10lld %14.1f %16.1f %14.1f %10.2f\n", static_cast<long long>(n),
                c->baseline / 1048576, c->loaded / 1048576, c->peak / 1048576, c->wall_s);
  std::printf("#   after data set-up: %.2f bytes per client (RSS difference / %lld clients)\n",
              (big.loaded - small.loaded) / static_cast<double>(opt.clients - kSmallPopulation),
              static_cast<long long>(opt.clients - kSmallPopulation));
  std::printf("#   peak: also holds the largest sampled client's generated data, which differs "
              "between the two runs (heavy-tailed sizes): %llu vs %llu samples\n",
              static_cast<unsigned long long>(LargestSampled(kSmallPopulation, mem_rounds)),
              static_cast<unsigned long long>(LargestSampled(opt.clients, mem_rounds)));
  std::printf("# goal <= %.0f bytes per dormant client: %s (%.1f bytes = peak RSS difference / "
              "%lld clients)\n",
              kGoalDormantBytes, Verdict(dormant <= kGoalDormantBytes), dormant,
              static_cast<long long>(opt.clients - kSmallPopulation));

  StoreRun store = RunStore(opt.dir);
  if (!store.ok || store.wrong != 0) wrong = true;
  std::printf("# (c) file client state store, %zu-parameter states (%llu-byte records), %s\n",
              kStateParams, static_cast<unsigned long long>(store.record_bytes),
              opt.dir.c_str());
  std::printf("  %-26s %10s %10s %8s\n", "operation", "MB/s", "states/s", "#wrong");
  std::printf("  %-26s %10.0f %10.0f %8s\n", "save (rename, no fsync)", store.write_mbps,
              store.write_states_s, "-");
  std::printf("  %-26s %10.0f %10.0f %8zu\n", "load", store.read_mbps, store.read_states_s,
              store.wrong);
  std::printf("  %-26s %10.0f %10.0f %8s\n", "save (fsync file + folder)",
              store.sync_write_mbps, store.sync_states_s, "-");
  std::printf("# goal >= %.0f MB/s save and load: %s (%.0f / %.0f)\n", kGoalStoreMBps,
              Verdict(store.write_mbps >= kGoalStoreMBps && store.read_mbps >= kGoalStoreMBps),
              store.write_mbps, store.read_mbps);
  std::printf("# goal <= %.0f bytes of RAM per stored client: %s (%.2f)\n",
              kGoalStoreIndexBytes, Verdict(store.index_bytes_per_client <= kGoalStoreIndexBytes),
              store.index_bytes_per_client);
  std::printf("# results: %s\n", wrong ? "WRONG" : "OK");
  return wrong ? 1 : 0;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  fedtrain::Options opt;
  if (!fedtrain::ParseFlags(argc, argv, &opt)) return 2;
  return fedtrain::Run(opt);
}
