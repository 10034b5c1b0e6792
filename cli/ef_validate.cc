#include "cli/ef_validate.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "fedtrain/v1/ef_validation.pb.h"
#include "google/protobuf/util/json_util.h"
#include "sim/ef_validation.h"

namespace fedtrain {

const char kEfValidateHelp[] =
    R"(usage: fedtrain ef-validate --config FILE [--out DIR]

Runs the float64 validation experiments of the error-feedback methods (docs/compression.md
§4: gd, naive, ef14, ef14b, ef21, ef21w, econtrol on the three-worker example, heterogeneous
quadratics and nonconvex logistic regression on breast_cancer) listed in the JSON config FILE
(message fedtrain.v1.EfValidationConfig, examples in examples/ef/). Prints one table block
per experiment and writes table.txt, table.csv and results.json into DIR.

options:
  --config FILE   experiment grid (required)
  --out DIR       output folder (default: runs/ef-validate/<config name>)
  --help          this help
)";

namespace {

int UsageError(std::FILE* err, const std::string& msg) {
  std::fprintf(err, "fedtrain ef-validate: %s\n\n%s", msg.c_str(), kEfValidateHelp);
  return 2;
}

bool WriteFile(const std::string& path, const std::string& text, std::FILE* err) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) {
    std::fprintf(err, "fedtrain ef-validate: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

}  // namespace

int EfValidateCommand(const std::vector<std::string>& args, std::FILE* out, std::FILE* err) {
  std::string config_path, out_dir;
  Flags flags(kEfValidateHelp, out, err);
  flags.String("--config", &config_path, "--config needs a file")
      .String("--out", &out_dir, "--out needs a folder");
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  if (config_path.empty()) return UsageError(err, "ef-validate needs --config FILE");

  std::ifstream in(config_path, std::ios::binary);
  if (!in) {
    std::fprintf(err, "fedtrain ef-validate: cannot read config %s\n", config_path.c_str());
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  v1::EfValidationConfig cfg;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  if (auto st = google::protobuf::util::JsonStringToMessage(text.str(), &cfg, opts); !st.ok()) {
    std::fprintf(err, "fedtrain ef-validate: %s: %s\n", config_path.c_str(),
                 std::string(st.message()).c_str());
    return 2;
  }
  absl::StatusOr<EfValidationPlan> plan = PlanEfValidation(cfg);
  if (!plan.ok()) {
    std::fprintf(err, "fedtrain ef-validate: %s: %s\n", config_path.c_str(),
                 std::string(plan.status().message()).c_str());
    // A bad field is a usage error; a missing or malformed data file is not.
    return absl::IsInvalidArgument(plan.status()) ? 2 : 1;
  }
  if (out_dir.empty()) out_dir = absl::StrCat("runs/ef-validate/", cfg.name());

  size_t total = 0, done = 0;
  for (const EfExperimentPlan& e : plan->experiments) total += e.runs.size();
  absl::StatusOr<EfValidationReport> report =
      RunEfValidation(*plan, [&](const EfRow& row) {
        const EfExperimentPlan& e = plan->experiments[row.experiment];
        std::fprintf(err, "[%zu/%zu] %s: %s  %.2f s\n", ++done, total, e.name.c_str(),
                     e.runs[row.run].label.c_str(), row.result.wall_s);
      });
  if (!report.ok()) {
    std::fprintf(err, "fedtrain ef-validate: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  const std::string table = FormatEfTable(*plan, *report);
  std::fputs(table.c_str(), out);

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    std::fprintf(err, "fedtrain ef-validate: cannot create %s: %s\n", out_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  if (!WriteFile(out_dir + "/table.txt", table, err) ||
      !WriteFile(out_dir + "/table.csv", EfTableCsv(*plan, *report), err) ||
      !WriteFile(out_dir + "/results.json", EfResultsJson(*plan, *report), err))
    return 1;
  std::fprintf(out, "wrote %s/{table.txt,table.csv,results.json}\n", out_dir.c_str());
  return 0;
}

}  // namespace fedtrain
