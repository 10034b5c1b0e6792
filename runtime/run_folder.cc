#include "runtime/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/build_info.h"
#include "core/status_macros.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "runtime/model_file.h"
#include "runtime/tensorboard.h"
#include "runtime/uplink_setup.h"
#include "server/checkpoint.h"

namespace fedtrain {
namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Written whole or not at all (a temporary file renamed over `path`).
absl::Status WriteTextAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  FT_RETURN_IF_ERROR(WriteText(tmp, text));
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

// Creates a fresh "<dir>/<name>.partial" (or "<dir>/<name>-2.partial", "-3", ... when the
// name is taken, finished or partial) and returns its name less ".partial". The folder is
// made with a single mkdir, so two runs starting at once never get the same one.
absl::StatusOr<std::string> MakeFreeRunDir(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string base = absl::StrCat(dir, "/", name);
  std::string cand = base;
  for (int i = 2;; ++i) {
    std::error_code ec;
    if (!fs::exists(cand, ec) && fs::create_directory(cand + ".partial", ec)) return cand;
    if (ec)
      return absl::InternalError(absl::StrCat("cannot create ", cand, ".partial: ", ec.message()));
    cand = absl::StrCat(base, "-", i);
  }
}

// Removes what an interrupted atomic write leaves in a run folder: "<file>.tmp" (model,
// metrics, config) and "<file>.tmp.<pid>" (checkpoint).
void RemoveTemporaryFiles(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string base = it->path().filename().string();
    if (it->is_regular_file(ec) &&
        (absl::EndsWith(base, ".tmp") || absl::StrContains(base, ".tmp.")))
      stale.push_back(it->path());
  }
  for (const fs::path& p : stale) fs::remove(p, ec);
}

// "std::bad_alloc" and the like, escaping the run, as a Status (docs/maintainers.md §4: no
// exception crosses our interfaces; this is the boundary where a library's ones are caught).
template <typename F>
absl::StatusOr<RunResult> RunCatching(F&& run) {
  try {
    return run();
  } catch (const std::bad_alloc& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "out of memory (", e.what(), "): the model, the client states or the threads do not "
        "fit in this machine's memory; lower model.hidden, threads or federation.clients_per_round"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("the run failed with an exception: ", e.what()));
  }
}

// Rounds of metrics.csv at `path` whose `missing` column is positive: the rounds that went on
// without some sampled client's update, those before a resume included.
int64_t CountIncompleteRounds(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return 0;
  const std::vector<std::string> head = absl::StrSplit(line, ',');
  const auto col = std::find(head.begin(), head.end(), "missing");
  if (col == head.end()) return 0;
  const size_t c = static_cast<size_t>(col - head.begin());
  int64_t n = 0;
  while (std::getline(in, line)) {
    const std::vector<std::string> f = absl::StrSplit(line, ',');
    int64_t v = 0;
    if (c < f.size() && absl::SimpleAtoi(f[c], &v) && v > 0) ++n;
  }
  return n;
}

// The best test accuracy in metrics.jsonl at `path` (full precision, unlike the CSV) and its
// (1-based) round: the earliest round that reached it. {NaN, 0} when no round was evaluated.
std::pair<double, int64_t> BestAccuracy(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  double best = std::nan("");
  int64_t best_round = 0;
  // The number after "key": in a row (the rows are flat objects that MetricsRow wrote).
  auto field = [&line](absl::string_view key) -> std::string {
    const std::string k = absl::StrCat("\"", key, "\":");
    const size_t at = line.find(k);
    if (at == std::string::npos) return "";
    const size_t start = at + k.size();
    const size_t end = line.find_first_of(",}", start);
    return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
  };
  while (std::getline(in, line)) {
    double a = 0;
    int64_t r = 0;
    if (absl::SimpleAtod(field("test_accuracy"), &a) && std::isfinite(a) &&
        absl::SimpleAtoi(field("round"), &r) && !(a <= best)) {
      best = a;
      best_round = r;
    }
  }
  return {best, best_round};
}

// Now as ISO 8601 UTC with milliseconds, e.g. "2026-12-07T22:50:55.123Z".
std::string UtcNow() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<ExperimentOutcome> RunExperiment(
    const v1::ExperimentConfig& raw, const AlgorithmRegistry& registry,
    const std::function<void(const RoundSummary&)>& on_round,
    const TransportFactory& transport, const ServerRunOptions& server_opts) {
  namespace fs = std::filesystem;
  // Everything that can be checked before training is checked before any folder exists.
  FT_ASSIGN_OR_RETURN(v1::ExperimentConfig cfg, ResolveConfig(raw, registry));
  FT_ASSIGN_OR_RETURN(ExperimentData data, LoadExperimentData(cfg));
  FT_RETURN_IF_ERROR(CheckModelFitsMemory(cfg, data));
  // config.json (and the checkpoint's fingerprint) hold the statistics the data were
  // standardised with, so that the saved config repeats the run.
  RecordDataStatistics(data, &cfg);
  {
    // Settings that need the model size (compression.k against d) are checked here too.
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> model, MakeConfigModel(cfg, data));
    FT_RETURN_IF_ERROR(MakeUplinkCodec(cfg, model->dim()).status());
  }

  std::error_code ec;
  fs::create_directories(cfg.output().dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create output.dir ", cfg.output().dir(),
                                                  ": ", ec.message()));
  const bool resuming = !server_opts.resume_dir.empty();
  std::string final_dir, partial;
  ServerRunOptions run_opts = server_opts;
  std::unique_ptr<RunFolderLock> lock;  // held until the folder is renamed (or the run failed)
  if (resuming) {
    partial = server_opts.resume_dir;
    while (partial.size() > 1 && partial.back() == '/') partial.pop_back();
    if (!absl::EndsWith(partial, ".partial") || !fs::is_directory(partial))
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot resume ", partial, ": not an unfinished run folder (<name>.partial)"));
    final_dir = partial.substr(0, partial.size() - std::string(".partial").size());
    // Locked before anything is read: a concurrent run of this folder may be writing it.
    FT_ASSIGN_OR_RETURN(lock, RunFolderLock::Acquire(partial));
    if (fs::exists(final_dir))
      return absl::FailedPreconditionError(
          absl::StrCat("cannot resume ", partial, ": ", final_dir, " exists already"));
    RemoveTemporaryFiles(partial);
    run_opts.checkpoint_path = partial + "/checkpoint.ftc";
    FT_ASSIGN_OR_RETURN(CoordinatorSnapshot snap,
                        LoadCheckpoint(run_opts.checkpoint_path,
                                       {cfg.algorithm().name(), ConfigFingerprint(cfg)}));
    run_opts.resume = std::make_shared<const CoordinatorSnapshot>(std::move(snap));
  } else {
    FT_ASSIGN_OR_RETURN(final_dir, MakeFreeRunDir(cfg.output().dir(), cfg.output().run_name()));
    partial = final_dir + ".partial";
    FT_ASSIGN_OR_RETURN(lock, RunFolderLock::Acquire(partial));
    if (cfg.checkpoint().every() > 0) run_opts.checkpoint_path = partial + "/checkpoint.ftc";
  }

  // A "file" state store without a folder of its own gets a scratch one in the run folder,
  // removed when the run ends (client states are a simulation's working memory).
  v1::ExperimentConfig run_cfg = cfg;
  std::string scratch_state;
  if (cfg.federation().state_store() == "file" && cfg.federation().state_dir().empty()) {
    scratch_state = partial + "/client_state";
    run_cfg.mutable_federation()->set_state_dir(scratch_state);
  }
  const std::string start_time = UtcNow();
  auto run = [&]() -> absl::StatusOr<RunResult> {
    // On resume too: the checkpoint was verified against this config (ConfigFingerprint), and
    // the file may have been deleted or damaged since the run began.
    FT_RETURN_IF_ERROR(WriteTextAtomically(partial + "/config.json", ConfigToRecordJson(cfg) + "\n"));
    // The per-client class histogram of the split (docs/federated.md §7.2: always log the split).
    // Not for on-demand client data: it would generate every client of the population.
    if (!data.population && !resuming) {
      // A header ("client,class_0,...") and one row per client: its id, then its count of
      // each class.
      const auto rows = ClassHistogram(data.train, data.partition);
      std::string hist = "client";
      const size_t classes = rows.empty() ? 0 : rows[0].size();
      for (size_t k = 0; k < classes; ++k) absl::StrAppend(&hist, ",class_", k);
      hist += "\n";
      for (size_t c = 0; c < rows.size(); ++c)
        absl::StrAppend(&hist, c, ",", absl::StrJoin(rows[c], ","), "\n");
      FT_RETURN_IF_ERROR(WriteText(partial + "/partition_histogram.csv", hist));
    }
    std::unique_ptr<FileMetricsSink> sink;
    if (resuming) {
      FT_ASSIGN_OR_RETURN(sink, FileMetricsSink::Resume(partial + "/metrics",
                                                        static_cast<int64_t>(run_opts.resume->state.round)));
      fs::remove(partial + "/error.txt", ec);
    } else {
      FT_ASSIGN_OR_RETURN(sink, FileMetricsSink::Open(partial + "/metrics"));
    }
    // output.tensorboard: the same rows also go to an event file (a new one per process, so
    // a resumed run adds a file; TensorBoard reads them all).
    MetricsSink* rows = sink.get();
    std::unique_ptr<TensorBoardSink> tensorboard;
    if (cfg.output().tensorboard()) {
      FT_ASSIGN_OR_RETURN(tensorboard, TensorBoardSink::Open(partial + "/tensorboard", rows));
      rows = tensorboard.get();
    }
    FT_ASSIGN_OR_RETURN(RunResult r,
                        RunFederation(run_cfg, registry, data, rows, on_round,
                                      /*model=*/nullptr, transport, run_opts));
    if (cfg.output().save_model())
      FT_RETURN_IF_ERROR(SaveModel(partial + "/model.ftw", r.model_description, r.layout,
                                   static_cast<uint64_t>(r.rounds), r.model));
    const auto [best_acc, best_round] = BestAccuracy(partial + "/metrics.jsonl");
    MetricsRow summary;
    // format_version 2: the fields below (version 1, before it was recorded, had a decimal
    // weights hash and no version, times, build or best-accuracy fields).
    summary.Set("format_version", int64_t{2})
        .Set("name", cfg.name())
        .Set("model", r.model_description)
        .Set("rounds", r.rounds)
        .Set("incomplete_rounds", CountIncompleteRounds(partial + "/metrics.csv"))
        .Set("test_accuracy", r.final_test ? r.final_test->accuracy : std::nan(""))
        .Set("test_loss", r.final_test ? r.final_test->loss : std::nan(""))
        .Set("wall_s", r.wall_s)
        .Set("threads", static_cast<int64_t>(cfg.threads()))
        .Set("cum_bytes_up", static_cast<int64_t>(r.cum_bytes_up))
        .Set("cum_bytes_down", static_cast<int64_t>(r.cum_bytes_down))
        .Set("state_bytes_read", static_cast<int64_t>(r.state_bytes_read))
        .Set("state_bytes_written", static_cast<int64_t>(r.state_bytes_written))
        .Set("best_test_accuracy", best_acc)
        .Set("best_round", best_round)
        // The same 16 hex digits as model.ftw's header.
        .Set("weights_fnv1a64", absl::StrFormat("%016x", HashFloats(r.model)))
        .Set("start_time", start_time)
        .Set("end_time", UtcNow())
        .Set("fedtrain_version", std::string(BuildVersion()))
        .Set("git_commit", std::string(BuildGitCommit()))
        .Set("build_type", std::string(BuildType()));
    if (cfg.privacy().mechanism() != "none") {
      summary.Set("privacy_mechanism", cfg.privacy().mechanism())
          .Set("privacy_guarantee", r.privacy_guarantee)
          .Set("epsilon", r.privacy ? r.privacy->epsilon : 0.0)
          .Set("delta", cfg.privacy().delta())
          .Set("rdp_order", r.privacy ? r.privacy->order : std::nan(""));
      if (cfg.privacy().mechanism() == "rqm")
        summary.Set("range_extension", r.privacy_range_extension);
      else
        summary.Set("noise_multiplier", r.privacy_noise_multiplier)
            .Set("placement", cfg.privacy().placement());
    }
    if (!r.stop_reason.empty()) summary.Set("stop_reason", r.stop_reason);
    FT_RETURN_IF_ERROR(WriteText(partial + "/summary.json", summary.ToJson() + "\n"));
    return r;
  };
  absl::StatusOr<RunResult> r = RunCatching(run);
  if (!scratch_state.empty()) fs::remove_all(scratch_state, ec);
  if (!r.ok()) {
    (void)WriteText(partial + "/error.txt", r.status().ToString() + "\n");
    return absl::Status(r.status().code(),
                        absl::StrCat(r.status().message(), " (incomplete run left in ", partial, ")"));
  }
  RemoveTemporaryFiles(partial);
  // Renamed while still locked (the lock file moves with the folder, and a process that
  // opened the lock file before the rename still finds it held), then the lock file goes.
  fs::rename(partial, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", partial, ": ", ec.message()));
  fs::remove(absl::StrCat(final_dir, "/", RunFolderLock::kFileName), ec);
  lock.reset();
  return ExperimentOutcome{final_dir, std::move(r).value()};
}

absl::StatusOr<std::unique_ptr<RunFolderLock>> RunFolderLock::Acquire(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kFileName);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("cannot open the lock file ", path, ": ",
                                            std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK)
      return absl::InternalError(absl::StrCat("cannot lock ", path, ": ", std::strerror(err)));
    int64_t pid = 0;
    const bool named = n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(
                                                     absl::string_view(buf, static_cast<size_t>(n))),
                                                 &pid);
    return absl::FailedPreconditionError(absl::StrCat(
        "run folder ", dir, " is in use by another fedtrain process",
        named ? absl::StrCat(" (pid ", pid, ")") : std::string(),
        ": only one process may run or resume a run folder at a time"));
  }
  // The pid is only for the next one's message: written after the lock is ours.
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; the message of the next one just lacks it.
  }
  return std::unique_ptr<RunFolderLock>(new RunFolderLock(fd));
}

RunFolderLock::~RunFolderLock() { ::close(fd_); }

absl::StatusOr<std::string> FindFinishedRun(const v1::ExperimentConfig& cfg) {
  namespace fs = std::filesystem;
  const std::string dir = cfg.output().dir(), name = cfg.output().run_name();
  const std::string want = ConfigFingerprint(cfg);
  std::vector<std::string> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string base = it->path().filename().string();
    if (!absl::StartsWith(base, name)) continue;
    const std::string mid = base.substr(name.size());
    int k = 0;
    if (!mid.empty() && !(mid[0] == '-' && absl::SimpleAtoi(mid.substr(1), &k))) continue;
    std::error_code e2;
    if (!fs::is_directory(it->path(), e2) || !fs::exists(it->path() / "summary.json", e2))
      continue;
    absl::StatusOr<v1::ExperimentConfig> done =
        LoadConfigFile((it->path() / "config.json").string());
    // config.json leaves out the sections that did not apply (ConfigToRecordJson): their
    // defaults come back as a load would give them.
    if (done.ok()) FillDefaults(&*done);
    if (done.ok() && ConfigFingerprint(*done) == want) found.push_back(it->path().string());
  }
  if (found.empty())
    return absl::NotFoundError(absl::StrCat("no finished run of ", name, " with this config in ", dir));
  std::sort(found.begin(), found.end());
  return found[0];
}

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

}  // namespace fedtrain
