// `fedtrain worker`: joins a `fedtrain server`, gets the experiment config, loads its data
// and model locally and runs the Worker of the simulation on the tasks it is sent, until
// the server ends the run (exit 0). Exit codes as in cli/main.cc.
#ifndef FEDTRAIN_CLI_WORKER_CMD_H_
#define FEDTRAIN_CLI_WORKER_CMD_H_

#include <string>
#include <vector>

namespace fedtrain {

extern const char kWorkerHelp[];
int WorkerCommand(const std::vector<std::string>& args);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_WORKER_CMD_H_
