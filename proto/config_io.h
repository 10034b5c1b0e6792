// Reading, overriding, completing, validating and saving the ExperimentConfig.
// Pure functions over proto messages; thread-compatible.
#ifndef FEDTRAIN_PROTO_CONFIG_IO_H_
#define FEDTRAIN_PROTO_CONFIG_IO_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

// Parses a config from text: JSON when `format` is "json", protobuf text format when "text".
// InvalidArgument naming `source` and the parser's complaint (unknown fields are errors).
absl::StatusOr<v1::ExperimentConfig> ParseConfig(const std::string& text, const std::string& format,
                                                 const std::string& source);
// Reads a file; the format follows the extension (.json; .textproto/.pbtxt/.txtpb/.txt).
// NotFound for a missing file, InvalidArgument "is a directory" for a folder.
absl::StatusOr<v1::ExperimentConfig> LoadConfigFile(const std::string& path);

// Applies one "a.b.c=value" override. Repeated fields take comma-separated lists (replacing
// the old list); google.protobuf.Struct fields accept any key (numbers, true/false, strings).
// InvalidArgument naming the path for an unknown field or a value of the wrong type.
absl::Status ApplyOverride(const std::string& assignment, v1::ExperimentConfig* cfg);

// Sets every unset singular field to its default, recursively, so the saved config shows every
// value the run used.
void FillDefaults(google::protobuf::Message* msg);

// The most threads a run may ask for. Each is an OS thread with its own model clone and
// buffers, and a machine with more cores than this is rare; a larger number is almost surely
// a typo (threads=100000 used to exhaust the process's threads and abort).
inline constexpr int64_t kMaxThreads = 1024;

// Range and consistency checks that need no registry: counts > 0, sampled <= clients, known
// data set / model / partition / sampling / weighting names, positive rates, local.lr *
// local.lr_decay^r within float32 over the run, local.momentum in [0, 1), threads <=
// kMaxThreads.
// InvalidArgument naming the field, e.g. "federation.num_clients must be > 0, got -5".
absl::Status ValidateConfig(const v1::ExperimentConfig& cfg);

// Pretty JSON with the .proto field names.
std::string ConfigToJson(const google::protobuf::Message& msg);

// The JSON of a resolved config as a run records it (config.json, --print-config): integers
// as JSON numbers (protobuf's printer quotes 64-bit ones), floating-point values in the
// shortest text that reads back as the same number (0.05, not 0.050000000000000003), and
// without the sections that do not apply to the run: `attack` when attack.name is "none",
// `privacy` when privacy.mechanism is "none", `data.synthetic` unless data.dataset is
// "synthetic", and `data.mean`/`data.std` unless data.normalize is "standardize". Reading it
// back (LoadConfigFile, then ResolveConfig) gives the same resolved config.
std::string ConfigToRecordJson(const v1::ExperimentConfig& resolved);

}  // namespace fedtrain

#endif  // FEDTRAIN_PROTO_CONFIG_IO_H_
