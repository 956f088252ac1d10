// Shared helpers for GPU tests: skip cleanly without a device, check CUDA calls, device buffers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "gtest/gtest.h"

// GTEST_SKIP()s the test, naming the reason, when no CUDA device is usable.
#define TANDEM_REQUIRE_GPU()                                                                       \
  do {                                                                                             \
    int tandem_devices_ = 0;                                                                       \
    const cudaError_t tandem_err_ = cudaGetDeviceCount(&tandem_devices_);                          \
    if (tandem_err_ != cudaSuccess || tandem_devices_ == 0) {                                      \
      GTEST_SKIP() << "no CUDA device (" << cudaGetErrorString(tandem_err_) << "): GPU test skipped"; \
    }                                                                                              \
  } while (0)

#define TANDEM_CUDA_ASSERT(expr) ASSERT_EQ((expr), cudaSuccess) << #expr << ": " << cudaGetErrorString(expr)

namespace tandem::testing {

// Owns one device allocation.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  std::size_t bytes() const { return bytes_; }
  bool ok() const { return ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_;
};

}  // namespace tandem::testing
