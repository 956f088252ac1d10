#include "tandem/worker/worker_stats.h"

#include "tandem/worker/worker.h"

namespace tandem::worker {

LatencyCounts LatencyCounts::ForTransfers() {
  LatencyCounts c;
  c.upper_bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0};
  c.counts.assign(c.upper_bounds.size() + 1, 0);
  return c;
}

void LatencyCounts::Observe(double seconds) {
  if (counts.size() != upper_bounds.size() + 1) counts.assign(upper_bounds.size() + 1, 0);
  size_t i = 0;
  while (i < upper_bounds.size() && seconds > upper_bounds[i]) ++i;
  ++counts[i];
  sum += seconds;
  ++count;
}

v1::LatencyHistogram ToProto(const LatencyCounts& counts) {
  v1::LatencyHistogram out;
  out.mutable_upper_bounds()->Add(counts.upper_bounds.begin(), counts.upper_bounds.end());
  for (int64_t c : counts.counts) out.add_counts(static_cast<uint64_t>(c));
  out.set_sum(counts.sum);
  out.set_count(static_cast<uint64_t>(counts.count));
  return out;
}

void AddStatsToReport(const WorkerStats& stats, v1::LoadReport* report) {
  report->set_remote_prefills(stats.remote_prefills);
  report->set_local_prefills(stats.local_prefills);
  report->set_remote_prefill_failures(stats.remote_prefill_failures);
  report->set_kv_bytes_sent(stats.kv_bytes_sent);
  report->set_kv_blocks_sent(stats.kv_blocks_sent);
  report->set_kv_bytes_received(stats.kv_bytes_received);
  report->set_kv_blocks_received(stats.kv_blocks_received);
  report->set_remote_prefills_served(stats.remote_prefills_served);
  report->set_remote_prefills_failed(stats.remote_prefills_failed);
  report->set_prefill_queue_length(stats.prefill_queue_length);
  report->set_kv_streamed_prefills(stats.kv_streamed_prefills);
  report->set_kv_stream_fallbacks(stats.kv_stream_fallbacks);
  *report->mutable_kv_transfer_seconds() = ToProto(stats.kv_transfer_seconds);
  *report->mutable_remote_prefill_seconds() = ToProto(stats.remote_prefill_seconds);
}

}  // namespace tandem::worker
