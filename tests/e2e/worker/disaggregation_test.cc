// Disaggregated serving over real gRPC on loopback ports, on the golden tiny Llama (CPU backend):
// a prefill + decode pair gives token-for-token the greedy output of an aggregated worker for many
// prompts (longer than a prefill chunk, and prefix-cache hits on the decode worker), over both the
// `local` and `ucx` KV transports; mismatched KV layouts are refused with a clear error; a prefill
// worker that stops mid-request ends the decode side's request with an error and leaks no blocks.
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/core/config.h"
#include "tandem/worker/worker.h"

namespace tandem::worker {
namespace {

const std::string kModelDir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama";

DeploymentConfig Config(TransferBackend transfer, int block_size = 16, int64_t max_num_seqs = 16) {
  DeploymentConfig c;
  c.source = "<test>";
  c.model.path = kModelDir;
  c.model.max_model_len = 256;
  c.backend = BackendKind::kCpu;
  c.kv_cache.block_size = block_size;
  c.kv_cache.cpu_memory_mib = 2;  // 256 blocks of 16 tokens
  c.kv_cache.prefix_caching = true;
  for (PoolSection* p : {&c.pools.prefill, &c.pools.decode, &c.pools.both}) {
    p->max_num_batched_tokens = 64;  // prompts up to 200 tokens take several chunks
    p->max_num_seqs = max_num_seqs;
  }
  c.transfer.backend = transfer;
  c.disaggregation.mode = DisaggregationMode::kAlways;
  return c;
}

std::unique_ptr<Worker> Start(const DeploymentConfig& config, WorkerRole role,
                              std::vector<std::string> prefill_workers = {}) {
  WorkerOptions options;
  options.role = role;
  options.listen = "127.0.0.1:0";
  options.prefill_workers = std::move(prefill_workers);
  auto w = Worker::CreateFromDeployment(config, options);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? std::move(*w) : nullptr;
}

std::vector<int32_t> Prompt(int32_t len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % 997) + 3;  // avoid EOS (2)
  return p;
}

v1::WorkerGenerateRequest Request(const std::string& id, const std::vector<int32_t>& prompt, int max_tokens) {
  v1::WorkerGenerateRequest r;
  r.set_request_id(id);
  for (int32_t t : prompt) r.add_prompt_token_ids(t);
  r.mutable_sampling()->set_temperature(0.0f);
  r.mutable_sampling()->set_max_tokens(max_tokens);
  r.mutable_sampling()->set_ignore_eos(true);
  return r;
}

struct Result {
  std::vector<int32_t> tokens;
  v1::WorkerGenerateResponse last;
  absl::Status status;
  int messages = 0;
};

Result Generate(cluster::WorkerClient& client, const v1::WorkerGenerateRequest& request) {
  Result r;
  r.status = client.Generate(request, [&](const v1::WorkerGenerateResponse& m) {
    r.tokens.insert(r.tokens.end(), m.token_ids().begin(), m.token_ids().end());
    r.last = m;
    ++r.messages;
  });
  return r;
}

// Polls until the worker's engine holds no KV blocks (the loop publishes its stats after each step).
bool NoBlocksHeld(const Worker& w, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (w.engine_stats().kv_blocks_used == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return w.engine_stats().kv_blocks_used == 0;
}

// A KV transport, and whether the prefill worker streams the KV layer by layer while the prompt
// runs (transfer.layerwise) or sends it after the prefill.
struct Setup {
  TransferBackend transfer;
  bool layerwise;
};

class DisaggregationTest : public ::testing::TestWithParam<Setup> {
 protected:
  DeploymentConfig ParamConfig() const {
    DeploymentConfig c = Config(GetParam().transfer);
    c.transfer.layerwise = GetParam().layerwise;
    return c;
  }
};

TEST_P(DisaggregationTest, DisaggregatedEqualsAggregatedTokenForToken) {
  const DeploymentConfig config = ParamConfig();
  auto aggregated = Start(config, WorkerRole::kBoth);
  auto prefill = Start(config, WorkerRole::kPrefill);
  ASSERT_TRUE(aggregated && prefill);
  auto decode = Start(config, WorkerRole::kDecode, {prefill->address()});
  ASSERT_TRUE(decode);
  EXPECT_EQ(decode->info().transport(), std::string(Name(GetParam().transfer)));

  // 60 prompts: lengths 1..200 (many past one 64-token chunk), the first 20 sharing a 70-token
  // prefix (full blocks the decode worker has cached after the first of them).
  const std::vector<int32_t> shared = Prompt(70, 999);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 60; ++i) {
    std::vector<int32_t> p;
    if (i < 20) {
      p = shared;
      const auto tail = Prompt(1 + (i * 7) % 60, 100 + static_cast<uint32_t>(i));
      p.insert(p.end(), tail.begin(), tail.end());
    } else {
      p = Prompt(1 + (i * 37) % 200, 200 + static_cast<uint32_t>(i));
    }
    prompts.push_back(std::move(p));
  }
  // The first shared-prefix prompt goes alone so the later ones hit the decode worker's cache.
  cluster::WorkerClient agg_client(aggregated->address());
  cluster::WorkerClient decode_client(decode->address());
  std::vector<Result> want(prompts.size()), got(prompts.size());
  auto run = [&](size_t i) {
    const int max_tokens = 4 + static_cast<int>(i % 9);
    want[i] = Generate(agg_client, Request(absl::StrCat("a", i), prompts[i], max_tokens));
    got[i] = Generate(decode_client, Request(absl::StrCat("d", i), prompts[i], max_tokens));
  };
  run(0);
  std::atomic<size_t> next{1};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < prompts.size(); i = next++) run(i);
    });
  }
  for (std::thread& t : threads) t.join();

  int cache_hits = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("prompt ", i, " of ", prompts[i].size(), " tokens"));
    ASSERT_TRUE(want[i].status.ok()) << want[i].status;
    ASSERT_TRUE(got[i].status.ok()) << got[i].status;
    EXPECT_TRUE(got[i].last.finished());
    EXPECT_EQ(got[i].last.finish_reason(), v1::WORKER_FINISH_LENGTH) << got[i].last.error();
    EXPECT_TRUE(got[i].last.remote_prefill());
    EXPECT_FALSE(want[i].last.remote_prefill());
    EXPECT_EQ(got[i].tokens, want[i].tokens);
    EXPECT_EQ(got[i].tokens.size(), static_cast<size_t>(4 + i % 9));
    if (got[i].last.num_cached_tokens() > 0) ++cache_hits;
  }
  EXPECT_GE(cache_hits, 10) << "shared-prefix prompts should hit the decode worker's prefix cache";
  const wire::WorkerCounters ds = decode->stats();
  EXPECT_EQ(ds.remote_prefills, static_cast<int64_t>(prompts.size()));
  EXPECT_EQ(ds.remote_prefill_failures, 0);
  const wire::WorkerCounters ps = prefill->stats();
  EXPECT_GT(ps.kv_blocks_sent, 0);
  EXPECT_GT(ps.kv_bytes_sent, 0u);
  // Layer-wise: every prompt's KV left while it was computed (nothing preempted here); else after it.
  EXPECT_EQ(ps.kv_streamed_prefills, GetParam().layerwise ? static_cast<int64_t>(prompts.size()) : 0);
  EXPECT_EQ(ps.kv_stream_fallbacks, 0);
  // What the prefill worker sent is what the decode worker received; both timed every call.
  EXPECT_EQ(ds.kv_bytes_received, ps.kv_bytes_sent);
  EXPECT_EQ(ds.kv_blocks_received, ps.kv_blocks_sent);
  EXPECT_EQ(ps.remote_prefills_served, static_cast<int64_t>(prompts.size()));
  EXPECT_EQ(ps.remote_prefills_failed, 0);
  EXPECT_EQ(ps.prefill_queue_length, 0);
  EXPECT_EQ(ps.kv_transfer_seconds.count, static_cast<int64_t>(prompts.size()));
  EXPECT_GT(ps.kv_transfer_seconds.sum, 0.0);
  EXPECT_EQ(ds.remote_prefill_seconds.count, static_cast<int64_t>(prompts.size()));
  EXPECT_GE(ds.remote_prefill_seconds.sum, ps.kv_transfer_seconds.sum);
  EXPECT_TRUE(NoBlocksHeld(*prefill)) << prefill->engine_stats().kv_blocks_used;
  EXPECT_TRUE(NoBlocksHeld(*decode)) << decode->engine_stats().kv_blocks_used;
  EXPECT_TRUE(NoBlocksHeld(*aggregated));
}

TEST_P(DisaggregationTest, LoadStreamReportsKvEventsAndCounters) {
  const DeploymentConfig config = ParamConfig();
  auto prefill = Start(config, WorkerRole::kPrefill);
  ASSERT_TRUE(prefill);
  auto decode = Start(config, WorkerRole::kDecode, {prefill->address()});
  ASSERT_TRUE(decode);
  cluster::WorkerClient client(decode->address());
  cluster::CallHandle handle;
  std::atomic<int> stored{0};
  std::atomic<int64_t> remote{0};
  std::atomic<int32_t> total{0};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> timed{0};
  std::thread watcher([&] {
    (void)client.StreamLoad(
        20,
        [&](const v1::LoadReport& r) {
          for (const v1::KvCacheEvent& e : r.events()) {
            if (e.type() == v1::KvCacheEvent::STORED) stored += e.block_hashes_size();
          }
          remote = r.remote_prefills();
          total = r.kv_blocks_total();
          received = r.kv_bytes_received();
          timed = r.remote_prefill_seconds().count();
          return true;
        },
        &handle);
  });
  const Result r = Generate(client, Request("x", Prompt(100, 5), 4));
  ASSERT_TRUE(r.status.ok()) << r.status;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((stored < 6 || remote < 1 || timed < 1) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  handle.Cancel();
  watcher.join();
  EXPECT_GE(stored.load(), 6);  // 100 prompt tokens: 6 full blocks of 16
  EXPECT_EQ(remote.load(), 1);
  EXPECT_EQ(total.load(), decode->info().num_kv_blocks());
  EXPECT_EQ(timed.load(), 1u);
  EXPECT_EQ(received.load(), prefill->stats().kv_bytes_sent);
  EXPECT_GT(received.load(), 0u);
}

// A subscriber that connects after blocks were cached (a restarted frontend) first gets them all.
TEST_P(DisaggregationTest, LateLoadSubscriberGetsTheCachedBlocksFirst) {
  const DeploymentConfig config = ParamConfig();
  auto prefill = Start(config, WorkerRole::kPrefill);
  ASSERT_TRUE(prefill);
  auto decode = Start(config, WorkerRole::kDecode, {prefill->address()});
  ASSERT_TRUE(decode);
  cluster::WorkerClient client(decode->address());
  ASSERT_TRUE(Generate(client, Request("early", Prompt(100, 9), 2)).status.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the worker publishes its events
  std::vector<v1::KvCacheEvent> first;
  cluster::CallHandle handle;
  (void)client.StreamLoad(
      20,
      [&](const v1::LoadReport& r) {
        first.assign(r.events().begin(), r.events().end());
        return false;  // the first report is enough
      },
      &handle);
  ASSERT_GE(first.size(), 2u);
  EXPECT_EQ(first[0].type(), v1::KvCacheEvent::ALL_CLEARED);
  EXPECT_EQ(first[1].type(), v1::KvCacheEvent::STORED);
  EXPECT_GE(first[1].block_hashes_size(), 6);  // 100 prompt tokens: 6 full blocks of 16 stay cached
}

TEST_P(DisaggregationTest, ClientCancelFreesBlocksOnBothSides) {
  const DeploymentConfig config = ParamConfig();
  auto prefill = Start(config, WorkerRole::kPrefill);
  ASSERT_TRUE(prefill);
  auto decode = Start(config, WorkerRole::kDecode, {prefill->address()});
  ASSERT_TRUE(decode);
  cluster::WorkerClient client(decode->address());
  cluster::CallHandle handle;
  int received = 0;
  const absl::Status s = client.Generate(
      Request("c", Prompt(100, 11), 150),
      [&](const v1::WorkerGenerateResponse& m) {
        received += m.token_ids_size();
        if (received >= 2) handle.Cancel();  // disconnect mid-stream
      },
      &handle);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_GE(received, 2);
  EXPECT_LT(received, 150);
  EXPECT_TRUE(NoBlocksHeld(*decode)) << decode->engine_stats().kv_blocks_used;
  EXPECT_TRUE(NoBlocksHeld(*prefill)) << prefill->engine_stats().kv_blocks_used;
  EXPECT_EQ(decode->engine_stats().num_running, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Transports, DisaggregationTest,
    ::testing::Values(Setup{TransferBackend::kLocal, true}, Setup{TransferBackend::kLocal, false},
                      Setup{TransferBackend::kUcx, true}, Setup{TransferBackend::kUcx, false}),
    [](const ::testing::TestParamInfo<Setup>& p) {
      return absl::StrCat(Name(p.param.transfer), p.param.layerwise ? "_layerwise" : "_after_prefill");
    });

TEST(ConditionalDisaggregationTest, PrefillsRemotelyOnlyWhenTheUncachedPromptIsLong) {
  DeploymentConfig config = Config(TransferBackend::kLocal);
  config.disaggregation.mode = DisaggregationMode::kConditional;
  config.disaggregation.max_local_prefill_tokens = 40;
  auto prefill = Start(config, WorkerRole::kPrefill);
  ASSERT_TRUE(prefill);
  auto decode = Start(config, WorkerRole::kDecode, {prefill->address()});
  ASSERT_TRUE(decode);
  cluster::WorkerClient client(decode->address());
  const Result short_prompt = Generate(client, Request("s", Prompt(30, 1), 3));
  ASSERT_TRUE(short_prompt.status.ok()) << short_prompt.status;
  EXPECT_FALSE(short_prompt.last.remote_prefill());
  const std::vector<int32_t> long_prompt = Prompt(100, 2);
  const Result cold = Generate(client, Request("l1", long_prompt, 3));
  ASSERT_TRUE(cold.status.ok()) << cold.status;
  EXPECT_TRUE(cold.last.remote_prefill());
  // The same prompt again: 96 of its tokens are cached here (once the KV events are in), leaving 4.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const Result warm = Generate(client, Request("l2", long_prompt, 3));
  ASSERT_TRUE(warm.status.ok()) << warm.status;
  EXPECT_FALSE(warm.last.remote_prefill());
  EXPECT_EQ(warm.last.num_cached_tokens(), 96);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(decode->stats().remote_prefills, 1);
  EXPECT_EQ(decode->stats().local_prefills, 2);
}

TEST(DisaggregationErrorsTest, MismatchedKvLayoutIsRefusedWithAClearError) {
  auto prefill = Start(Config(TransferBackend::kLocal, /*block_size=*/16), WorkerRole::kPrefill);
  ASSERT_TRUE(prefill);
  auto decode =
      Start(Config(TransferBackend::kLocal, /*block_size=*/8), WorkerRole::kDecode, {prefill->address()});
  ASSERT_TRUE(decode);
  cluster::WorkerClient client(decode->address());
  const Result r = Generate(client, Request("m", Prompt(40, 3), 4));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.last.finish_reason(), v1::WORKER_FINISH_ERROR);
  EXPECT_NE(r.last.error().find("incompatible KV cache layout"), std::string::npos) << r.last.error();
  EXPECT_NE(r.last.error().find("block_size 8 here, 16 there"), std::string::npos) << r.last.error();
  EXPECT_TRUE(r.tokens.empty());
  EXPECT_TRUE(NoBlocksHeld(*decode));

  // The prefill side checks too: a RemotePrefill with a foreign layout is refused before any work.
  cluster::WorkerClient prefill_client(prefill->address());
  v1::RemotePrefillRequest call;
  call.set_request_id("direct");
  for (int32_t t : Prompt(20, 4)) call.add_prompt_token_ids(t);
  call.add_dst_block_ids(0);
  call.add_dst_block_ids(1);
  call.add_dst_block_ids(2);
  *call.mutable_destination() = decode->info();
  auto refused = prefill_client.RemotePrefill(call, std::chrono::seconds(10));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("block_size 16 here, 8 there"), std::string::npos)
      << refused.status();
  EXPECT_TRUE(NoBlocksHeld(*prefill));
}

TEST(DisaggregationErrorsTest, PrefillWorkerStoppingMidRequestEndsItWithAnErrorAndLeaksNoBlocks) {
  // One sequence at a time on the prefill worker: long local generations queue the remote prefill
  // behind them, so it is certainly in flight when the prefill worker stops.
  auto prefill = Start(Config(TransferBackend::kUcx, 16, /*max_num_seqs=*/1), WorkerRole::kPrefill);
  ASSERT_TRUE(prefill);
  auto decode = Start(Config(TransferBackend::kUcx), WorkerRole::kDecode, {prefill->address()});
  ASSERT_TRUE(decode);
  cluster::WorkerClient prefill_client(prefill->address());
  {
    // One request first, so the decode worker has checked the prefill worker's layout (GetInfo)
    // and the remote prefill below is the call in flight.
    cluster::WorkerClient client(decode->address());
    const Result warm = Generate(client, Request("warm", Prompt(40, 2), 2));
    ASSERT_TRUE(warm.status.ok()) << warm.status;
    ASSERT_EQ(warm.last.finish_reason(), v1::WORKER_FINISH_LENGTH) << warm.last.error();
  }
  std::vector<std::thread> busy;
  constexpr int kBusy = 24;
  for (int i = 0; i < kBusy; ++i) {
    busy.emplace_back([&, i] {
      v1::WorkerGenerateRequest r =
          Request(absl::StrCat("busy", i), Prompt(16, 50 + static_cast<uint32_t>(i)), 230);
      r.set_prefill_mode(v1::PREFILL_MODE_LOCAL);
      (void)Generate(prefill_client, r);
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto queued = [&] { return prefill->engine_stats().num_running + prefill->engine_stats().num_waiting; };
  while (queued() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  Result result;
  std::thread request([&] {
    cluster::WorkerClient client(decode->address());
    result = Generate(client, Request("victim", Prompt(120, 8), 8));
  });
  // Wait until the decode worker holds the prompt's blocks and the prefill worker has queued it.
  while ((decode->engine_stats().num_waiting_for_remote_kv < 1 || queued() < 3) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(decode->engine_stats().num_waiting_for_remote_kv, 1);
  EXPECT_GE(queued(), 2) << "the remote prefill should still be queued behind the busy requests";
  prefill->Shutdown();
  request.join();
  for (std::thread& t : busy) t.join();
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.last.finish_reason(), v1::WORKER_FINISH_ERROR);
  EXPECT_NE(result.last.error().find("prefill worker"), std::string::npos) << result.last.error();
  EXPECT_TRUE(result.tokens.empty());
  EXPECT_TRUE(NoBlocksHeld(*decode)) << decode->engine_stats().kv_blocks_used;
  EXPECT_EQ(prefill->engine_stats().kv_blocks_used, 0);
  EXPECT_EQ(decode->stats().remote_prefill_failures, 1);

  // The decode worker keeps serving: with the prefill worker gone, a local prefill still works.
  cluster::WorkerClient client(decode->address());
  v1::WorkerGenerateRequest local = Request("after", Prompt(30, 9), 4);
  local.set_prefill_mode(v1::PREFILL_MODE_LOCAL);
  const Result after = Generate(client, local);
  ASSERT_TRUE(after.status.ok()) << after.status;
  EXPECT_EQ(after.tokens.size(), 4u);
  EXPECT_TRUE(NoBlocksHeld(*decode));
}

}  // namespace
}  // namespace tandem::worker
