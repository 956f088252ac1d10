// A worker's report drives the router: KV events from a real KvBlockManager, carried through the
// load stream's own conversion (wire::ToProto, then FromProto as LoadFeeds does), make kv_aware route
// the repeated prefix back to that worker.
#include "tandem/router/load_report.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/kvcache/kv_block_manager.h"
#include "tandem/wire/convert.h"

namespace tandem::router {
namespace {

// A report as it arrives from a worker: through the wire and back.
wire::WorkerReport Sent(const wire::WorkerReport& report) { return wire::FromProto(wire::ToProto(report)); }

TEST(LoadReportTest, ADrainingReportTakesTheWorkerOutOfRouting) {
  Router router(RouterOptions{});
  router.AddWorker({.id = "leaving", .role = cluster::WorkerRole::kDecode, .address = "h:1"});
  router.AddWorker({.id = "staying", .role = cluster::WorkerRole::kDecode, .address = "h:2"});
  wire::WorkerReport busy;
  busy.load.kv_blocks_used = 100;
  ApplyLoadReport(router, "staying", Sent(busy));
  wire::WorkerReport draining;
  draining.load.draining = true;
  EXPECT_TRUE(WorkerLoadOf(Sent(draining).load).draining);
  ApplyLoadReport(router, "leaving", Sent(draining));
  const std::vector<int32_t> prompt(40, 7);
  EXPECT_EQ(router.RouteDecode(prompt)->worker_id, "staying");  // though "leaving" is idle
}

TEST(LoadReportTest, ReportsFeedTheKvIndexAndTheLoad) {
  const uint64_t salt = kvcache::HashSalt("m");
  kvcache::KvBlockManager cache(kvcache::KvBlockManagerConfig{
      .num_blocks = 32, .block_size = 16, .enable_prefix_caching = true, .hash_salt = salt});
  std::vector<int32_t> prompt(100);
  std::iota(prompt.begin(), prompt.end(), 5);
  kvcache::BlockTable table;
  ASSERT_TRUE(cache.Allocate(table, 100));
  cache.CacheFullBlocks(table, prompt, 100);

  wire::WorkerReport sent;
  sent.load.num_running = 1;
  sent.load.num_waiting = 2;
  sent.load.kv_blocks_used = 7;
  sent.events = cache.TakeEvents();
  const wire::WorkerReport report = Sent(sent);

  RouterOptions options;
  options.block_size = 16;
  options.hash_salt = salt;
  Router router(options);
  router.AddWorker({.id = "busy", .role = cluster::WorkerRole::kDecode, .address = "h:1"});
  router.AddWorker({.id = "idle", .role = cluster::WorkerRole::kDecode, .address = "h:2"});
  ApplyLoadReport(router, "busy", report);
  EXPECT_EQ(router.CachedBlocks("busy"), 6);  // 100 tokens = 6 full blocks
  EXPECT_EQ(router.LoadBlocks("busy"), 7);

  // 6 cached of 7 blocks on "busy": cost 1 + 7 = 8; "idle": 7 + 0 = 7. The idle one wins here...
  EXPECT_EQ(router.RouteDecode(prompt)->worker_id, "idle");
  // ...but with a longer shared prefix the hit outweighs the load.
  router.ReleaseRequest("idle", 7);
  std::vector<int32_t> long_prompt(320);
  std::iota(long_prompt.begin(), long_prompt.end(), 1000);
  kvcache::BlockTable t2;
  ASSERT_TRUE(cache.Allocate(t2, 320));
  cache.CacheFullBlocks(t2, long_prompt, 320);
  wire::WorkerReport second_sent;
  second_sent.load.kv_blocks_used = 27;
  second_sent.events = cache.TakeEvents();
  const wire::WorkerReport second = Sent(second_sent);
  ApplyLoadReport(router, "busy", second);
  std::vector<int32_t> again = long_prompt;
  again.push_back(3);
  // busy: (21 - 20) + 27 = 28; idle: 21 + 0 = 21 → still idle. Weight the overlap more:
  EXPECT_EQ(router.RouteDecode(again)->worker_id, "idle");
  RouterOptions heavy = options;
  heavy.kv_overlap_weight = 4.0;
  Router weighted(heavy);
  weighted.AddWorker({.id = "busy", .role = cluster::WorkerRole::kDecode, .address = "h:1"});
  weighted.AddWorker({.id = "idle", .role = cluster::WorkerRole::kDecode, .address = "h:2"});
  ApplyLoadReport(weighted, "busy", report);
  ApplyLoadReport(weighted, "busy", second);
  // busy: 4 * 1 + 27 = 31; idle: 4 * 21 = 84.
  absl::StatusOr<RouteResult> r = weighted.RouteDecode(again);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->worker_id, "busy");
  EXPECT_EQ(r->cached_blocks, 20);

  // An all-cleared event in a later report empties the index.
  wire::WorkerReport cleared;
  cleared.events.push_back(kvcache::KvEvent{.type = kvcache::KvEventType::kAllCleared});
  ApplyLoadReport(weighted, "busy", Sent(cleared));
  EXPECT_EQ(weighted.CachedBlocks("busy"), 0);
  EXPECT_EQ(weighted.LoadBlocks("busy"), 0);
}

}  // namespace
}  // namespace tandem::router
