#include "tandem/frontend/metrics.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::frontend {
namespace {

std::string Num(double v) { return absl::StrFormat("%.9g", v); }

void Header(const std::string& name, const char* type, const char* help, std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void Gauge(const std::string& name, const char* help, double value, std::string* out) {
  Header(name, "gauge", help, out);
  absl::StrAppend(out, name, " ", Num(value), "\n");
}

void Counter(const std::string& name, const char* help, double value, std::string* out) {
  Header(name, "counter", help, out);
  absl::StrAppend(out, name, " ", Num(value), "\n");
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.15, 0.2, 0.3,
          0.4,   0.5,    0.75,  1.0,  2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += value;
  ++count_;
}

int64_t Histogram::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

void Histogram::Render(const std::string& name, std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(out, name, "_bucket{le=\"", Num(bounds_[i]), "\"} ", cumulative, "\n");
  }
  cumulative += counts_.back();
  absl::StrAppend(out, name, "_bucket{le=\"+Inf\"} ", cumulative, "\n");
  absl::StrAppend(out, name, "_sum ", Num(sum_), "\n", name, "_count ", count_, "\n");
}

Metrics::Metrics() : ttft_(LatencyBuckets()), itl_(LatencyBuckets()), e2e_(LatencyBuckets()) {}

void Metrics::CountRequest(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

std::string Metrics::Render(const GeneratorStats& stats) const {
  std::string out;
  Header("tandem_requests_total", "counter", "Finished requests by endpoint and status.", &out);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, count] : requests_) {
      absl::StrAppend(&out, "tandem_requests_total{endpoint=\"", key.first, "\",status=\"", key.second,
                      "\"} ", count, "\n");
    }
  }
  Header("tandem_time_to_first_token_seconds", "histogram", "Time from request arrival to its first token.",
         &out);
  ttft_.Render("tandem_time_to_first_token_seconds", &out);
  Header("tandem_inter_token_latency_seconds", "histogram", "Time between a request's consecutive outputs.",
         &out);
  itl_.Render("tandem_inter_token_latency_seconds", &out);
  Header("tandem_e2e_request_latency_seconds", "histogram", "Time from request arrival to its last token.",
         &out);
  e2e_.Render("tandem_e2e_request_latency_seconds", &out);
  Counter("tandem_prompt_tokens_total", "Prompt tokens of accepted requests.", prompt_tokens_.load(), &out);
  Counter("tandem_generation_tokens_total", "Generated tokens.", generation_tokens_.load(), &out);
  Gauge("tandem_requests_in_flight", "Requests accepted by the frontend and not finished.", in_flight_.load(),
        &out);
  Gauge("tandem_open_connections", "Open HTTP connections.", open_connections_.load(), &out);
  Gauge("tandem_num_requests_running", "Sequences in the running batch.", stats.num_running, &out);
  Gauge("tandem_num_requests_waiting", "Sequences waiting to be scheduled.", stats.num_waiting, &out);
  Gauge("tandem_kv_blocks_used", "KV cache blocks in use.", stats.kv_blocks_used, &out);
  Gauge("tandem_kv_blocks_total", "KV cache blocks in the pool.", stats.kv_blocks_total, &out);
  Gauge("tandem_kv_cache_usage_ratio", "Fraction of KV cache blocks in use.",
        stats.kv_blocks_total == 0 ? 0.0 : static_cast<double>(stats.kv_blocks_used) / stats.kv_blocks_total,
        &out);
  Gauge("tandem_prefix_cache_hit_rate", "Prompt tokens served by the prefix cache / looked up.",
        stats.prefix_cache_hit_rate, &out);
  Counter("tandem_num_preemptions_total", "Sequences preempted by recompute.", stats.num_preemptions, &out);
  Counter("tandem_kv_transfer_bytes_total", "KV cache bytes moved between workers.", stats.transfer_bytes,
          &out);
  Counter("tandem_engine_steps_total", "Engine steps executed.", stats.num_steps, &out);
  RenderWorkerMetrics(stats, &out);
  return out;
}

}  // namespace tandem::frontend
