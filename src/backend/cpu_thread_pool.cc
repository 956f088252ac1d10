#include "cpu_thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TANDEM_CPU_PAUSE() _mm_pause()
#else
#define TANDEM_CPU_PAUSE() std::this_thread::yield()
#endif

namespace tandem::backend::cpu {
namespace {
// Spins before a worker sleeps on the epoch (covers the gap between ops of one forward step).
constexpr int kWorkerSpins = 1 << 14;
// Spins before the caller, waiting for a worker's last index, starts yielding its core.
constexpr int kCallerSpins = 1 << 10;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Work(uint32_t epoch, const std::function<void(int64_t)>* fn, int64_t n) {
  uint64_t s = state_.load(std::memory_order_acquire);
  while (true) {
    if (static_cast<uint32_t>(s >> 32) != epoch) return;
    const int64_t index = static_cast<int64_t>(s & 0xffffffffu);
    if (index >= n) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // A successful claim of an index < n means this job is unfinished, so fn and n are its own.
    (*fn)(index);
    done_.fetch_add(1, std::memory_order_release);
    s = state_.load(std::memory_order_acquire);
  }
}

void ThreadPool::WorkerLoop() {
  uint32_t seen = 0;
  while (true) {
    uint32_t epoch = epoch_.load(std::memory_order_acquire);
    for (int spin = 0; epoch == seen && spin < kWorkerSpins; ++spin) {
      TANDEM_CPU_PAUSE();
      epoch = epoch_.load(std::memory_order_acquire);
    }
    while (epoch == seen) {
      epoch_.wait(seen, std::memory_order_acquire);
      epoch = epoch_.load(std::memory_order_acquire);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = epoch;
    Work(epoch, fn_.load(std::memory_order_acquire), n_.load(std::memory_order_acquire));
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  const uint32_t epoch = epoch_.load(std::memory_order_relaxed) + 1;
  // First close the counter to every claim (a new epoch with an index past any n), so a worker
  // still holding the previous job's epoch, or one that sees the new fn/n below, cannot claim until
  // the new job is fully published.
  state_.store((static_cast<uint64_t>(epoch) << 32) | 0xffffffffu, std::memory_order_release);
  fn_.store(&fn, std::memory_order_release);
  n_.store(n, std::memory_order_release);
  done_.store(0, std::memory_order_release);
  state_.store(static_cast<uint64_t>(epoch) << 32, std::memory_order_release);
  epoch_.store(epoch, std::memory_order_release);
  epoch_.notify_all();
  Work(epoch, &fn, n);
  for (int spin = 0; done_.load(std::memory_order_acquire) < n; ++spin) {
    if (spin < kCallerSpins) {
      TANDEM_CPU_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace tandem::backend::cpu
