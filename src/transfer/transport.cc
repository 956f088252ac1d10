#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"
#include "tandem/transfer/fault_transport.h"
#include "tandem/transfer/kv_transport.h"
#include "tandem/transfer/local_transport.h"
#include "tandem/transfer/ucx_transport.h"
#ifdef TANDEM_HAS_NCCL
#include "tandem/transfer/nccl_transport.h"
#endif

namespace tandem::transfer {

absl::StatusOr<void*> KvTransport::AllocateMemory(std::size_t /*bytes*/, backend::MemoryKind /*kind*/) {
  return absl::UnimplementedError(absl::StrCat("transport ", name(),
                                               " has no memory of its own; allocate from the backend and "
                                               "register it"));
}

absl::Status KvTransport::FreeMemory(void* /*base*/) {
  return absl::UnimplementedError(absl::StrCat("transport ", name(), " allocates no memory"));
}

namespace {

absl::StatusOr<std::unique_ptr<KvTransport>> CreateUnwrapped(TransferBackend backend, const std::string& bind_host) {
  switch (backend) {
    case TransferBackend::kAuto:
    case TransferBackend::kUcx: {
      TANDEM_ASSIGN_OR_RETURN(auto ucx, UcxTransport::Create(bind_host));
      return std::unique_ptr<KvTransport>(std::move(ucx));
    }
    case TransferBackend::kLocal:
      return std::unique_ptr<KvTransport>(std::make_unique<LocalTransport>());
    case TransferBackend::kNccl: {
#ifdef TANDEM_HAS_NCCL
      TANDEM_ASSIGN_OR_RETURN(auto nccl, NcclTransport::Create());  // the calling thread's CUDA device
      return std::unique_ptr<KvTransport>(std::move(nccl));
#else
      return absl::UnimplementedError(
          "transfer backend nccl: this build has no CUDA (configure with TANDEM_CUDA=ON); use ucx or local");
#endif
    }
  }
  return absl::InvalidArgumentError("unknown transfer backend");
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> CreateTransport(TransferBackend backend, const std::string& bind_host) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<KvTransport> transport, CreateUnwrapped(backend, bind_host));
  return MaybeInjectTransferFaults(std::move(transport));  // tests only: TANDEM_TEST_TRANSFER_FAULT
}

absl::Status WaitForTransfer(KvTransport& transport, TransferId transfer, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    TANDEM_ASSIGN_OR_RETURN(TransferState state, transport.Poll(transfer));
    switch (state) {
      case TransferState::kDone:
        return absl::OkStatus();
      case TransferState::kFailed:
        return absl::UnavailableError(absl::StrCat(transport.name(), " transfer ", transfer, " failed"));
      case TransferState::kPending:
        break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(transport.name(), " transfer ", transfer, " not done after ", timeout_ms, " ms"));
    }
    std::this_thread::yield();
  }
}

}  // namespace tandem::transfer
