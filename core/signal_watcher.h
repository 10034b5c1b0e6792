// Turns process signals (SIGTERM, SIGINT) into a call on a thread this object owns, so a
// command can shut down in order instead of exiting from a signal handler. The constructor
// blocks the signals in the calling thread; threads started after it inherit the mask, so
// construct it before any other thread (gRPC's included). The watcher thread takes them with
// sigtimedwait and calls `on_signal` once per signal. The destructor stops and joins the
// thread (no detached threads) and restores the caller's signal mask.
// Thread-safety: construct and destroy on one thread; `on_signal` runs on the watcher thread.
#ifndef FEDTRAIN_CORE_SIGNAL_WATCHER_H_
#define FEDTRAIN_CORE_SIGNAL_WATCHER_H_

#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

namespace fedtrain {

class SignalWatcher {
 public:
  SignalWatcher(const std::vector<int>& signals, std::function<void(int)> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  sigset_t set_, old_mask_;
  std::function<void(int)> on_signal_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_SIGNAL_WATCHER_H_
