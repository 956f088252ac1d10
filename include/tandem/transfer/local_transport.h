// `local`: transfers between transports of the same process (aggregated tests, same-host workers
// sharing an address space). Writes are memcpy on the host; addresses name a process-wide registry.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tandem/transfer/kv_transport.h"

namespace tandem::transfer {

class LocalTransport final : public KvTransport {
 public:
  LocalTransport();
  ~LocalTransport() override;
  LocalTransport(const LocalTransport&) = delete;
  LocalTransport& operator=(const LocalTransport&) = delete;

  const char* name() const override { return "local"; }
  absl::StatusOr<std::string> LocalAddress() override;
  absl::StatusOr<RegionId> RegisterMemory(const MemoryRegion& region) override;
  absl::Status DeregisterMemory(RegionId region) override;
  absl::StatusOr<std::string> ExportRegion(RegionId region) override;
  absl::StatusOr<PeerId> Connect(const std::string& peer_address) override;
  absl::Status Disconnect(PeerId peer) override;
  absl::StatusOr<RemoteRegionId> ImportRegion(PeerId peer, const std::string& descriptor) override;
  absl::StatusOr<TransferId> PostWrite(PeerId peer, std::span<const WriteOp> ops, std::string notification) override;
  absl::StatusOr<TransferState> Poll(TransferId transfer) override;
  void Release(TransferId transfer) override;
  std::vector<std::string> TakeNotifications() override;

 private:
  struct Remote {
    PeerId peer;
    char* base;
    std::size_t bytes;
    uint64_t owner_region;
  };
  void Deliver(std::string notification);
  bool HasRegion(RegionId id) const;

  std::string address_;
  mutable std::mutex mu_;
  std::map<RegionId, MemoryRegion> regions_;
  std::map<PeerId, std::string> peers_;
  std::map<RemoteRegionId, Remote> remotes_;
  std::map<TransferId, TransferState> transfers_;
  std::vector<std::string> inbox_;
  uint64_t next_id_ = 1;
};

}  // namespace tandem::transfer
