#include "cli/server_cmd.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
  --tls-cert FILE      serve over TLS with this PEM certificate (chain); needs --tls-key
  --tls-key FILE       the PEM private key of --tls-cert
  --tls-client-ca FILE require client certificates signed by this PEM CA (mutual TLS);
                       needs --tls-cert (deploy/make_certs.sh makes test certificates)
  --rejoin-grace S     a task for a worker slot whose worker is gone waits up to S seconds
                       for a worker to rejoin the slot (default 0: the round goes on without it)
  --checkpoint-every N write a checkpoint of all server state every N rounds (and after the
                       last) into the run folder; shorthand for --set checkpoint.every=N
  --resume             continue the unfinished run of this config (output.dir/<run name>.partial)
                       from its last checkpoint, with the same config; workers rejoin
  --resume-from DIR    the same, naming the unfinished run folder (needed when there are several)
  --resume-if-any      --resume when there is an unfinished run with a checkpoint, else start a
                       new run (for a server that a scheduler restarts, e.g. on Kubernetes)
  --help               this help

Every refused or rejected update is logged on stderr with its reason and sender, and counted
in the metrics (rejected, refused). federation.round_timeout_s, over_selection and min_updates
set how a round closes when workers are slow or gone.
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

// The one "<output.dir>/<run name>[-K].partial" folder with a checkpoint.
absl::StatusOr<std::string> FindUnfinishedRun(const v1::ExperimentConfig& cfg) {
  namespace fs = std::filesystem;
  const std::string dir = cfg.output().dir(), name = cfg.output().run_name();
  std::vector<std::string> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string base = it->path().filename().string();
    if (!absl::StartsWith(base, name) || !absl::EndsWith(base, ".partial")) continue;
    const std::string mid = base.substr(name.size(), base.size() - name.size() - 8);
    int k = 0;
    if (!mid.empty() && !(mid[0] == '-' && absl::SimpleAtoi(mid.substr(1), &k))) continue;
    if (fs::exists(it->path() / "checkpoint.ftc")) found.push_back(it->path().string());
  }
  if (found.empty())
    return absl::NotFoundError(absl::StrCat("--resume: no unfinished run of ", name, " with a "
                                            "checkpoint in ", dir, " (was checkpoint.every set?)"));
  if (found.size() > 1)
    return absl::FailedPreconditionError(absl::StrCat(
        "--resume: several unfinished runs of ", name, " in ", dir, ": ",
        absl::StrJoin(found, ", "), "; name one with --resume-from DIR"));
  return found[0];
}

}  // namespace

int ServerCommand(const std::vector<std::string>& args,
                  const std::function<void(const std::string&)>& on_listening) {
  std::string config_path, listen = "0.0.0.0:50051", token;
  if (const char* env = std::getenv("FEDTRAIN_TOKEN")) token = env;
  std::vector<std::string> sets, plugins;
  int workers = 0;
  int64_t join_timeout_s = 600;
  std::string tls_cert, tls_key, tls_client_ca;
  bool resume = false, resume_if_any = false;
  absl::Duration rejoin_grace = absl::ZeroDuration();
  std::string resume_from;
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
    } else if (a == "--checkpoint-every") {
      int64_t n = 0;
      if (!value() || !absl::SimpleAtoi(v, &n) || n < 1)
        return Usage("--checkpoint-every needs a positive number of rounds");
      sets.push_back(absl::StrCat("checkpoint.every=", n));
    } else if (a == "--rejoin-grace") {
      double g = 0;
      if (!value() || !absl::SimpleAtod(v, &g) || !(g >= 0) || g > 86400)
        return Usage("--rejoin-grace needs a number of seconds >= 0");
      rejoin_grace = absl::Seconds(g);
    } else if (a == "--resume") {
      resume = true;
    } else if (a == "--resume-if-any") {
      resume_if_any = true;
    } else if (a == "--resume-from") {
      if (!value() || v.empty()) return Usage("--resume-from needs a run folder");
      resume_from = v;
    } else if (a == "--tls-cert") {
      if (!value() || v.empty()) return Usage("--tls-cert needs a PEM certificate file");
      tls_cert = v;
    } else if (a == "--tls-key") {
      if (!value() || v.empty()) return Usage("--tls-key needs a PEM private key file");
      tls_key = v;
    } else if (a == "--tls-client-ca") {
      if (!value() || v.empty()) return Usage("--tls-client-ca needs a PEM CA certificate file");
      tls_client_ca = v;
    } else {
      return Usage(absl::StrCat("unknown option '", a, "'"));
    }
  }
  if (config_path.empty()) return Usage("server needs --config FILE");
  if (workers < 1) return Usage("server needs --workers N");
  if (token.empty()) return Usage("server needs --token T (or FEDTRAIN_TOKEN)");
  if (!tls_cert.empty() && tls_key.empty()) return Usage("--tls-cert needs --tls-key FILE");
  if (!tls_key.empty() && tls_cert.empty()) return Usage("--tls-key needs --tls-cert FILE");
  if (!tls_client_ca.empty() && tls_cert.empty())
    return Usage("--tls-client-ca (mutual TLS) needs --tls-cert FILE and --tls-key FILE");

  grpc_init();  // docs/maintainers.md §9: avoids the shutdown stall together with _Exit in main
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
  o.rejoin_grace = rejoin_grace;
  for (auto [option, path, pem] :
       {std::make_tuple("--tls-cert", &tls_cert, &o.tls_cert_pem),
        std::make_tuple("--tls-key", &tls_key, &o.tls_key_pem),
        std::make_tuple("--tls-client-ca", &tls_client_ca, &o.tls_client_ca_pem)}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> text = ReadPemFile(option, *path);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    *pem = *std::move(text);
  }
  ServerRunOptions run_opts;
  run_opts.track_accepted = true;  // workers keep client states the server accepted
  if (resume || resume_if_any || !resume_from.empty()) {
    if (!resume_from.empty()) {
      run_opts.resume_dir = resume_from;
    } else {
      absl::StatusOr<std::string> dir = FindUnfinishedRun(*resolved);
      if (dir.ok()) {
        run_opts.resume_dir = *dir;
      } else if (!resume_if_any || dir.status().code() != absl::StatusCode::kNotFound) {
        return Fail(std::string(dir.status().message()));
      }
    }
    if (!run_opts.resume_dir.empty())
      std::fprintf(stderr, "fedtrain server: resuming %s\n", run_opts.resume_dir.c_str());
  }
  absl::StatusOr<std::unique_ptr<GrpcServerTransport>> started = GrpcServerTransport::Start(o);
  if (!started.ok()) return Fail(std::string(started.status().message()));
  std::shared_ptr<GrpcServerTransport> transport = std::move(started).value();
  std::printf("listening on %s\n", transport->address().c_str());
  std::fflush(stdout);
  if (on_listening) on_listening(transport->address());
  if (!o.tls_cert_pem.empty())
    std::fprintf(stderr, "fedtrain server: TLS on%s\n",
                 o.tls_client_ca_pem.empty() ? "" : ", client certificates required");

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
      *cfg, registry,
      [&](const RoundSummary& s) {
        for (const std::string& why : s.rejections)
          std::fprintf(stderr, "fedtrain server: round %llu: %s\n",
                       static_cast<unsigned long long>(s.round), why.c_str());
        progress.OnRound(s);
      },
      factory, run_opts);
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
