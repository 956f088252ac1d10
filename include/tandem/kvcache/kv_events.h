// KV cache events: what a worker's prefix cache gained and lost, in order. The router keeps a
// per-worker index of cached block hashes from this stream (kv_aware routing).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tandem/kvcache/block_hash.h"

namespace tandem::kvcache {

enum class KvEventType {
  kBlockStored,   // blocks became reusable prefix-cache entries
  kBlockRemoved,  // blocks were evicted (their hashes no longer hit)
  kAllCleared,    // the whole prefix cache was dropped
};

const char* KvEventTypeName(KvEventType type);

struct KvEvent {
  KvEventType type = KvEventType::kBlockStored;
  // kBlockStored: a chain of consecutive blocks, each the parent of the next. kBlockRemoved: any
  // set of hashes. kAllCleared: empty.
  std::vector<BlockHash> block_hashes;
  // kBlockStored: the hash of the first block's parent (kRootParentHash for a sequence's first
  // block, which `has_parent` false also says).
  BlockHash parent_hash = kRootParentHash;
  bool has_parent = false;
  // kBlockStored: block_hashes.size() * block_size token ids, the blocks' contents in order.
  std::vector<int32_t> token_ids;
  int32_t block_size = 0;
};

}  // namespace tandem::kvcache
