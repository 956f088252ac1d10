// The pool of fixed-size KV blocks: reference counts, an O(1) free list, the prefix-cache index
// (block hash -> block) and LRU eviction of cached blocks nobody references.
//
// Every block with reference count 0 sits on one intrusive doubly-linked free list. Blocks that
// hold no cached content go to its head (reused first), cached ones to its tail, so allocation
// pops the head and reaches a cached block only when no clean one is left, taking the least
// recently released one; that eviction removes its hash and emits kBlockRemoved. A cache hit on a
// free cached block unlinks it (O(1)) and takes a reference.
//
// Single-threaded: the engine's step loop is the only user.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/kvcache/kv_events.h"

namespace tandem::kvcache {

using BlockId = int32_t;

class BlockPool {
 public:
  BlockPool(int32_t num_blocks, int32_t block_size, bool enable_caching);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  bool caching_enabled() const { return enable_caching_; }

  // Blocks with reference count 0 (clean or cached-evictable): what Allocate can still take.
  int32_t num_free() const { return num_free_; }
  int32_t num_used() const { return num_blocks_ - num_free_; }
  // Blocks currently holding a prefix-cache entry (referenced or not).
  int32_t num_cached() const { return static_cast<int32_t>(cache_.size()); }

  // Appends `n` fresh blocks with reference count 1 to `out`, evicting LRU cached blocks as
  // needed. Returns false and takes nothing when fewer than `n` blocks are free.
  bool Allocate(int32_t n, std::vector<BlockId>* out);

  // Takes one more reference on `id` (a prefix-cache hit or a shared block).
  void Ref(BlockId id);
  // Drops one reference; at 0 the block goes back on the free list.
  void Unref(BlockId id);
  int32_t ref_count(BlockId id) const { return blocks_[id].ref_count; }

  // The cached block holding `tokens` after a parent with hash `parent`, whose own hash is
  // `hash`: the hash, the parent hash and every token id must match (see block_hash.h).
  std::optional<BlockId> Lookup(BlockHash hash, BlockHash parent, std::span<const int32_t> tokens) const;

  // Registers the full block `id` (referenced by the caller) under `hash`. Returns false, leaving
  // it uncached, when caching is off, `id` is already cached or `hash` is taken by another block.
  bool Cache(BlockId id, BlockHash hash, BlockHash parent, std::span<const int32_t> tokens);
  bool is_cached(BlockId id) const { return blocks_[id].cached; }
  BlockHash hash_of(BlockId id) const { return blocks_[id].hash; }

  // Drops every prefix-cache entry (blocks in use keep their content but stop being reusable);
  // emits kAllCleared.
  void ResetPrefixCache();

  // Records a kBlockStored event for a chain of blocks just cached (see KvBlockManager).
  void EmitStored(std::vector<BlockHash> hashes, BlockHash parent, bool has_parent,
                  std::vector<int32_t> tokens);

  // The events since the last call, oldest first.
  std::vector<KvEvent> TakeEvents();
  size_t num_pending_events() const { return events_.size(); }

  // Checks the free list and counts against the blocks' states (tests and debug builds).
  bool CheckInvariants() const;

 private:
  struct Block {
    int32_t ref_count = 0;
    bool cached = false;
    bool on_free_list = false;
    BlockHash hash = 0;
    BlockHash parent_hash = 0;
    int32_t prev = -1;  // free-list links; index num_blocks_ is the sentinel
    int32_t next = -1;
  };

  void PushHead(BlockId id);
  void PushTail(BlockId id);
  void Unlink(BlockId id);
  void Uncache(BlockId id);  // removes the hash entry and records it for a kBlockRemoved event
  void FlushRemoved();

  const int32_t num_blocks_;
  const int32_t block_size_;
  const bool enable_caching_;
  std::vector<Block> blocks_;    // num_blocks_ + 1 (the last is the free-list sentinel)
  std::vector<int32_t> tokens_;  // [num_blocks, block_size] token ids of cached blocks
  int32_t num_free_ = 0;
  absl::flat_hash_map<BlockHash, BlockId> cache_;
  std::vector<BlockHash> removed_;  // evicted hashes not yet turned into an event
  std::vector<KvEvent> events_;
};

}  // namespace tandem::kvcache
