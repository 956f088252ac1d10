// The workers' feed to the router (worker.proto's StreamLoad): each LoadReport carries the worker's
// load and the KV-cache events since its previous report. These turn it into Router calls.
#pragma once

#include <string>
#include <vector>

#include "tandem/kvcache/kv_events.h"
#include "tandem/router/router.h"
#include "tandem/v1/worker.pb.h"

namespace tandem::router {

kvcache::KvEvent KvEventFromProto(const v1::KvCacheEvent& event);
WorkerLoad WorkerLoadFromProto(const v1::LoadReport& report);

// Applies the report's KV events (in order) and then its load to `worker_id` in `router`.
void ApplyLoadReport(Router& router, const std::string& worker_id, const v1::LoadReport& report);

}  // namespace tandem::router
