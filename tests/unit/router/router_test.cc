#include "tandem/router/router.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/kvcache/kv_block_manager.h"

namespace tandem::router {
namespace {

constexpr int32_t kBlockSize = 4;
const uint64_t kSalt = kvcache::HashSalt("test-model");

cluster::WorkerInfo Decode(const std::string& id) {
  return cluster::WorkerInfo{
      .id = id, .role = cluster::WorkerRole::kDecode, .address = absl::StrCat(id, ":1")};
}
cluster::WorkerInfo Prefill(const std::string& id) {
  return cluster::WorkerInfo{
      .id = id, .role = cluster::WorkerRole::kPrefill, .address = absl::StrCat(id, ":1")};
}

RouterOptions Options(RouterPolicy policy) {
  RouterOptions o;
  o.policy = policy;
  o.block_size = kBlockSize;
  o.hash_salt = kSalt;
  return o;
}

std::vector<int32_t> Tokens(int n, int32_t start) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

// The event a worker's block pool emits after caching the full blocks of `tokens`.
kvcache::KvEvent StoredEvent(const std::vector<int32_t>& tokens) {
  kvcache::KvEvent e;
  e.type = kvcache::KvEventType::kBlockStored;
  e.block_hashes = kvcache::HashFullBlocks(tokens, kBlockSize, kSalt);
  e.block_size = kBlockSize;
  e.token_ids.assign(tokens.begin(), tokens.begin() + e.block_hashes.size() * kBlockSize);
  return e;
}

TEST(RouterTest, RoundRobinCyclesThroughDecodeWorkersOnly) {
  Router router(Options(RouterPolicy::kRoundRobin));
  router.AddWorker(Decode("d0"));
  router.AddWorker(Decode("d1"));
  router.AddWorker(Decode("d2"));
  router.AddWorker(Prefill("p0"));
  std::vector<std::string> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(router.RouteDecode(Tokens(8, 0))->worker_id);
  EXPECT_EQ(picks, (std::vector<std::string>{"d0", "d1", "d2", "d0", "d1", "d2"}));
  EXPECT_EQ(router.RoutePrefill(Tokens(8, 0))->worker_id, "p0");
}

TEST(RouterTest, RandomCoversAllWorkersAndIsSeeded) {
  Router a(Options(RouterPolicy::kRandom));
  Router b(Options(RouterPolicy::kRandom));
  for (Router* r : {&a, &b}) {
    for (int i = 0; i < 4; ++i) r->AddWorker(Decode(absl::StrCat("d", i)));
  }
  std::map<std::string, int> counts;
  for (int i = 0; i < 400; ++i) {
    const std::string pa = a.RouteDecode(Tokens(4, i))->worker_id;
    EXPECT_EQ(pa, b.RouteDecode(Tokens(4, i))->worker_id);  // same seed, same choices
    counts[pa]++;
  }
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [id, n] : counts) EXPECT_GT(n, 50) << id;
}

TEST(RouterTest, LeastLoadedPicksFewestActiveBlocksAndCountsRoutedRequests) {
  Router router(Options(RouterPolicy::kLeastLoaded));
  router.AddWorker(Decode("d0"));
  router.AddWorker(Decode("d1"));
  router.UpdateLoad("d0", WorkerLoad{.active_decode_blocks = 10});
  router.UpdateLoad("d1", WorkerLoad{.active_decode_blocks = 3});
  // 8 tokens = 2 blocks per request: d1 takes requests until its estimate passes d0's.
  std::vector<std::string> picks;
  for (int i = 0; i < 5; ++i) picks.push_back(router.RouteDecode(Tokens(8, 0))->worker_id);
  EXPECT_EQ(picks, (std::vector<std::string>{"d1", "d1", "d1", "d1", "d0"}));
  EXPECT_EQ(router.LoadBlocks("d1"), 11);
  router.ReleaseRequest("d1", 2);
  EXPECT_EQ(router.LoadBlocks("d1"), 9);
  // A report replaces the estimate.
  router.UpdateLoad("d1", WorkerLoad{.active_decode_blocks = 0});
  EXPECT_EQ(router.RouteDecode(Tokens(8, 0))->worker_id, "d1");
}

TEST(RouterTest, KvAwareSendsRepeatedLongPrefixBackToTheWorkerHoldingIt) {
  Router router(Options(RouterPolicy::kKvAware));
  for (int i = 0; i < 4; ++i) router.AddWorker(Decode(absl::StrCat("d", i)));
  const std::vector<int32_t> prefix = Tokens(64, 1000);  // 16 blocks
  // d2 served the prefix before: its pool reported the blocks.
  router.ApplyKvEvents("d2", std::vector<kvcache::KvEvent>{StoredEvent(prefix)});
  EXPECT_EQ(router.CachedBlocks("d2"), 16);
  // Other workers carry some load, d2 a bit more, but the cache hit outweighs it.
  router.UpdateLoad("d0", WorkerLoad{.active_decode_blocks = 2});
  router.UpdateLoad("d2", WorkerLoad{.active_decode_blocks = 6});
  std::vector<int32_t> prompt = prefix;
  for (int32_t t : {7, 8, 9, 10, 11}) prompt.push_back(t);  // a new suffix
  absl::StatusOr<RouteResult> r = router.RouteDecode(prompt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->worker_id, "d2");
  EXPECT_EQ(r->cached_blocks, 16);
  EXPECT_EQ(r->prompt_blocks, 18);
  EXPECT_EQ(r->uncached_prompt_tokens, 5);
  EXPECT_DOUBLE_EQ(r->cost, 1.0 * 2 + 6);
  // A prompt that shares nothing goes to an idle worker instead.
  absl::StatusOr<RouteResult> other = router.RouteDecode(Tokens(64, 5000));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->worker_id, "d2");
  EXPECT_EQ(other->cached_blocks, 0);
}

TEST(RouterTest, KvAwarePrefixMatchStopsAtTheFirstMissingBlock) {
  Router router(Options(RouterPolicy::kKvAware));
  router.AddWorker(Decode("d0"));
  const std::vector<int32_t> prompt = Tokens(32, 0);  // 8 blocks
  router.ApplyKvEvents("d0", std::vector<kvcache::KvEvent>{StoredEvent(prompt)});
  kvcache::KvEvent removed;
  removed.type = kvcache::KvEventType::kBlockRemoved;
  removed.block_hashes = {kvcache::HashFullBlocks(prompt, kBlockSize, kSalt)[3]};
  router.ApplyKvEvents("d0", std::vector<kvcache::KvEvent>{removed});
  EXPECT_EQ(router.CachedBlocks("d0"), 7);
  EXPECT_EQ(router.RouteDecode(prompt)->cached_blocks, 3);
}

TEST(RouterTest, KvAwareWithEqualCostPrefersTheLessLoadedWorker) {
  RouterOptions options = Options(RouterPolicy::kKvAware);
  options.kv_overlap_weight = 2.0;
  Router router(options);
  router.AddWorker(Decode("a"));
  router.AddWorker(Decode("b"));
  const std::vector<int32_t> prompt = Tokens(16, 0);  // 4 blocks
  // a holds 2 of the prompt's blocks and has load 4: cost 2*2 + 4 = 8.
  // b holds nothing and has load 0: cost 2*4 + 0 = 8. Equal cost, b is less loaded.
  router.ApplyKvEvents("a", std::vector<kvcache::KvEvent>{StoredEvent(Tokens(8, 0))});
  router.UpdateLoad("a", WorkerLoad{.active_decode_blocks = 4});
  absl::StatusOr<RouteResult> r = router.RouteDecode(prompt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->worker_id, "b");
  EXPECT_DOUBLE_EQ(r->cost, 8.0);
}

TEST(RouterTest, AllClearedEmptiesAWorkersIndex) {
  Router router(Options(RouterPolicy::kKvAware));
  router.AddWorker(Decode("d0"));
  router.AddWorker(Decode("d1"));
  const std::vector<int32_t> prompt = Tokens(40, 0);
  router.ApplyKvEvents("d1", std::vector<kvcache::KvEvent>{StoredEvent(prompt)});
  router.UpdateLoad("d1", WorkerLoad{.active_decode_blocks = 1});
  EXPECT_EQ(router.RouteDecode(prompt)->worker_id, "d1");
  router.ReleaseRequest("d1", 10);
  router.UpdateLoad("d1", WorkerLoad{.active_decode_blocks = 1});
  router.ApplyKvEvents(
      "d1", std::vector<kvcache::KvEvent>{kvcache::KvEvent{.type = kvcache::KvEventType::kAllCleared}});
  EXPECT_EQ(router.CachedBlocks("d1"), 0);
  absl::StatusOr<RouteResult> r = router.RouteDecode(prompt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->worker_id, "d0");  // no hit anywhere now, d0 is less loaded
  EXPECT_EQ(r->cached_blocks, 0);
}

TEST(RouterTest, RemovedWorkerIsNeverPickedAndJoinedWorkerIsUsedAtOnce) {
  for (RouterPolicy policy : {RouterPolicy::kRoundRobin, RouterPolicy::kRandom, RouterPolicy::kLeastLoaded,
                              RouterPolicy::kKvAware}) {
    SCOPED_TRACE(Name(policy));
    Router router(Options(policy));
    router.AddWorker(Decode("d0"));
    router.AddWorker(Decode("d1"));
    router.AddWorker(Decode("d2"));
    const std::vector<int32_t> prompt = Tokens(32, 0);
    router.ApplyKvEvents("d1", std::vector<kvcache::KvEvent>{StoredEvent(prompt)});  // d1 would attract it
    router.RemoveWorker("d1");
    router.ApplyKvEvents("d1", std::vector<kvcache::KvEvent>{StoredEvent(prompt)});  // late events: ignored
    for (int i = 0; i < 50; ++i) {
      absl::StatusOr<RouteResult> r = router.RouteDecode(prompt);
      ASSERT_TRUE(r.ok());
      EXPECT_NE(r->worker_id, "d1");
    }
    router.AddWorker(Decode("d3"));
    router.UpdateLoad("d0", WorkerLoad{.active_decode_blocks = 1000});
    router.UpdateLoad("d2", WorkerLoad{.active_decode_blocks = 1000});
    std::set<std::string> seen;
    for (int i = 0; i < 50; ++i) seen.insert(router.RouteDecode(prompt)->worker_id);
    EXPECT_TRUE(seen.contains("d3"));
    EXPECT_FALSE(seen.contains("d1"));
  }
}

// The router hashes prompts exactly as a worker's KV cache does: events from a real
// KvBlockManager make the router see the hit the worker will get.
TEST(RouterTest, EventsFromAWorkersKvCacheMatchTheRoutersPromptHashes) {
  kvcache::KvBlockManager cache(kvcache::KvBlockManagerConfig{
      .num_blocks = 64, .block_size = kBlockSize, .enable_prefix_caching = true, .hash_salt = kSalt});
  const std::vector<int32_t> prompt = Tokens(30, 42);  // 7 full blocks + 2 tokens
  kvcache::BlockTable table;
  ASSERT_TRUE(cache.Allocate(table, static_cast<int32_t>(prompt.size())));
  cache.CacheFullBlocks(table, prompt, static_cast<int32_t>(prompt.size()));
  const std::vector<kvcache::KvEvent> events = cache.TakeEvents();
  ASSERT_FALSE(events.empty());

  Router router(Options(RouterPolicy::kKvAware));
  router.AddWorker(Decode("d0"));
  router.AddWorker(Decode("d1"));
  router.ApplyKvEvents("d1", events);
  std::vector<int32_t> next = prompt;
  next.push_back(7);
  absl::StatusOr<RouteResult> r = router.RouteDecode(next);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->worker_id, "d1");
  EXPECT_EQ(r->cached_blocks, 7);
  // The worker's own lookup agrees.
  EXPECT_EQ(cache.FindCachedPrefix(next, static_cast<int32_t>(next.size())).blocks.size(), 7u);

  cache.Free(table);
  cache.ResetPrefixCache();
  router.ApplyKvEvents("d1", cache.TakeEvents());
  EXPECT_EQ(router.CachedBlocks("d1"), 0);
}

// Issue 17 (8): a stopped (SIGSTOP) prefill worker kept getting requests, which hung.
TEST(RouterTest, WorkerWhoseReportsStoppedIsSkippedUntilItReportsAgain) {
  RouterOptions options = Options(RouterPolicy::kRoundRobin);
  options.down_after = absl::Milliseconds(100);
  options.disaggregation.mode = DisaggregationMode::kAlways;
  Router router(options);
  router.AddWorker(Decode("d0"));
  router.AddWorker(Decode("d1"));
  router.AddWorker(Prefill("p0"));
  router.UpdateLoad("d0", WorkerLoad{});
  router.UpdateLoad("d1", WorkerLoad{});
  router.UpdateLoad("p0", WorkerLoad{});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  router.UpdateLoad("d1", WorkerLoad{});  // d0 and p0 went quiet, d1 still reports
  const std::vector<int32_t> prompt = Tokens(32, 0);
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<RoutePlan> plan = router.Route(prompt);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->decode.worker_id, "d1");
    EXPECT_FALSE(plan->prefill.has_value());  // p0 is not picked
  }
  router.UpdateLoad("p0", WorkerLoad{});  // back
  absl::StatusOr<RoutePlan> plan = router.Route(prompt);
  ASSERT_TRUE(plan.ok() && plan->prefill.has_value());
  EXPECT_EQ(plan->prefill->worker_id, "p0");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  absl::StatusOr<RouteResult> none = router.RouteDecode(prompt);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("2 of them not reporting"), std::string_view::npos) << none.status();
}

TEST(RouterTest, DrainingWorkerIsSkippedEvenWhenItIsTheCheapest) {
  Router router(Options(RouterPolicy::kKvAware));
  router.AddWorker(Decode("d0"));
  router.AddWorker(Decode("d1"));
  router.UpdateLoad("d0", WorkerLoad{.active_decode_blocks = 0, .draining = true});
  router.UpdateLoad("d1", WorkerLoad{.active_decode_blocks = 500});
  const std::vector<int32_t> prompt = Tokens(32, 0);
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<RouteResult> r = router.RouteDecode(prompt);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->worker_id, "d1");
  }
  router.UpdateLoad("d1", WorkerLoad{.draining = true});
  absl::StatusOr<RouteResult> none = router.RouteDecode(prompt);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("2 draining"), std::string_view::npos) << none.status();
}

TEST(RouterTest, NoDecodeWorkerIsUnavailable) {
  Router router(Options(RouterPolicy::kKvAware));
  router.AddWorker(Prefill("p0"));
  absl::StatusOr<RouteResult> r = router.RouteDecode(Tokens(8, 0));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("no decode-capable worker"), std::string_view::npos);
}

TEST(RouterTest, ShouldPrefillRemotelyFollowsTheMode) {
  RouterOptions options = Options(RouterPolicy::kKvAware);
  options.disaggregation.max_local_prefill_tokens = 512;
  options.disaggregation.max_prefill_queue = 4;
  options.disaggregation.mode = DisaggregationMode::kConditional;
  Router conditional(options);
  EXPECT_FALSE(conditional.ShouldPrefillRemotely(100, 0));   // short: local
  EXPECT_FALSE(conditional.ShouldPrefillRemotely(512, 0));   // not longer than the limit
  EXPECT_TRUE(conditional.ShouldPrefillRemotely(513, 0));    // long: remote
  EXPECT_TRUE(conditional.ShouldPrefillRemotely(5000, 4));   // queue at the limit: still remote
  EXPECT_FALSE(conditional.ShouldPrefillRemotely(5000, 5));  // queue too long: local
  options.disaggregation.mode = DisaggregationMode::kAlways;
  EXPECT_TRUE(Router(options).ShouldPrefillRemotely(1, 100));
  options.disaggregation.mode = DisaggregationMode::kOff;
  EXPECT_FALSE(Router(options).ShouldPrefillRemotely(100000, 0));
}

// Issue 17 (5): n > 1 failed disaggregated ("kv_role remote_prefill expects n = 1, found n = 3"):
// a remote prefill hands back one sequence, so the decode worker prefills once and forks.
TEST(RouterTest, RequestsForSeveralSequencesArePrefilledOnTheDecodeWorker) {
  RouterOptions options = Options(RouterPolicy::kKvAware);
  options.disaggregation.mode = DisaggregationMode::kAlways;
  Router router(options);
  router.AddWorker(Decode("d0"));
  router.AddWorker(Prefill("p0"));
  const std::vector<int32_t> prompt = Tokens(64, 0);
  absl::StatusOr<RoutePlan> one = router.Route(prompt, 1);
  ASSERT_TRUE(one.ok() && one->prefill.has_value());
  absl::StatusOr<RoutePlan> three = router.Route(prompt, 3);
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three->decode.worker_id, "d0");
  EXPECT_FALSE(three->prefill.has_value());
}

// A request routed again after a worker failed it (remote_generator.cc) avoids that worker: the
// other decode or prefill worker is chosen however cheap the failed one looks; with none left, a
// decode worker is Unavailable and a prefill worker is simply not planned.
TEST(RouterTest, RouteAvoidsTheWorkersThatFailedTheRequest) {
  RouterOptions options = Options(RouterPolicy::kKvAware);
  options.disaggregation.mode = DisaggregationMode::kAlways;
  Router router(options);
  for (const char* id : {"d0", "d1"}) router.AddWorker(Decode(id));
  for (const char* id : {"p0", "p1"}) router.AddWorker(Prefill(id));
  const std::vector<int32_t> prompt = Tokens(64, 0);
  router.ApplyKvEvents("d0", std::vector<kvcache::KvEvent>{StoredEvent(prompt)});  // d0 holds the prompt
  absl::StatusOr<RoutePlan> first = router.Route(prompt, 1);
  ASSERT_TRUE(first.ok() && first->prefill.has_value());
  EXPECT_EQ(first->decode.worker_id, "d0");
  absl::StatusOr<RoutePlan> again = router.Route(prompt, 1, {"d0", first->prefill->worker_id});
  ASSERT_TRUE(again.ok() && again->prefill.has_value());
  EXPECT_EQ(again->decode.worker_id, "d1");
  EXPECT_NE(again->prefill->worker_id, first->prefill->worker_id);
  absl::StatusOr<RoutePlan> no_prefill = router.Route(prompt, 1, {"p0", "p1"});
  ASSERT_TRUE(no_prefill.ok());
  EXPECT_FALSE(no_prefill->prefill.has_value());
  absl::StatusOr<RoutePlan> none = router.Route(prompt, 1, {"d0", "d1"});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("2 failed this request"), std::string_view::npos) << none.status();
}

TEST(RouterTest, RoutePlanPrefillsRemotelyOnlyForLongUncachedPrompts) {
  RouterOptions options = Options(RouterPolicy::kKvAware);
  options.disaggregation.mode = DisaggregationMode::kConditional;
  options.disaggregation.max_local_prefill_tokens = 16;
  options.disaggregation.max_prefill_queue = 2;
  Router router(options);
  router.AddWorker(Decode("d0"));
  router.AddWorker(Prefill("p0"));

  absl::StatusOr<RoutePlan> shortp = router.Route(Tokens(12, 0));
  ASSERT_TRUE(shortp.ok());
  EXPECT_EQ(shortp->decode.worker_id, "d0");
  EXPECT_FALSE(shortp->prefill.has_value());

  const std::vector<int32_t> longp = Tokens(64, 100);
  absl::StatusOr<RoutePlan> remote = router.Route(longp);
  ASSERT_TRUE(remote.ok());
  ASSERT_TRUE(remote->prefill.has_value());
  EXPECT_EQ(remote->prefill->worker_id, "p0");

  // Once the decode worker caches the prompt, only the short suffix is left: local prefill.
  router.ApplyKvEvents("d0", std::vector<kvcache::KvEvent>{StoredEvent(longp)});
  std::vector<int32_t> again = longp;
  again.push_back(1);
  absl::StatusOr<RoutePlan> cached = router.Route(again);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->decode.uncached_prompt_tokens, 1);
  EXPECT_FALSE(cached->prefill.has_value());

  // A long prefill queue keeps long prompts local too.
  router.UpdateLoad("p0", WorkerLoad{.num_waiting = 3});
  absl::StatusOr<RoutePlan> busy = router.Route(Tokens(64, 9000));
  ASSERT_TRUE(busy.ok());
  EXPECT_FALSE(busy->prefill.has_value());

  // With no prefill worker the decode worker prefills.
  router.UpdateLoad("p0", WorkerLoad{});
  router.RemoveWorker("p0");
  absl::StatusOr<RoutePlan> alone = router.Route(Tokens(64, 7000));
  ASSERT_TRUE(alone.ok());
  EXPECT_FALSE(alone->prefill.has_value());
}

TEST(RouterTest, ConcurrentRoutingWhileWorkersChurn) {
  Router router(Options(RouterPolicy::kKvAware));
  for (int i = 0; i < 4; ++i) router.AddWorker(Decode(absl::StrCat("d", i)));
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    int n = 0;
    while (!stop.load()) {
      const std::string id = absl::StrCat("x", n++ % 3);
      router.AddWorker(Decode(id));
      router.ApplyKvEvents(id, std::vector<kvcache::KvEvent>{StoredEvent(Tokens(32, n))});
      router.RemoveWorker(id);
    }
  });
  std::vector<std::thread> routers;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    routers.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        absl::StatusOr<RouteResult> r = router.RouteDecode(Tokens(32, t * 100 + i % 7));
        if (r.ok()) {
          ok++;
          router.ReleaseRequest(r->worker_id, r->prompt_blocks);
        }
      }
    });
  }
  for (std::thread& t : routers) t.join();
  stop = true;
  churn.join();
  EXPECT_EQ(ok.load(), 8000);  // d0..d3 never leave, so every request is routed
}

// Not a benchmark: routing 10k requests over 8 workers must be quick; the time is printed.
TEST(RouterTest, RoutesTenThousandRequestsOverEightWorkers) {
  RouterOptions options = Options(RouterPolicy::kKvAware);
  options.block_size = 16;
  Router router(options);
  for (int i = 0; i < 8; ++i) {
    const std::string id = absl::StrCat("d", i);
    router.AddWorker(Decode(id));
    std::vector<int32_t> cached = Tokens(1024, i * 100000);  // 64 blocks per worker
    kvcache::KvEvent e;
    e.type = kvcache::KvEventType::kBlockStored;
    e.block_hashes = kvcache::HashFullBlocks(cached, 16, kSalt);
    router.ApplyKvEvents(id, std::vector<kvcache::KvEvent>{e});
  }
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 64; ++i) {
    std::vector<int32_t> p = Tokens(1024, (i % 8) * 100000);  // a cached 1k-token prefix
    for (int j = 0; j < 10; ++j) p.push_back(j + i);
    prompts.push_back(std::move(p));
  }
  std::map<std::string, int> hits;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10000; ++i) {
    absl::StatusOr<RouteResult> r = router.RouteDecode(prompts[i % prompts.size()]);
    ASSERT_TRUE(r.ok());
    if (r->cached_blocks == 64) hits[r->worker_id]++;
    router.ReleaseRequest(r->worker_id, r->prompt_blocks);
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "kv_aware: routed 10000 requests (1034-token prompts) over 8 workers in %.1f ms (%.1f us each)\n", ms,
      ms * 1000 / 10000);
  EXPECT_EQ(hits.size(), 8u);  // every prefix went home
}

}  // namespace
}  // namespace tandem::router
