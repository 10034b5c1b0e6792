#include "core/thread_pool.h"

#include <atomic>

#include "core/status_macros.h"

namespace fedtrain {

ThreadPool::ThreadPool(int num_threads) {
  FT_CHECK(num_threads >= 1);
  threads_.reserve(num_threads);
  for (int i = 0; i < num_threads; ++i) threads_.emplace_back([this, i] { Loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::Schedule(std::function<void(int)> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

void ThreadPool::Loop(int index) {
  for (;;) {
    std::function<void(int)> fn;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn(index);
  }
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (threads_.size() == 1 || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  absl::Mutex done_mu;
  size_t done = 0;
  const size_t workers = std::min(n, threads_.size());
  for (size_t w = 0; w < workers; ++w) {
    Schedule([&](int) {
      for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
      absl::MutexLock lock(&done_mu);
      ++done;
    });
  }
  absl::MutexLock lock(&done_mu);
  auto all_done = [&]() { return done == workers; };
  done_mu.Await(absl::Condition(&all_done));
}

}  // namespace fedtrain
