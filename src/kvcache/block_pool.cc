#include "tandem/kvcache/block_pool.h"

#include <algorithm>
#include <utility>

namespace tandem::kvcache {

const char* KvEventTypeName(KvEventType type) {
  switch (type) {
    case KvEventType::kBlockStored:
      return "block_stored";
    case KvEventType::kBlockRemoved:
      return "block_removed";
    case KvEventType::kAllCleared:
      return "all_cleared";
  }
  return "unknown";
}

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size, bool enable_caching)
    : num_blocks_(num_blocks), block_size_(block_size), enable_caching_(enable_caching) {
  blocks_.resize(static_cast<size_t>(num_blocks_) + 1);
  if (enable_caching_) tokens_.resize(static_cast<size_t>(num_blocks_) * block_size_);
  Block& sentinel = blocks_[num_blocks_];
  sentinel.prev = sentinel.next = num_blocks_;
  for (BlockId id = 0; id < num_blocks_; ++id) PushTail(id);
}

void BlockPool::PushHead(BlockId id) {
  Block& b = blocks_[id];
  Block& sentinel = blocks_[num_blocks_];
  b.prev = num_blocks_;
  b.next = sentinel.next;
  blocks_[sentinel.next].prev = id;
  sentinel.next = id;
  b.on_free_list = true;
  ++num_free_;
}

void BlockPool::PushTail(BlockId id) {
  Block& b = blocks_[id];
  Block& sentinel = blocks_[num_blocks_];
  b.next = num_blocks_;
  b.prev = sentinel.prev;
  blocks_[sentinel.prev].next = id;
  sentinel.prev = id;
  b.on_free_list = true;
  ++num_free_;
}

void BlockPool::Unlink(BlockId id) {
  Block& b = blocks_[id];
  blocks_[b.prev].next = b.next;
  blocks_[b.next].prev = b.prev;
  b.prev = b.next = -1;
  b.on_free_list = false;
  --num_free_;
}

void BlockPool::Uncache(BlockId id) {
  Block& b = blocks_[id];
  cache_.erase(b.hash);
  removed_.push_back(b.hash);
  b.cached = false;
  b.hash = 0;
  b.parent_hash = 0;
}

void BlockPool::FlushRemoved() {
  if (removed_.empty()) return;
  KvEvent event;
  event.type = KvEventType::kBlockRemoved;
  event.block_hashes = std::move(removed_);
  event.block_size = block_size_;
  events_.push_back(std::move(event));
  removed_.clear();
}

bool BlockPool::Allocate(int32_t n, std::vector<BlockId>* out) {
  if (n > num_free_) return false;
  for (int32_t i = 0; i < n; ++i) {
    const BlockId id = blocks_[num_blocks_].next;
    Unlink(id);
    if (blocks_[id].cached) Uncache(id);
    blocks_[id].ref_count = 1;
    out->push_back(id);
  }
  return true;
}

void BlockPool::Ref(BlockId id) {
  Block& b = blocks_[id];
  if (b.ref_count == 0) Unlink(id);
  ++b.ref_count;
}

void BlockPool::Unref(BlockId id) {
  Block& b = blocks_[id];
  if (--b.ref_count == 0) {
    if (b.cached) {
      PushTail(id);
    } else {
      PushHead(id);
    }
  }
}

std::optional<BlockId> BlockPool::Lookup(BlockHash hash, BlockHash parent,
                                         std::span<const int32_t> tokens) const {
  if (!enable_caching_) return std::nullopt;
  auto it = cache_.find(hash);
  if (it == cache_.end()) return std::nullopt;
  const BlockId id = it->second;
  if (blocks_[id].parent_hash != parent) return std::nullopt;
  const int32_t* stored = tokens_.data() + static_cast<size_t>(id) * block_size_;
  if (!std::equal(tokens.begin(), tokens.end(), stored)) return std::nullopt;
  return id;
}

bool BlockPool::Cache(BlockId id, BlockHash hash, BlockHash parent, std::span<const int32_t> tokens) {
  Block& b = blocks_[id];
  if (!enable_caching_ || b.cached) return false;
  if (!cache_.try_emplace(hash, id).second) return false;
  b.cached = true;
  b.hash = hash;
  b.parent_hash = parent;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<size_t>(id) * block_size_);
  return true;
}

void BlockPool::ResetPrefixCache() {
  for (auto& [hash, id] : cache_) {
    blocks_[id].cached = false;
    blocks_[id].hash = 0;
    blocks_[id].parent_hash = 0;
  }
  cache_.clear();
  removed_.clear();
  events_.push_back(KvEvent{.type = KvEventType::kAllCleared, .block_size = block_size_});
}

void BlockPool::EmitStored(std::vector<BlockHash> hashes, BlockHash parent, bool has_parent,
                           std::vector<int32_t> tokens) {
  FlushRemoved();  // an eviction that made room for these blocks comes first
  KvEvent event;
  event.type = KvEventType::kBlockStored;
  event.block_hashes = std::move(hashes);
  event.parent_hash = parent;
  event.has_parent = has_parent;
  event.token_ids = std::move(tokens);
  event.block_size = block_size_;
  events_.push_back(std::move(event));
}

std::vector<KvEvent> BlockPool::TakeEvents() {
  FlushRemoved();
  std::vector<KvEvent> out = std::move(events_);
  events_.clear();
  return out;
}

bool BlockPool::CheckInvariants() const {
  int32_t on_list = 0;
  for (int32_t id = blocks_[num_blocks_].next; id != num_blocks_; id = blocks_[id].next) {
    if (id < 0 || id >= num_blocks_ || !blocks_[id].on_free_list || blocks_[id].ref_count != 0) return false;
    if (++on_list > num_blocks_) return false;
  }
  if (on_list != num_free_) return false;
  int32_t zero = 0;
  int32_t cached = 0;
  for (BlockId id = 0; id < num_blocks_; ++id) {
    const Block& b = blocks_[id];
    if (b.ref_count < 0) return false;
    if ((b.ref_count == 0) != b.on_free_list) return false;
    zero += b.ref_count == 0;
    if (b.cached) {
      ++cached;
      auto it = cache_.find(b.hash);
      if (it == cache_.end() || it->second != id) return false;
    }
  }
  return zero == num_free_ && cached == static_cast<int32_t>(cache_.size());
}

}  // namespace tandem::kvcache
