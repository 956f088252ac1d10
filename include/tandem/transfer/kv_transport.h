// KvTransport: a small asynchronous interface for moving KV blocks between workers, in the spirit of
// NIXL's backend interface (STYLE.md point 3): register memory once, export/import region
// descriptors over the control plane, post a list of writes, poll for completion, release.
// Implementations: `local` (same process), `ucx` (UCP RMA put over shm/TCP/RDMA), `nccl` (GPU
// builds). The transport knows nothing of layers or blocks: block_runs.h turns block ids into writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/buffer.h"
#include "tandem/core/config.h"

namespace tandem::transfer {

// A contiguous range of memory to expose to peers (e.g. one layer's KV pool). Its kind is the
// backend's: the memory a KV pool lives in.
struct MemoryRegion {
  void* base = nullptr;
  std::size_t bytes = 0;
  backend::MemoryKind kind = backend::MemoryKind::kHost;
  int device = -1;  // CUDA ordinal for kDevice
};

using RegionId = uint64_t;        // a region registered with this transport
using RemoteRegionId = uint64_t;  // a peer's region imported into this transport
using PeerId = uint64_t;
using TransferId = uint64_t;

// Copy `bytes` from local region + offset to remote region + offset.
struct WriteOp {
  RegionId local_region = 0;
  std::size_t local_offset = 0;
  RemoteRegionId remote_region = 0;
  std::size_t remote_offset = 0;
  std::size_t bytes = 0;
};

enum class TransferState { kPending, kDone, kFailed };

class KvTransport {
 public:
  virtual ~KvTransport() = default;

  virtual const char* name() const = 0;

  // This endpoint's address (opaque bytes) for peers to Connect() to; sent over the control plane.
  virtual absl::StatusOr<std::string> LocalAddress() = 0;

  // Memory the transport allocates itself so that peers reach it by its fastest path (ucx: POSIX
  // shared memory that a peer on the same host maps and writes with a memcpy, where ordinary memory
  // would go over TCP loopback). Register it like any other memory (RegisterMemory accepts ranges
  // inside it); free it after deregistering every range in it, before destroying the transport.
  // A transport with no memory of its own says Unimplemented: allocate from the backend instead.
  virtual absl::StatusOr<void*> AllocateMemory(std::size_t bytes, backend::MemoryKind kind);
  virtual absl::Status FreeMemory(void* base);

  // Registers memory for transfers; the id stays valid until DeregisterMemory or destruction.
  virtual absl::StatusOr<RegionId> RegisterMemory(const MemoryRegion& region) = 0;
  virtual absl::Status DeregisterMemory(RegionId region) = 0;

  // An opaque descriptor of a registered region that a peer imports to write into it.
  virtual absl::StatusOr<std::string> ExportRegion(RegionId region) = 0;

  virtual absl::StatusOr<PeerId> Connect(const std::string& peer_address) = 0;
  virtual absl::Status Disconnect(PeerId peer) = 0;
  virtual absl::StatusOr<RemoteRegionId> ImportRegion(PeerId peer, const std::string& descriptor) = 0;

  // Posts the writes to `peer`. `notification` (optional, at most kMaxNotificationBytes) is delivered
  // to the peer's TakeNotifications() after every write has landed in its memory.
  virtual absl::StatusOr<TransferId> PostWrite(PeerId peer, std::span<const WriteOp> ops,
                                               std::string notification) = 0;

  // Makes progress and reports the transfer's state; an error status says why it failed.
  virtual absl::StatusOr<TransferState> Poll(TransferId transfer) = 0;

  // Forgets a finished or failed transfer (a pending one is waited for first).
  virtual void Release(TransferId transfer) = 0;

  // Makes progress and returns the notifications received since the last call.
  virtual std::vector<std::string> TakeNotifications() = 0;

  static constexpr std::size_t kMaxNotificationBytes = 4096;
};

// Creates the transport for `backend` (kAuto picks ucx), wrapped for fault injection when the test
// variable TANDEM_TEST_TRANSFER_FAULT is set (fault_transport.h). kNccl binds to the calling thread's current
// CUDA device; without a CUDA build it is an Unimplemented error saying so, and without a device a
// FailedPrecondition error. `bind_host`: ucx listens only on this address's interface (see
// UcxTransport::Create); "" for all.
absl::StatusOr<std::unique_ptr<KvTransport>> CreateTransport(TransferBackend backend,
                                                             const std::string& bind_host = "");

// Polls until the transfer is done or failed, or `timeout_ms` passes (DeadlineExceeded).
absl::Status WaitForTransfer(KvTransport& transport, TransferId transfer, int timeout_ms);

}  // namespace tandem::transfer
