#include "core/thread_pool.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace fedtrain {
namespace {

TEST(ThreadPoolTest, ParallelForVisitsEveryIndexOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(1000);
    pool.ParallelFor(hits.size(), [&](size_t i) { hits[i].fetch_add(1); });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
}

TEST(ThreadPoolTest, DestructorRunsQueuedWork) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 100; ++i) pool.Schedule([&](int) { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 100);
}

TEST(ThreadPoolTest, ThreadIndexInRange) {
  ThreadPool pool(3);
  std::atomic<int> bad{0};
  {
    std::vector<int> dummy(64);
    pool.ParallelFor(dummy.size(), [&](size_t) {});
  }
  absl::Mutex mu;
  int done = 0;
  for (int i = 0; i < 30; ++i)
    pool.Schedule([&](int t) {
      if (t < 0 || t >= 3) bad.fetch_add(1);
      absl::MutexLock l(&mu);
      ++done;
    });
  absl::MutexLock l(&mu);
  auto all = [&] { return done == 30; };
  mu.Await(absl::Condition(&all));
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace fedtrain
