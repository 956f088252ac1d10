// Turns a run's records into the figures: per request TTFT, inter-token latencies (the gaps
// between streamed events that carried text), TPOT ((last token - first token) / (tokens - 1)),
// end-to-end latency, tokens in and out; overall request, output-token and total-token throughput
// and goodput. Goodput (DistServe; AIPerf's `--goodput`): completed requests per second that meet
// every given SLO, where a request's ITL is its mean inter-token latency, i.e. its TPOT, as AIPerf
// and vLLM's benchmark define it for goodput. Output tokens are the server's `usage` when it sent
// one, else the events that carried text.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tandem/bench/runner.h"
#include "tandem/bench/stats.h"

namespace tandem::bench {

// "ttft_ms=500,itl_ms=50" (also tpot_ms, an alias of itl_ms, and e2e_ms); absent keys are not checked.
struct Slo {
  std::optional<double> ttft_ms;
  std::optional<double> itl_ms;
  std::optional<double> e2e_ms;
  bool any() const { return ttft_ms || itl_ms || e2e_ms; }
  static absl::StatusOr<Slo> Parse(const std::string& spec);
};

struct RequestMetrics {
  bool ok = false;
  double ttft_ms = 0;
  double tpot_ms = 0;  // 0 with fewer than 2 output tokens
  double e2e_ms = 0;
  std::vector<double> itl_ms;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  bool meets_slo = false;
};
RequestMetrics MeasureRequest(const RequestRecord& record, const Slo& slo);

struct Summary {
  int64_t completed = 0;
  int64_t failed = 0;
  double duration_s = 0;
  int64_t input_tokens = 0;  // of completed requests
  int64_t output_tokens = 0;
  double request_throughput = 0;  // completed / duration
  double output_throughput = 0;   // tokens/s
  double total_throughput = 0;    // (input + output) tokens/s
  std::optional<double> goodput;  // requests/s meeting the SLO (when one was given)
  int64_t good = 0;
  Distribution ttft_ms, tpot_ms, itl_ms, e2e_ms, input_len, output_len;
  std::vector<std::string> first_errors;  // up to 5 distinct
};
Summary Summarize(const RunRecord& run, const Slo& slo);

// The readable table (p50/p90/p99 per latency, throughputs, goodput).
std::string FormatTable(const Summary& summary, const Slo& slo);

nlohmann::ordered_json SummaryJson(const Summary& summary, const Slo& slo);
// One entry per request: times, lengths, SLO, error.
nlohmann::ordered_json RequestsJson(const RunRecord& run, const Slo& slo);

}  // namespace tandem::bench
