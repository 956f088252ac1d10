// The frontend's Prometheus metrics: request counters, TTFT / inter-token / end-to-end latency
// histograms, token counters, and the generator's gauges (queue depths, KV usage, transfer bytes),
// rendered in the Prometheus text exposition format (version 0.0.4). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tandem/frontend/generator.h"

namespace tandem::frontend {

// The router's and every worker's lines of a disaggregated deployment (from stats.workers; nothing
// when that is empty). Metrics::Render appends them; exposed for tests.
void RenderWorkerMetrics(const GeneratorStats& stats, std::string* out);

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  // Appends the _bucket/_sum/_count lines of metric `name`.
  void Render(const std::string& name, std::string* out) const;
  int64_t count() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<int64_t> counts_;  // per bucket (not cumulative), plus +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  // One finished HTTP/gRPC request: endpoint ("/v1/chat/completions", "grpc.Generate") and status.
  void CountRequest(const std::string& endpoint, int status);
  void ObserveTtft(double seconds) { ttft_.Observe(seconds); }
  void ObserveInterToken(double seconds) { itl_.Observe(seconds); }
  void ObserveE2e(double seconds) { e2e_.Observe(seconds); }
  void AddPromptTokens(int64_t n) { prompt_tokens_ += n; }
  void AddGenerationTokens(int64_t n) { generation_tokens_ += n; }
  void AddInFlight(int64_t delta) { in_flight_ += delta; }
  int64_t in_flight() const { return in_flight_.load(); }
  void AddOpenConnections(int64_t delta) { open_connections_ += delta; }

  std::string Render(const GeneratorStats& stats) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  Histogram ttft_;
  Histogram itl_;
  Histogram e2e_;
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> generation_tokens_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> open_connections_{0};
};

}  // namespace tandem::frontend
