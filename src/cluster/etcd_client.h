// A small synchronous client for etcd's v3 gRPC API (proto/etcd/): KV Range/Put/DeleteRange and
// Lease Grant/Revoke, plus the Watch and Lease stubs for the streaming calls. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tandem::cluster {

// "http://host:port" (or "host:port") → "host:port"; an https endpoint or a missing port is an error.
absl::StatusOr<std::string> EtcdTarget(const std::string& endpoint);

// The range_end that makes [prefix, range_end) every key starting with `prefix`.
std::string EtcdPrefixRangeEnd(const std::string& prefix);

// A gRPC status as an absl::Status with the same code, the message prefixed by `what`.
absl::Status EtcdStatus(const grpc::Status& status, const std::string& what);

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t lease = 0;
};

struct EtcdRange {
  int64_t revision = 0;  // the store's revision the listing reflects
  std::vector<EtcdKeyValue> kvs;
};

class EtcdClient {
 public:
  // Uses the first endpoint that accepts a connection within `rpc_timeout`.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(const std::vector<std::string>& endpoints,
                                                             absl::Duration rpc_timeout);

  const std::string& target() const { return target_; }

  absl::StatusOr<EtcdRange> RangePrefix(const std::string& prefix);
  absl::Status Put(const std::string& key, const std::string& value, int64_t lease_id);
  absl::Status Delete(const std::string& key);
  // Returns the lease id.
  absl::StatusOr<int64_t> LeaseGrant(int64_t ttl_s);
  absl::Status LeaseRevoke(int64_t lease_id);

  etcdserverpb::Watch::Stub& watch() { return *watch_; }
  etcdserverpb::Lease::Stub& lease() { return *lease_; }

 private:
  EtcdClient(std::string target, std::shared_ptr<grpc::Channel> channel, absl::Duration rpc_timeout);
  void SetDeadline(grpc::ClientContext* context) const;

  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  absl::Duration rpc_timeout_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
};

}  // namespace tandem::cluster
