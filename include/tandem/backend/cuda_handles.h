// RAII owners of raw CUDA runtime handles (device and pinned memory, streams, events, graphs) and the
// conversion of a failed CUDA call into a Status that names the call and where it was made. Used by
// the CUDA model runner and the nccl transport; header-only so that any module built with CUDA can
// use them.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tandem/backend/buffer.h"

namespace tandem::backend::cuda {

// "what at file:line: cudaErrorX (message)".
inline absl::Status CudaStatus(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return absl::OkStatus();
  const absl::StatusCode code =
      err == cudaErrorMemoryAllocation ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(what, " at ", file, ":", line, ": ", cudaGetErrorName(err), " (",
                                         cudaGetErrorString(err), ")"));
}

}  // namespace tandem::backend::cuda

// Returns a Status naming the call and its location from the enclosing function if `expr` fails.
#define TANDEM_CUDA_CHECK(expr)                                                                        \
  do {                                                                                                 \
    const cudaError_t tandem_cuda_err_ = (expr);                                                       \
    if (tandem_cuda_err_ != cudaSuccess) {                                                             \
      return ::tandem::backend::cuda::CudaStatus(tandem_cuda_err_, #expr, __FILE__, __LINE__);         \
    }                                                                                                  \
  } while (0)

namespace tandem::backend::cuda {

// Makes `device` current on the calling thread for a scope and restores the previous device after.
// Failures are not reported here: the owner checked the ordinal when it was created, and a call made
// on the wrong device fails with a status of its own.
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

// cudaMalloc'd device memory (never managed memory), as a backend Buffer of kind kDevice.
class DeviceMemory final : public Buffer {
 public:
  static absl::StatusOr<std::unique_ptr<DeviceMemory>> Allocate(size_t bytes) {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
    if (err != cudaSuccess) {
      return CudaStatus(err, absl::StrCat("cudaMalloc(", bytes, " bytes)").c_str(), __FILE__, __LINE__);
    }
    return std::unique_ptr<DeviceMemory>(new DeviceMemory(p, bytes));
  }
  ~DeviceMemory() override { cudaFree(ptr_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* data() override { return ptr_; }
  const void* data() const override { return ptr_; }
  size_t size() const override { return bytes_; }
  MemoryKind memory_kind() const override { return MemoryKind::kDevice; }

 private:
  DeviceMemory(void* p, size_t bytes) : ptr_(p), bytes_(bytes) {}
  void* ptr_;
  size_t bytes_;
};

// Page-locked host memory (cudaMallocHost), for staging copies that run asynchronously.
class PinnedMemory {
 public:
  PinnedMemory() = default;
  ~PinnedMemory() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
  }
  PinnedMemory(const PinnedMemory&) = delete;
  PinnedMemory& operator=(const PinnedMemory&) = delete;
  absl::Status Allocate(size_t bytes) {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
    TANDEM_CUDA_CHECK(cudaMallocHost(&ptr_, bytes == 0 ? 64 : bytes));
    bytes_ = bytes;
    return absl::OkStatus();
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t size() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A non-blocking stream on the current device.
class Stream {
 public:
  Stream() = default;
  ~Stream() {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  Stream& operator=(Stream&&) = delete;
  absl::Status Create() {
    TANDEM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    return absl::OkStatus();
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// An event without timing (cheap to record and wait on), or with timing for benchmarks.
class Event {
 public:
  Event() = default;
  ~Event() {
    if (event_ != nullptr) cudaEventDestroy(event_);
  }
  Event(Event&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
  Event& operator=(Event&&) = delete;
  Event(const Event&) = delete;
  absl::Status Create(bool timing = false) {
    TANDEM_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
    return absl::OkStatus();
  }
  // Marks the end of the work queued on `stream` so far (Create first).
  absl::Status Record(cudaStream_t stream) {
    TANDEM_CUDA_CHECK(cudaEventRecord(event_, stream));
    return absl::OkStatus();
  }
  // True once the work before the last Record has finished (an event never created counts as
  // finished; one created but not recorded too, as cudaEventQuery says).
  bool Done() const { return event_ == nullptr || cudaEventQuery(event_) == cudaSuccess; }
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// An instantiated CUDA graph.
class GraphExec {
 public:
  GraphExec() = default;
  ~GraphExec() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
  }
  GraphExec(GraphExec&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
  GraphExec& operator=(GraphExec&&) = delete;
  GraphExec(const GraphExec&) = delete;
  // Instantiates `graph` (which it then destroys).
  absl::Status Instantiate(cudaGraph_t graph) {
    const cudaError_t err = cudaGraphInstantiate(&exec_, graph, 0);
    cudaGraphDestroy(graph);
    TANDEM_CUDA_CHECK(err);
    return absl::OkStatus();
  }
  absl::Status Launch(cudaStream_t stream) const {
    TANDEM_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
    return absl::OkStatus();
  }
  bool valid() const { return exec_ != nullptr; }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace tandem::backend::cuda
