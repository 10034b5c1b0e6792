#include "tests/testing/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain::testing {
namespace {

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

}  // namespace

std::string FedtrainBin() { return Env("FEDTRAIN_BIN", FEDTRAIN_TEST_DEFAULT_BIN); }
std::string SourceDir() { return Env("FEDTRAIN_SOURCE_DIR", FEDTRAIN_TEST_DEFAULT_SOURCE_DIR); }
std::string SyntheticConfig() { return SourceDir() + "/examples/synthetic_logreg.json"; }

Child Spawn(const std::vector<std::string>& args, const std::string& err_path, bool pipe_stdout,
            const std::string& out_path) {
  Child c;
  c.err_path = err_path;
  int fds[2] = {-1, -1};
  if (pipe_stdout && pipe(fds) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return c;
  }
  std::vector<std::string> storage = args;
  if (storage.empty() || storage[0] != "/bin/bash") storage.insert(storage.begin(), FedtrainBin());
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  c.pid = fork();
  if (c.pid == 0) {
    const int in = open("/dev/null", O_RDONLY);
    const int out =
        pipe_stdout ? fds[1] : open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (pipe_stdout) close(fds[0]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pipe_stdout) {
    close(fds[1]);
    c.pipe_fd = fds[0];
  }
  return c;
}

std::string ReadLine(int fd) {
  std::string line;
  const absl::Time deadline = absl::Now() + kProcessTimeout;
  char ch;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (poll(&p, 1, ms < 1 ? 1 : ms) <= 0) break;
    if (read(fd, &ch, 1) != 1 || ch == '\n') break;
    line.push_back(ch);
  }
  return line;
}

std::string ReadAll(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  close(fd);
  return s;
}

int Wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool WaitForText(const std::string& path, const std::string& text, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (ReadFileBytes(path).find(text) != std::string::npos) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));  // polling an event, not timing one
  }
}

Watchdog::Watchdog(absl::Duration timeout)
    : thread_([this, timeout] {
        if (done_.WaitForNotificationWithTimeout(timeout)) return;
        absl::MutexLock lock(&mu_);
        for (pid_t p : pids_) kill(p, SIGKILL);
      }) {}

Watchdog::~Watchdog() {
  done_.Notify();
  thread_.join();
}

void Watchdog::Add(pid_t p) {
  absl::MutexLock lock(&mu_);
  pids_.push_back(p);
}

}  // namespace fedtrain::testing
