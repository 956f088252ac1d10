#include "tandem/bench/report.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace tandem::bench {
namespace {

using ojson = nlohmann::ordered_json;

ojson DistJson(const Distribution& d) {
  return ojson{{"count", d.count}, {"mean", d.mean}, {"stddev", d.stddev}, {"min", d.min},
               {"p50", d.p50},     {"p90", d.p90},   {"p99", d.p99},       {"max", d.max}};
}

ojson SloJson(const Slo& slo) {
  ojson j = ojson::object();
  if (slo.ttft_ms) j["ttft_ms"] = *slo.ttft_ms;
  if (slo.itl_ms) j["itl_ms"] = *slo.itl_ms;
  if (slo.e2e_ms) j["e2e_ms"] = *slo.e2e_ms;
  return j;
}

}  // namespace

absl::StatusOr<Slo> Slo::Parse(const std::string& spec) {
  Slo slo;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    double v = 0;
    if (!absl::SimpleAtod(kv.second, &v) || v <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--slo: expected KEY=MILLISECONDS (positive), found '", item, "'"));
    }
    if (kv.first == "ttft_ms") {
      slo.ttft_ms = v;
    } else if (kv.first == "itl_ms" || kv.first == "tpot_ms") {
      slo.itl_ms = v;
    } else if (kv.first == "e2e_ms") {
      slo.e2e_ms = v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--slo: expected keys ttft_ms, itl_ms (or tpot_ms), e2e_ms; found '", kv.first, "'"));
    }
  }
  if (!slo.any())
    return absl::InvalidArgumentError("--slo: expected at least one of ttft_ms=, itl_ms=, e2e_ms=");
  return slo;
}

RequestMetrics MeasureRequest(const RequestRecord& record, const Slo& slo) {
  const StreamResult& r = record.result;
  RequestMetrics m;
  m.input_tokens = r.usage_prompt_tokens >= 0 ? r.usage_prompt_tokens : record.prompt.input_tokens;
  m.output_tokens = r.usage_completion_tokens >= 0 ? r.usage_completion_tokens
                                                   : static_cast<int64_t>(r.content_times.size());
  m.ok = r.ok && !r.content_times.empty();
  m.e2e_ms = (r.end_s - r.start_s) * 1e3;
  if (!m.ok) return m;
  m.ttft_ms = (r.content_times.front() - r.start_s) * 1e3;
  for (size_t i = 1; i < r.content_times.size(); ++i) {
    m.itl_ms.push_back((r.content_times[i] - r.content_times[i - 1]) * 1e3);
  }
  if (m.output_tokens > 1) {
    m.tpot_ms =
        (r.content_times.back() - r.content_times.front()) * 1e3 / static_cast<double>(m.output_tokens - 1);
  }
  m.meets_slo = (!slo.ttft_ms || m.ttft_ms <= *slo.ttft_ms) && (!slo.itl_ms || m.tpot_ms <= *slo.itl_ms) &&
                (!slo.e2e_ms || m.e2e_ms <= *slo.e2e_ms);
  return m;
}

Summary Summarize(const RunRecord& run, const Slo& slo) {
  Summary s;
  s.duration_s = run.duration_s;
  std::vector<double> ttft, tpot, itl, e2e, in_len, out_len;
  for (const RequestRecord& record : run.requests) {
    const RequestMetrics m = MeasureRequest(record, slo);
    if (!m.ok) {
      ++s.failed;
      std::string error = record.result.ok ? "the stream carried no tokens" : record.result.error;
      if (s.first_errors.size() < 5 &&
          std::find(s.first_errors.begin(), s.first_errors.end(), error) == s.first_errors.end()) {
        s.first_errors.push_back(error);
      }
      continue;
    }
    ++s.completed;
    if (m.meets_slo) ++s.good;
    s.input_tokens += m.input_tokens;
    s.output_tokens += m.output_tokens;
    ttft.push_back(m.ttft_ms);
    if (m.output_tokens > 1) tpot.push_back(m.tpot_ms);
    itl.insert(itl.end(), m.itl_ms.begin(), m.itl_ms.end());
    e2e.push_back(m.e2e_ms);
    in_len.push_back(static_cast<double>(m.input_tokens));
    out_len.push_back(static_cast<double>(m.output_tokens));
  }
  if (s.duration_s > 0) {
    s.request_throughput = static_cast<double>(s.completed) / s.duration_s;
    s.output_throughput = static_cast<double>(s.output_tokens) / s.duration_s;
    s.total_throughput = static_cast<double>(s.input_tokens + s.output_tokens) / s.duration_s;
    if (slo.any()) s.goodput = static_cast<double>(s.good) / s.duration_s;
  } else if (slo.any()) {
    s.goodput = 0;
  }
  s.ttft_ms = bench::Summarize(std::move(ttft));
  s.tpot_ms = bench::Summarize(std::move(tpot));
  s.itl_ms = bench::Summarize(std::move(itl));
  s.e2e_ms = bench::Summarize(std::move(e2e));
  s.input_len = bench::Summarize(std::move(in_len));
  s.output_len = bench::Summarize(std::move(out_len));
  return s;
}

std::string FormatTable(const Summary& s, const Slo& slo) {
  std::string out;
  auto line = [&out](std::string_view name, const std::string& value) {
    absl::StrAppendFormat(&out, "%-34s %s\n", name, value);
  };
  out += "============ Serving benchmark result ============\n";
  line("Successful requests:", absl::StrCat(s.completed));
  line("Failed requests:", absl::StrCat(s.failed));
  line("Benchmark duration (s):", absl::StrFormat("%.2f", s.duration_s));
  line("Total input tokens:", absl::StrCat(s.input_tokens));
  line("Total output tokens:", absl::StrCat(s.output_tokens));
  line("Request throughput (req/s):", absl::StrFormat("%.3f", s.request_throughput));
  line("Output token throughput (tok/s):", absl::StrFormat("%.2f", s.output_throughput));
  line("Total token throughput (tok/s):", absl::StrFormat("%.2f", s.total_throughput));
  if (s.goodput) {
    std::string what;
    if (slo.ttft_ms) absl::StrAppend(&what, "ttft<=", *slo.ttft_ms, "ms ");
    if (slo.itl_ms) absl::StrAppend(&what, "itl<=", *slo.itl_ms, "ms ");
    if (slo.e2e_ms) absl::StrAppend(&what, "e2e<=", *slo.e2e_ms, "ms ");
    line("Goodput (req/s):", absl::StrFormat("%.3f  (%d of %d met %s)", *s.goodput, s.good,
                                             s.completed + s.failed, what.substr(0, what.size() - 1)));
  }
  absl::StrAppendFormat(&out, "\n%-24s %10s %10s %10s %10s %10s\n", "latency (ms)", "mean", "p50", "p90",
                        "p99", "max");
  auto row = [&out](std::string_view name, const Distribution& d) {
    absl::StrAppendFormat(&out, "%-24s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, d.mean, d.p50, d.p90,
                          d.p99, d.max);
  };
  row("TTFT", s.ttft_ms);
  row("TPOT", s.tpot_ms);
  row("ITL", s.itl_ms);
  row("E2E", s.e2e_ms);
  absl::StrAppendFormat(&out, "%-24s %10.1f %10.1f %10.1f %10.1f %10.1f\n", "input tokens", s.input_len.mean,
                        s.input_len.p50, s.input_len.p90, s.input_len.p99, s.input_len.max);
  absl::StrAppendFormat(&out, "%-24s %10.1f %10.1f %10.1f %10.1f %10.1f\n", "output tokens",
                        s.output_len.mean, s.output_len.p50, s.output_len.p90, s.output_len.p99,
                        s.output_len.max);
  for (const std::string& e : s.first_errors) absl::StrAppend(&out, "error: ", e, "\n");
  out += "==================================================\n";
  return out;
}

ojson SummaryJson(const Summary& s, const Slo& slo) {
  ojson j;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["duration_s"] = s.duration_s;
  j["total_input_tokens"] = s.input_tokens;
  j["total_output_tokens"] = s.output_tokens;
  j["request_throughput"] = s.request_throughput;
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_throughput;
  j["slo"] = SloJson(slo);
  j["goodput"] = s.goodput ? ojson(*s.goodput) : ojson(nullptr);
  j["good_requests"] = s.good;
  j["ttft_ms"] = DistJson(s.ttft_ms);
  j["tpot_ms"] = DistJson(s.tpot_ms);
  j["itl_ms"] = DistJson(s.itl_ms);
  j["e2e_ms"] = DistJson(s.e2e_ms);
  j["input_tokens"] = DistJson(s.input_len);
  j["output_tokens"] = DistJson(s.output_len);
  j["errors"] = s.first_errors;
  return j;
}

ojson RequestsJson(const RunRecord& run, const Slo& slo) {
  ojson out = ojson::array();
  for (const RequestRecord& record : run.requests) {
    const RequestMetrics m = MeasureRequest(record, slo);
    const StreamResult& r = record.result;
    ojson j;
    j["index"] = record.index;
    j["ok"] = m.ok;
    j["scheduled_s"] = record.scheduled_s;
    j["start_s"] = r.start_s;
    j["end_s"] = r.end_s;
    j["http_status"] = r.http_status;
    j["response_id"] = r.response_id;
    j["input_tokens"] = m.input_tokens;
    j["input_tokens_client"] = record.prompt.input_tokens;
    j["max_tokens"] = record.prompt.output_tokens;
    j["output_tokens"] = m.output_tokens;
    if (record.prompt.prefix_id >= 0) j["prefix_id"] = record.prompt.prefix_id;
    j["ttft_ms"] = m.ttft_ms;
    j["tpot_ms"] = m.tpot_ms;
    j["e2e_ms"] = m.e2e_ms;
    j["itl_ms"] = m.itl_ms;
    j["meets_slo"] = m.meets_slo;
    j["error"] = m.ok ? ojson(nullptr) : ojson(r.ok ? "the stream carried no tokens" : r.error);
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace tandem::bench
