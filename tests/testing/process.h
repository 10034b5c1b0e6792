// Child processes for integration tests that run the real `fedtrain` binary: spawn with
// stdout piped or to a file and stderr to a file, read lines, wait, and a watchdog that kills
// what hangs. No fixed sleeps: tests wait on a child's output, its exit, or a file's content
// (polled every 10 ms up to a deadline).
#ifndef FEDTRAIN_TESTS_TESTING_PROCESS_H_
#define FEDTRAIN_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace fedtrain::testing {

inline constexpr absl::Duration kProcessTimeout = absl::Seconds(60);

// The fedtrain binary: $FEDTRAIN_BIN, else the one CMake built; the source tree likewise
// ($FEDTRAIN_SOURCE_DIR).
std::string FedtrainBin();
std::string SourceDir();

// examples/synthetic_logreg.json, the tiny config the deployed-run tests use, and the name
// of its run folder.
std::string SyntheticConfig();
inline constexpr char kSyntheticRunName[] = "synthetic_1_1_logreg";

// A child process: stdout to a pipe (pipe_fd) or a file, stderr to a file.
struct Child {
  pid_t pid = -1;
  int pipe_fd = -1;
  std::string err_path;
};

// Runs FedtrainBin() with `args`, or `args` as they are when args[0] is "/bin/bash".
Child Spawn(const std::vector<std::string>& args, const std::string& err_path, bool pipe_stdout,
            const std::string& out_path = "/dev/null");
// Reads `fd` until a newline (or EOF / kProcessTimeout); returns the text read.
std::string ReadLine(int fd);
// Reads the rest of `fd` until EOF and closes it.
std::string ReadAll(int fd);
// Exit status, or -1 when killed by a signal.
int Wait(pid_t pid);
// True once the file at `path` contains `text`; false after `timeout`.
bool WaitForText(const std::string& path, const std::string& text,
                 absl::Duration timeout = kProcessTimeout);

// Kills (by pid) the children still registered when `timeout` passes.
class Watchdog {
 public:
  explicit Watchdog(absl::Duration timeout = kProcessTimeout);
  ~Watchdog();
  void Add(pid_t p);

 private:
  absl::Mutex mu_;
  std::vector<pid_t> pids_;
  absl::Notification done_;
  std::thread thread_;
};

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_PROCESS_H_
