// Per-worker lines of /metrics for a disaggregated deployment: each worker's load, prefill and KV
// transfer figures from its latest LoadReport, labelled with its id, role and address, and the
// router's prefill decisions.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tandem/frontend/metrics.h"

namespace tandem::frontend {
namespace {

std::string Num(double v) { return absl::StrFormat("%.9g", v); }

// A label value with \, " and newline escaped (the exposition format's rule).
std::string Escape(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Labels(const WorkerMetrics& w) {
  return absl::StrCat("worker=\"", Escape(w.id), "\",role=\"", Escape(w.role), "\",address=\"",
                      Escape(w.address), "\"");
}

void Header(const char* name, const char* type, const char* help, std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// Which workers a metric describes: every one, those that decode (decode | both), or those that
// serve remote prefills (prefill | both).
enum class Side { kAll, kDecode, kPrefill };

bool OnSide(const WorkerMetrics& w, Side side) {
  switch (side) {
    case Side::kAll:
      return true;
    case Side::kDecode:
      return w.role != "prefill";
    case Side::kPrefill:
      return w.role != "decode";
  }
  return true;
}

using Getter = double (*)(const WorkerMetrics&);

// One series of a metric: the extra label's value ("" for none), its value, and its workers.
struct Series {
  const char* label_value;
  Getter value;
  Side side;
};

// One line per live worker on each series' side: name{labels[,label="value"]} value.
void PerWorker(const std::vector<WorkerMetrics>& workers, const char* name, const char* type,
               const char* help, const char* label, const std::vector<Series>& series, std::string* out) {
  Header(name, type, help, out);
  for (const WorkerMetrics& w : workers) {
    if (!w.up) continue;
    for (const Series& s : series) {
      if (!OnSide(w, s.side)) continue;
      const std::string extra =
          *s.label_value == '\0' ? "" : absl::StrCat(",", label, "=\"", s.label_value, "\"");
      absl::StrAppend(out, name, "{", Labels(w), extra, "} ", Num(s.value(w)), "\n");
    }
  }
}

void WorkerGauge(const std::vector<WorkerMetrics>& workers, const char* name, const char* help, Side side,
                 Getter value, std::string* out) {
  PerWorker(workers, name, "gauge", help, "", {{"", value, side}}, out);
}

void WorkerCounter(const std::vector<WorkerMetrics>& workers, const char* name, const char* help, Side side,
                   Getter value, std::string* out) {
  PerWorker(workers, name, "counter", help, "", {{"", value, side}}, out);
}

void RenderHistogram(const std::string& name, const std::string& labels, const wire::LatencyHistogram& h,
                     std::string* out) {
  int64_t cumulative = 0;
  for (size_t i = 0; i < h.upper_bounds.size(); ++i) {
    if (i < h.counts.size()) cumulative += h.counts[i];
    absl::StrAppend(out, name, "_bucket{", labels, ",le=\"", Num(h.upper_bounds[i]), "\"} ", cumulative,
                    "\n");
  }
  absl::StrAppend(out, name, "_bucket{", labels, ",le=\"+Inf\"} ", h.count, "\n");
  absl::StrAppend(out, name, "_sum{", labels, "} ", Num(h.sum), "\n", name, "_count{", labels, "} ", h.count,
                  "\n");
}

void WorkerHistogram(const std::vector<WorkerMetrics>& workers, const char* name, const char* help, Side side,
                     const wire::LatencyHistogram wire::WorkerCounters::*field, std::string* out) {
  Header(name, "histogram", help, out);
  for (const WorkerMetrics& w : workers) {
    if (w.up && OnSide(w, side)) RenderHistogram(name, Labels(w), w.counters.*field, out);
  }
}

template <typename T>
double I(T v) {
  return static_cast<double>(v);
}

}  // namespace

void RenderWorkerMetrics(const GeneratorStats& stats, std::string* out) {
  if (stats.workers.empty()) return;
  const std::vector<WorkerMetrics>& ws = stats.workers;
  Header("tandem_router_prefills_total", "counter",
         "Requests the router sent to a prefill worker (remote) or left to the decode worker (local).", out);
  absl::StrAppend(out, "tandem_router_prefills_total{location=\"remote\"} ", stats.routed_remote_prefills,
                  "\n", "tandem_router_prefills_total{location=\"local\"} ", stats.routed_local_prefills,
                  "\n");
  Header("tandem_worker_up", "gauge", "1 while the worker's load stream to the frontend is live, else 0.",
         out);
  for (const WorkerMetrics& w : ws)
    absl::StrAppend(out, "tandem_worker_up{", Labels(w), "} ", w.up ? 1 : 0, "\n");

  WorkerGauge(
      ws, "tandem_worker_num_requests_running", "Sequences in the worker's running batch.", Side::kAll,
      [](const WorkerMetrics& w) { return I(w.load.num_running); }, out);
  WorkerGauge(
      ws, "tandem_worker_num_requests_waiting", "Sequences waiting in the worker's scheduler.", Side::kAll,
      [](const WorkerMetrics& w) { return I(w.load.num_waiting); }, out);
  WorkerGauge(
      ws, "tandem_worker_num_requests_waiting_for_remote_kv",
      "Decode: sequences whose prompt is being prefilled by a prefill worker.", Side::kDecode,
      [](const WorkerMetrics& w) { return I(w.load.num_waiting_for_remote_kv); }, out);
  WorkerGauge(
      ws, "tandem_worker_num_pending_transfers",
      "Prefill: prefilled sequences whose KV blocks are being written to a decode worker.", Side::kPrefill,
      [](const WorkerMetrics& w) { return I(w.load.num_pending_transfer); }, out);
  WorkerGauge(
      ws, "tandem_worker_prefill_queue_length",
      "Prefill: remote prefill calls received and not yet answered (queued, computing or transferring).",
      Side::kPrefill, [](const WorkerMetrics& w) { return I(w.counters.prefill_queue_length); }, out);
  WorkerGauge(
      ws, "tandem_worker_kv_blocks_used", "KV cache blocks in use on the worker.", Side::kAll,
      [](const WorkerMetrics& w) { return I(w.load.kv_blocks_used); }, out);
  WorkerGauge(
      ws, "tandem_worker_kv_blocks_total", "KV cache blocks in the worker's pool.", Side::kAll,
      [](const WorkerMetrics& w) { return I(w.load.kv_blocks_total); }, out);
  PerWorker(ws, "tandem_worker_prefills_total", "counter",
            "Decode: prompts prefilled by a prefill worker (remote) or by this worker (local).", "location",
            {{"remote", [](const WorkerMetrics& w) { return I(w.counters.remote_prefills); }, Side::kDecode},
             {"local", [](const WorkerMetrics& w) { return I(w.counters.local_prefills); }, Side::kDecode}},
            out);
  WorkerCounter(
      ws, "tandem_worker_remote_prefill_failures_total",
      "Decode: requests whose remote prefill failed (the request ended with an error).", Side::kDecode,
      [](const WorkerMetrics& w) { return I(w.counters.remote_prefill_failures); }, out);
  PerWorker(ws, "tandem_worker_remote_prefill_requests_total", "counter",
            "Prefill: remote prefill calls answered, by outcome.", "outcome",
            {{"ok", [](const WorkerMetrics& w) { return I(w.counters.remote_prefills_served); }, Side::kPrefill},
             {"error", [](const WorkerMetrics& w) { return I(w.counters.remote_prefills_failed); }, Side::kPrefill}},
            out);
  PerWorker(ws, "tandem_worker_kv_sends_total", "counter",
            "Prefill, with transfer.layerwise on: requests whose KV left layer by layer while the prompt "
            "ran (layerwise), or after it because streaming gave up, e.g. on preemption (fallback).",
            "mode",
            {{"layerwise", [](const WorkerMetrics& w) { return I(w.counters.kv_streamed_prefills); }, Side::kPrefill},
             {"fallback", [](const WorkerMetrics& w) { return I(w.counters.kv_stream_fallbacks); }, Side::kPrefill}},
            out);
  PerWorker(ws, "tandem_worker_kv_transfer_bytes_total", "counter",
            "KV cache bytes written to decode workers (sent) or by prefill workers into this one (received).",
            "direction",
            {{"sent", [](const WorkerMetrics& w) { return I(w.counters.kv_bytes_sent); }, Side::kPrefill},
             {"received", [](const WorkerMetrics& w) { return I(w.counters.kv_bytes_received); }, Side::kDecode}},
            out);
  PerWorker(ws, "tandem_worker_kv_transfer_blocks_total", "counter",
            "KV cache blocks (all layers of a block count once) sent to or received from other workers.",
            "direction",
            {{"sent", [](const WorkerMetrics& w) { return I(w.counters.kv_blocks_sent); }, Side::kPrefill},
             {"received", [](const WorkerMetrics& w) { return I(w.counters.kv_blocks_received); }, Side::kDecode}},
            out);
  WorkerHistogram(
      ws, "tandem_worker_kv_transfer_seconds",
      "Prefill: per request, from its first KV write posted (with layer-wise streaming: while the "
      "prompt still runs) until every write landed in the decode worker.",
      Side::kPrefill, &wire::WorkerCounters::kv_transfer_seconds, out);
  WorkerGauge(
      ws, "tandem_worker_kv_transfer_bandwidth_bytes_per_second",
      "Prefill: KV bytes sent / kv_transfer_seconds_sum since the worker started (with layer-wise "
      "streaming the transfers share time with compute, so this is at most the link's rate).",
      Side::kPrefill,
      [](const WorkerMetrics& w) {
        const wire::WorkerCounters& c = w.counters;
        return c.kv_transfer_seconds.sum > 0 ? I(c.kv_bytes_sent) / c.kv_transfer_seconds.sum : 0.0;
      },
      out);
  WorkerHistogram(ws, "tandem_worker_remote_prefill_seconds",
                  "Decode: duration of one remote prefill call (prefill compute plus KV transfer).",
                  Side::kDecode, &wire::WorkerCounters::remote_prefill_seconds, out);
}

}  // namespace tandem::frontend
