#include "tandem/router/load_feeds.h"

#include <utility>
#include <vector>

#include "tandem/core/logging.h"
#include "tandem/router/load_report.h"
#include "tandem/wire/convert.h"

namespace tandem::router {

LoadFeeds::LoadFeeds(Router& router, cluster::Discovery& discovery, LoadFeedOptions options)
    : router_(router), discovery_(discovery), options_(options) {
  cluster::WatchCallbacks callbacks;
  callbacks.on_added = [this](const cluster::WorkerInfo& w) { OnAdded(w); };
  callbacks.on_removed = [this](const cluster::WorkerInfo& w) { OnRemoved(w); };
  watch_id_ = discovery_.Watch(std::move(callbacks));
}

LoadFeeds::~LoadFeeds() {
  discovery_.Unwatch(watch_id_);
  std::map<std::string, std::unique_ptr<Feed>> feeds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    feeds.swap(feeds_);
  }
  for (auto& [id, feed] : feeds) Stop(std::move(feed));
}

int LoadFeeds::num_feeds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(feeds_.size());
}

std::vector<WorkerFeedStatus> LoadFeeds::Statuses() const {
  std::vector<WorkerFeedStatus> out;
  const absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  out.reserve(feeds_.size());
  for (const auto& [id, feed] : feeds_) {
    std::lock_guard<std::mutex> feed_lock(feed->mu);
    const bool live = feed->connected && now - feed->last_report_at <= options_.down_after;
    out.push_back(WorkerFeedStatus{feed->worker, feed->connected, live, feed->reports, feed->last});
  }
  return out;
}

void LoadFeeds::Stop(std::unique_ptr<Feed> feed) {
  {
    std::lock_guard<std::mutex> lock(feed->mu);
    feed->stop = true;
  }
  feed->cv.notify_all();
  feed->handle.Cancel();
  if (feed->thread.joinable()) feed->thread.join();
}

void LoadFeeds::OnAdded(const cluster::WorkerInfo& worker) {
  router_.AddWorker(worker);
  std::unique_ptr<Feed> old;
  Feed* started = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = feeds_.find(worker.id);
    if (it != feeds_.end()) {
      if (it->second->worker.address == worker.address) {
        it->second->worker = worker;  // metadata update only: keep the stream
        return;
      }
      old = std::move(it->second);  // moved to a new address: a new stream
      feeds_.erase(it);
    }
    auto feed = std::make_unique<Feed>();
    feed->worker = worker;
    started = feed.get();
    feeds_[worker.id] = std::move(feed);
  }
  if (old != nullptr) Stop(std::move(old));
  started->thread = std::thread([this, started] { Run(*started); });
}

void LoadFeeds::OnRemoved(const cluster::WorkerInfo& worker) {
  std::unique_ptr<Feed> feed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = feeds_.find(worker.id);
    if (it == feeds_.end()) return;
    feed = std::move(it->second);
    feeds_.erase(it);
  }
  Stop(std::move(feed));
  router_.RemoveWorker(worker.id);  // after the feed stopped, so no late report re-adds state
}

void LoadFeeds::Run(Feed& feed) {
  const std::string id = feed.worker.id;
  cluster::WorkerClient client(feed.worker.address);
  while (true) {
    bool first = true;
    const absl::Status status = client.StreamLoad(
        options_.report_interval_ms,
        [&](const v1::LoadReport& report) {
          if (first) {
            // A fresh stream: forget what an earlier one said about the worker's cache.
            const kvcache::KvEvent cleared{.type = kvcache::KvEventType::kAllCleared};
            router_.ApplyKvEvents(id, std::span<const kvcache::KvEvent>(&cleared, 1));
            first = false;
          }
          wire::WorkerReport kept = wire::FromProto(report);
          ApplyLoadReport(router_, id, kept);
          reports_applied_.fetch_add(1);
          kept.events.clear();
          std::lock_guard<std::mutex> lock(feed.mu);
          feed.connected = true;
          feed.last_report_at = absl::Now();
          ++feed.reports;
          feed.last = std::move(kept);
          return !feed.stop;
        },
        &feed.handle);
    std::unique_lock<std::mutex> lock(feed.mu);
    feed.connected = false;
    if (feed.stop) return;
    TLOG_WARN("router: load stream of worker {} ({}) ended: {}; retrying", id, feed.worker.address,
              status.ToString());
    feed.cv.wait_for(lock, absl::ToChronoNanoseconds(options_.retry_interval), [&] { return feed.stop; });
    if (feed.stop) return;
  }
}

}  // namespace tandem::router
