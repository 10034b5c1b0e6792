#include "core/signal_watcher.h"

#include <signal.h>

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fedtrain {
namespace {

TEST(SignalWatcherTest, CallsBackOnItsOwnThreadAndJoinsOnDestruction) {
  std::atomic<int> got{0};
  absl::Notification seen;
  {
    SignalWatcher w({SIGUSR1}, [&](int sig) {
      got = sig;
      seen.Notify();
    });
    // Sent to the process: blocked in this thread, so the watcher's sigtimedwait takes it.
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
    ASSERT_TRUE(seen.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }  // the destructor returns (joins) without any further signal
  EXPECT_EQ(got.load(), SIGUSR1);
}

TEST(SignalWatcherTest, RestoresTheSignalMask) {
  sigset_t before, after;
  pthread_sigmask(SIG_SETMASK, nullptr, &before);
  { SignalWatcher w({SIGUSR2}, [](int) {}); }
  pthread_sigmask(SIG_SETMASK, nullptr, &after);
  EXPECT_EQ(sigismember(&before, SIGUSR2), sigismember(&after, SIGUSR2));
}

}  // namespace
}  // namespace fedtrain
