#include "tandem/kvcache/kv_block_manager.h"

#include <algorithm>
#include <utility>

namespace tandem::kvcache {

KvBlockManager::KvBlockManager(const KvBlockManagerConfig& config)
    : pool_(config.num_blocks, config.block_size, config.enable_prefix_caching), salt_(config.hash_salt) {}

PrefixMatch KvBlockManager::FindCachedPrefix(std::span<const int32_t> tokens, int32_t max_tokens) const {
  PrefixMatch match;
  if (!pool_.caching_enabled()) return match;
  const int32_t bs = block_size();
  const int32_t limit = std::min<int32_t>(static_cast<int32_t>(tokens.size()), max_tokens) / bs;
  BlockHash parent = kRootParentHash;
  for (int32_t i = 0; i < limit; ++i) {
    const auto block_tokens = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    const BlockHash hash = HashBlock(parent, block_tokens, salt_);
    const auto id = pool_.Lookup(hash, parent, block_tokens);
    if (!id.has_value()) break;
    match.blocks.push_back(*id);
    match.hashes.push_back(hash);
    parent = hash;
  }
  match.num_tokens = static_cast<int32_t>(match.blocks.size()) * bs;
  return match;
}

bool KvBlockManager::Allocate(BlockTable& table, int32_t num_tokens, const PrefixMatch* prefix) {
  const bool use_prefix = prefix != nullptr && table.blocks.empty() && !prefix->blocks.empty();
  const int32_t have = use_prefix ? static_cast<int32_t>(prefix->blocks.size()) : table.num_blocks();
  const int32_t need = BlocksFor(num_tokens) - have;
  // A hit on a free (evictable) cached block takes it off the free list too.
  int32_t free_hits = 0;
  if (use_prefix) {
    for (BlockId id : prefix->blocks) free_hits += pool_.ref_count(id) == 0;
  }
  if (need > 0 && need > pool_.num_free() - free_hits) return false;
  if (use_prefix) {
    for (BlockId id : prefix->blocks) pool_.Ref(id);
    table.blocks = prefix->blocks;
    table.hashes = prefix->hashes;
  }
  if (need > 0) pool_.Allocate(need, &table.blocks);
  return true;
}

void KvBlockManager::Fork(const BlockTable& src, int32_t num_blocks, BlockTable& dst) {
  for (int32_t i = 0; i < num_blocks; ++i) {
    pool_.Ref(src.blocks[i]);
    dst.blocks.push_back(src.blocks[i]);
  }
  const int32_t hashed = std::min<int32_t>(num_blocks, static_cast<int32_t>(src.hashes.size()));
  dst.hashes.assign(src.hashes.begin(), src.hashes.begin() + hashed);
}

void KvBlockManager::Free(BlockTable& table) {
  for (auto it = table.blocks.rbegin(); it != table.blocks.rend(); ++it) pool_.Unref(*it);
  table.blocks.clear();
  table.hashes.clear();
}

void KvBlockManager::CacheFullBlocks(BlockTable& table, std::span<const int32_t> tokens,
                                     int32_t num_computed) {
  if (!pool_.caching_enabled()) return;
  const int32_t bs = block_size();
  const int32_t full = std::min(num_computed / bs, table.num_blocks());
  int32_t i = static_cast<int32_t>(table.hashes.size());
  if (i >= full) return;
  BlockHash parent = i == 0 ? kRootParentHash : table.hashes[i - 1];
  // One kBlockStored event per run of consecutive newly cached blocks.
  std::vector<BlockHash> run;
  std::vector<int32_t> run_tokens;
  BlockHash run_parent = parent;
  bool run_has_parent = i > 0;
  auto flush = [&]() {
    if (run.empty()) return;
    pool_.EmitStored(std::move(run), run_parent, run_has_parent, std::move(run_tokens));
    run.clear();
    run_tokens.clear();
  };
  for (; i < full; ++i) {
    const auto block_tokens = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    const BlockHash hash = HashBlock(parent, block_tokens, salt_);
    if (pool_.Cache(table.blocks[i], hash, parent, block_tokens)) {
      if (run.empty()) {
        run_parent = parent;
        run_has_parent = i > 0;
      }
      run.push_back(hash);
      run_tokens.insert(run_tokens.end(), block_tokens.begin(), block_tokens.end());
    } else {
      flush();
    }
    table.hashes.push_back(hash);
    parent = hash;
  }
  flush();
}

}  // namespace tandem::kvcache
