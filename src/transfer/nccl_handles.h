// RAII owner of the NCCL communicator the nccl transport uses, and NCCL's error texts. The CUDA
// handles (device guard, streams, events, device memory) are the backend's
// (include/tandem/backend/cuda_handles.h).
#pragma once

#include <nccl.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::transfer {

inline absl::Status NcclError(ncclResult_t r, const char* what, ncclComm_t comm = nullptr) {
  const char* last = ncclGetLastError(comm);
  return absl::UnavailableError(absl::StrCat("nccl transport: ", what, ": ", ncclGetErrorString(r),
                                             last != nullptr && *last != '\0' ? absl::StrCat(" (", last, ")") : ""));
}

// A communicator; destruction aborts it, which is local and ends any kernel stuck on a dead peer.
class NcclComm {
 public:
  NcclComm() = default;
  ~NcclComm() { Abort(); }
  NcclComm(NcclComm&& o) noexcept : comm_(o.comm_) { o.comm_ = nullptr; }
  NcclComm& operator=(NcclComm&&) = delete;
  NcclComm(const NcclComm&) = delete;
  ncclComm_t* out() { return &comm_; }
  void Swap(NcclComm& other) { std::swap(comm_, other.comm_); }
  ncclComm_t get() const { return comm_; }
  void Abort() {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

 private:
  ncclComm_t comm_ = nullptr;
};

// Waits for a non-blocking communicator's last call (init or group) to finish, until `deadline`.
inline absl::Status WaitComm(ncclComm_t comm, std::chrono::steady_clock::time_point deadline, const char* what) {
  while (true) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r != ncclSuccess) return NcclError(r, what, comm);
    if (state == ncclSuccess) return absl::OkStatus();
    if (state != ncclInProgress) return NcclError(state, what, comm);
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("nccl transport: ", what, ": peer did not answer in time"));
    }
    std::this_thread::yield();
  }
}

}  // namespace tandem::transfer
