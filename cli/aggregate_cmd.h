// `fedtrain aggregate --rule RULE [--f F] [--set key=value ...] IN.npy OUT.npy`: one reducer
// (aggregators/reducer.h) applied offline to a p x n .npy matrix (runtime/aggregate_file.h).
// Parses flags and calls the runtime; nothing else.
#ifndef FEDTRAIN_CLI_AGGREGATE_CMD_H_
#define FEDTRAIN_CLI_AGGREGATE_CMD_H_

#include <cstdio>
#include <string>
#include <vector>

namespace fedtrain {

extern const char kAggregateHelp[];

// `args` are the arguments after "aggregate". Prints the diagnostics JSON on `out`. Returns
// 0 on success, 1 when reading, reducing or writing failed (message on stderr), 2 on bad
// usage.
int AggregateCommand(const std::vector<std::string>& args, std::FILE* out);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_AGGREGATE_CMD_H_
