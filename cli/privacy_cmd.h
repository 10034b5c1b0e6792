// `fedtrain privacy`: the accountant's answer as JSON, without training (docs/privacy.md §4).
// Either for a config (--config FILE: epsilon after its rounds, or the calibrated range
// extension for privacy.target_epsilon), or for a quick question given by flags. Parses
// flags and calls the accountant; nothing else.
#ifndef FEDTRAIN_CLI_PRIVACY_CMD_H_
#define FEDTRAIN_CLI_PRIVACY_CMD_H_

#include <cstdio>
#include <string>
#include <vector>

namespace fedtrain {

extern const char kPrivacyHelp[];

// `args` are the arguments after "privacy". Prints one JSON object on `out`. Returns 0 on
// success, 1 when the question has no answer (a refused combination, an unreachable target;
// message on stderr), 2 on bad usage.
int PrivacyCommand(const std::vector<std::string>& args, std::FILE* out);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_PRIVACY_CMD_H_
