// The one `fedtrain` binary: `fedtrain simulate | server | worker | plot | help`.
// Exit codes: 0 success, 1 a run or plot failed (message on stderr), 2 bad usage.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aggregators/registry.h"
#include "cli/aggregate_cmd.h"
#include "cli/privacy_cmd.h"
#include "cli/ef_validate.h"
#include "cli/flags.h"
#include "core/build_info.h"
#include "plot/plot.h"
#include "runtime/plugins.h"
#include "cli/progress.h"
#include "cli/mpi_cmd.h"
#include "core/memory.h"
#include "core/signal_watcher.h"
#include "cli/server_cmd.h"
#include "cli/worker_cmd.h"
#include "proto/config_io.h"
#include "sim/simulate.h"

namespace fedtrain {
namespace {

constexpr char kMainHelp[] = R"(fedtrain: federated and distributed training

usage: fedtrain <command> [options]

commands:
  simulate   run an experiment config with simulated clients in this process
  server     run an experiment config as the server of `fedtrain worker` processes
  worker     join a `fedtrain server` and train the clients it routes here
  mpi        a server and workers launched together by mpirun (rank 0 serves)
  plot       draw test accuracy/loss of runs against rounds and uplink bytes
  ef-validate  float64 validation runs of the error-feedback methods (examples/ef/)
  aggregate  apply one (robust) reducer to the rows of a .npy matrix
  privacy    the privacy accountant's answer (epsilon, or calibrated noise) as JSON
  help       show this help; `fedtrain help <command>` (or `fedtrain <command> --help`)
             shows that command's
  --version  the version, git commit and build type of this binary

Every command also takes --log-level debug|info|warning|error (log lines on stderr, with a
UTC timestamp and their level; the server and workers log joins, refusals and rejections).

Every option takes its value as "--name VALUE" or "--name=VALUE".
)";

constexpr char kSimulateHelp[] = R"(usage: fedtrain simulate --config FILE [--set path=value ...] [--out DIR] [--threads N] [--plugin LIB.so ...] [--print-config] [--resume RUN_DIR]

Runs the experiment in FILE (.json, or protobuf text format: .textproto/.pbtxt/.txt) with
simulated clients. Writes <output.dir>/<run_name>/ with config.json (the resolved config),
metrics.jsonl and metrics.csv (one row per round), model.ftw (final weights), summary.json,
partition_histogram.csv (unless client data are generated on demand). The folder is named
<run_name>.partial until the run completes.

options:
  --config FILE        experiment config (required)
  --set path=value     override any config field, e.g. --set local.lr=0.1
                       --set model.hidden=200,100  --set algorithm.params.mu=0.01
                       (repeatable; applied in order after the file)
  --out DIR            shorthand for --set output.dir=DIR
  --threads N          shorthand for --set threads=N (results do not depend on it)
  --plugin LIB.so      shorthand for adding LIB.so to the config's `plugins` (algorithm
                       plug-ins, see the README); repeatable
  --print-config       print the resolved config as JSON and exit without running
  --resume RUN_DIR     continue the unfinished run in RUN_DIR (NAME.partial) from its
                       checkpoint.ftc, ending with the weights an uninterrupted run gives;
                       the config is RUN_DIR/config.json unless --config is given (it must be
                       the same experiment; threads and output settings may differ)

SIGINT or SIGTERM (Ctrl-C) stops the run after the round in progress: the folder keeps its
.partial name, its metrics up to that round, error.txt saying it was interrupted, and, when
checkpoint.every > 0, a checkpoint of that round to --resume from (not for runs whose
clients keep their own state in this process, e.g. SCAFFOLD: their checkpoint is removed).
A second signal ends the process at once. Exit status 128 + the signal's number.
  --help               this help
)";

constexpr char kPlotHelp[] = R"(usage: fedtrain plot RUN_DIR... [-o OUT.png|OUT.svg] [--title T] [--width N] [--height N]

Draws test accuracy and test loss against rounds and against cumulative uplink MB for one
or several run folders (each holding metrics.csv) into one PNG or SVG figure.

options:
  -o, --output FILE    output file, .png or .svg (default: plot.png)
  --title TEXT         figure title
  --width N, --height N  figure size in pixels (default 1200 x 900)
  --help               this help
)";

int Usage(const std::string& msg, const char* help) {
  std::fprintf(stderr, "fedtrain: %s\n\n%s", msg.c_str(), help);
  return 2;
}

bool IsHelp(const std::string& a) { return a == "--help" || a == "-h" || a == "help"; }

// The help text of a command, or null when `cmd` is none.
const char* CommandHelp(const std::string& cmd) {
  if (cmd == "simulate") return kSimulateHelp;
  if (cmd == "plot") return kPlotHelp;
  if (cmd == "server") return kServerHelp;
  if (cmd == "worker") return kWorkerHelp;
  if (cmd == "mpi") return kMpiHelp;
  if (cmd == "aggregate") return kAggregateHelp;
  if (cmd == "ef-validate") return kEfValidateHelp;
  if (cmd == "privacy") return kPrivacyHelp;
  return nullptr;
}

int Simulate(const std::vector<std::string>& args) {
  std::string config_path;
  std::vector<std::string> sets, plugins;
  std::string resume_dir;
  bool print_config = false;
  auto set_as = [&sets](const char* path) {
    return [&sets, path](const std::string& v) {
      sets.push_back(absl::StrCat(path, "=", v));
      return true;
    };
  };
  Flags flags(kSimulateHelp);
  flags.String("--config", &config_path, "--config needs a file")
      .Append("--set", &sets, "--set needs path=value")
      .Custom("--out", set_as("output.dir"), "--out needs a folder")
      .Custom("--threads", set_as("threads"), "--threads needs a number")
      .Append("--plugin", &plugins, "--plugin needs a shared library")
      .Switch("--print-config", &print_config)
      .String("--resume", &resume_dir, "--resume needs a run folder (NAME.partial)", true);
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  // --resume without --config: the config the run folder recorded.
  if (config_path.empty() && !resume_dir.empty()) config_path = resume_dir + "/config.json";
  if (config_path.empty())
    return Usage("simulate needs --config FILE (or --resume RUN_DIR)", kSimulateHelp);
  // SIGINT/SIGTERM stop the run after the round in progress, so that the folder is left
  // consistent (metrics written, checkpoint of that round, error.txt); a second one ends the
  // process at once. Before any thread starts: threads inherit the blocked signals.
  std::atomic<int> interrupt{0};
  SignalWatcher signals({SIGINT, SIGTERM}, [&interrupt](int sig) {
    if (interrupt.exchange(sig) != 0) {
      std::fprintf(stderr, "\nfedtrain simulate: %s again: stopping at once\n", strsignal(sig));
      std::_Exit(128 + sig);
    }
    std::fprintf(stderr, "\nfedtrain simulate: %s: stopping after the round in progress "
                         "(send it again to stop at once)\n", strsignal(sig));
  });

  absl::StatusOr<v1::ExperimentConfig> cfg = LoadConfigFile(config_path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "fedtrain simulate: %s\n", std::string(cfg.status().message()).c_str());
    return 1;
  }
  for (const std::string& s : sets) {
    if (absl::Status st = ApplyOverride(s, &*cfg); !st.ok()) {
      std::fprintf(stderr, "fedtrain simulate: %s\n", std::string(st.message()).c_str());
      return 1;
    }
  }
  for (const std::string& p : plugins) cfg->add_plugins(p);
  AlgorithmRegistry registry;
  RegisterBuiltinAlgorithms(&registry);
  for (const std::string& plugin : cfg->plugins()) {
    if (absl::Status st = LoadPlugin(plugin, &registry); !st.ok()) {
      std::fprintf(stderr, "fedtrain simulate: %s\n", std::string(st.message()).c_str());
      return 1;
    }
  }
  if (print_config) {
    absl::StatusOr<v1::ExperimentConfig> resolved = ResolveConfig(*cfg, registry);
    if (!resolved.ok()) {
      std::fprintf(stderr, "fedtrain simulate: %s\n",
                   std::string(resolved.status().message()).c_str());
      return 1;
    }
    std::printf("%s\n", ConfigToRecordJson(*resolved).c_str());
    return 0;
  }
  v1::ExperimentConfig probe = *cfg;
  FillDefaults(&probe);
  Progress progress(Progress::ModeFor(probe.output().progress(), stderr), stderr, probe.rounds());
  ServerRunOptions run_opts;
  run_opts.resume_dir = resume_dir;
  run_opts.interrupt = &interrupt;
  absl::StatusOr<ExperimentOutcome> out = SimulateExperiment(
      *cfg, registry, [&](const RoundSummary& s) { progress.OnRound(s); }, run_opts);
  progress.Finish();
  if (!out.ok()) {
    std::fprintf(stderr, "fedtrain simulate: %s\n", std::string(out.status().message()).c_str());
    // Interrupted: the shell's convention, 128 + the signal's number.
    if (absl::IsCancelled(out.status()) && interrupt.load() != 0) return 128 + interrupt.load();
    return 1;
  }
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

int Plot(const std::vector<std::string>& args) {
  PlotOptions opts;
  opts.output = "plot.png";
  std::vector<std::string> runs;
  Flags flags(kPlotHelp);
  flags.String("-o,--output", &opts.output, "--output needs a file", /*non_empty=*/true)
      .String("--title", &opts.title, "--title needs text")
      .Int("--width", &opts.width, 1, "--width needs a positive number")
      .Int("--height", &opts.height, 1, "--height needs a positive number")
      .Positional(&runs);
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  if (runs.empty()) return Usage("plot needs at least one run folder", kPlotHelp);
  if (absl::Status s = PlotRuns(runs, opts); !s.ok()) {
    std::fprintf(stderr, "fedtrain plot: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("wrote %s\n", opts.output.c_str());
  return 0;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("no command given", kMainHelp);
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "--version" || cmd == "version") {
    std::printf("fedtrain %s\ngit commit %s\nbuild type %s\n", BuildVersion(),
                BuildGitCommit(), BuildType());
    return 0;
  }
  if (IsHelp(cmd)) {
    if (args.empty()) return std::fputs(kMainHelp, stdout), 0;
    if (const char* help = CommandHelp(args[0])) return PrintHelp(help, stdout), 0;
    return Usage(absl::StrCat("no help for '", args[0], "': not a command"), kMainHelp);
  }
  if (cmd == "simulate") return Simulate(args);
  if (cmd == "plot") return Plot(args);
  // The deployed processes move model-sized buffers every round (core/memory.h).
  if (cmd == "server" || cmd == "worker" || cmd == "mpi") KeepLargeAllocations();
  if (cmd == "server") return ServerCommand(args);
  if (cmd == "worker") return WorkerCommand(args);
  if (cmd == "mpi") return MpiCommand(&argc, &argv, args);
  if (cmd == "ef-validate") return EfValidateCommand(args, stdout, stderr);
  if (cmd == "aggregate") return AggregateCommand(args, stdout);
  if (cmd == "privacy") return PrivacyCommand(args, stdout);
  return Usage(absl::StrCat("unknown command '", cmd, "'"), kMainHelp);
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  // fedtrain reports errors as Status; an exception from a library that escapes (std::bad_alloc,
  // std::system_error from thread creation) still ends with a message and exit code 1 rather
  // than an abort. Run folders write their error.txt themselves (runtime/run_folder.h).
  int rc = 1;
  try {
    rc = fedtrain::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedtrain: failed with an exception: %s\n", e.what());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}
