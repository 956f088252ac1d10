#include "tandem/kvcache/block_pool.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/kvcache/block_hash.h"

namespace tandem::kvcache {
namespace {

std::vector<int32_t> Tokens(int32_t start, int32_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), start);
  return t;
}

TEST(BlockHashTest, Xxh64MatchesReferenceVectors) {
  // Published XXH64 test vectors (seed 0).
  EXPECT_EQ(Xxh64("", 0, 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(Xxh64("a", 1, 0), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(Xxh64("abc", 3, 0), 0x44BC2CF5AD770999ULL);
  const char* longer = "Nobody inspects the spammish repetition";
  EXPECT_EQ(Xxh64(longer, 39, 0), 0xFBCEA83C8A378BF1ULL);
}

TEST(BlockHashTest, ChainedHashDependsOnParentTokensAndSalt) {
  const auto t = Tokens(0, 16);
  const BlockHash h = HashBlock(kRootParentHash, t, 1);
  EXPECT_EQ(h, HashBlock(kRootParentHash, t, 1));
  EXPECT_NE(h, HashBlock(kRootParentHash, t, 2));
  EXPECT_NE(h, HashBlock(h, t, 1));
  auto t2 = t;
  t2[15] = 99;
  EXPECT_NE(h, HashBlock(kRootParentHash, t2, 1));
  const auto all = Tokens(0, 40);
  const auto hashes = HashFullBlocks(all, 16, 1);
  ASSERT_EQ(hashes.size(), 2u);  // the trailing 8 tokens get none
  EXPECT_EQ(hashes[0], h);
  EXPECT_EQ(hashes[1], HashBlock(h, std::span<const int32_t>(all).subspan(16, 16), 1));
  EXPECT_NE(HashSalt("model-a"), HashSalt("model-b"));
  EXPECT_NE(HashSalt("model-a"), HashSalt("model-a", "lora-1"));
}

TEST(BlockPoolTest, AllocateAndFreeAreExact) {
  BlockPool pool(8, 4, /*enable_caching=*/true);
  std::vector<BlockId> got;
  ASSERT_TRUE(pool.Allocate(5, &got));
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_FALSE(pool.Allocate(4, &got));  // all or nothing
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(pool.num_free(), 3);
  for (BlockId id : got) EXPECT_EQ(pool.ref_count(id), 1);
  pool.Ref(got[0]);
  EXPECT_EQ(pool.ref_count(got[0]), 2);
  for (BlockId id : got) pool.Unref(id);
  EXPECT_EQ(pool.num_free(), 7);
  pool.Unref(got[0]);
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(BlockPoolTest, LookupVerifiesParentAndTokens) {
  BlockPool pool(4, 4, true);
  std::vector<BlockId> got;
  ASSERT_TRUE(pool.Allocate(1, &got));
  const auto t = Tokens(10, 4);
  const BlockHash h = HashBlock(kRootParentHash, t, 0);
  ASSERT_TRUE(pool.Cache(got[0], h, kRootParentHash, t));
  EXPECT_EQ(pool.Lookup(h, kRootParentHash, t), got[0]);
  // Same hash key but other tokens (a simulated collision) or another parent: a miss.
  EXPECT_FALSE(pool.Lookup(h, kRootParentHash, Tokens(11, 4)).has_value());
  EXPECT_FALSE(pool.Lookup(h, 12345, t).has_value());
  // A second block with the same hash is not cached.
  ASSERT_TRUE(pool.Allocate(1, &got));
  EXPECT_FALSE(pool.Cache(got[1], h, kRootParentHash, t));
  EXPECT_FALSE(pool.is_cached(got[1]));
  EXPECT_EQ(pool.num_cached(), 1);
}

TEST(BlockPoolTest, EvictsCleanBlocksFirstThenLeastRecentlyReleasedCached) {
  BlockPool pool(4, 2, true);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(4, &a));
  BlockHash hashes[3];
  for (int i = 0; i < 3; ++i) {
    const auto t = Tokens(100 * i, 2);
    hashes[i] = HashBlock(kRootParentHash, t, 0);
    ASSERT_TRUE(pool.Cache(a[i], hashes[i], kRootParentHash, t));
  }
  pool.TakeEvents();
  // Release order: cached a[1], cached a[0], clean a[3], cached a[2].
  pool.Unref(a[1]);
  pool.Unref(a[0]);
  pool.Unref(a[3]);
  pool.Unref(a[2]);
  EXPECT_EQ(pool.num_free(), 4);
  std::vector<BlockId> b;
  ASSERT_TRUE(pool.Allocate(1, &b));
  EXPECT_EQ(b[0], a[3]);  // the clean block goes first
  EXPECT_TRUE(pool.TakeEvents().empty());
  ASSERT_TRUE(pool.Allocate(1, &b));
  EXPECT_EQ(b[1], a[1]);  // then the least recently released cached one
  auto events = pool.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, KvEventType::kBlockRemoved);
  EXPECT_EQ(events[0].block_hashes, std::vector<BlockHash>{hashes[1]});
  EXPECT_FALSE(pool.Lookup(hashes[1], kRootParentHash, Tokens(100, 2)).has_value());
  // A hit on a free cached block takes it off the free list.
  const auto hit = pool.Lookup(hashes[2], kRootParentHash, Tokens(200, 2));
  ASSERT_TRUE(hit.has_value());
  pool.Ref(*hit);
  EXPECT_EQ(pool.num_free(), 1);
  ASSERT_TRUE(pool.Allocate(1, &b));
  EXPECT_EQ(b[2], a[0]);
  EXPECT_FALSE(pool.Allocate(1, &b));
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(BlockPoolTest, ResetPrefixCacheEmitsAllCleared) {
  BlockPool pool(2, 2, true);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(1, &a));
  const auto t = Tokens(0, 2);
  ASSERT_TRUE(pool.Cache(a[0], HashBlock(0, t, 0), 0, t));
  pool.ResetPrefixCache();
  EXPECT_EQ(pool.num_cached(), 0);
  EXPECT_FALSE(pool.is_cached(a[0]));
  auto events = pool.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, KvEventType::kAllCleared);
  EXPECT_TRUE(pool.CheckInvariants());
}

TEST(BlockPoolTest, CachingOffNeverCaches) {
  BlockPool pool(2, 2, false);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(1, &a));
  const auto t = Tokens(0, 2);
  EXPECT_FALSE(pool.Cache(a[0], HashBlock(0, t, 0), 0, t));
  EXPECT_FALSE(pool.Lookup(HashBlock(0, t, 0), 0, t).has_value());
}

}  // namespace
}  // namespace tandem::kvcache
