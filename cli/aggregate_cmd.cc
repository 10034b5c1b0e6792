#include "cli/aggregate_cmd.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "aggregators/registry.h"
#include "cli/flags.h"
#include "runtime/aggregate_file.h"
#include "runtime/plugins.h"

namespace fedtrain {

const char kAggregateHelp[] = R"(usage: fedtrain aggregate --rule RULE [--f F] [--set key=value ...] IN.npy OUT.npy

Applies one reducer to the rows of IN.npy, a p x n float32 or float64 array in NumPy's .npy
format (C order; float64 values are rounded to float32 first, as the server sees float32
updates), and writes the n-vector to OUT.npy (float32). The diagnostics (chosen inputs,
Flag's reconstruction ratios, ...) are printed as JSON on stdout. Exit 1 on a bad file or a
failed rule (e.g. too few rows for the declared f), 2 on bad usage.

options:
  --rule RULE        mean, median, trimmed_mean, meamed, phocas, krum, multi_krum, bulyan,
                     geometric_median, centered_clipping, nna, flag (or a plug-in's name)
  --f F              the number of Byzantine rows to tolerate (algorithm.reducer.f; 0)
  --set key=value    a rule parameter (algorithm.reducer.params), e.g. --set m=8
                     --set lambda=2 --set init=random; nonfinite=zero|error sets
                     algorithm.reducer.nonfinite; repeatable
  --round N          the round number that keys randomized rules (flag init=random; 0)
  --plugin LIB.so    load reducer plug-ins; repeatable
  --help             this help
)";

int AggregateCommand(const std::vector<std::string>& args, std::FILE* out) {
  AggregateFileOptions o;
  std::vector<std::string> files, sets, plugins;
  std::string rule;
  int64_t f = 0, round = 0;
  Flags flags(kAggregateHelp);
  flags.String("--rule", &rule, "--rule needs a reducer name", true)
      .Int("--f", &f, 0, "--f needs an integer >= 0")
      .Append("--set", &sets, "--set needs key=value")
      .Int("--round", &round, 0, "--round needs an integer >= 0")
      .Append("--plugin", &plugins, "--plugin needs a library path")
      .Positional(&files);
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  if (rule.empty()) return flags.Usage("aggregate needs --rule RULE");
  if (files.size() != 2) return flags.Usage("aggregate needs IN.npy and OUT.npy");
  o.in = files[0];
  o.out = files[1];
  o.round = static_cast<uint64_t>(round);
  o.reducer.set_name(rule);
  o.reducer.set_f(f);
  for (const std::string& s : sets) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return flags.Usage(absl::StrCat("--set ", s, ": expected key=value"));
    const std::string key = s.substr(0, eq), value = s.substr(eq + 1);
    if (key == "nonfinite") {
      o.reducer.set_nonfinite(value);
      continue;
    }
    google::protobuf::Value& v = (*o.reducer.mutable_params()->mutable_fields())[key];
    double d;
    if (value == "true" || value == "false") {
      v.set_bool_value(value == "true");
    } else if (absl::SimpleAtod(value, &d)) {
      v.set_number_value(d);
    } else {
      v.set_string_value(value);
    }
  }
  AlgorithmRegistry registry;
  RegisterBuiltinAlgorithms(&registry);
  for (const std::string& p : plugins)
    if (absl::Status st = LoadPlugin(p, &registry); !st.ok())
      return Fail("aggregate", std::string(st.message()));
  absl::StatusOr<std::string> json = AggregateNpyFile(o, *registry.reducers());
  if (!json.ok()) return Fail("aggregate", std::string(json.status().message()));
  std::fprintf(out, "%s\n", json->c_str());
  return 0;
}

}  // namespace fedtrain
