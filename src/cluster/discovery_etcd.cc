// etcd discovery: workers put <prefix>/workers/<id> under a lease they keep alive; every instance
// lists that prefix once and then watches it from the next revision, so its WorkerRegistry follows
// the live set. After a broken watch stream it lists again (announcing only the difference) and
// resumes watching from the listing's revision.
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "discovery_registry.h"
#include "etcd_client.h"
#include "tandem/cluster/discovery.h"
#include "tandem/core/logging.h"

namespace tandem::cluster {
namespace {

class EtcdDiscovery final : public Discovery {
 public:
  EtcdDiscovery(EtcdDiscoveryOptions options, std::unique_ptr<EtcdClient> client)
      : options_(std::move(options)),
        client_(std::move(client)),
        workers_prefix_(absl::StrCat(options_.prefix, "/workers/")) {}

  ~EtcdDiscovery() override { Close(); }

  // Lists the prefix and starts the watch thread.
  absl::Status Start() {
    absl::StatusOr<int64_t> revision = Resync();
    if (!revision.ok()) return revision.status();
    next_revision_ = *revision + 1;
    watch_thread_ = std::thread([this] { WatchLoop(); });
    keepalive_thread_ = std::thread([this] { KeepAliveLoop(); });
    return absl::OkStatus();
  }

  DiscoveryType type() const override { return DiscoveryType::kEtcd; }

  absl::Status Register(const WorkerInfo& worker) override {
    if (worker.id.empty() || worker.address.empty() || absl::StrContains(worker.id, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat("etcd register: expected a non-empty id without '/' and an address, found id '",
                       worker.id, "' address '", worker.address, "'"));
    }
    std::lock_guard<std::mutex> reg(register_mu_);
    absl::StatusOr<int64_t> lease = client_->LeaseGrant(options_.lease_ttl_s);
    if (!lease.ok()) return lease.status();
    if (absl::Status s = client_->Put(Key(worker.id), EncodeWorkerInfo(worker), *lease); !s.ok()) {
      client_->LeaseRevoke(*lease).IgnoreError();
      return s;
    }
    int64_t old_lease = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = own_.find(worker.id);
      if (it != own_.end()) old_lease = it->second.lease;
      own_[worker.id] = Own{worker, *lease};
    }
    if (old_lease != 0) client_->LeaseRevoke(old_lease).IgnoreError();  // its key now has the new lease
    TLOG_INFO("etcd discovery: registered worker {} ({}, {}) under lease {:x} with ttl {}s", worker.id,
              WorkerRoleName(worker.role), worker.address, *lease, options_.lease_ttl_s);
    return absl::OkStatus();
  }

  absl::Status Deregister(const std::string& worker_id) override {
    std::lock_guard<std::mutex> reg(register_mu_);
    int64_t lease = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = own_.find(worker_id);
      if (it == own_.end()) {
        return absl::NotFoundError(
            absl::StrCat("etcd deregister: worker '", worker_id, "' was not registered by this process"));
      }
      lease = it->second.lease;
      own_.erase(it);
    }
    return client_->LeaseRevoke(lease);  // deletes the key with the lease
  }

  WorkerSnapshot Snapshot() const override { return registry_.Snapshot(); }
  WatchId Watch(WatchCallbacks callbacks) override { return registry_.Watch(std::move(callbacks)); }
  void Unwatch(WatchId id) override { registry_.Unwatch(id); }
  uint64_t WaitForChange(uint64_t after_version, absl::Duration timeout) const override {
    return registry_.WaitForChange(after_version, timeout);
  }

 private:
  struct Own {
    WorkerInfo info;
    int64_t lease = 0;
  };

  std::string Key(const std::string& id) const { return workers_prefix_ + id; }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      if (watch_context_ != nullptr) watch_context_->TryCancel();
      if (keepalive_context_ != nullptr) keepalive_context_->TryCancel();
    }
    stop_cv_.notify_all();
    if (watch_thread_.joinable()) watch_thread_.join();
    if (keepalive_thread_.joinable()) keepalive_thread_.join();
    if (!options_.revoke_on_close) return;
    std::map<std::string, Own> own;
    {
      std::lock_guard<std::mutex> lock(mu_);
      own.swap(own_);
    }
    for (const auto& [id, entry] : own) {
      if (absl::Status s = client_->LeaseRevoke(entry.lease); !s.ok()) {
        TLOG_WARN("etcd discovery: revoking the lease of worker {} failed: {}", id, s.ToString());
      }
    }
  }

  // Waits `d` unless stopping; returns false when stopping.
  bool SleepUnlessStopping(absl::Duration d) {
    std::unique_lock<std::mutex> lock(mu_);
    stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(d), [&] { return stopping_; });
    return !stopping_;
  }

  // Lists the prefix, makes the registry match, returns the listing's revision.
  absl::StatusOr<int64_t> Resync() {
    absl::StatusOr<EtcdRange> range = client_->RangePrefix(workers_prefix_);
    if (!range.ok()) return range.status();
    std::vector<WorkerInfo> workers;
    for (const EtcdKeyValue& kv : range->kvs) {
      absl::StatusOr<WorkerInfo> info = DecodeWorkerInfo(kv.value);
      if (!info.ok()) {
        TLOG_WARN("etcd discovery: skipping {}: {}", kv.key, info.status().ToString());
        continue;
      }
      workers.push_back(*std::move(info));
    }
    registry_.ReplaceAll(workers);
    return range->revision;
  }

  void ApplyEvent(const mvccpb::Event& event) {
    const std::string& key = event.kv().key();
    if (!absl::StartsWith(key, workers_prefix_)) return;
    switch (event.type()) {
      case mvccpb::Event::PUT: {
        absl::StatusOr<WorkerInfo> info = DecodeWorkerInfo(event.kv().value());
        if (!info.ok()) {
          TLOG_WARN("etcd discovery: skipping {}: {}", key, info.status().ToString());
          return;
        }
        registry_.Upsert(*info);
        return;
      }
      case mvccpb::Event::DELETE:
        registry_.Remove(key.substr(workers_prefix_.size()));
        return;
      case mvccpb::Event_EventType_Event_EventType_INT_MIN_SENTINEL_DO_NOT_USE_:
      case mvccpb::Event_EventType_Event_EventType_INT_MAX_SENTINEL_DO_NOT_USE_:
        return;
    }
  }

  // Watches from next_revision_; returns when the stream ends (error, compaction or stop).
  void WatchOnce() {
    auto context = std::make_unique<grpc::ClientContext>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      watch_context_ = context.get();
    }
    auto stream = client_->watch().Watch(context.get());
    etcdserverpb::WatchRequest request;
    etcdserverpb::WatchCreateRequest* create = request.mutable_create_request();
    create->set_key(workers_prefix_);
    create->set_range_end(EtcdPrefixRangeEnd(workers_prefix_));
    create->set_start_revision(next_revision_);
    bool needs_resync = false;
    if (stream->Write(request)) {
      etcdserverpb::WatchResponse response;
      while (stream->Read(&response)) {
        if (response.canceled()) {
          TLOG_WARN("etcd discovery: watch canceled (compact revision {}): {}", response.compact_revision(),
                    response.cancel_reason());
          needs_resync = true;
          break;
        }
        for (const mvccpb::Event& event : response.events()) {
          ApplyEvent(event);
          next_revision_ = std::max(next_revision_, event.kv().mod_revision() + 1);
        }
      }
    }
    context->TryCancel();
    grpc::Status status = stream->Finish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      watch_context_ = nullptr;
      if (stopping_) return;
    }
    if (!needs_resync) TLOG_WARN("etcd discovery: watch stream ended: {}", status.error_message());
  }

  void WatchLoop() {
    while (true) {
      WatchOnce();
      // The stream broke: list again (announcing what changed meanwhile) and watch from there.
      while (true) {
        if (!SleepUnlessStopping(absl::Milliseconds(500))) return;
        absl::StatusOr<int64_t> revision = Resync();
        if (revision.ok()) {
          next_revision_ = *revision + 1;
          break;
        }
        TLOG_WARN("etcd discovery: relisting failed: {}", revision.status().ToString());
      }
    }
  }

  // Sends one keep-alive per registered lease every ttl/3; re-registers a worker whose lease is gone
  // (etcd was unreachable for longer than the ttl).
  void KeepAliveLoop() {
    const absl::Duration interval =
        absl::Milliseconds(std::max<int64_t>(options_.lease_ttl_s * 1000 / 3, 200));
    while (SleepUnlessStopping(interval)) {
      std::map<std::string, Own> own;
      {
        std::lock_guard<std::mutex> lock(mu_);
        own = own_;
      }
      if (own.empty()) continue;
      auto context = std::make_unique<grpc::ClientContext>();
      context->set_deadline(std::chrono::system_clock::now() +
                            absl::ToChronoNanoseconds(options_.rpc_timeout));
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        keepalive_context_ = context.get();
      }
      auto stream = client_->lease().LeaseKeepAlive(context.get());
      std::vector<std::string> lost;
      bool stream_ok = true;
      for (const auto& [id, entry] : own) {
        etcdserverpb::LeaseKeepAliveRequest request;
        request.set_id(entry.lease);
        etcdserverpb::LeaseKeepAliveResponse response;
        if (!stream->Write(request) || !stream->Read(&response)) {
          stream_ok = false;
          break;
        }
        if (response.ttl() <= 0) lost.push_back(id);
      }
      stream->WritesDone();
      grpc::Status status = stream->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        keepalive_context_ = nullptr;
        if (stopping_) return;
      }
      if (!stream_ok) {
        TLOG_WARN("etcd discovery: keep-alive failed: {}", status.error_message());
        continue;
      }
      for (const std::string& id : lost) {
        TLOG_WARN("etcd discovery: the lease of worker {} expired; registering again", id);
        auto it = own.find(id);
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!own_.contains(id) || own_[id].lease != it->second.lease) continue;  // changed meanwhile
        }
        if (absl::Status s = Register(it->second.info); !s.ok()) {
          TLOG_WARN("etcd discovery: registering worker {} again failed: {}", id, s.ToString());
        }
      }
    }
  }

  const EtcdDiscoveryOptions options_;
  std::unique_ptr<EtcdClient> client_;
  const std::string workers_prefix_;
  WorkerRegistry registry_;

  std::mutex register_mu_;  // one Register/Deregister at a time
  std::mutex mu_;           // guards the fields below
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::map<std::string, Own> own_;  // workers this process registered
  grpc::ClientContext* watch_context_ = nullptr;
  grpc::ClientContext* keepalive_context_ = nullptr;

  int64_t next_revision_ = 0;  // watch thread only (and Start before it)
  std::thread watch_thread_;
  std::thread keepalive_thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Discovery>> MakeEtcdDiscovery(const EtcdDiscoveryOptions& options) {
  if (options.lease_ttl_s < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd discovery: lease_ttl_s must be at least 1, found ", options.lease_ttl_s));
  }
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Connect(options.endpoints, options.rpc_timeout);
  if (!client.ok()) return client.status();
  auto discovery = std::make_unique<EtcdDiscovery>(options, *std::move(client));
  if (absl::Status s = discovery->Start(); !s.ok()) return s;
  return std::unique_ptr<Discovery>(std::move(discovery));
}

}  // namespace tandem::cluster
