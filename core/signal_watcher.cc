#include "core/signal_watcher.h"

#include <pthread.h>
#include <time.h>

#include <utility>

namespace fedtrain {

SignalWatcher::SignalWatcher(const std::vector<int>& signals, std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
  sigemptyset(&set_);
  for (int s : signals) sigaddset(&set_, s);
  pthread_sigmask(SIG_BLOCK, &set_, &old_mask_);
  thread_ = std::thread([this]() {
    // Polls the stop flag every 100 ms: the destructor needs no signal of its own to wake it.
    const timespec poll{0, 100 * 1000 * 1000};
    while (!stop_.load()) {
      const int sig = sigtimedwait(&set_, nullptr, &poll);
      if (sig > 0 && on_signal_) on_signal_(sig);
    }
  });
}

SignalWatcher::~SignalWatcher() {
  stop_ = true;
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

}  // namespace fedtrain
