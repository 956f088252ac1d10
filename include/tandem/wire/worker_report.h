// What a worker reports of itself on its load stream (worker.proto StreamLoad's LoadReport): its load
// now, its counters and latency histograms since the process started, and the KV-cache events since
// its previous report. The worker fills a WorkerReport, the router applies one (router/load_report.h)
// and the frontend renders its counters on /metrics (frontend/worker_metrics.cc).
// Plain types (no proto: the frontend's metrics use them too); their conversions are in convert.h.
// Adding a worker metric: a field in WorkerCounters, its two lines in worker_report.cc (one each way),
// its field in worker.proto, and its line on /metrics.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/kvcache/kv_events.h"

namespace tandem::wire {

// Observations by bucket, not cumulative: counts[i] is in (upper_bounds[i-1], upper_bounds[i]], the
// last count (one more than the bounds) above the last bound. A plain value: the owner locks.
struct LatencyHistogram {
  std::vector<double> upper_bounds;  // increasing
  std::vector<int64_t> counts;       // upper_bounds.size() + 1
  double sum = 0;
  int64_t count = 0;

  // Bounds for KV transfers and remote prefills: 1 ms .. 60 s.
  static LatencyHistogram ForTransfers() {
    LatencyHistogram h;
    h.upper_bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0};
    h.counts.assign(h.upper_bounds.size() + 1, 0);
    return h;
  }
  void Observe(double seconds);
};

// A worker's load at the time of the report.
struct WorkerLoad {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int32_t num_waiting_for_remote_kv = 0;  // decode: prompts out at a prefill worker
  int32_t num_pending_transfer = 0;       // prefill: prompts done, blocks being written
  int32_t kv_blocks_used = 0;
  int32_t kv_blocks_total = 0;
  // The worker drains (SIGTERM): it refuses new calls while it finishes those in flight.
  bool draining = false;
};

// Counters since the worker process started (a restarted worker starts from zero), and the remote
// prefill queue's length.
struct WorkerCounters {
  int64_t remote_prefills = 0;          // decode: prompts prefilled by a prefill worker
  int64_t local_prefills = 0;           // decode: prompts prefilled here
  int64_t remote_prefill_failures = 0;  // decode: requests whose remote prefill failed
  int64_t kv_blocks_sent = 0;  // prefill: blocks (all layers of a block count once) written to decode workers
  uint64_t kv_bytes_sent = 0;
  int64_t kv_streamed_prefills = 0;  // prefill: KV left layer by layer while the prompt ran (layerwise)
  int64_t kv_stream_fallbacks = 0;   // prefill: layerwise, but sent after the prompt (preempted mid-prompt)
  int64_t kv_blocks_received = 0;    // decode: blocks prefill workers wrote here (layers count once)
  uint64_t kv_bytes_received = 0;
  int64_t remote_prefills_served = 0;  // prefill: RemotePrefill calls answered with a first token
  int64_t remote_prefills_failed = 0;  // prefill: RemotePrefill calls answered with an error
  int32_t prefill_queue_length = 0;    // prefill: RemotePrefill calls received and not yet answered
  // prefill: per request, from its first KV write posted (layer-wise: while the prompt still ran)
  // until every write landed
  LatencyHistogram kv_transfer_seconds = LatencyHistogram::ForTransfers();
  LatencyHistogram remote_prefill_seconds = LatencyHistogram::ForTransfers();  // decode: RemotePrefill calls
};

struct WorkerReport {
  std::string instance_id;
  std::string role;  // prefill | decode | both
  WorkerLoad load;
  WorkerCounters counters;
  std::vector<kvcache::KvEvent> events;  // since the previous report, in order
};

}  // namespace tandem::wire
