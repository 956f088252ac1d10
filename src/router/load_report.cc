#include "tandem/router/load_report.h"

namespace tandem::router {

kvcache::KvEvent KvEventFromProto(const v1::KvCacheEvent& event) {
  kvcache::KvEvent out;
  switch (event.type()) {
    case v1::KvCacheEvent::STORED:
      out.type = kvcache::KvEventType::kBlockStored;
      break;
    case v1::KvCacheEvent::REMOVED:
      out.type = kvcache::KvEventType::kBlockRemoved;
      break;
    case v1::KvCacheEvent::ALL_CLEARED:
      out.type = kvcache::KvEventType::kAllCleared;
      break;
    case v1::KvCacheEvent_Type_KvCacheEvent_Type_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::KvCacheEvent_Type_KvCacheEvent_Type_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  out.block_hashes.assign(event.block_hashes().begin(), event.block_hashes().end());
  out.parent_hash = event.parent_hash();
  out.has_parent = event.has_parent();
  out.token_ids.assign(event.token_ids().begin(), event.token_ids().end());
  out.block_size = event.block_size();
  return out;
}

WorkerLoad WorkerLoadFromProto(const v1::LoadReport& report) {
  return WorkerLoad{.active_decode_blocks = report.kv_blocks_used(),
                    .num_running = report.num_running(),
                    .num_waiting = report.num_waiting(),
                    .draining = report.draining()};
}

void ApplyLoadReport(Router& router, const std::string& worker_id, const v1::LoadReport& report) {
  if (report.events_size() > 0) {
    std::vector<kvcache::KvEvent> events;
    events.reserve(report.events_size());
    for (const v1::KvCacheEvent& e : report.events()) events.push_back(KvEventFromProto(e));
    router.ApplyKvEvents(worker_id, events);
  }
  router.UpdateLoad(worker_id, WorkerLoadFromProto(report));
}

}  // namespace tandem::router
