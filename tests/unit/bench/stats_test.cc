#include "tandem/bench/stats.h"

#include "gtest/gtest.h"

namespace tandem::bench {
namespace {

TEST(StatsTest, PercentilesInterpolateLikeNumpy) {
  // numpy.percentile([1..10], q): 50 -> 5.5, 90 -> 9.1, 99 -> 9.91
  std::vector<double> v = {7, 3, 10, 1, 5, 2, 9, 4, 8, 6};
  Distribution d = Summarize(v);
  EXPECT_EQ(d.count, 10);
  EXPECT_DOUBLE_EQ(d.mean, 5.5);
  EXPECT_DOUBLE_EQ(d.p50, 5.5);
  EXPECT_NEAR(d.p90, 9.1, 1e-12);
  EXPECT_NEAR(d.p99, 9.91, 1e-12);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 10);
  EXPECT_NEAR(d.stddev, 2.8722813232690143, 1e-12);
}

TEST(StatsTest, EmptyAndSingle) {
  EXPECT_EQ(Summarize({}).count, 0);
  EXPECT_DOUBLE_EQ(Summarize({}).p99, 0);
  Distribution one = Summarize({42});
  EXPECT_DOUBLE_EQ(one.p50, 42);
  EXPECT_DOUBLE_EQ(one.p99, 42);
  EXPECT_DOUBLE_EQ(Percentile({1, 2}, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile({1, 2}, 100), 2);
}

}  // namespace
}  // namespace tandem::bench
