// The load stream's report through the wire and back: every load field, counter, histogram and KV
// event survives, and histograms bucket as the exposition format expects.
#include "tandem/wire/worker_report.h"

#include "gtest/gtest.h"
#include "tandem/wire/convert.h"

namespace tandem::wire {
namespace {

TEST(WorkerReportTest, EveryFieldRoundTrips) {
  WorkerReport r;
  r.instance_id = "123-abc";
  r.role = "prefill";
  r.load = WorkerLoad{.num_running = 1,
                      .num_waiting = 2,
                      .num_waiting_for_remote_kv = 3,
                      .num_pending_transfer = 4,
                      .kv_blocks_used = 5,
                      .kv_blocks_total = 6,
                      .draining = true};
  WorkerCounters& c = r.counters;
  c.remote_prefills = 11;
  c.local_prefills = 12;
  c.remote_prefill_failures = 13;
  c.kv_blocks_sent = 14;
  c.kv_bytes_sent = 15;
  c.kv_streamed_prefills = 16;
  c.kv_stream_fallbacks = 17;
  c.kv_blocks_received = 18;
  c.kv_bytes_received = 19;
  c.remote_prefills_served = 20;
  c.remote_prefills_failed = 21;
  c.prefill_queue_length = 22;
  c.kv_transfer_seconds.Observe(0.003);
  c.remote_prefill_seconds.Observe(2.0);
  c.remote_prefill_seconds.Observe(100.0);
  r.events.push_back(kvcache::KvEvent{.type = kvcache::KvEventType::kAllCleared});
  r.events.push_back(
      kvcache::KvEvent{.type = kvcache::KvEventType::kBlockStored, .block_hashes = {7, 8}, .block_size = 16});

  const WorkerReport back = FromProto(ToProto(r));
  EXPECT_EQ(back.instance_id, "123-abc");
  EXPECT_EQ(back.role, "prefill");
  EXPECT_EQ(back.load.num_running, 1);
  EXPECT_EQ(back.load.num_waiting, 2);
  EXPECT_EQ(back.load.num_waiting_for_remote_kv, 3);
  EXPECT_EQ(back.load.num_pending_transfer, 4);
  EXPECT_EQ(back.load.kv_blocks_used, 5);
  EXPECT_EQ(back.load.kv_blocks_total, 6);
  EXPECT_TRUE(back.load.draining);
  const WorkerCounters& b = back.counters;
  EXPECT_EQ(b.remote_prefills, 11);
  EXPECT_EQ(b.local_prefills, 12);
  EXPECT_EQ(b.remote_prefill_failures, 13);
  EXPECT_EQ(b.kv_blocks_sent, 14);
  EXPECT_EQ(b.kv_bytes_sent, 15u);
  EXPECT_EQ(b.kv_streamed_prefills, 16);
  EXPECT_EQ(b.kv_stream_fallbacks, 17);
  EXPECT_EQ(b.kv_blocks_received, 18);
  EXPECT_EQ(b.kv_bytes_received, 19u);
  EXPECT_EQ(b.remote_prefills_served, 20);
  EXPECT_EQ(b.remote_prefills_failed, 21);
  EXPECT_EQ(b.prefill_queue_length, 22);
  EXPECT_EQ(b.kv_transfer_seconds.upper_bounds, c.kv_transfer_seconds.upper_bounds);
  EXPECT_EQ(b.kv_transfer_seconds.counts, c.kv_transfer_seconds.counts);
  EXPECT_EQ(b.kv_transfer_seconds.count, 1);
  EXPECT_DOUBLE_EQ(b.remote_prefill_seconds.sum, 102.0);
  EXPECT_EQ(b.remote_prefill_seconds.count, 2);
  ASSERT_EQ(back.events.size(), 2u);
  EXPECT_EQ(back.events[0].type, kvcache::KvEventType::kAllCleared);
  EXPECT_EQ(back.events[1].block_hashes, (std::vector<kvcache::BlockHash>{7, 8}));
  EXPECT_EQ(back.events[1].block_size, 16);
}

TEST(WorkerReportTest, HistogramBucketsAreUpperInclusiveWithAnOverflowBucket) {
  LatencyHistogram h = LatencyHistogram::ForTransfers();
  ASSERT_EQ(h.counts.size(), h.upper_bounds.size() + 1);
  h.Observe(0.001);   // on the first bound: the first bucket
  h.Observe(0.0011);  // just above: the second
  h.Observe(61.0);    // above the last bound: the overflow bucket
  EXPECT_EQ(h.counts.front(), 1);
  EXPECT_EQ(h.counts[1], 1);
  EXPECT_EQ(h.counts.back(), 1);
  EXPECT_EQ(h.count, 3);
  EXPECT_DOUBLE_EQ(h.sum, 0.001 + 0.0011 + 61.0);
  // A histogram without buckets (as an empty proto arrives) still counts.
  LatencyHistogram empty = FromProto(v1::LatencyHistogram());
  empty.Observe(1.0);
  EXPECT_EQ(empty.counts, std::vector<int64_t>{1});
  EXPECT_EQ(empty.count, 1);
}

}  // namespace
}  // namespace tandem::wire
