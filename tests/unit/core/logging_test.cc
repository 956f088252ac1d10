#include "tandem/core/logging.h"

#include <thread>

#include "gtest/gtest.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;

// Issue 17 (11): a failing accept logged 2.2 million lines in 11 s.
TEST(LogLimiterTest, AllowsOneLinePerIntervalAndCountsTheRest) {
  LogLimiter limiter(200ms);
  int64_t held_back = -1;
  ASSERT_TRUE(limiter.Allow(&held_back));
  EXPECT_EQ(held_back, 0);
  int allowed = 0;
  for (int i = 0; i < 100000; ++i) allowed += limiter.Allow(&held_back) ? 1 : 0;
  EXPECT_EQ(allowed, 0);
  std::this_thread::sleep_for(250ms);
  ASSERT_TRUE(limiter.Allow(&held_back));
  EXPECT_EQ(held_back, 100000);
  EXPECT_FALSE(limiter.Allow(&held_back));
}

}  // namespace
}  // namespace tandem
