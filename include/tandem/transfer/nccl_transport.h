// `nccl`: GPU-to-GPU KV writes with NCCL point-to-point (NVLink / PCIe P2P / network, whatever NCCL
// picks), built when CUDA is on. Device memory only: registering host memory is an error that
// names the ucx and local backends.
//
// NCCL is two-sided, so the write the interface promises is made of two halves:
//  - Side channel. Each transport listens on a TCP port; LocalAddress() is
//    "nccl1;<token>;<port>;<ipv4,...>" (token: 64 random bits naming this transport instance).
//  - Connect(address), on the writer: dials the side channel and sends a hello (the token, its
//    GPU's PCI bus id and host name, so two ends on one GPU are refused with a clear error instead
//    of NCCL's); once accepted, it generates an ncclUniqueId and sends it. Both ends then create
//    one 2-rank communicator for this pair (writer rank 0, receiver rank 1) and exchange a 1-byte
//    warm-up message, which makes NCCL's lazy p2p connection now rather than in the first write.
//    The communicator is a blocking one: a non-blocking communicator launches every group through
//    a helper thread (measured on 2 H200: 217 us per 64 KiB write, vs 53 us blocking). The price
//    is that a peer dying inside this handshake (milliseconds) can hang Connect; after it, host
//    code never waits on the peer. A communicator carries writes one way; a worker that both
//    sends and receives has one per direction and peer.
//  - PostWrite, on the writer: sends a write descriptor over the side channel (transfer id, the
//    packing parameters, the receiver's region id, offset and length of every op, the
//    notification), then the NCCL groups on the pair's stream. Ops are the coalesced block runs of
//    block_runs.h, grouped by the packing plan (src/transfer/pack_plan.h): a run of at least
//    2 MiB travels as its own ncclSend; smaller runs are packed (a gather kernel,
//    kernels/transfer/copy_runs.cuh) into a staging buffer, one ncclSend per 64 MiB chunk, and
//    scattered on the far side, since one p2p op costs microseconds and 64 KiB blocks sent one by
//    one reach ~3% of NVLink (11 GB/s, vs 200 GB/s packed).
//  - The receiver's service thread reads descriptors in order, checks them against its
//    registered regions, and posts the mirror group of ncclRecv on its stream, in the same
//    order, so sends and receives pair up (NCCL matches p2p ops per peer in issue order). When
//    the receive group's event completes (every byte landed) the notification goes to
//    TakeNotifications() and an ack goes back; Poll() on the writer reports kDone once the ack
//    is in and its own send event completed, so kDone means "landed at the peer", as with ucx.
//  - Failure: a peer whose side channel closes (process died, Disconnect) or whose transfer
//    exceeds `timeout_ms` gets its communicator aborted (ncclCommAbort ends the stuck kernels),
//    and every transfer to or from it fails with the reason. Past Connect, nothing waits forever.
// Progress does not depend on the caller: the service thread accepts, posts receives, acks and
// watches deadlines. Thread-safe; all NCCL calls of one transport happen under one mutex.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tandem/transfer/kv_transport.h"

namespace tandem::transfer {

struct NcclTransportOptions {
  int device = -1;         // CUDA ordinal; -1: the calling thread's current device
  int timeout_ms = 30000;  // connect, enqueue and per-transfer deadline before the peer is aborted
};

class NcclTransport final : public KvTransport {
 public:
  static absl::StatusOr<std::unique_ptr<NcclTransport>> Create(NcclTransportOptions options = {});
  ~NcclTransport() override;
  NcclTransport(const NcclTransport&) = delete;
  NcclTransport& operator=(const NcclTransport&) = delete;

  const char* name() const override { return "nccl"; }
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

  struct State;  // CUDA, NCCL and socket handles; defined in nccl_transport.cc

 private:
  explicit NcclTransport(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tandem::transfer
