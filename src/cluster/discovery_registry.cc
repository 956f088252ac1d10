#include "discovery_registry.h"

#include <utility>

namespace tandem::cluster {

void WorkerRegistry::UpsertLocked(const WorkerInfo& worker) {
  std::vector<WatchCallbacks> watchers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = workers_.find(worker.id);
    if (it != workers_.end() && it->second == worker) return;
    workers_[worker.id] = worker;
    ++version_;
    for (const auto& [id, cb] : watchers_) watchers.push_back(cb);
  }
  changed_.notify_all();
  for (const WatchCallbacks& cb : watchers) {
    if (cb.on_added) cb.on_added(worker);
  }
}

bool WorkerRegistry::RemoveLocked(const std::string& worker_id) {
  std::vector<WatchCallbacks> watchers;
  WorkerInfo removed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = workers_.find(worker_id);
    if (it == workers_.end()) return false;
    removed = std::move(it->second);
    workers_.erase(it);
    ++version_;
    for (const auto& [id, cb] : watchers_) watchers.push_back(cb);
  }
  changed_.notify_all();
  for (const WatchCallbacks& cb : watchers) {
    if (cb.on_removed) cb.on_removed(removed);
  }
  return true;
}

void WorkerRegistry::Upsert(const WorkerInfo& worker) {
  std::lock_guard<std::mutex> write(write_mu_);
  UpsertLocked(worker);
}

bool WorkerRegistry::Remove(const std::string& worker_id) {
  std::lock_guard<std::mutex> write(write_mu_);
  return RemoveLocked(worker_id);
}

void WorkerRegistry::ReplaceAll(const std::vector<WorkerInfo>& workers) {
  std::lock_guard<std::mutex> write(write_mu_);
  std::map<std::string, const WorkerInfo*> wanted;
  for (const WorkerInfo& w : workers) wanted[w.id] = &w;
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, info] : workers_) {
      if (!wanted.contains(id)) gone.push_back(id);
    }
  }
  for (const std::string& id : gone) RemoveLocked(id);
  for (const auto& [id, info] : wanted) UpsertLocked(*info);
}

std::optional<WorkerInfo> WorkerRegistry::Find(const std::string& worker_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return std::nullopt;
  return it->second;
}

WorkerSnapshot WorkerRegistry::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  WorkerSnapshot snapshot;
  snapshot.version = version_;
  snapshot.workers.reserve(workers_.size());
  for (const auto& [id, info] : workers_) snapshot.workers.push_back(info);
  return snapshot;
}

WatchId WorkerRegistry::Watch(WatchCallbacks callbacks) {
  std::lock_guard<std::mutex> write(write_mu_);
  const WorkerSnapshot current = Snapshot();
  if (callbacks.on_added) {
    for (const WorkerInfo& w : current.workers) callbacks.on_added(w);
  }
  std::lock_guard<std::mutex> lock(mu_);
  const WatchId id = next_watch_id_++;
  watchers_.emplace(id, std::move(callbacks));
  return id;
}

void WorkerRegistry::Unwatch(WatchId id) {
  std::lock_guard<std::mutex> write(write_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(id);
}

uint64_t WorkerRegistry::WaitForChange(uint64_t after_version, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return version_ > after_version; });
  return version_;
}

}  // namespace tandem::cluster
