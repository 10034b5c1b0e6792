// A fixed-size pool of worker threads. Thread-safe. The destructor finishes queued work and
// joins every thread (no detached threads). Results must never depend on the thread count:
// callers split work by index (ParallelFor) and reduce in a fixed order themselves.
#ifndef FEDTRAIN_CORE_THREAD_POOL_H_
#define FEDTRAIN_CORE_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fedtrain {

class ThreadPool {
 public:
  // num_threads >= 1.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(threads_.size()); }
  // Runs `fn` on some pool thread. `fn` receives the index of that thread in [0, size()).
  void Schedule(std::function<void(int thread_index)> fn);
  // Calls fn(i) for i in [0, n) across the pool and waits for all of them. Must not be
  // called from a pool thread.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);

 private:
  void Loop(int index);

  absl::Mutex mu_;
  std::deque<std::function<void(int)>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_THREAD_POOL_H_
