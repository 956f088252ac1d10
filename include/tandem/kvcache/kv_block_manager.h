// Per-sequence block tables on top of the BlockPool: prefix-cache lookup, allocation for the
// tokens a step will compute, sharing (fork) and release, and registering newly full blocks.
//
// Ownership (the scheduler side decides, see STYLE.md point 4): a BlockTable belongs to one
// sequence and holds exactly one reference on each of its blocks. Whoever holds the table frees
// it, once: the scheduler on finish/abort/preemption, or later the KV hand-off when a transfer
// completes. The manager never frees a table by itself.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tandem/kvcache/block_hash.h"
#include "tandem/kvcache/block_pool.h"
#include "tandem/kvcache/kv_events.h"

namespace tandem::kvcache {

struct KvBlockManagerConfig {
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  uint64_t hash_salt = 0;  // HashSalt(model, adapter)
};

// A sequence's blocks, in token order: block i holds tokens [i*block_size, (i+1)*block_size).
struct BlockTable {
  std::vector<BlockId> blocks;
  // Chained hashes of the first hashes.size() blocks, all full and already offered to the
  // prefix cache (a hit, a fork of such blocks, or registered by CacheFullBlocks).
  std::vector<BlockHash> hashes;

  int32_t num_blocks() const { return static_cast<int32_t>(blocks.size()); }
};

// The cached prefix of a prompt: its blocks (not yet referenced) and their hashes.
struct PrefixMatch {
  std::vector<BlockId> blocks;
  std::vector<BlockHash> hashes;
  int32_t num_tokens = 0;  // blocks.size() * block_size
};

class KvBlockManager {
 public:
  explicit KvBlockManager(const KvBlockManagerConfig& config);

  int32_t block_size() const { return pool_.block_size(); }
  int32_t num_blocks() const { return pool_.num_blocks(); }
  int32_t num_free_blocks() const { return pool_.num_free(); }
  int32_t num_used_blocks() const { return pool_.num_used(); }
  bool prefix_caching() const { return pool_.caching_enabled(); }
  const BlockPool& pool() const { return pool_; }

  // Blocks needed to hold `num_tokens` tokens.
  int32_t BlocksFor(int32_t num_tokens) const { return (num_tokens + block_size() - 1) / block_size(); }

  // The longest cached prefix of `tokens` made of full blocks, capped at `max_tokens` (the
  // scheduler passes len - 1 so the last token is always computed and yields logits).
  PrefixMatch FindCachedPrefix(std::span<const int32_t> tokens, int32_t max_tokens) const;

  // Grows `table` to hold `num_tokens` tokens. A table with no blocks first takes the blocks of
  // `prefix` (one reference each). Returns false and changes nothing when the pool is short.
  bool Allocate(BlockTable& table, int32_t num_tokens, const PrefixMatch* prefix = nullptr);
  // Whether Allocate(table, num_tokens) would succeed now (for a table that has no prefix).
  bool CanAllocate(const BlockTable& table, int32_t num_tokens) const {
    return BlocksFor(num_tokens) - table.num_blocks() <= pool_.num_free();
  }

  // `dst` (empty) shares the first `num_blocks` blocks of `src`: one more reference each.
  void Fork(const BlockTable& src, int32_t num_blocks, BlockTable& dst);

  // Drops the table's references, last block first (so a sequence's tail is evicted before its
  // prefix), and empties it.
  void Free(BlockTable& table);

  // After the model computed tokens [0, num_computed) of `tokens` into `table`, offers each newly
  // full block to the prefix cache and emits kBlockStored for those it took.
  void CacheFullBlocks(BlockTable& table, std::span<const int32_t> tokens, int32_t num_computed);

  void ResetPrefixCache() { pool_.ResetPrefixCache(); }
  std::vector<KvEvent> TakeEvents() { return pool_.TakeEvents(); }

  // Sum of references the pool holds on each block, for leak checks: equals the number of
  // (table, block) pairs over all live tables.
  int32_t ref_count(BlockId id) const { return pool_.ref_count(id); }
  bool CheckInvariants() const { return pool_.CheckInvariants(); }

 private:
  BlockPool pool_;
  const uint64_t salt_;
};

}  // namespace tandem::kvcache
