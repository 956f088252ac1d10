// AdmissionControl: the expected wait of a new request, from starts measured while others waited.
#include "tandem/frontend/admission.h"

#include "gtest/gtest.h"

namespace tandem::frontend {
namespace {

TEST(AdmissionControlTest, OffAdmitsEverything) {
  AdmissionControl a(0);
  for (uint64_t t = 1; t <= 1000; ++t) a.Queued(t, 0);
  EXPECT_TRUE(a.Check(1e6).admit);
}

TEST(AdmissionControlTest, IdleStartsMeasureNothing) {
  AdmissionControl a(5);
  for (uint64_t t = 1; t <= 10; ++t) {  // one at a time: each starts at once, 10 s apart
    a.Queued(t, 10.0 * t);
    a.Started(t, 10.0 * t + 0.1);
  }
  EXPECT_EQ(a.mean_start_interval_s(), 0);
  EXPECT_TRUE(a.Check(200).admit);
}

// Issue 17 (12): 200 concurrent requests on the quickstart were all accepted, p50 latency 63 s.
TEST(AdmissionControlTest, RefusesWhenTheQueueWouldWaitTooLong) {
  AdmissionControl a(5);
  // Two slots: requests start in pairs every 2 s while 8 more wait.
  for (uint64_t t = 1; t <= 10; ++t) a.Queued(t, 0);
  double now = 0;
  for (uint64_t t = 1; t <= 10; t += 2) {
    a.Started(t, now);
    a.Started(t + 1, now);
    now += 2;
  }
  // 10 starts over 8 s: pairs in one step count as what they are (intervals 0, 2, 0, 2, ...).
  EXPECT_DOUBLE_EQ(a.mean_start_interval_s(), 8.0 / 9.0);
  EXPECT_EQ(a.waiting(), 0u);
  // Four waiting: a fifth would start after about 4.4 s, within the limit; a sixth would not.
  for (uint64_t t = 11; t <= 14; ++t) a.Queued(t, now);
  AdmissionControl::Decision d = a.Check(now);
  EXPECT_TRUE(d.admit);
  EXPECT_DOUBLE_EQ(d.expected_wait_s, 5 * 8.0 / 9.0);
  a.Queued(15, now);
  d = a.Check(now);
  EXPECT_FALSE(d.admit);
  EXPECT_DOUBLE_EQ(d.expected_wait_s, 6 * 8.0 / 9.0);
  EXPECT_EQ(d.retry_after_s, 1);
  // Requests that end without a token (cancelled) leave the queue.
  a.Left(15);
  a.Left(14);
  EXPECT_TRUE(a.Check(now).admit);
}

TEST(AdmissionControlTest, AnOldHeadOfQueueMeansFullEvenWithoutAnEstimate) {
  AdmissionControl a(5);
  a.Queued(1, 100);
  EXPECT_TRUE(a.Check(104).admit);
  const AdmissionControl::Decision d = a.Check(112);
  EXPECT_FALSE(d.admit);
  EXPECT_DOUBLE_EQ(d.expected_wait_s, 12);
  EXPECT_EQ(d.retry_after_s, 7);
  a.Started(1, 112);
  EXPECT_TRUE(a.Check(112).admit);
}

}  // namespace
}  // namespace tandem::frontend
