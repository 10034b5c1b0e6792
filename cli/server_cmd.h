// `fedtrain server`: the Coordinator of an experiment over the gRPC transport; workers are
// `fedtrain worker` processes (cli/worker_cmd.h). Exit codes as in cli/main.cc.
#ifndef FEDTRAIN_CLI_SERVER_CMD_H_
#define FEDTRAIN_CLI_SERVER_CMD_H_

#include <functional>
#include <string>
#include <vector>

namespace fedtrain {

extern const char kServerHelp[];
// `on_listening` (may be null) is called with the address served on ("HOST:PORT") once the
// server listens, before it waits for workers (`fedtrain mpi` broadcasts it).
int ServerCommand(const std::vector<std::string>& args,
                  const std::function<void(const std::string&)>& on_listening = nullptr);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_SERVER_CMD_H_
