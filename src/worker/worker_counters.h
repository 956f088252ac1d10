// The worker's counters (wire::WorkerCounters, sent in every load report) behind one lock, shared by
// the parts of the worker that count: the gRPC service, the decode side's remote prefills and the
// prefill side's server.
#pragma once

#include <mutex>

#include "tandem/wire/worker_report.h"

namespace tandem::worker {

class SharedCounters {
 public:
  // Runs `update(counters)` under the lock.
  template <typename F>
  void Update(F&& update) {
    std::lock_guard<std::mutex> lock(mu_);
    update(counters_);
  }
  wire::WorkerCounters Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counters_;
  }

 private:
  mutable std::mutex mu_;
  wire::WorkerCounters counters_;
};

}  // namespace tandem::worker
