// The workers' feed to the router (worker.proto's StreamLoad, converted by wire/worker_report.h):
// each report carries the worker's load and the KV-cache events since its previous report. This
// turns one into Router calls.
#pragma once

#include <string>

#include "tandem/router/router.h"
#include "tandem/wire/worker_report.h"

namespace tandem::router {

// The router's view of a worker's reported load.
WorkerLoad WorkerLoadOf(const wire::WorkerLoad& load);

// Applies the report's KV events (in order) and then its load to `worker_id` in `router`.
void ApplyLoadReport(Router& router, const std::string& worker_id, const wire::WorkerReport& report);

}  // namespace tandem::router
