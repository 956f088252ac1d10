// Keeps a Router's worker set equal to a Discovery's live set: every worker that joins is added
// (and used at once), every one that leaves is removed (and never picked again). Unsubscribes on
// destruction; destroy it before the Router or the Discovery.
#pragma once

#include "tandem/cluster/discovery.h"
#include "tandem/router/router.h"

namespace tandem::router {

class DiscoveryBinding {
 public:
  DiscoveryBinding(Router& router, cluster::Discovery& discovery);
  ~DiscoveryBinding();
  DiscoveryBinding(const DiscoveryBinding&) = delete;
  DiscoveryBinding& operator=(const DiscoveryBinding&) = delete;

 private:
  cluster::Discovery& discovery_;
  cluster::WatchId watch_id_;
};

}  // namespace tandem::router
