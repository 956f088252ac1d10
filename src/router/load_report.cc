#include "tandem/router/load_report.h"

namespace tandem::router {

WorkerLoad WorkerLoadOf(const wire::WorkerLoad& load) {
  return WorkerLoad{.active_decode_blocks = load.kv_blocks_used,
                    .num_running = load.num_running,
                    .num_waiting = load.num_waiting,
                    .draining = load.draining};
}

void ApplyLoadReport(Router& router, const std::string& worker_id, const wire::WorkerReport& report) {
  if (!report.events.empty()) router.ApplyKvEvents(worker_id, report.events);
  router.UpdateLoad(worker_id, WorkerLoadOf(report.load));
}

}  // namespace tandem::router
