// The in-memory live-worker set every Discovery implementation keeps: a map by id, a version that
// grows on each change, and the watchers to tell. Changes are applied and announced one at a time,
// so every watcher sees them in the same order.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tandem/cluster/discovery.h"

namespace tandem::cluster {

class WorkerRegistry {
 public:
  // Adds or replaces `worker` (by id); announces it unless identical to what is there.
  void Upsert(const WorkerInfo& worker);
  // Removes `worker_id`; returns false when it was not there.
  bool Remove(const std::string& worker_id);
  // Makes the set exactly `workers`, announcing the difference (used after an etcd resync).
  void ReplaceAll(const std::vector<WorkerInfo>& workers);

  std::optional<WorkerInfo> Find(const std::string& worker_id) const;
  WorkerSnapshot Snapshot() const;
  WatchId Watch(WatchCallbacks callbacks);
  void Unwatch(WatchId id);
  uint64_t WaitForChange(uint64_t after_version, absl::Duration timeout) const;

 private:
  void UpsertLocked(const WorkerInfo& worker);  // write_mu_ held
  bool RemoveLocked(const std::string& worker_id);

  std::mutex write_mu_;    // serializes changes and their announcements
  mutable std::mutex mu_;  // guards the fields below
  mutable std::condition_variable changed_;
  std::map<std::string, WorkerInfo> workers_;
  uint64_t version_ = 0;
  std::map<WatchId, WatchCallbacks> watchers_;
  WatchId next_watch_id_ = 1;
};

}  // namespace tandem::cluster
