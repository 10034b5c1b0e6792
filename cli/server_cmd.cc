#include "cli/server_cmd.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "aggregators/registry.h"
#include "cli/plugins.h"
#include "cli/progress.h"
#include "comm/grpc_server.h"
#include "grpc/grpc.h"
#include "proto/config_io.h"
#include "sim/simulate.h"

namespace fedtrain {

const char kServerHelp[] = R"(usage: fedtrain server --config FILE --workers N --token T [options]

Runs the experiment in FILE as the server of a deployed run: `fedtrain worker` processes
(on this or other hosts) join with the same token and train the clients. The first line on
stdout is "listening on HOST:PORT". Round 0 starts once N workers have joined; client i is
trained by worker (i mod N). Writes the same run folder as `fedtrain simulate`, with
bit-identical results.

options:
  --config FILE        experiment config (required)
  --set path=value     override a config field (repeatable), as for simulate
  --out DIR            shorthand for --set output.dir=DIR
  --threads N          server threads (decoding, evaluation; results do not depend on it)
  --plugin LIB.so      algorithm plug-in (workers load the config's plug-ins by the same path)
  --listen HOST:PORT   address to serve on (default 0.0.0.0:50051; port 0 picks a free one)
  --workers N          workers to wait for before round 0 (required)
  --token T            shared secret of the run (or the environment variable FEDTRAIN_TOKEN)
  --join-timeout S     give up when N workers have not joined after S seconds (default 600)
  --help               this help
)";

namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "fedtrain server: %s\n", msg.c_str());
  return 1;
}

int Usage(const std::string& msg) {
  std::fprintf(stderr, "fedtrain: %s\n\n%s", msg.c_str(), kServerHelp);
  return 2;
}

}  // namespace

int ServerCommand(const std::vector<std::string>& args) {
  std::string config_path, listen = "0.0.0.0:50051", token;
  if (const char* env = std::getenv("FEDTRAIN_TOKEN")) token = env;
  std::vector<std::string> sets, plugins;
  int workers = 0;
  int64_t join_timeout_s = 600;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string v;
    auto value = [&]() {
      if (i + 1 >= args.size()) return false;
      v = args[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kServerHelp, stdout);
      return 0;
    } else if (a == "--config") {
      if (!value()) return Usage("--config needs a file");
      config_path = v;
    } else if (a == "--set") {
      if (!value()) return Usage("--set needs path=value");
      sets.push_back(v);
    } else if (a == "--out") {
      if (!value()) return Usage("--out needs a folder");
      sets.push_back("output.dir=" + v);
    } else if (a == "--threads") {
      if (!value()) return Usage("--threads needs a number");
      sets.push_back("threads=" + v);
    } else if (a == "--plugin") {
      if (!value()) return Usage("--plugin needs a shared library");
      plugins.push_back(v);
    } else if (a == "--listen") {
      if (!value()) return Usage("--listen needs HOST:PORT");
      listen = v;
    } else if (a == "--workers") {
      if (!value() || !absl::SimpleAtoi(v, &workers) || workers < 1)
        return Usage("--workers needs a positive number");
    } else if (a == "--token") {
      if (!value()) return Usage("--token needs a value");
      token = v;
    } else if (a == "--join-timeout") {
      if (!value() || !absl::SimpleAtoi(v, &join_timeout_s) || join_timeout_s < 1)
        return Usage("--join-timeout needs a positive number of seconds");
    } else {
      return Usage(absl::StrCat("unknown option '", a, "'"));
    }
  }
  if (config_path.empty()) return Usage("server needs --config FILE");
  if (workers < 1) return Usage("server needs --workers N");
  if (token.empty()) return Usage("server needs --token T (or FEDTRAIN_TOKEN)");

  grpc_init();  // TOOLCHAIN.md: avoids the shutdown stall together with _Exit in main
  absl::StatusOr<v1::ExperimentConfig> cfg = LoadConfigFile(config_path);
  if (!cfg.ok()) return Fail(std::string(cfg.status().message()));
  for (const std::string& s : sets)
    if (absl::Status st = ApplyOverride(s, &*cfg); !st.ok()) return Fail(std::string(st.message()));
  for (const std::string& p : plugins) cfg->add_plugins(p);
  AlgorithmRegistry registry;
  RegisterBuiltinAlgorithms(&registry);
  for (const std::string& plugin : cfg->plugins())
    if (absl::Status st = LoadPlugin(plugin, &registry); !st.ok())
      return Fail(std::string(st.message()));
  absl::StatusOr<v1::ExperimentConfig> resolved = ResolveConfig(*cfg, registry);
  if (!resolved.ok()) return Fail(std::string(resolved.status().message()));

  GrpcServerOptions o;
  o.listen = listen;
  o.token = token;
  o.config = *resolved;
  o.expected_workers = workers;
  absl::StatusOr<std::unique_ptr<GrpcServerTransport>> started = GrpcServerTransport::Start(o);
  if (!started.ok()) return Fail(std::string(started.status().message()));
  std::shared_ptr<GrpcServerTransport> transport = std::move(started).value();
  std::printf("listening on %s\n", transport->address().c_str());
  std::fflush(stdout);

  TransportFactory factory = [&](const TransportContext& ctx)
      -> absl::StatusOr<std::shared_ptr<ServerTransport>> {
    // Four dense float64 parts plus 1 MiB of framing: every codec and algorithm fits.
    transport->SetMaxUpdateBytes(uint64_t{32} * ctx.model.dim() + (uint64_t{1} << 20));
    std::fprintf(stderr, "fedtrain server: waiting for %d workers\n", workers);
    if (absl::Status s = transport->WaitForWorkers(absl::Now() + absl::Seconds(join_timeout_s));
        !s.ok())
      return s;
    std::fprintf(stderr, "fedtrain server: %d workers joined\n", workers);
    return std::shared_ptr<ServerTransport>(transport);
  };
  v1::ExperimentConfig probe = *cfg;
  FillDefaults(&probe);
  Progress progress(Progress::ModeFor(probe.output().progress(), stderr), stderr, probe.rounds());
  absl::StatusOr<ExperimentOutcome> out = RunExperiment(
      *cfg, registry, [&](const RoundSummary& s) { progress.OnRound(s); }, factory);
  progress.Finish();
  // Tell the workers the run is over (also after a failure), then stop serving.
  transport->FinishRun(absl::Now() + absl::Seconds(10));
  transport->Shutdown(absl::Now() + absl::Seconds(2));
  if (!out.ok()) return Fail(std::string(out.status().message()));
  const SimulationResult& r = out->result;
  std::printf("run folder: %s\n", out->run_dir.c_str());
  if (r.final_test)
    std::printf("final test accuracy %.2f%%  test loss %.4f  after %lld rounds in %.1f s\n",
                100.0 * r.final_test->accuracy, r.final_test->loss,
                static_cast<long long>(r.rounds), r.wall_s);
  return 0;
}

}  // namespace fedtrain
