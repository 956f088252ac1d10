// Tests only: a KvTransport that wraps another and makes its KV writes fail or stall, so the fault
// tests (issue 18) can break a transfer at will in real worker processes. CreateTransport wraps
// every transport it makes in one when the environment variable TANDEM_TEST_TRANSFER_FAULT is set
// (and logs that it did); production never sets it.
//
//   TANDEM_TEST_TRANSFER_FAULT = MODE[:N]
//     fail   the write never happens: its transfer reports kFailed (as a broken connection does)
//     stall  the write never happens: its transfer stays kPending (as a hung peer does)
//     post   PostWrite itself returns an error (as an endpoint that cannot send does)
//   with :N, only the N-th PostWrite of the process and those after it (1-based); the earlier ones
//   go through. Everything but PostWrite/Poll/Release of the faulted writes goes to the wrapped
//   transport unchanged.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "tandem/transfer/kv_transport.h"

namespace tandem::transfer {

enum class TransferFault { kFail, kStall, kPost };

struct TransferFaultSpec {
  TransferFault fault = TransferFault::kFail;
  int64_t from_write = 1;  // 1-based index of the first faulted PostWrite
};

// Parses MODE[:N] as above; an error naming the variable and what it expected.
absl::StatusOr<TransferFaultSpec> ParseTransferFault(const std::string& text);

class FaultInjectingTransport final : public KvTransport {
 public:
  FaultInjectingTransport(std::unique_ptr<KvTransport> inner, TransferFaultSpec spec);

  const char* name() const override { return inner_->name(); }
  absl::StatusOr<std::string> LocalAddress() override { return inner_->LocalAddress(); }
  absl::StatusOr<void*> AllocateMemory(std::size_t bytes, backend::MemoryKind kind) override {
    return inner_->AllocateMemory(bytes, kind);
  }
  absl::Status FreeMemory(void* base) override { return inner_->FreeMemory(base); }
  absl::StatusOr<RegionId> RegisterMemory(const MemoryRegion& region) override {
    return inner_->RegisterMemory(region);
  }
  absl::Status DeregisterMemory(RegionId region) override { return inner_->DeregisterMemory(region); }
  absl::StatusOr<std::string> ExportRegion(RegionId region) override { return inner_->ExportRegion(region); }
  absl::StatusOr<PeerId> Connect(const std::string& peer_address) override { return inner_->Connect(peer_address); }
  absl::Status Disconnect(PeerId peer) override { return inner_->Disconnect(peer); }
  absl::StatusOr<RemoteRegionId> ImportRegion(PeerId peer, const std::string& descriptor) override {
    return inner_->ImportRegion(peer, descriptor);
  }
  std::vector<std::string> TakeNotifications() override { return inner_->TakeNotifications(); }

  absl::StatusOr<TransferId> PostWrite(PeerId peer, std::span<const WriteOp> ops, std::string notification) override;
  absl::StatusOr<TransferState> Poll(TransferId transfer) override;
  void Release(TransferId transfer) override;

  // PostWrite calls faulted so far.
  int64_t faulted() const { return faulted_.load(); }

 private:
  // Faulted transfers get ids with the top bit set; the wrapped transport's never have it.
  static constexpr TransferId kFaultedBit = TransferId{1} << 63;

  std::unique_ptr<KvTransport> inner_;
  const TransferFaultSpec spec_;
  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> faulted_{0};
  std::mutex mu_;
  absl::flat_hash_map<TransferId, TransferFault> faulted_transfers_;  // under mu_
  TransferId next_faulted_ = 0;                                       // under mu_
};

// `transport` wrapped in a FaultInjectingTransport when TANDEM_TEST_TRANSFER_FAULT is set, else as
// it is; an error when the variable does not parse.
absl::StatusOr<std::unique_ptr<KvTransport>> MaybeInjectTransferFaults(std::unique_ptr<KvTransport> transport);

}  // namespace tandem::transfer
