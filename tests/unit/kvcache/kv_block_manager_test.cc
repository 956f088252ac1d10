#include "tandem/kvcache/kv_block_manager.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::kvcache {
namespace {

std::vector<int32_t> Tokens(int32_t start, int32_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), start);
  return t;
}

KvBlockManager Make(int32_t blocks, bool caching = true) {
  return KvBlockManager(
      KvBlockManagerConfig{.num_blocks = blocks, .block_size = 4, .enable_prefix_caching = caching, .hash_salt = 7});
}

TEST(KvBlockManagerTest, PrefixHitReusesFullBlocksOnly) {
  KvBlockManager kv = Make(16);
  const auto prompt = Tokens(1, 10);  // 2 full blocks + 2 tokens
  BlockTable a;
  ASSERT_TRUE(kv.Allocate(a, 10));
  EXPECT_EQ(a.num_blocks(), 3);
  kv.CacheFullBlocks(a, prompt, 10);
  EXPECT_EQ(a.hashes.size(), 2u);
  auto events = kv.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, KvEventType::kBlockStored);
  EXPECT_EQ(events[0].block_hashes, a.hashes);
  EXPECT_FALSE(events[0].has_parent);
  EXPECT_EQ(events[0].token_ids, std::vector<int32_t>(prompt.begin(), prompt.begin() + 8));

  // Another prompt sharing 9 tokens hits the first two blocks.
  auto other = prompt;
  other[9] = 500;
  PrefixMatch m = kv.FindCachedPrefix(other, static_cast<int32_t>(other.size()) - 1);
  EXPECT_EQ(m.num_tokens, 8);
  EXPECT_EQ(m.blocks, std::vector<BlockId>(a.blocks.begin(), a.blocks.begin() + 2));
  // The cap keeps the last token to compute: an 8-token prompt may reuse only one block.
  EXPECT_EQ(kv.FindCachedPrefix(std::span<const int32_t>(prompt).first(8), 7).num_tokens, 4);
  // A different first block misses everything.
  auto diverged = prompt;
  diverged[0] = 999;
  EXPECT_EQ(kv.FindCachedPrefix(diverged, 9).num_tokens, 0);

  BlockTable b;
  ASSERT_TRUE(kv.Allocate(b, 10, &m));
  EXPECT_EQ(b.blocks[0], a.blocks[0]);
  EXPECT_EQ(b.blocks[1], a.blocks[1]);
  EXPECT_NE(b.blocks[2], a.blocks[2]);
  EXPECT_EQ(kv.ref_count(a.blocks[0]), 2);
  EXPECT_EQ(b.hashes, a.hashes);
  kv.Free(a);
  kv.Free(b);
  EXPECT_EQ(kv.num_free_blocks(), 16);
  EXPECT_TRUE(kv.CheckInvariants());
}

TEST(KvBlockManagerTest, FreedPrefixSurvivesUntilEvicted) {
  KvBlockManager kv = Make(4);
  const auto prompt = Tokens(1, 9);
  BlockTable a;
  ASSERT_TRUE(kv.Allocate(a, 9));
  kv.CacheFullBlocks(a, prompt, 9);
  kv.Free(a);
  EXPECT_EQ(kv.FindCachedPrefix(prompt, 8).num_tokens, 8);
  // Filling the pool with others evicts the cached blocks (tail first), with kBlockRemoved events.
  kv.TakeEvents();
  BlockTable big;
  ASSERT_TRUE(kv.Allocate(big, 16));
  EXPECT_EQ(kv.FindCachedPrefix(prompt, 8).num_tokens, 0);
  auto events = kv.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, KvEventType::kBlockRemoved);
  EXPECT_EQ(events[0].block_hashes.size(), 2u);
  kv.Free(big);
  EXPECT_TRUE(kv.CheckInvariants());
}

TEST(KvBlockManagerTest, FailedAllocationChangesNothing) {
  KvBlockManager kv = Make(4);
  const auto prompt = Tokens(1, 8);
  BlockTable a;
  ASSERT_TRUE(kv.Allocate(a, 8));
  kv.CacheFullBlocks(a, prompt, 8);
  kv.Free(a);
  // The hit blocks are free-and-cached: they count against what is left for new blocks.
  PrefixMatch m = kv.FindCachedPrefix(Tokens(1, 20), 19);
  ASSERT_EQ(m.num_tokens, 8);
  BlockTable b;
  EXPECT_FALSE(kv.Allocate(b, 20, &m));  // 5 blocks needed, 2 hits + 2 free
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_EQ(kv.num_free_blocks(), 4);
  EXPECT_TRUE(kv.Allocate(b, 16, &m));
  EXPECT_EQ(kv.num_free_blocks(), 0);
  kv.Free(b);
  EXPECT_TRUE(kv.CheckInvariants());
}

TEST(KvBlockManagerTest, ForkSharesBlocksAndHashes) {
  KvBlockManager kv = Make(8);
  const auto prompt = Tokens(1, 10);
  BlockTable a;
  ASSERT_TRUE(kv.Allocate(a, 10));
  kv.CacheFullBlocks(a, prompt, 10);
  BlockTable b;
  kv.Fork(a, 2, b);
  EXPECT_EQ(b.blocks, std::vector<BlockId>(a.blocks.begin(), a.blocks.begin() + 2));
  EXPECT_EQ(b.hashes, a.hashes);
  EXPECT_EQ(kv.ref_count(a.blocks[0]), 2);
  EXPECT_EQ(kv.ref_count(a.blocks[2]), 1);
  ASSERT_TRUE(kv.Allocate(b, 11));
  EXPECT_EQ(b.num_blocks(), 3);
  kv.Free(a);
  EXPECT_EQ(kv.ref_count(b.blocks[0]), 1);
  kv.Free(b);
  EXPECT_EQ(kv.num_free_blocks(), 8);
}

TEST(KvBlockManagerTest, DuplicateContentIsNotCachedTwice) {
  KvBlockManager kv = Make(8);
  const auto prompt = Tokens(1, 8);
  BlockTable a, b;
  ASSERT_TRUE(kv.Allocate(a, 8));
  ASSERT_TRUE(kv.Allocate(b, 8));
  kv.CacheFullBlocks(a, prompt, 8);
  kv.CacheFullBlocks(b, prompt, 8);  // computed concurrently: same hashes, not cached again
  EXPECT_EQ(kv.pool().num_cached(), 2);
  EXPECT_EQ(b.hashes, a.hashes);
  auto events = kv.TakeEvents();
  EXPECT_EQ(events.size(), 1u);
  kv.Free(a);
  kv.Free(b);
  EXPECT_TRUE(kv.CheckInvariants());
}

TEST(KvBlockManagerTest, ChainedStoredEventsCarryTheParent) {
  KvBlockManager kv = Make(8);
  const auto prompt = Tokens(1, 12);
  BlockTable a;
  ASSERT_TRUE(kv.Allocate(a, 12));
  kv.CacheFullBlocks(a, prompt, 5);  // one block so far
  kv.CacheFullBlocks(a, prompt, 12);
  auto events = kv.TakeEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].block_hashes.size(), 2u);
  EXPECT_TRUE(events[1].has_parent);
  EXPECT_EQ(events[1].parent_hash, events[0].block_hashes[0]);
  kv.Free(a);
}

TEST(KvBlockManagerTest, CachingOffStillAllocates) {
  KvBlockManager kv = Make(4, false);
  const auto prompt = Tokens(1, 8);
  BlockTable a;
  ASSERT_TRUE(kv.Allocate(a, 8));
  kv.CacheFullBlocks(a, prompt, 8);
  EXPECT_TRUE(kv.TakeEvents().empty());
  EXPECT_EQ(kv.FindCachedPrefix(prompt, 7).num_tokens, 0);
  kv.Free(a);
}

}  // namespace
}  // namespace tandem::kvcache
