#include "tandem/wire/worker_report.h"

#include "tandem/wire/convert.h"

namespace tandem::wire {

void LatencyHistogram::Observe(double seconds) {
  if (counts.size() != upper_bounds.size() + 1) counts.assign(upper_bounds.size() + 1, 0);
  size_t i = 0;
  while (i < upper_bounds.size() && seconds > upper_bounds[i]) ++i;
  ++counts[i];
  sum += seconds;
  ++count;
}

v1::LatencyHistogram ToProto(const LatencyHistogram& h) {
  v1::LatencyHistogram out;
  out.mutable_upper_bounds()->Add(h.upper_bounds.begin(), h.upper_bounds.end());
  for (int64_t c : h.counts) out.add_counts(static_cast<uint64_t>(c));
  out.set_sum(h.sum);
  out.set_count(static_cast<uint64_t>(h.count));
  return out;
}

LatencyHistogram FromProto(const v1::LatencyHistogram& h) {
  LatencyHistogram out;
  out.upper_bounds.assign(h.upper_bounds().begin(), h.upper_bounds().end());
  for (uint64_t c : h.counts()) out.counts.push_back(static_cast<int64_t>(c));
  out.sum = h.sum();
  out.count = static_cast<int64_t>(h.count());
  return out;
}

v1::LoadReport ToProto(const WorkerReport& r) {
  v1::LoadReport out;
  out.set_instance_id(r.instance_id);
  out.set_role(r.role);
  const WorkerLoad& l = r.load;
  out.set_num_running(l.num_running);
  out.set_num_waiting(l.num_waiting);
  out.set_num_waiting_for_remote_kv(l.num_waiting_for_remote_kv);
  out.set_num_pending_transfer(l.num_pending_transfer);
  out.set_kv_blocks_used(l.kv_blocks_used);
  out.set_kv_blocks_total(l.kv_blocks_total);
  out.set_draining(l.draining);
  const WorkerCounters& c = r.counters;
  out.set_remote_prefills(c.remote_prefills);
  out.set_local_prefills(c.local_prefills);
  out.set_remote_prefill_failures(c.remote_prefill_failures);
  out.set_kv_bytes_sent(c.kv_bytes_sent);
  out.set_kv_blocks_sent(c.kv_blocks_sent);
  out.set_kv_bytes_received(c.kv_bytes_received);
  out.set_kv_blocks_received(c.kv_blocks_received);
  out.set_remote_prefills_served(c.remote_prefills_served);
  out.set_remote_prefills_failed(c.remote_prefills_failed);
  out.set_prefill_queue_length(c.prefill_queue_length);
  out.set_kv_streamed_prefills(c.kv_streamed_prefills);
  out.set_kv_stream_fallbacks(c.kv_stream_fallbacks);
  *out.mutable_kv_transfer_seconds() = ToProto(c.kv_transfer_seconds);
  *out.mutable_remote_prefill_seconds() = ToProto(c.remote_prefill_seconds);
  for (const kvcache::KvEvent& e : r.events) *out.add_events() = ToProto(e);
  return out;
}

WorkerReport FromProto(const v1::LoadReport& p) {
  WorkerReport r;
  r.instance_id = p.instance_id();
  r.role = p.role();
  WorkerLoad& l = r.load;
  l.num_running = p.num_running();
  l.num_waiting = p.num_waiting();
  l.num_waiting_for_remote_kv = p.num_waiting_for_remote_kv();
  l.num_pending_transfer = p.num_pending_transfer();
  l.kv_blocks_used = p.kv_blocks_used();
  l.kv_blocks_total = p.kv_blocks_total();
  l.draining = p.draining();
  WorkerCounters& c = r.counters;
  c.remote_prefills = p.remote_prefills();
  c.local_prefills = p.local_prefills();
  c.remote_prefill_failures = p.remote_prefill_failures();
  c.kv_bytes_sent = p.kv_bytes_sent();
  c.kv_blocks_sent = p.kv_blocks_sent();
  c.kv_bytes_received = p.kv_bytes_received();
  c.kv_blocks_received = p.kv_blocks_received();
  c.remote_prefills_served = p.remote_prefills_served();
  c.remote_prefills_failed = p.remote_prefills_failed();
  c.prefill_queue_length = p.prefill_queue_length();
  c.kv_streamed_prefills = p.kv_streamed_prefills();
  c.kv_stream_fallbacks = p.kv_stream_fallbacks();
  c.kv_transfer_seconds = FromProto(p.kv_transfer_seconds());
  c.remote_prefill_seconds = FromProto(p.remote_prefill_seconds());
  r.events.reserve(static_cast<size_t>(p.events_size()));
  for (const v1::KvCacheEvent& e : p.events()) r.events.push_back(FromProto(e));
  return r;
}

}  // namespace tandem::wire
