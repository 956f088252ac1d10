// Worker roles, the JSON form of WorkerInfo, and the embedded and static discoveries.
#include "tandem/cluster/discovery.h"

#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "discovery_registry.h"
#include "nlohmann/json.hpp"
#include "tandem/core/status.h"

namespace tandem::cluster {

const char* WorkerRoleName(WorkerRole role) {
  switch (role) {
    case WorkerRole::kPrefill:
      return "prefill";
    case WorkerRole::kDecode:
      return "decode";
    case WorkerRole::kBoth:
      return "both";
  }
  return "?";
}

absl::StatusOr<WorkerRole> ParseWorkerRole(std::string_view name) {
  if (name == "prefill") return WorkerRole::kPrefill;
  if (name == "decode") return WorkerRole::kDecode;
  if (name == "both") return WorkerRole::kBoth;
  return absl::InvalidArgumentError(
      absl::StrCat("worker role: expected prefill, decode or both, found '", std::string(name), "'"));
}

std::string EncodeWorkerInfo(const WorkerInfo& worker) {
  nlohmann::json j;
  j["id"] = worker.id;
  j["role"] = WorkerRoleName(worker.role);
  j["address"] = worker.address;
  j["model"] = worker.model;
  j["metadata"] = worker.metadata;
  return j.dump();
}

absl::StatusOr<WorkerInfo> DecodeWorkerInfo(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker info: expected a JSON object, found '", std::string(json.substr(0, 200)), "'"));
  }
  WorkerInfo worker;
  for (const char* key : {"id", "role", "address"}) {
    if (!j.contains(key) || !j[key].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("worker info: expected string field '", key, "' in ",
                                                     std::string(json.substr(0, 200))));
    }
  }
  worker.id = j["id"].get<std::string>();
  auto role = ParseWorkerRole(j["role"].get<std::string>());
  if (!role.ok()) return role.status();
  worker.role = *role;
  worker.address = j["address"].get<std::string>();
  if (j.contains("model") && j["model"].is_string()) worker.model = j["model"].get<std::string>();
  if (j.contains("metadata") && j["metadata"].is_object()) {
    for (const auto& [key, value] : j["metadata"].items()) {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("worker info '", worker.id, "': metadata '", key, "' must be a string"));
      }
      worker.metadata[key] = value.get<std::string>();
    }
  }
  if (worker.id.empty() || worker.address.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker info: expected non-empty id and address, found '", std::string(json), "'"));
  }
  return worker;
}

namespace {

absl::Status CheckWorker(const WorkerInfo& worker) {
  if (worker.id.empty()) return absl::InvalidArgumentError("register: the worker id is empty");
  if (worker.address.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("register '", worker.id, "': the gRPC address is empty"));
  }
  return absl::OkStatus();
}

// Registry-backed discoveries whose set changes only by calls in this process.
class InProcessDiscovery : public Discovery {
 public:
  WorkerSnapshot Snapshot() const override { return registry_.Snapshot(); }
  WatchId Watch(WatchCallbacks callbacks) override { return registry_.Watch(std::move(callbacks)); }
  void Unwatch(WatchId id) override { registry_.Unwatch(id); }
  uint64_t WaitForChange(uint64_t after_version, absl::Duration timeout) const override {
    return registry_.WaitForChange(after_version, timeout);
  }

 protected:
  WorkerRegistry registry_;
};

class EmbeddedDiscovery final : public InProcessDiscovery {
 public:
  DiscoveryType type() const override { return DiscoveryType::kEmbedded; }

  absl::Status Register(const WorkerInfo& worker) override {
    if (absl::Status s = CheckWorker(worker); !s.ok()) return s;
    registry_.Upsert(worker);
    return absl::OkStatus();
  }

  absl::Status Deregister(const std::string& worker_id) override {
    if (!registry_.Remove(worker_id)) {
      return absl::NotFoundError(absl::StrCat("deregister: no worker '", worker_id, "' is registered"));
    }
    return absl::OkStatus();
  }
};

class StaticDiscovery final : public InProcessDiscovery {
 public:
  explicit StaticDiscovery(std::vector<WorkerInfo> workers) {
    for (const WorkerInfo& w : workers) registry_.Upsert(w);
  }

  DiscoveryType type() const override { return DiscoveryType::kStatic; }

  // The worker must be one of the listed ones (same address and role); its entry takes the
  // registering worker's id, model and metadata.
  absl::Status Register(const WorkerInfo& worker) override {
    if (absl::Status s = CheckWorker(worker); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    for (const WorkerInfo& listed : registry_.Snapshot().workers) {
      if (listed.address != worker.address) continue;
      if (listed.role != worker.role) {
        return absl::FailedPreconditionError(
            absl::StrCat("static discovery: ", worker.address, " is listed as ", WorkerRoleName(listed.role),
                         ", the worker registers as ", WorkerRoleName(worker.role)));
      }
      registry_.Remove(listed.id);
      registry_.Upsert(worker);
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat("static discovery: worker address ", worker.address,
                                                      " is not listed in discovery.workers"));
  }

  absl::Status Deregister(const std::string& worker_id) override {
    if (!registry_.Find(worker_id).has_value()) {
      return absl::NotFoundError(absl::StrCat("deregister: no worker '", worker_id, "' is listed"));
    }
    // A static worker stays listed: the YAML is the truth about which addresses exist.
    return absl::OkStatus();
  }

 private:
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<Discovery> MakeEmbeddedDiscovery() { return std::make_unique<EmbeddedDiscovery>(); }

absl::StatusOr<std::unique_ptr<Discovery>> MakeStaticDiscovery(const DiscoverySection& section,
                                                               const std::string& model) {
  std::vector<WorkerInfo> workers;
  for (size_t i = 0; i < section.static_workers.size(); ++i) {
    const StaticWorker& entry = section.static_workers[i];
    auto role = ParseWorkerRole(entry.role);
    if (!role.ok()) return Annotate(role.status(), absl::StrCat("discovery.workers[", i, "]"));
    if (entry.address.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("discovery.workers[", i, "]: the address is empty"));
    }
    for (const WorkerInfo& w : workers) {
      if (w.address == entry.address) {
        return absl::InvalidArgumentError(
            absl::StrCat("discovery.workers[", i, "]: address ", entry.address, " is listed twice"));
      }
    }
    workers.push_back(WorkerInfo{.id = absl::StrCat(entry.role, "-", i),
                                 .role = *role,
                                 .address = entry.address,
                                 .model = model,
                                 .metadata = {}});
  }
  return std::unique_ptr<Discovery>(std::make_unique<StaticDiscovery>(std::move(workers)));
}

absl::StatusOr<std::unique_ptr<Discovery>> MakeDiscovery(const DiscoverySection& section,
                                                         const std::string& model) {
  switch (section.type) {
    case DiscoveryType::kEmbedded:
      return MakeEmbeddedDiscovery();
    case DiscoveryType::kStatic:
      return MakeStaticDiscovery(section, model);
    case DiscoveryType::kEtcd:
      return MakeEtcdDiscovery(EtcdDiscoveryOptions{.endpoints = section.etcd_endpoints,
                                                    .prefix = section.etcd_prefix,
                                                    .lease_ttl_s = section.lease_ttl_s});
  }
  return absl::InvalidArgumentError("discovery.type: unknown value");
}

}  // namespace tandem::cluster
