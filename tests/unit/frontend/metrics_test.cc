// The Prometheus text rendering: counters, cumulative histogram buckets and generator gauges.
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

}  // namespace
}  // namespace tandem::frontend
