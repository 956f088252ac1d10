// The worker's view of its prefix cache (LoadStream), fed the KV events of a real KvBlockManager:
// how much of a prompt is cached follows stores, evictions and a clear, block by block from the
// start of the prompt, as the engine's prefix cache would find it.
#include "load_stream.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/kvcache/kv_block_manager.h"

namespace tandem::worker {
namespace {

TEST(LoadStreamTest, UncachedTokensFollowTheEnginesKvEvents) {
  const uint64_t salt = kvcache::HashSalt("m");
  kvcache::KvBlockManager cache(
      kvcache::KvBlockManagerConfig{.num_blocks = 16, .block_size = 4, .enable_prefix_caching = true, .hash_salt = salt});
  LoadStream stream(/*block_size=*/4, salt);
  std::vector<int32_t> prompt(10);
  std::iota(prompt.begin(), prompt.end(), 1);
  EXPECT_EQ(stream.UncachedTokens(prompt), 10);

  kvcache::BlockTable table;
  ASSERT_TRUE(cache.Allocate(table, 10));
  cache.CacheFullBlocks(table, prompt, 10);  // two full blocks of four
  stream.Publish(cache.TakeEvents());
  EXPECT_EQ(stream.UncachedTokens(prompt), 2);
  // Another salt (another model's hashes) finds nothing.
  EXPECT_EQ(LoadStream(4, kvcache::HashSalt("other")).UncachedTokens(prompt), 10);
  // A prompt that differs in its first block shares no prefix, though its second block matches.
  std::vector<int32_t> other = prompt;
  other[0] = 99;
  EXPECT_EQ(stream.UncachedTokens(other), 10);

  stream.Publish({kvcache::KvEvent{.type = kvcache::KvEventType::kAllCleared}});
  EXPECT_EQ(stream.UncachedTokens(prompt), 10);
}

}  // namespace
}  // namespace tandem::worker
