#include "cli/server_cmd.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aggregators/registry.h"
#include "cli/flags.h"
#include "cli/progress.h"
#include "comm/metrics_http.h"
#include "core/log.h"
#include "grpc/grpc.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "runtime/plugins.h"
#include "runtime/run_folder.h"
#include "server/deployed_server.h"

namespace fedtrain {
namespace {

// --worker-tokens FILE: "NAME TOKEN" per line; blank lines and lines starting with # are
// skipped. Errors name the file and the line.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ReadWorkerTokens(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--worker-tokens: cannot read ", path));
  std::vector<std::pair<std::string, std::string>> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.empty() || f[0][0] == '#') continue;
    if (f.size() != 2)
      return absl::InvalidArgumentError(absl::StrCat(
          "--worker-tokens: ", path, " line ", n, ": expected \"NAME TOKEN\", got ", f.size(),
          " fields"));
    out.emplace_back(f[0], f[1]);
  }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat("--worker-tokens: ", path, " has no tokens"));
  return out;
}

}  // namespace

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
  --worker-tokens FILE per-worker tokens, a "NAME TOKEN" line each (# comments): a worker that
                       joins with one is NAME, keeps one slot, and only it can retake that slot
  --join-timeout S     give up when N workers have not joined after S seconds (default 600)
  --tls-cert FILE      serve over TLS with this PEM certificate (chain); needs --tls-key
  --tls-key FILE       the PEM private key of --tls-cert
  --tls-client-ca FILE require client certificates signed by this PEM CA (mutual TLS);
                       needs --tls-cert (deploy/make_certs.sh makes test certificates)
  --certificate-identity  with --tls-client-ca: each worker is the identity of its client
                       certificate, bound to one slot like a per-worker token (per-worker
                       certificates only: workers sharing a certificate would share a slot)
  --rejoin-grace S     a task for a worker slot whose worker is gone waits up to S seconds
                       for a worker to rejoin the slot (default 0: the round goes on without it)
  --checkpoint-every N write a checkpoint of all server state every N rounds (and after the
                       last) into the run folder; shorthand for --set checkpoint.every=N
  --resume             continue the unfinished run of this config (output.dir/<run name>.partial)
                       from its last checkpoint, with the same config; workers rejoin
  --resume-from DIR    the same, naming the unfinished run folder (needed when there are several)
  --resume-if-any      --resume when there is an unfinished run with a checkpoint; else, when
                       this experiment has finished already, print so and exit 0 at once
                       (without listening); else start a new run. For a server that a scheduler
                       restarts, e.g. a Kubernetes Job. "Finished" means a folder
                       output.dir/<run name>[-K] (no .partial) holding summary.json and a
                       config.json of the same experiment (threads, output and checkpoint
                       settings may differ)
  --metrics-listen HOST:PORT  serve Prometheus metrics over HTTP at http://HOST:PORT/metrics
                       while the run goes on (port 0 picks a free one; the address is logged):
                       rounds completed, updates received/rejected/refused, bytes up/down,
                       last test accuracy, last round's latency
  --help               this help

Every refused or rejected update is logged on stderr with its reason and sender, and counted
in the metrics (rejected, refused). federation.round_timeout_s, over_selection and min_updates
set how a round closes when workers are slow or gone.

A run folder is locked (the file "lock" in <name>.partial, with flock) by the process that
runs or resumes it: a second server on the same folder fails at once, naming the holder's pid.
)";

int ServerCommand(const std::vector<std::string>& args,
                  const std::function<void(const std::string&)>& on_listening) {
  std::string config_path, token;
  if (const char* env = std::getenv("FEDTRAIN_TOKEN")) token = env;
  std::vector<std::string> sets, plugins;
  int64_t join_timeout_s = 600;
  std::string tls_cert, tls_key, tls_client_ca, resume_from, worker_tokens, metrics_listen;
  bool resume = false, resume_if_any = false;
  GrpcServerOptions o;
  o.listen = "0.0.0.0:50051";
  o.expected_workers = 0;
  auto set_as = [&](const char* path) {
    return [&sets, path](const std::string& v) {
      sets.push_back(absl::StrCat(path, "=", v));
      return true;
    };
  };
  Flags flags(kServerHelp);
  flags.String("--config", &config_path, "--config needs a file")
      .Append("--set", &sets, "--set needs path=value")
      .Custom("--out", set_as("output.dir"), "--out needs a folder")
      .Custom("--threads", set_as("threads"), "--threads needs a number")
      .Append("--plugin", &plugins, "--plugin needs a shared library")
      .String("--listen", &o.listen, "--listen needs HOST:PORT")
      .Int("--workers", &o.expected_workers, 1, "--workers needs a positive number")
      .String("--token", &token, "--token needs a value")
      .Int("--join-timeout", &join_timeout_s, 1,
           "--join-timeout needs a positive number of seconds")
      .Custom("--checkpoint-every",
              [&](const std::string& v) {
                int64_t n = 0;
                if (!absl::SimpleAtoi(v, &n) || n < 1) return false;
                sets.push_back(absl::StrCat("checkpoint.every=", n));
                return true;
              },
              "--checkpoint-every needs a positive number of rounds")
      .Custom("--rejoin-grace",
              [&](const std::string& v) {
                double g = 0;
                if (!absl::SimpleAtod(v, &g) || !(g >= 0) || g > 86400) return false;
                o.rejoin_grace = absl::Seconds(g);
                return true;
              },
              "--rejoin-grace needs a number of seconds >= 0")
      .Switch("--resume", &resume)
      .Switch("--resume-if-any", &resume_if_any)
      .String("--resume-from", &resume_from, "--resume-from needs a run folder", true)
      .String("--tls-cert", &tls_cert, "--tls-cert needs a PEM certificate file", true)
      .String("--tls-key", &tls_key, "--tls-key needs a PEM private key file", true)
      .String("--tls-client-ca", &tls_client_ca, "--tls-client-ca needs a PEM CA certificate file",
              true)
      .String("--worker-tokens", &worker_tokens, "--worker-tokens needs a file", true)
      .Switch("--certificate-identity", &o.identity_from_certificate)
      .String("--metrics-listen", &metrics_listen, "--metrics-listen needs HOST:PORT", true);
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  if (config_path.empty()) return flags.Usage("server needs --config FILE");
  if (o.expected_workers < 1) return flags.Usage("server needs --workers N");
  if (token.empty()) return flags.Usage("server needs --token T (or FEDTRAIN_TOKEN)");
  if (!tls_cert.empty() && tls_key.empty()) return flags.Usage("--tls-cert needs --tls-key FILE");
  if (!tls_key.empty() && tls_cert.empty()) return flags.Usage("--tls-key needs --tls-cert FILE");
  if (o.identity_from_certificate && tls_client_ca.empty())
    return flags.Usage("--certificate-identity needs --tls-client-ca FILE (mutual TLS)");
  if (!tls_client_ca.empty() && tls_cert.empty())
    return flags.Usage("--tls-client-ca (mutual TLS) needs --tls-cert FILE and --tls-key FILE");
  auto fail = [](const absl::Status& s) { return Fail("server", std::string(s.message())); };

  grpc_init();  // docs/maintainers.md §9: avoids the shutdown stall together with _Exit in main
  absl::StatusOr<v1::ExperimentConfig> cfg = LoadConfigFile(config_path);
  if (!cfg.ok()) return fail(cfg.status());
  for (const std::string& s : sets)
    if (absl::Status st = ApplyOverride(s, &*cfg); !st.ok()) return fail(st);
  for (const std::string& p : plugins) cfg->add_plugins(p);
  AlgorithmRegistry registry;
  if (absl::Status st = RegisterAlgorithms(*cfg, &registry); !st.ok()) return fail(st);
  absl::StatusOr<v1::ExperimentConfig> resolved = ResolveConfig(*cfg, registry);
  if (!resolved.ok()) return fail(resolved.status());

  o.token = token;
  if (!worker_tokens.empty()) {
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> wt =
        ReadWorkerTokens(worker_tokens);
    if (!wt.ok()) return fail(wt.status());
    o.worker_tokens = *std::move(wt);
  }
  o.config = *resolved;
  if (absl::Status s = ReadPemFiles({{"--tls-cert", &tls_cert, &o.tls_cert_pem},
                                     {"--tls-key", &tls_key, &o.tls_key_pem},
                                     {"--tls-client-ca", &tls_client_ca, &o.tls_client_ca_pem}});
      !s.ok())
    return fail(s);
  ServerRunOptions run_opts;
  run_opts.track_accepted = true;  // workers keep client states the server accepted
  if (!resume_from.empty()) {
    run_opts.resume_dir = resume_from;
  } else if (resume || resume_if_any) {
    absl::StatusOr<std::string> dir = FindUnfinishedRun(*resolved);
    if (dir.ok()) {
      run_opts.resume_dir = *dir;
    } else if (dir.status().code() != absl::StatusCode::kNotFound) {
      return fail(dir.status());
    } else if (absl::StatusOr<std::string> done = FindFinishedRun(*resolved); done.ok()) {
      // A restarted Job must not train the experiment again (as a new run "-2", "-3", ...).
      if (!resume_if_any)
        return fail(absl::NotFoundError(absl::StrCat(dir.status().message(), "; the run has "
                                                     "finished already in ", *done)));
      std::printf("finished already: %s (nothing to resume)\n", done->c_str());
      FT_LOG(kInfo, "fedtrain server: the run has finished already in ", *done, "; nothing to do");
      return 0;
    } else if (!resume_if_any) {
      return fail(dir.status());
    }
  }
  if (!run_opts.resume_dir.empty())
    FT_LOG(kInfo, "fedtrain server: resuming ", run_opts.resume_dir);
  absl::StatusOr<std::unique_ptr<DeployedServer>> server =
      DeployedServer::Start(o, absl::Seconds(join_timeout_s));
  if (!server.ok()) return fail(server.status());
  std::printf("listening on %s\n", (*server)->address().c_str());
  std::fflush(stdout);
  if (on_listening) on_listening((*server)->address());
  if ((*server)->tls())
    FT_LOG(kInfo, "fedtrain server: TLS on",
           (*server)->client_certificates() ? ", client certificates required" : "");

  v1::ExperimentConfig probe = *cfg;
  FillDefaults(&probe);
  Progress progress(Progress::ModeFor(probe.output().progress(), stderr), stderr, probe.rounds());
  // --metrics-listen: what the last round left, read by the endpoint's thread.
  struct Live {
    absl::Mutex mu;
    int64_t rounds = 0, received = 0, rejected = 0, refused = 0;
    uint64_t bytes_up = 0, bytes_down = 0;
    double accuracy = std::nan(""), round_s = std::nan(""), wall_s = 0;
  } live;
  std::unique_ptr<MetricsHttpServer> metrics;
  if (!metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> m =
        MetricsHttpServer::Start(metrics_listen, [&live] {
          absl::MutexLock lock(&live.mu);
          return PromText({
              {"fedtrain_rounds_completed", "gauge", "Rounds completed in this run.",
               static_cast<double>(live.rounds)},
              {"fedtrain_updates_received_total", "counter", "Client replies received.",
               static_cast<double>(live.received)},
              {"fedtrain_updates_rejected_total", "counter",
               "Client replies rejected by validation.", static_cast<double>(live.rejected)},
              {"fedtrain_messages_refused_total", "counter",
               "Messages the transport refused before the round loop.",
               static_cast<double>(live.refused)},
              {"fedtrain_bytes_up_total", "counter", "Uplink bytes (serialized messages).",
               static_cast<double>(live.bytes_up)},
              {"fedtrain_bytes_down_total", "counter", "Downlink bytes (serialized messages).",
               static_cast<double>(live.bytes_down)},
              {"fedtrain_test_accuracy", "gauge", "Test accuracy of the last evaluated round.",
               live.accuracy},
              {"fedtrain_round_seconds", "gauge", "Wall time of the last round.", live.round_s},
          });
        });
    if (!m.ok()) return fail(m.status());
    metrics = *std::move(m);
    FT_LOG(kInfo, "fedtrain server: metrics on http://", metrics->address(), "/metrics");
  }
  absl::StatusOr<ExperimentOutcome> out = RunExperiment(
      *cfg, registry,
      [&](const RoundSummary& s) {
        for (const std::string& why : s.rejections)
          FT_LOG(kWarning, "fedtrain server: round ", s.round + 1, ": ", why);
        if (metrics != nullptr) {
          absl::MutexLock lock(&live.mu);
          live.rounds = static_cast<int64_t>(s.round) + 1;
          live.received += s.received;
          live.rejected += s.rejected;
          live.refused += s.refused;
          live.bytes_up = s.cum_bytes_up;
          live.bytes_down = s.cum_bytes_down;
          if (s.test) live.accuracy = s.test->accuracy;
          live.round_s = s.wall_s - live.wall_s;
          live.wall_s = s.wall_s;
        }
        progress.OnRound(s);
      },
      [&](const TransportContext& ctx) { return (*server)->WaitForWorkers(ctx.model.dim()); },
      run_opts);
  progress.Finish();
  (*server)->Finish();  // tell the workers the run is over (also after a failure)
  if (!out.ok()) return fail(out.status());
  const RunResult& r = out->result;
  std::printf("run folder: %s\n", out->run_dir.c_str());
  if (r.final_test)
    std::printf("final test accuracy %.2f%%  test loss %.4f  after %lld rounds in %.1f s\n",
                100.0 * r.final_test->accuracy, r.final_test->loss,
                static_cast<long long>(r.rounds), r.wall_s);
  if (r.privacy)
    std::printf("privacy: epsilon %.6g at delta %.3g (%s), %s %.6g\n", r.privacy->epsilon,
                r.privacy->delta, r.privacy_guarantee.c_str(),
                r.privacy_noise_multiplier > 0 ? "noise_multiplier" : "range_extension",
                r.privacy_noise_multiplier > 0 ? r.privacy_noise_multiplier
                                               : r.privacy_range_extension);
  if (!r.stop_reason.empty()) std::printf("stopped early: %s\n", r.stop_reason.c_str());
  return 0;
}

}  // namespace fedtrain
