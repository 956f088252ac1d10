#include "tandem/router/discovery_binding.h"

#include "tandem/core/logging.h"

namespace tandem::router {
namespace {

cluster::WatchCallbacks FollowInto(Router& router) {
  cluster::WatchCallbacks callbacks;
  callbacks.on_added = [&router](const cluster::WorkerInfo& w) {
    TLOG_INFO("router: worker {} ({}, {}) joined", w.id, cluster::WorkerRoleName(w.role), w.address);
    router.AddWorker(w);
  };
  callbacks.on_removed = [&router](const cluster::WorkerInfo& w) {
    TLOG_INFO("router: worker {} ({}) left", w.id, w.address);
    router.RemoveWorker(w.id);
  };
  return callbacks;
}

}  // namespace

DiscoveryBinding::DiscoveryBinding(Router& router, cluster::Discovery& discovery)
    : discovery_(discovery), watch_id_(discovery.Watch(FollowInto(router))) {}

DiscoveryBinding::~DiscoveryBinding() { discovery_.Unwatch(watch_id_); }

}  // namespace tandem::router
