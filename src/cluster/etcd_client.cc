#include "etcd_client.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::cluster {

absl::StatusOr<std::string> EtcdTarget(const std::string& endpoint) {
  std::string rest = endpoint;
  if (absl::StartsWith(rest, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd endpoint '", endpoint, "': TLS is not supported, expected http://host:port"));
  }
  if (absl::StartsWith(rest, "http://")) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(rest.substr(colon + 1), &port) ||
      port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd endpoint: expected http://host:port, found '", endpoint, "'"));
  }
  return rest;
}

std::string EtcdPrefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

absl::Status EtcdStatus(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Connect(const std::vector<std::string>& endpoints,
                                                                absl::Duration rpc_timeout) {
  if (endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoints configured");
  std::string tried;
  for (const std::string& endpoint : endpoints) {
    absl::StatusOr<std::string> target = EtcdTarget(endpoint);
    if (!target.ok()) return target.status();
    std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(*target, grpc::InsecureChannelCredentials());
    const auto deadline = std::chrono::system_clock::now() + absl::ToChronoNanoseconds(rpc_timeout);
    if (channel->WaitForConnected(deadline)) {
      return std::unique_ptr<EtcdClient>(new EtcdClient(*target, std::move(channel), rpc_timeout));
    }
    absl::StrAppend(&tried, tried.empty() ? "" : ", ", endpoint);
  }
  return absl::UnavailableError(absl::StrCat("etcd: no endpoint answered within ",
                                             absl::FormatDuration(rpc_timeout), " (tried ", tried, ")"));
}

EtcdClient::EtcdClient(std::string target, std::shared_ptr<grpc::Channel> channel, absl::Duration rpc_timeout)
    : target_(std::move(target)),
      channel_(std::move(channel)),
      rpc_timeout_(rpc_timeout),
      kv_(etcdserverpb::KV::NewStub(channel_)),
      watch_(etcdserverpb::Watch::NewStub(channel_)),
      lease_(etcdserverpb::Lease::NewStub(channel_)) {}

void EtcdClient::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(rpc_timeout_));
}

absl::StatusOr<EtcdRange> EtcdClient::RangePrefix(const std::string& prefix) {
  etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(EtcdPrefixRangeEnd(prefix));
  etcdserverpb::RangeResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status status = kv_->Range(&context, request, &response);
  if (!status.ok()) return EtcdStatus(status, absl::StrCat("etcd Range ", prefix, " at ", target_));
  EtcdRange out;
  out.revision = response.header().revision();
  for (const mvccpb::KeyValue& kv : response.kvs()) out.kvs.push_back({kv.key(), kv.value(), kv.lease()});
  return out;
}

absl::Status EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease_id) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease_id);
  etcdserverpb::PutResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  return EtcdStatus(kv_->Put(&context, request, &response), absl::StrCat("etcd Put ", key, " at ", target_));
}

absl::Status EtcdClient::Delete(const std::string& key) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  etcdserverpb::DeleteRangeResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  return EtcdStatus(kv_->DeleteRange(&context, request, &response),
                    absl::StrCat("etcd DeleteRange ", key, " at ", target_));
}

absl::StatusOr<int64_t> EtcdClient::LeaseGrant(int64_t ttl_s) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_s);
  etcdserverpb::LeaseGrantResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status status = lease_->LeaseGrant(&context, request, &response);
  if (!status.ok()) return EtcdStatus(status, absl::StrCat("etcd LeaseGrant at ", target_));
  if (!response.error().empty()) {
    return absl::UnavailableError(absl::StrCat("etcd LeaseGrant at ", target_, ": ", response.error()));
  }
  return response.id();
}

absl::Status EtcdClient::LeaseRevoke(int64_t lease_id) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease_id);
  etcdserverpb::LeaseRevokeResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  return EtcdStatus(lease_->LeaseRevoke(&context, request, &response),
                    absl::StrCat("etcd LeaseRevoke ", lease_id, " at ", target_));
}

}  // namespace tandem::cluster
