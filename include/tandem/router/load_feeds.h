// The router's live feed from the workers: follows a Discovery, adds and removes its workers in the
// Router (as DiscoveryBinding does, so use one or the other), keeps one StreamLoad call
// (worker.proto) open per listed worker and applies every LoadReport to the Router (its KV events,
// then its load). A worker that leaves discovery has its stream cancelled; a broken stream (worker
// restarting) is retried every `retry_interval` while the worker stays listed. Each (re)connect
// starts that worker's KV index from empty, and the worker's first report rebuilds it (ALL_CLEARED,
// then every block it holds as STORED), so a late or restarted frontend sees existing prefixes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "tandem/cluster/discovery.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/router/router.h"
#include "tandem/wire/worker_report.h"

namespace tandem::router {

struct LoadFeedOptions {
  int report_interval_ms = 100;
  absl::Duration retry_interval = absl::Milliseconds(500);
  // A worker whose stream is open but silent this long (stopped, hung) counts as down.
  absl::Duration down_after = absl::Seconds(3);
};

// What the feed knows of one listed worker (for the frontend's per-worker metrics).
struct WorkerFeedStatus {
  cluster::WorkerInfo worker;
  bool connected = false;  // its current stream has delivered a report and has not ended
  bool live = false;       // connected, and its last report is at most down_after old
  int64_t reports = 0;     // reports applied from it, over every stream
  std::optional<wire::WorkerReport> last;  // its latest report, without the KV events
};

class LoadFeeds {
 public:
  // Watches `discovery` at once; destroy this before `router` and `discovery`.
  LoadFeeds(Router& router, cluster::Discovery& discovery, LoadFeedOptions options = {});
  ~LoadFeeds();
  LoadFeeds(const LoadFeeds&) = delete;
  LoadFeeds& operator=(const LoadFeeds&) = delete;

  int64_t reports_applied() const { return reports_applied_.load(); }
  // Workers with a feed thread (listed in discovery).
  int num_feeds() const;
  // Every listed worker, in id order.
  std::vector<WorkerFeedStatus> Statuses() const;
  const LoadFeedOptions& options() const { return options_; }

 private:
  struct Feed {
    cluster::WorkerInfo worker;
    cluster::CallHandle handle;
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    bool connected = false;
    int64_t reports = 0;
    absl::Time last_report_at = absl::InfinitePast();
    std::optional<wire::WorkerReport> last;
    std::thread thread;
  };

  void OnAdded(const cluster::WorkerInfo& worker);
  void OnRemoved(const cluster::WorkerInfo& worker);
  void Run(Feed& feed);
  static void Stop(std::unique_ptr<Feed> feed);

  Router& router_;
  cluster::Discovery& discovery_;
  const LoadFeedOptions options_;
  std::atomic<int64_t> reports_applied_{0};
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Feed>> feeds_;  // by worker id
  cluster::WatchId watch_id_ = 0;
};

}  // namespace tandem::router
