// The nccl transport's packing plan, on the CPU: which block runs travel as their own send and
// which are packed into which staging chunk, for the awkward cases (nothing, one block, runs that
// are not consecutive, runs that would cross a chunk boundary, sizes exactly at the thresholds), and
// on random inputs the invariants both ends of a write rely on.
#include "pack_plan.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tandem/transfer/block_runs.h"

namespace tandem::transfer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr std::size_t kBlockBytes = 64 * kKiB;  // one block of one layer (Llama-3-8B in bf16, block 16)

// The op sizes of one layer's write of src -> dst blocks, as PostWrite sees them.
std::vector<uint64_t> OpBytes(const std::vector<int64_t>& src, const std::vector<int64_t>& dst) {
  auto runs = CoalesceBlockRuns(src, dst);
  EXPECT_TRUE(runs.ok()) << runs.status();
  std::vector<uint64_t> bytes;
  for (const WriteOp& op : LayerWrites(*runs, 1, 2, kBlockBytes)) bytes.push_back(op.bytes);
  return bytes;
}

TEST(PackPlanTest, EmptyWriteHasNoGroups) {
  const PackPlan plan = MakePackPlan({}, kPackBelow, kChunkBytes);
  EXPECT_THAT(plan.direct, IsEmpty());
  EXPECT_THAT(plan.chunks, IsEmpty());
  EXPECT_EQ(plan.largest_chunk, 0u);
}

TEST(PackPlanTest, SingleBlockGoesDirect) {
  const std::vector<uint64_t> bytes = OpBytes({5}, {9});
  ASSERT_THAT(bytes, ElementsAre(kBlockBytes));
  const PackPlan plan = MakePackPlan(bytes, kPackBelow, kChunkBytes);
  EXPECT_THAT(plan.direct, ElementsAre(0u));  // packing one op would only add two copies
  EXPECT_THAT(plan.chunks, IsEmpty());
  EXPECT_EQ(plan.largest_chunk, 0u);
}

TEST(PackPlanTest, ConsecutiveBlocksAreOneRunAndOneSend) {
  const std::vector<uint64_t> bytes = OpBytes({3, 4, 5, 6}, {10, 11, 12, 13});
  ASSERT_THAT(bytes, ElementsAre(4 * kBlockBytes));
  const PackPlan plan = MakePackPlan(bytes, kPackBelow, kChunkBytes);
  EXPECT_THAT(plan.direct, ElementsAre(0u));
  EXPECT_THAT(plan.chunks, IsEmpty());
}

TEST(PackPlanTest, NonConsecutiveRunsArePackedTogether) {
  // Runs 0 -> 1, 2 -> 3, 4..5 -> 5..6 and 9 -> 20.
  const std::vector<uint64_t> bytes = OpBytes({0, 2, 4, 5, 9}, {1, 3, 5, 6, 20});
  ASSERT_THAT(bytes, ElementsAre(kBlockBytes, kBlockBytes, 2 * kBlockBytes, kBlockBytes));
  const PackPlan plan = MakePackPlan(bytes, kPackBelow, kChunkBytes);
  EXPECT_THAT(plan.direct, IsEmpty());
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_THAT(plan.chunks[0], ElementsAre(0u, 1u, 2u, 3u));
  EXPECT_EQ(plan.largest_chunk, 5 * kBlockBytes);
}

TEST(PackPlanTest, RunsAtThePackThresholdGoDirectInterleavedWithPackedOnes) {
  const std::vector<uint64_t> bytes = {3 * kMiB, kBlockBytes, kPackBelow, kPackBelow - 1, kBlockBytes};
  const PackPlan plan = MakePackPlan(bytes, kPackBelow, kChunkBytes);
  EXPECT_THAT(plan.direct, ElementsAre(0u, 2u));
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_THAT(plan.chunks[0], ElementsAre(1u, 3u, 4u));
  EXPECT_EQ(plan.largest_chunk, kBlockBytes + kPackBelow - 1 + kBlockBytes);
}

TEST(PackPlanTest, LonePackedRunAmongLargeOnesGoesDirectInOrder) {
  const std::vector<uint64_t> bytes = {3 * kMiB, kBlockBytes, 4 * kMiB};
  const PackPlan plan = MakePackPlan(bytes, kPackBelow, kChunkBytes);
  EXPECT_THAT(plan.direct, ElementsAre(0u, 1u, 2u));
  EXPECT_THAT(plan.chunks, IsEmpty());
  EXPECT_EQ(plan.largest_chunk, 0u);
}

TEST(PackPlanTest, RunThatWouldCrossAChunkBoundaryStartsTheNextChunkWhole) {
  // Chunks of 4 blocks; runs of 3, 2, 1, 4 and 1 blocks.
  const std::vector<uint64_t> bytes =
      OpBytes({0, 1, 2, 10, 11, 20, 30, 31, 32, 33, 40}, {0, 1, 2, 10, 11, 20, 30, 31, 32, 33, 40});
  ASSERT_THAT(bytes,
              ElementsAre(3 * kBlockBytes, 2 * kBlockBytes, kBlockBytes, 4 * kBlockBytes, kBlockBytes));
  const PackPlan plan = MakePackPlan(bytes, /*pack_below=*/1 * kMiB, /*chunk_bytes=*/4 * kBlockBytes);
  EXPECT_THAT(plan.direct, IsEmpty());
  // 3 + 2 > 4: the run of 2 opens chunk 2; 2 + 1 + 4 > 4: the run of 4 opens chunk 3 and fills it
  // exactly; the last block opens chunk 4.
  ASSERT_EQ(plan.chunks.size(), 4u);
  EXPECT_THAT(plan.chunks[0], ElementsAre(0u));
  EXPECT_THAT(plan.chunks[1], ElementsAre(1u, 2u));
  EXPECT_THAT(plan.chunks[2], ElementsAre(3u));
  EXPECT_THAT(plan.chunks[3], ElementsAre(4u));
  EXPECT_EQ(plan.largest_chunk, 4 * kBlockBytes);
}

TEST(PackPlanTest, RunLargerThanAChunkButBelowThePackThresholdGetsAChunkOfItsOwn) {
  // A receiver uses the writer's parameters, which need not have pack_below <= chunk_bytes.
  const std::vector<uint64_t> bytes = {kBlockBytes, 8 * kBlockBytes, kBlockBytes};
  const PackPlan plan = MakePackPlan(bytes, /*pack_below=*/1 * kMiB, /*chunk_bytes=*/4 * kBlockBytes);
  EXPECT_THAT(plan.direct, IsEmpty());
  ASSERT_EQ(plan.chunks.size(), 3u);
  EXPECT_THAT(plan.chunks[0], ElementsAre(0u));
  EXPECT_THAT(plan.chunks[1], ElementsAre(1u));
  EXPECT_THAT(plan.chunks[2], ElementsAre(2u));
  EXPECT_EQ(plan.largest_chunk, 8 * kBlockBytes);
}

TEST(PackPlanTest, ThousandScatteredBlocksFillWholeChunksOfTheDefaultSize) {
  // Every other block: no two coalesce. 64 MiB chunks hold exactly 1024 blocks of 64 KiB.
  std::vector<int64_t> src, dst;
  for (int64_t i = 0; i < 1100; ++i) {
    src.push_back(2 * i);
    dst.push_back(2 * i + 1);
  }
  const std::vector<uint64_t> bytes = OpBytes(src, dst);
  ASSERT_EQ(bytes.size(), 1100u);
  const PackPlan plan = MakePackPlan(bytes, kPackBelow, kChunkBytes);
  EXPECT_THAT(plan.direct, IsEmpty());
  ASSERT_EQ(plan.chunks.size(), 2u);
  EXPECT_EQ(plan.chunks[0].size(), 1024u);
  EXPECT_EQ(plan.chunks[1].size(), 76u);
  EXPECT_EQ(plan.chunks[1].front(), 1024u);
  EXPECT_EQ(plan.largest_chunk, kChunkBytes);
}

// What both ends rely on, for any sizes: every op is in the plan exactly once, in op order within
// each list; only small ops are packed, large ones go direct (a lone small op too); a chunk stays
// within chunk_bytes unless it is one op, and is full in the sense that the next chunk's first op
// would not have fit; largest_chunk is the largest chunk; and the plan is a function of its inputs.
TEST(PackPlanTest, RandomSizesKeepTheInvariants) {
  std::mt19937_64 rng(11);
  for (int iteration = 0; iteration < 2000; ++iteration) {
    const uint64_t pack_below = 1 + rng() % (4 * kMiB);
    const uint64_t chunk_bytes = 1 + rng() % (8 * kMiB);
    std::vector<uint64_t> bytes(rng() % 40);
    for (uint64_t& b : bytes) b = rng() % 4 == 0 ? rng() % (6 * kMiB) : kBlockBytes * (1 + rng() % 8);
    const PackPlan plan = MakePackPlan(bytes, pack_below, chunk_bytes);
    SCOPED_TRACE(::testing::Message()
                 << "iteration " << iteration << ": " << bytes.size() << " ops, pack_below " << pack_below
                 << ", chunk_bytes " << chunk_bytes);

    std::vector<int> seen(bytes.size(), 0);
    EXPECT_TRUE(std::is_sorted(plan.direct.begin(), plan.direct.end()));
    for (std::size_t i : plan.direct) {
      ASSERT_LT(i, bytes.size());
      ++seen[i];
    }
    std::size_t small_direct = 0;
    for (std::size_t i : plan.direct) small_direct += bytes[i] < pack_below ? 1 : 0;
    EXPECT_LE(small_direct, 1u);
    if (small_direct == 1) {
      EXPECT_THAT(plan.chunks, IsEmpty());
    }

    uint64_t largest = 0;
    std::size_t previous = 0;
    bool first = true;
    for (std::size_t c = 0; c < plan.chunks.size(); ++c) {
      const std::vector<std::size_t>& chunk = plan.chunks[c];
      ASSERT_FALSE(chunk.empty());
      uint64_t total = 0;
      for (std::size_t i : chunk) {
        ASSERT_LT(i, bytes.size());
        EXPECT_TRUE(first || i > previous) << "chunks are in op order";
        first = false;
        previous = i;
        ++seen[i];
        EXPECT_LT(bytes[i], pack_below);
        total += bytes[i];
      }
      if (chunk.size() > 1) {
        EXPECT_LE(total, chunk_bytes);
      }
      if (c + 1 < plan.chunks.size()) {
        EXPECT_GT(total + bytes[plan.chunks[c + 1].front()], chunk_bytes);
      }
      largest = std::max(largest, total);
    }
    EXPECT_EQ(plan.largest_chunk, largest);
    EXPECT_NE(plan.chunks.size() == 1 ? plan.chunks[0].size() : 0u, 1u) << "a lone packed op goes direct";
    for (std::size_t i = 0; i < bytes.size(); ++i) EXPECT_EQ(seen[i], 1) << "op " << i;

    const PackPlan again = MakePackPlan(bytes, pack_below, chunk_bytes);
    EXPECT_EQ(again.direct, plan.direct);
    EXPECT_EQ(again.chunks, plan.chunks);
  }
}

}  // namespace
}  // namespace tandem::transfer
