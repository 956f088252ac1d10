// Discovery: how workers announce themselves and how frontends find the live set.
//
// A worker calls Register() with its id, role, gRPC address, model and free-form metadata; it stays
// listed until Deregister(), the Discovery is destroyed, or (etcd) its process dies and its lease
// expires. A frontend reads Snapshot() (the live set plus a version that grows on every change) or
// subscribes with Watch() (on_added for every worker already there, then every join and leave, in
// order, on a discovery-owned thread or the caller's thread for in-process changes).
//
// Three implementations (DiscoverySection::type):
//   embedded  an in-process registry; `tandem serve` fills it as it launches its workers.
//   static    the workers listed in the YAML (discovery.workers), fixed for the process's life.
//   etcd      each worker puts <prefix>/workers/<id> attached to a lease kept alive every ttl/3;
//             frontends list the prefix and then watch it, so a worker that dies disappears once
//             its lease runs out (lease_ttl_s) and one that joins is seen at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tandem/core/config.h"

namespace tandem::cluster {

enum class WorkerRole { kPrefill, kDecode, kBoth };

// "prefill" | "decode" | "both".
const char* WorkerRoleName(WorkerRole role);
absl::StatusOr<WorkerRole> ParseWorkerRole(std::string_view name);

struct WorkerInfo {
  std::string id;  // unique in the deployment
  WorkerRole role = WorkerRole::kBoth;
  std::string address;  // host:port of the worker's gRPC server
  std::string model;
  std::map<std::string, std::string> metadata;  // e.g. block_size, hash_salt, devices

  bool operator==(const WorkerInfo&) const = default;
};

// The JSON form stored as an etcd value: {"id":..,"role":..,"address":..,"model":..,"metadata":{..}}.
std::string EncodeWorkerInfo(const WorkerInfo& worker);
absl::StatusOr<WorkerInfo> DecodeWorkerInfo(std::string_view json);

struct WorkerSnapshot {
  uint64_t version = 0;             // grows by at least one on every join, leave or update
  std::vector<WorkerInfo> workers;  // sorted by id
};

struct WatchCallbacks {
  std::function<void(const WorkerInfo&)> on_added;    // also called when a worker's info changes
  std::function<void(const WorkerInfo&)> on_removed;  // the last info seen for it
};

using WatchId = uint64_t;

class Discovery {
 public:
  virtual ~Discovery() = default;

  virtual DiscoveryType type() const = 0;

  // Lists this process's worker until Deregister() or destruction.
  virtual absl::Status Register(const WorkerInfo& worker) = 0;
  virtual absl::Status Deregister(const std::string& worker_id) = 0;

  virtual WorkerSnapshot Snapshot() const = 0;

  // Calls on_added for each current worker before returning, then for every change until
  // Unwatch(). Callbacks must not call back into this Discovery's Watch/Unwatch.
  virtual WatchId Watch(WatchCallbacks callbacks) = 0;
  virtual void Unwatch(WatchId id) = 0;

  // Waits until the version exceeds `after_version` or `timeout` passes; returns the version then.
  virtual uint64_t WaitForChange(uint64_t after_version, absl::Duration timeout) const = 0;
};

// An empty in-process registry.
std::unique_ptr<Discovery> MakeEmbeddedDiscovery();

// The workers of `section.static_workers` (ids "<role>-<index>", model `model`). Register()
// accepts only a worker whose address is listed (with the same role) and then records its id,
// model and metadata; the set never gains or loses addresses.
absl::StatusOr<std::unique_ptr<Discovery>> MakeStaticDiscovery(const DiscoverySection& section,
                                                               const std::string& model = "");

struct EtcdDiscoveryOptions {
  std::vector<std::string> endpoints;  // "http://host:port"; the first reachable one is used
  std::string prefix = "/tandem";
  int lease_ttl_s = 10;
  absl::Duration rpc_timeout = absl::Seconds(5);
  // On Deregister()/destruction, revoke the lease so the worker leaves at once. False leaves the key
  // to expire with its lease, as when the process is killed (tests use it to exercise expiry).
  bool revoke_on_close = true;
};

// Connects to etcd, lists <prefix>/workers/ and starts watching it. Fails if no endpoint answers.
absl::StatusOr<std::unique_ptr<Discovery>> MakeEtcdDiscovery(const EtcdDiscoveryOptions& options);

// The implementation `section.type` names.
absl::StatusOr<std::unique_ptr<Discovery>> MakeDiscovery(const DiscoverySection& section,
                                                         const std::string& model = "");

}  // namespace tandem::cluster
