// `ucx`: UCP RMA puts into a peer's registered memory (rkeys exchanged as region descriptors over
// the control plane), then an endpoint flush, then an active message carrying the notification,
// so the peer sees the notification only after every byte has landed. UCX picks the wire
// (shared memory, TCP, RDMA; CUDA memory where UCX has CUDA transports). Shared-memory RMA needs
// the destination allocated by UCX (AllocateMemory); registered ordinary memory takes TCP on one host.
//
// Device memory (MemoryKind::kDevice, cudaMalloc'd) is mapped as UCS_MEMORY_TYPE_CUDA, which needs
// UCX's cuda transports (CUDA builds link UCX 1.22 with them, cmake/Ucx.cmake): between processes
// on one host UCX writes it with cuda_ipc (a device-to-device copy into the peer's memory, the same
// GPU or another), across hosts through cuda_copy staging and TCP (RDMA with GPUDirect would need
// UCX's ib module, which the libucx-cu13 wheel does not carry). A UCX without CUDA support refuses
// device memory with FailedPrecondition naming what it found (ucx_info.h), instead of mapping it as
// host memory. Host code never reads or writes device memory here: the notification is host bytes
// of its own, and no path copies a region with memcpy.
//
// Thread-safe: every call takes one mutex; progress happens inside Poll/TakeNotifications.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tandem/transfer/kv_transport.h"

namespace tandem::transfer {

class UcxTransport final : public KvTransport {
 public:
  // `bind_host`: an IP address (or name) of this host; UCX's network transports then listen only on
  // the interface carrying it (plus this host's InfiniBand ports, which have no IP). Empty or a
  // wildcard (0.0.0.0, ::): every interface. A UCX_NET_DEVICES environment variable wins.
  static absl::StatusOr<std::unique_ptr<UcxTransport>> Create(const std::string& bind_host = "");
  ~UcxTransport() override;
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  const char* name() const override { return "ucx"; }
  absl::StatusOr<std::string> LocalAddress() override;
  // Host memory from ucp_mem_map(ALLOCATE): POSIX shared memory that peers on this host write with
  // a memcpy (about 5x TCP loopback here). kDevice is Unimplemented (register cudaMalloc'd memory).
  // RegisterMemory of kDevice checks the pointer with CUDA (device memory, on region.device when
  // that is >= 0; -1 takes the pointer's device) and maps it with that device current.
  absl::StatusOr<void*> AllocateMemory(std::size_t bytes, backend::MemoryKind kind) override;
  absl::Status FreeMemory(void* base) override;
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

  struct State;  // UCX handles; defined in ucx_transport.cc

 private:
  explicit UcxTransport(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tandem::transfer
