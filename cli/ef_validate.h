// `fedtrain ef-validate --config FILE [--out DIR]`: runs a grid of float64 error-feedback
// validation runs (sim/ef_validation.h, docs/compression.md §4) from a JSON
// v1::EfValidationConfig, prints a table and writes table.csv, table.txt and results.json
// into the output folder. Thread-compatible (no shared state).
#ifndef FEDTRAIN_CLI_EF_VALIDATE_H_
#define FEDTRAIN_CLI_EF_VALIDATE_H_

#include <cstdio>
#include <string>
#include <vector>

namespace fedtrain {

extern const char kEfValidateHelp[];

// `args` are the arguments after "ef-validate". Returns the exit code: 0 success, 1 a run or
// writing the results failed, 2 bad usage or a bad config (the message names the field).
int EfValidateCommand(const std::vector<std::string>& args, std::FILE* out, std::FILE* err);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_EF_VALIDATE_H_
