#include "tandem/frontend/rate_limiter.h"

#include "gtest/gtest.h"

namespace tandem::frontend {
namespace {

TEST(RateLimiterTest, OffAdmitsEverything) {
  RateLimiter limiter(0, 0);
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Admit("k", 1e9, 0).admit);
}

// A key gets a minute's allowance at once (its burst), then one request per 60/rpm seconds; the
// refusal says when the next one fits; other keys have their own buckets.
TEST(RateLimiterTest, RequestsPerMinuteIsABurstThenASteadyRatePerKey) {
  RateLimiter limiter(3, 0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("a", 100, 10.0).admit) << i;
  const RateLimiter::Decision refused = limiter.Admit("a", 100, 10.0);
  EXPECT_FALSE(refused.admit);
  EXPECT_FALSE(refused.never);
  EXPECT_STREQ(refused.limit, "requests_per_minute");
  EXPECT_DOUBLE_EQ(refused.per_minute, 3.0);
  EXPECT_DOUBLE_EQ(refused.retry_after_s, 20.0);  // one request refills in 60 / 3 s
  EXPECT_TRUE(limiter.Admit("b", 100, 10.0).admit);  // another key is not affected
  EXPECT_FALSE(limiter.Admit("a", 100, 25.0).admit);  // 15 s later: 3/4 of a request
  EXPECT_NEAR(limiter.Admit("a", 100, 25.0).retry_after_s, 5.0, 1e-9);
  EXPECT_TRUE(limiter.Admit("a", 100, 30.0).admit);
  EXPECT_FALSE(limiter.Admit("a", 100, 30.0).admit);
  // Idle for an hour: the bucket holds one minute's allowance, no more.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("a", 100, 3630.0).admit) << i;
  EXPECT_FALSE(limiter.Admit("a", 100, 3630.0).admit);
}

// Tokens: a refused request charges nothing; one larger than a minute's allowance can never pass.
TEST(RateLimiterTest, TokensPerMinuteChargesWholeRequestsOnly) {
  RateLimiter limiter(0, 1000);
  EXPECT_TRUE(limiter.Admit("a", 600, 0).admit);
  const RateLimiter::Decision refused = limiter.Admit("a", 600, 0);
  EXPECT_FALSE(refused.admit);
  EXPECT_STREQ(refused.limit, "tokens_per_minute");
  EXPECT_DOUBLE_EQ(refused.retry_after_s, 12.0);  // 200 more tokens at 1000 per minute
  EXPECT_TRUE(limiter.Admit("a", 400, 0).admit);  // the refused one took nothing
  const RateLimiter::Decision never = limiter.Admit("a", 1001, 0);
  EXPECT_FALSE(never.admit);
  EXPECT_TRUE(never.never);
  EXPECT_TRUE(limiter.Admit("a", 100, 6.0).admit);
}

TEST(RateLimiterTest, BothLimitsTheLongerWaitWins) {
  RateLimiter limiter(60, 600);
  EXPECT_TRUE(limiter.Admit("a", 600, 0).admit);
  const RateLimiter::Decision d = limiter.Admit("a", 300, 0);
  EXPECT_FALSE(d.admit);
  EXPECT_STREQ(d.limit, "tokens_per_minute");
  EXPECT_DOUBLE_EQ(d.per_minute, 600.0);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 30.0);
}

}  // namespace
}  // namespace tandem::frontend
