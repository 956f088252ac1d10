#include "tandem/backend/kv_pool.h"

#include "absl/strings/str_cat.h"
#include "tandem/backend/backend.h"
#include "tandem/core/status.h"

namespace tandem::backend {

absl::StatusOr<std::unique_ptr<KvPool>> KvPool::Create(Backend& backend, const KvCacheSpec& spec,
                                                         const KvPoolAllocator& allocate) {
  if (allocate) return Create(spec, backend.memory_kind(), allocate);
  return Create(spec, backend.memory_kind(), [&backend](size_t bytes) { return backend.Allocate(bytes); });
}

absl::StatusOr<std::unique_ptr<KvPool>> KvPool::Create(const KvCacheSpec& spec, MemoryKind kind,
                                                         const KvPoolAllocator& allocate) {
  if (spec.num_layers <= 0 || spec.num_kv_heads <= 0 || spec.head_dim <= 0 || spec.block_size <= 0 ||
      spec.num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kv cache: every size must be positive, got num_layers=", spec.num_layers, " num_kv_heads=",
        spec.num_kv_heads, " head_dim=", spec.head_dim, " block_size=", spec.block_size,
        " num_blocks=", spec.num_blocks));
  }
  std::vector<std::unique_ptr<Buffer>> layers;
  layers.reserve(static_cast<size_t>(spec.num_layers));
  for (int l = 0; l < spec.num_layers; ++l) {
    TANDEM_ASSIGN_OR_RETURN(auto buffer, allocate(spec.BytesPerLayer()));
    if (buffer == nullptr || buffer->size() < spec.BytesPerLayer() ||
        reinterpret_cast<uintptr_t>(buffer->data()) % 64 != 0 || buffer->memory_kind() != kind) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kv cache: layer ", l, ": the pool allocator must return ", spec.BytesPerLayer(),
          " bytes, 64-byte aligned, of the cache's memory kind; found ",
          buffer == nullptr ? std::string("no buffer")
                            : absl::StrCat(buffer->size(), " bytes at alignment ",
                                           reinterpret_cast<uintptr_t>(buffer->data()) % 64 == 0 ? "64" : "<64",
                                           buffer->memory_kind() == kind ? ", same kind"
                                                                                           : ", another kind")));
    }
    layers.push_back(std::move(buffer));
  }
  return std::unique_ptr<KvPool>(new KvPool(spec, std::move(layers)));
}

}  // namespace tandem::backend
