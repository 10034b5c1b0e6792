#include "runtime/run_folder.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "runtime/model_file.h"
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

// "<dir>/<name>", or "<dir>/<name>-2", "-3", ... when taken (finished or partial).
std::string FreeRunDir(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  std::string base = absl::StrCat(dir, "/", name);
  std::string cand = base;
  for (int i = 2; fs::exists(cand) || fs::exists(cand + ".partial"); ++i)
    cand = absl::StrCat(base, "-", i);
  return cand;
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
  // config.json (and the checkpoint's fingerprint) hold the statistics the data were
  // standardised with, so that the saved config repeats the run.
  RecordDataStatistics(data, &cfg);
  {
    // Settings that need the model size (compression.k against d) are checked here too.
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> model, MakeConfigModel(cfg, data));
    FT_RETURN_IF_ERROR(MakeUplinkCodec(cfg.compression(), model->dim()).status());
  }

  std::error_code ec;
  fs::create_directories(cfg.output().dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create output.dir ", cfg.output().dir(),
                                                  ": ", ec.message()));
  const bool resuming = !server_opts.resume_dir.empty();
  std::string final_dir, partial;
  ServerRunOptions run_opts = server_opts;
  if (resuming) {
    partial = server_opts.resume_dir;
    while (partial.size() > 1 && partial.back() == '/') partial.pop_back();
    if (!absl::EndsWith(partial, ".partial") || !fs::is_directory(partial))
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot resume ", partial, ": not an unfinished run folder (<name>.partial)"));
    final_dir = partial.substr(0, partial.size() - std::string(".partial").size());
    if (fs::exists(final_dir))
      return absl::FailedPreconditionError(
          absl::StrCat("cannot resume ", partial, ": ", final_dir, " exists already"));
    run_opts.checkpoint_path = partial + "/checkpoint.ftc";
    FT_ASSIGN_OR_RETURN(CoordinatorSnapshot snap,
                        LoadCheckpoint(run_opts.checkpoint_path,
                                       {cfg.algorithm().name(), ConfigFingerprint(cfg)}));
    run_opts.resume = std::make_shared<const CoordinatorSnapshot>(std::move(snap));
  } else {
    final_dir = FreeRunDir(cfg.output().dir(), cfg.output().run_name());
    partial = final_dir + ".partial";
    fs::create_directories(partial, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", partial, ": ", ec.message()));
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
  auto run = [&]() -> absl::StatusOr<RunResult> {
    if (!resuming)
      FT_RETURN_IF_ERROR(WriteText(partial + "/config.json", ConfigToJson(cfg) + "\n"));
    // The per-client class histogram of the split (docs/federated.md §7.2: always log the split).
    // Not for on-demand client data: it would generate every client of the population.
    if (!data.population && !resuming) {
      std::string hist;
      for (const auto& row : ClassHistogram(data.train, data.partition))
        absl::StrAppend(&hist, absl::StrJoin(row, ","), "\n");
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
    FT_ASSIGN_OR_RETURN(RunResult r,
                        RunFederation(run_cfg, registry, data, sink.get(), on_round,
                                      /*model=*/nullptr, transport, run_opts));
    if (cfg.output().save_model())
      FT_RETURN_IF_ERROR(SaveModel(partial + "/model.ftw", r.model_description, r.layout,
                                   static_cast<uint64_t>(r.rounds), r.model));
    MetricsRow summary;
    summary.Set("name", cfg.name())
        .Set("model", r.model_description)
        .Set("rounds", r.rounds)
        .Set("test_accuracy", r.final_test ? r.final_test->accuracy : std::nan(""))
        .Set("test_loss", r.final_test ? r.final_test->loss : std::nan(""))
        .Set("wall_s", r.wall_s)
        .Set("threads", static_cast<int64_t>(cfg.threads()))
        .Set("cum_bytes_up", static_cast<int64_t>(r.cum_bytes_up))
        .Set("cum_bytes_down", static_cast<int64_t>(r.cum_bytes_down))
        .Set("state_bytes_read", static_cast<int64_t>(r.state_bytes_read))
        .Set("state_bytes_written", static_cast<int64_t>(r.state_bytes_written))
        .Set("weights_fnv1a64", absl::StrCat(HashFloats(r.model)));
    FT_RETURN_IF_ERROR(WriteText(partial + "/summary.json", summary.ToJson() + "\n"));
    return r;
  };
  absl::StatusOr<RunResult> r = run();
  if (!scratch_state.empty()) fs::remove_all(scratch_state, ec);
  if (!r.ok()) {
    (void)WriteText(partial + "/error.txt", r.status().ToString() + "\n");
    return absl::Status(r.status().code(),
                        absl::StrCat(r.status().message(), " (incomplete run left in ", partial, ")"));
  }
  fs::rename(partial, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", partial, ": ", ec.message()));
  return ExperimentOutcome{final_dir, std::move(r).value()};
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
