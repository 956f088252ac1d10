// RAII owners of the raw CUDA and NCCL handles the nccl transport uses, and their error texts.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::transfer {

inline absl::Status CudaError(cudaError_t e, const char* what) {
  return absl::InternalError(absl::StrCat("nccl transport: ", what, ": ", cudaGetErrorString(e)));
}

inline absl::Status NcclError(ncclResult_t r, const char* what, ncclComm_t comm = nullptr) {
  const char* last = ncclGetLastError(comm);
  return absl::UnavailableError(absl::StrCat("nccl transport: ", what, ": ", ncclGetErrorString(r),
                                             last != nullptr && *last != '\0' ? absl::StrCat(" (", last, ")") : ""));
}

// Makes `device` current for a scope and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) cudaSetDevice(device);
  }
  ~DeviceGuard() {
    int now = -1;
    if (previous_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// A non-blocking stream on the current device.
class CudaStream {
 public:
  CudaStream() = default;
  ~CudaStream() {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  CudaStream(CudaStream&& o) noexcept : stream_(o.stream_) { o.stream_ = nullptr; }
  CudaStream& operator=(CudaStream&&) = delete;
  CudaStream(const CudaStream&) = delete;
  absl::Status Create() {
    const cudaError_t e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    return e == cudaSuccess ? absl::OkStatus() : CudaError(e, "cudaStreamCreate");
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// An event without timing, marking the end of one transfer's NCCL group on a stream.
class CudaEvent {
 public:
  CudaEvent() = default;
  ~CudaEvent() {
    if (event_ != nullptr) cudaEventDestroy(event_);
  }
  CudaEvent(CudaEvent&& o) noexcept : event_(o.event_) { o.event_ = nullptr; }
  CudaEvent& operator=(CudaEvent&& o) noexcept {
    std::swap(event_, o.event_);
    return *this;
  }
  CudaEvent(const CudaEvent&) = delete;
  absl::Status Record(cudaStream_t stream) {
    if (event_ == nullptr) {
      const cudaError_t e = cudaEventCreateWithFlags(&event_, cudaEventDisableTiming);
      if (e != cudaSuccess) return CudaError(e, "cudaEventCreate");
    }
    const cudaError_t e = cudaEventRecord(event_, stream);
    return e == cudaSuccess ? absl::OkStatus() : CudaError(e, "cudaEventRecord");
  }
  // True once the work before the event finished (an unrecorded event counts as finished).
  bool Done() const { return event_ == nullptr || cudaEventQuery(event_) == cudaSuccess; }

 private:
  cudaEvent_t event_ = nullptr;
};

// A device allocation of the current device (staging for packed transfers), grown on demand.
class CudaBuffer {
 public:
  CudaBuffer() = default;
  ~CudaBuffer() { Free(); }
  CudaBuffer(CudaBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  CudaBuffer& operator=(CudaBuffer&&) = delete;
  CudaBuffer(const CudaBuffer&) = delete;
  // Makes the buffer at least `bytes` long; work queued on `stream` may still use the old one.
  absl::Status Reserve(std::size_t bytes, cudaStream_t stream) {
    if (bytes <= bytes_) return absl::OkStatus();
    if (ptr_ != nullptr) {
      cudaStreamSynchronize(stream);
      Free();
    }
    const cudaError_t e = cudaMalloc(&ptr_, bytes);
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      return CudaError(e, "cudaMalloc of the staging buffer");
    }
    bytes_ = bytes;
    return absl::OkStatus();
  }
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  void Free() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

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
