// A worker's latency histograms and the counters it reports to the router in every LoadReport
// (worker.proto StreamLoad); the frontend renders them per worker on /metrics.
#pragma once

#include <cstdint>
#include <vector>

#include "tandem/v1/worker.pb.h"

namespace tandem::worker {

struct WorkerStats;

// Observations by bucket, not cumulative: counts[i] is in (upper_bounds[i-1], upper_bounds[i]], the
// last count (one more than the bounds) above the last bound. A plain value: the owner locks.
struct LatencyCounts {
  std::vector<double> upper_bounds;  // increasing
  std::vector<int64_t> counts;       // upper_bounds.size() + 1
  double sum = 0;
  int64_t count = 0;

  // Bounds for KV transfers and remote prefills: 1 ms .. 60 s.
  static LatencyCounts ForTransfers();
  void Observe(double seconds);
};

v1::LatencyHistogram ToProto(const LatencyCounts& counts);

// Copies every counter and histogram of `stats` into `report` (the load fields are the caller's).
void AddStatsToReport(const WorkerStats& stats, v1::LoadReport* report);

}  // namespace tandem::worker
