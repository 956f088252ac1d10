// The Prometheus text rendering: counters, cumulative histogram buckets, generator gauges and the
// per-worker lines of a disaggregated deployment.
#include "tandem/frontend/metrics.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem::frontend {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find(line) != std::string::npos; }

TEST(MetricsTest, RendersPrometheusText) {
  Metrics m;
  m.CountRequest("/v1/completions", 200);
  m.CountRequest("/v1/completions", 200);
  m.CountRequest("/v1/completions", 400);
  m.ObserveTtft(0.003);
  m.ObserveTtft(0.3);
  m.AddPromptTokens(10);
  m.AddGenerationTokens(7);
  GeneratorStats stats;
  stats.kv_blocks_used = 5;
  stats.kv_blocks_total = 20;
  stats.num_waiting = 2;
  const std::string text = m.Render(stats);
  EXPECT_TRUE(Has(text, "# TYPE tandem_requests_total counter\n"));
  EXPECT_TRUE(Has(text, "tandem_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2\n"));
  EXPECT_TRUE(Has(text, "tandem_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1\n"));
  EXPECT_TRUE(Has(text, "# TYPE tandem_time_to_first_token_seconds histogram\n"));
  EXPECT_TRUE(Has(text, "tandem_time_to_first_token_seconds_bucket{le=\"0.0025\"} 0\n"));
  EXPECT_TRUE(Has(text, "tandem_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
  EXPECT_TRUE(Has(text, "tandem_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
  EXPECT_TRUE(Has(text, "tandem_time_to_first_token_seconds_count 2\n"));
  EXPECT_TRUE(Has(text, "tandem_prompt_tokens_total 10\n"));
  EXPECT_TRUE(Has(text, "tandem_generation_tokens_total 7\n"));
  EXPECT_TRUE(Has(text, "tandem_kv_cache_usage_ratio 0.25\n"));
  EXPECT_TRUE(Has(text, "tandem_num_requests_waiting 2\n"));
}

WorkerMetrics Worker(const std::string& id, const std::string& role, const std::string& address) {
  WorkerMetrics w;
  w.id = id;
  w.role = role;
  w.address = address;
  w.up = true;
  w.load.kv_blocks_total = 100;
  return w;
}

TEST(MetricsTest, RendersPerWorkerLoadAndTransferMetrics) {
  GeneratorStats stats;
  stats.routed_remote_prefills = 5;
  stats.routed_local_prefills = 2;
  WorkerMetrics prefill = Worker("prefill-0", "prefill", "127.0.0.1:5001");
  prefill.load.kv_blocks_used = 12;
  prefill.load.num_waiting = 3;
  prefill.counters.prefill_queue_length = 4;
  prefill.load.num_pending_transfer = 1;
  prefill.counters.kv_bytes_sent = 8000000;
  prefill.counters.kv_blocks_sent = 40;
  prefill.counters.remote_prefills_served = 5;
  prefill.counters.remote_prefills_failed = 1;
  prefill.counters.kv_transfer_seconds = {{0.01, 0.1, 1.0}, {1, 3, 1, 0}, 2.0, 5};
  WorkerMetrics decode = Worker("decode-0", "decode", "127.0.0.1:5002");
  decode.load.num_running = 2;
  decode.load.num_waiting_for_remote_kv = 1;
  decode.counters.remote_prefills = 5;
  decode.counters.local_prefills = 2;
  decode.counters.remote_prefill_failures = 1;
  decode.counters.kv_bytes_received = 8000000;
  decode.counters.kv_blocks_received = 40;
  decode.counters.remote_prefill_seconds = {{0.01, 0.1, 1.0}, {0, 0, 4, 1}, 3.5, 5};
  WorkerMetrics down = Worker("decode-1", "decode", "127.0.0.1:5003");
  down.up = false;
  down.load.kv_blocks_used = 77;  // stale: a worker that is down has no load lines
  stats.workers = {prefill, decode, down};

  const std::string text = Metrics().Render(stats);
  const std::string p = "worker=\"prefill-0\",role=\"prefill\",address=\"127.0.0.1:5001\"";
  const std::string d = "worker=\"decode-0\",role=\"decode\",address=\"127.0.0.1:5002\"";
  const std::string down_labels = "worker=\"decode-1\",role=\"decode\",address=\"127.0.0.1:5003\"";
  EXPECT_TRUE(Has(text, "# TYPE tandem_router_prefills_total counter\n"));
  EXPECT_TRUE(Has(text, "tandem_router_prefills_total{location=\"remote\"} 5\n"));
  EXPECT_TRUE(Has(text, "tandem_router_prefills_total{location=\"local\"} 2\n"));
  EXPECT_TRUE(Has(text, "# TYPE tandem_worker_up gauge\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_up{" + p + "} 1\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_up{" + down_labels + "} 0\n"));
  EXPECT_FALSE(Has(text, "tandem_worker_kv_blocks_used{" + down_labels));
  EXPECT_TRUE(Has(text, "# TYPE tandem_worker_kv_blocks_used gauge\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_blocks_used{" + p + "} 12\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_blocks_used{" + d + "} 0\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_blocks_total{" + d + "} 100\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_num_requests_running{" + d + "} 2\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_num_requests_waiting{" + p + "} 3\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_num_requests_waiting_for_remote_kv{" + d + "} 1\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_num_pending_transfers{" + p + "} 1\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_prefill_queue_length{" + p + "} 4\n"));
  EXPECT_TRUE(Has(text, "# TYPE tandem_worker_prefills_total counter\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_prefills_total{" + d + ",location=\"remote\"} 5\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_prefills_total{" + d + ",location=\"local\"} 2\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_remote_prefill_failures_total{" + d + "} 1\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_remote_prefill_requests_total{" + p + ",outcome=\"ok\"} 5\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_remote_prefill_requests_total{" + p + ",outcome=\"error\"} 1\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_bytes_total{" + p + ",direction=\"sent\"} 8000000\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_bytes_total{" + d + ",direction=\"received\"} 8000000\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_blocks_total{" + p + ",direction=\"sent\"} 40\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_blocks_total{" + d + ",direction=\"received\"} 40\n"));
  // 8 MB over 2 s of transfers.
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_bandwidth_bytes_per_second{" + p + "} 4000000\n"));
  // Each role gets its side's lines only.
  EXPECT_FALSE(Has(text, "tandem_worker_kv_transfer_bandwidth_bytes_per_second{" + d));
  EXPECT_FALSE(Has(text, "tandem_worker_prefill_queue_length{" + d));
  EXPECT_FALSE(Has(text, "tandem_worker_kv_transfer_bytes_total{" + d + ",direction=\"sent\"}"));
  EXPECT_FALSE(Has(text, "tandem_worker_prefills_total{" + p));
  EXPECT_FALSE(Has(text, "tandem_worker_remote_prefill_seconds_count{" + p));
  // Histograms: cumulative buckets per worker, +Inf equal to the count.
  EXPECT_TRUE(Has(text, "# TYPE tandem_worker_kv_transfer_seconds histogram\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_seconds_bucket{" + p + ",le=\"0.01\"} 1\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_seconds_bucket{" + p + ",le=\"0.1\"} 4\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_seconds_bucket{" + p + ",le=\"1\"} 5\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_seconds_bucket{" + p + ",le=\"+Inf\"} 5\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_seconds_sum{" + p + "} 2\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_kv_transfer_seconds_count{" + p + "} 5\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_remote_prefill_seconds_bucket{" + d + ",le=\"1\"} 4\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_remote_prefill_seconds_bucket{" + d + ",le=\"+Inf\"} 5\n"));
  EXPECT_TRUE(Has(text, "tandem_worker_remote_prefill_seconds_sum{" + d + "} 3.5\n"));
}

TEST(MetricsTest, EscapesLabelValuesAndOmitsWorkersWhenAggregated) {
  GeneratorStats aggregated;
  EXPECT_FALSE(Has(Metrics().Render(aggregated), "tandem_worker_"));
  EXPECT_FALSE(Has(Metrics().Render(aggregated), "tandem_router_"));
  GeneratorStats stats;
  stats.workers = {Worker("odd\"id\\x", "both", "host\nname:1")};
  EXPECT_TRUE(Has(Metrics().Render(stats),
                  "tandem_worker_up{worker=\"odd\\\"id\\\\x\",role=\"both\",address=\"host\\nname:1\"} 1\n"));
}

}  // namespace
}  // namespace tandem::frontend
