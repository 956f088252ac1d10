// Memory owned by a backend: host memory on the CPU backend, device memory on CUDA. The model
// runner, the KV cache and the transfer module only see raw pointers into these buffers plus sizes.
#pragma once

#include <cstddef>

namespace tandem::backend {

enum class MemoryKind {
  kHost,    // ordinary process memory (the CPU backend)
  kDevice,  // accelerator memory (the CUDA backend)
};

// An owned, 64-byte-aligned allocation. Moving is allowed, copying is not.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() = 0;
  virtual const void* data() const = 0;
  virtual size_t size() const = 0;
  virtual MemoryKind memory_kind() const = 0;

  template <typename T>
  T* as() {
    return static_cast<T*>(data());
  }
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data());
  }
};

}  // namespace tandem::backend
