// The CPU backend's thread pool (internal header): every index runs exactly once per call, across
// many back-to-back calls of different sizes, with more threads than cores.
#include "cpu_thread_pool.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::backend::cpu {
namespace {

TEST(ThreadPool, RunsEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int round = 0; round < 2000; ++round) {
      const int64_t n = (round * 37) % 97;  // includes 0 and 1
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.ParallelFor(n, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "round " << round << " index " << i;
    }
  }
}

TEST(ThreadPool, CallerSeesTheWorkersWrites) {
  ThreadPool pool(3);
  std::vector<int64_t> out(1000, -1);
  for (int round = 0; round < 200; ++round) {
    pool.ParallelFor(1000, [&](int64_t i) { out[static_cast<size_t>(i)] = i * round; });
    for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], i * round);
  }
}

}  // namespace
}  // namespace tandem::backend::cpu
