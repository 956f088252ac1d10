// The paged KV cache: one pool per layer, so a layer's blocks can be shipped as soon as that layer
// is computed (docs/architecture.md "The KV cache"). Each pool is
//   kv[layer]: [num_blocks, 2 (K, V), num_kv_heads, block_size, head_dim]   of spec.dtype, "HND"
// (fp32 on the CPU backend, bf16 on CUDA)
// so one block of one layer is one contiguous range of BytesPerBlock() bytes, and runs of
// consecutive block ids are one contiguous range. The memory comes from the backend (host memory
// on the CPU backend, device memory on CUDA).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/buffer.h"
#include "tandem/core/tensor.h"

namespace tandem::backend {

class Backend;

// Where the KV pools' memory comes from when not from the backend: e.g. shared memory a KV transport
// allocates so that peers on the same host write it directly. Returns an owned buffer of `bytes`.
using KvPoolAllocator = std::function<absl::StatusOr<std::unique_ptr<Buffer>>(size_t bytes)>;

struct KvCacheSpec {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;  // tokens per block
  int num_blocks = 0;   // per layer
  DType dtype = DType::kF32;  // element type of the pools: kF32 (CPU) or kBF16 (CUDA)

  // Elements in one block of one layer: 2 * num_kv_heads * block_size * head_dim.
  int64_t ElementsPerBlock() const { return int64_t{2} * num_kv_heads * block_size * head_dim; }
  // The same for fp32 pools (the CPU backend's ops index them as floats).
  int64_t FloatsPerBlock() const { return ElementsPerBlock(); }
  // Bytes in one block of one layer.
  size_t BytesPerBlock() const { return static_cast<size_t>(ElementsPerBlock()) * DTypeSize(dtype); }
  // Bytes in one layer's pool.
  size_t BytesPerLayer() const { return BytesPerBlock() * static_cast<size_t>(num_blocks); }
};

class KvPool {
 public:
  // Allocates every layer's pool from `allocate` when given, else from `backend` (contents undefined
  // until written). The allocator's buffers must be of the backend's memory kind and 64-byte aligned.
  static absl::StatusOr<std::unique_ptr<KvPool>> Create(Backend& backend, const KvCacheSpec& spec,
                                                         const KvPoolAllocator& allocate = {});
  // Allocates every layer's pool from `allocate` alone (the CUDA model runner's device memory), of
  // `kind` memory.
  static absl::StatusOr<std::unique_ptr<KvPool>> Create(const KvCacheSpec& spec, MemoryKind kind,
                                                         const KvPoolAllocator& allocate);

  const KvCacheSpec& spec() const { return spec_; }
  MemoryKind memory_kind() const { return layers_.front()->memory_kind(); }

  // Base of layer `layer`'s pool, any dtype.
  void* LayerData(int layer) { return layers_[static_cast<size_t>(layer)]->data(); }
  const void* LayerData(int layer) const { return layers_[static_cast<size_t>(layer)]->data(); }
  // Base of an fp32 pool; block b starts at LayerBase(layer) + b * FloatsPerBlock().
  float* LayerBase(int layer) { return layers_[static_cast<size_t>(layer)]->as<float>(); }
  const float* LayerBase(int layer) const { return layers_[static_cast<size_t>(layer)]->as<float>(); }
  // Raw bytes of block `block` of layer `layer` (what the transfer module ships).
  void* BlockData(int layer, int block) {
    return static_cast<uint8_t*>(LayerData(layer)) + static_cast<size_t>(block) * spec_.BytesPerBlock();
  }
  size_t BytesPerBlock() const { return spec_.BytesPerBlock(); }

 private:
  KvPool(const KvCacheSpec& spec, std::vector<std::unique_ptr<Buffer>> layers)
      : spec_(spec), layers_(std::move(layers)) {}

  KvCacheSpec spec_;
  std::vector<std::unique_ptr<Buffer>> layers_;
};

}  // namespace tandem::backend
