// The router fed live by real workers: two `both` workers (golden tiny Llama, CPU backend) on
// loopback gRPC, found through embedded discovery; their StreamLoad reports carry KV events, so
// after a long prompt ran on one worker kv_aware routes the same prefix back to it. A worker that
// leaves discovery leaves the router and loses its feed.
#include "tandem/router/load_feeds.h"

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/cluster/discovery.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/worker/worker.h"

namespace tandem::router {
namespace {

const std::string kModelDir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama";

DeploymentConfig Config() {
  DeploymentConfig c;
  c.source = "<test>";
  c.model.path = kModelDir;
  c.model.max_model_len = 256;
  c.backend = BackendKind::kCpu;
  c.kv_cache.block_size = 16;
  c.kv_cache.cpu_memory_mib = 2;
  c.kv_cache.prefix_caching = true;
  c.transfer.backend = TransferBackend::kLocal;
  c.disaggregation.mode = DisaggregationMode::kOff;
  return c;
}

std::vector<int32_t> Prompt(int32_t len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % 997) + 3;
  return p;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

TEST(LoadFeedsTest, LiveWorkerReportsDriveKvAwareRouting) {
  const DeploymentConfig config = Config();
  worker::WorkerOptions options;
  options.role = worker::WorkerRole::kBoth;
  auto a = worker::Worker::CreateFromDeployment(config, options);
  auto b = worker::Worker::CreateFromDeployment(config, options);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();

  std::unique_ptr<cluster::Discovery> discovery = cluster::MakeEmbeddedDiscovery();
  RouterOptions ro = RouterOptions::FromConfig(config, kvcache::HashSalt((*a)->info().layout().model()));
  Router router(ro);
  {
    LoadFeeds feeds(router, *discovery, LoadFeedOptions{.report_interval_ms = 20});
    ASSERT_TRUE(
        discovery->Register({.id = "a", .role = cluster::WorkerRole::kBoth, .address = (*a)->address()})
            .ok());
    ASSERT_TRUE(
        discovery->Register({.id = "b", .role = cluster::WorkerRole::kBoth, .address = (*b)->address()})
            .ok());
    EXPECT_EQ(feeds.num_feeds(), 2);
    EXPECT_EQ(router.WorkerIds(), (std::vector<std::string>{"a", "b"}));
    ASSERT_TRUE(WaitFor([&] { return feeds.reports_applied() >= 4; }, std::chrono::seconds(5)));
    // Each listed worker's stream is up and its latest report is kept, without its KV events.
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::vector<WorkerFeedStatus> s = feeds.Statuses();
          return s.size() == 2 && s[0].connected && s[1].connected;
        },
        std::chrono::seconds(5)));
    {
      const std::vector<WorkerFeedStatus> statuses = feeds.Statuses();
      EXPECT_EQ(statuses[0].worker.id, "a");
      EXPECT_EQ(statuses[1].worker.address, (*b)->address());
      for (const WorkerFeedStatus& s : statuses) {
        ASSERT_TRUE(s.last.has_value());
        EXPECT_GE(s.reports, 1);
        EXPECT_EQ(s.last->role, "both");
        EXPECT_EQ(s.last->load.kv_blocks_total, (*a)->info().num_kv_blocks());
        EXPECT_EQ(s.last->load.kv_blocks_used, 0);
        EXPECT_TRUE(s.last->events.empty());
        EXPECT_EQ(s.last->counters.kv_transfer_seconds.counts.size(),
                  s.last->counters.kv_transfer_seconds.upper_bounds.size() + 1);
      }
    }

    // A 100-token prompt (6 full blocks) runs on "a"; its prefix cache reports the blocks.
    const std::vector<int32_t> prompt = Prompt(100, 7);
    v1::WorkerGenerateRequest request;
    request.set_request_id("r1");
    for (int32_t t : prompt) request.add_prompt_token_ids(t);
    request.mutable_sampling()->set_temperature(0.0f);
    request.mutable_sampling()->set_max_tokens(4);
    request.mutable_sampling()->set_ignore_eos(true);
    cluster::WorkerClient client((*a)->address());
    int tokens = 0;
    ASSERT_TRUE(
        client.Generate(request, [&](const v1::WorkerGenerateResponse& r) { tokens += r.token_ids_size(); })
            .ok());
    EXPECT_EQ(tokens, 4);
    ASSERT_TRUE(WaitFor([&] { return router.CachedBlocks("a") >= 6; }, std::chrono::seconds(5)))
        << "the router saw " << router.CachedBlocks("a") << " cached blocks on a";
    EXPECT_EQ(router.CachedBlocks("b"), 0);

    // The same prefix with a new tail goes back to "a", with the 6 blocks counted as cached.
    std::vector<int32_t> again = prompt;
    for (int32_t t : Prompt(20, 8)) again.push_back(t);
    absl::StatusOr<RouteResult> r = router.RouteDecode(again);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->worker_id, "a");
    EXPECT_EQ(r->cached_blocks, 6);
    EXPECT_EQ(r->address, (*a)->address());

    // "a" leaves: its feed stops and the router never picks it.
    ASSERT_TRUE(discovery->Deregister("a").ok());
    EXPECT_EQ(feeds.num_feeds(), 1);
    EXPECT_EQ(feeds.Statuses().size(), 1u);
    EXPECT_EQ(router.WorkerIds(), std::vector<std::string>{"b"});
    EXPECT_EQ(router.RouteDecode(again)->worker_id, "b");

    // "b" stops while still listed: its stream ends and the feed says so (keeping its last report).
    (*b)->Shutdown();
    EXPECT_TRUE(WaitFor([&] { return !feeds.Statuses().at(0).connected; }, std::chrono::seconds(5)));
    EXPECT_TRUE(feeds.Statuses().at(0).last.has_value());
  }
  // The feeds are gone: reports stop, the router keeps what it had.
  EXPECT_EQ(router.WorkerIds(), std::vector<std::string>{"b"});
}

}  // namespace
}  // namespace tandem::router
