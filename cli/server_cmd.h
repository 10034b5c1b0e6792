// `fedtrain server`: the Coordinator of an experiment over the gRPC transport; workers are
// `fedtrain worker` processes (cli/worker_cmd.h). Exit codes as in cli/main.cc.
#ifndef FEDTRAIN_CLI_SERVER_CMD_H_
#define FEDTRAIN_CLI_SERVER_CMD_H_

#include <string>
#include <vector>

namespace fedtrain {

extern const char kServerHelp[];
int ServerCommand(const std::vector<std::string>& args);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_SERVER_CMD_H_
