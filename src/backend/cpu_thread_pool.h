// The CPU backend's worker threads. ParallelFor hands out indices one at a time through an atomic
// counter, and the caller works too: when the OS has descheduled a worker (other processes on the
// cores), the caller simply does its share instead of waiting for it to wake up, and only waits for
// indices already being worked on. Which thread runs an index never changes its result: every
// kernel computes an output element entirely within one index. Internal to src/backend.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace tandem::backend::cpu {

class ThreadPool {
 public:
  // num_threads includes the calling thread (num_threads - 1 workers are started).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) exactly once for every i in [0, n) and returns when all calls have returned. Must
  // be called from one thread at a time.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkerLoop();
  // Claims and runs indices of job `epoch` until none are left or a newer job replaced it.
  void Work(uint32_t epoch, const std::function<void(int64_t)>* fn, int64_t n);

  std::atomic<uint64_t> state_{0};  // (epoch << 32) | next unclaimed index of the current job
  std::atomic<uint32_t> epoch_{0};  // the current job's epoch (workers wait on it)
  std::atomic<const std::function<void(int64_t)>*> fn_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> done_{0};  // indices of the current job finished
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

}  // namespace tandem::backend::cpu
