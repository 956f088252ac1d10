// KV hand-off between pools of different tensor-parallel widths (block_runs.h HeadWrites), applied to
// real byte buffers: every destination rank's block ends up holding exactly the K and V of the heads
// it lists, taken from the source rank that holds them — prefill TP 2 -> decode TP 1, TP 1 -> TP 2,
// replicated and expanded heads — whole blocks when both sides match, and a clear refusal when a
// destination head exists on no source rank.
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "tandem/transfer/block_runs.h"

namespace tandem::transfer {
namespace {

constexpr std::size_t kHeadBytes = 4;  // one head's slab of one block (block_size x head_dim x element)
constexpr int kBlocks = 6;

// The byte a pool holds for (block, kv, model head, offset in the slab): what a prefill computed.
uint8_t Value(int64_t block, int kv, int head, std::size_t i) {
  return static_cast<uint8_t>(block * 37 + kv * 11 + head * 5 + static_cast<int>(i));
}

// Each rank's pool of one layer, filled with Value() for the heads it lists (or zero).
std::vector<std::vector<uint8_t>> Pools(const KvRankHeads& side, bool fill) {
  std::vector<std::vector<uint8_t>> pools;
  for (const std::vector<int>& heads : side.heads) {
    const std::size_t block = 2 * heads.size() * side.head_bytes;
    std::vector<uint8_t> pool(block * kBlocks, 0);
    for (int64_t b = 0; fill && b < kBlocks; ++b) {
      for (int kv = 0; kv < 2; ++kv) {
        for (std::size_t j = 0; j < heads.size(); ++j) {
          for (std::size_t i = 0; i < side.head_bytes; ++i) {
            pool[b * block + (kv * heads.size() + j) * side.head_bytes + i] = Value(b, kv, heads[j], i);
          }
        }
      }
    }
    pools.push_back(pool);
  }
  return pools;
}

// Moves blocks src_ids -> dst_ids of one layer from `src` to `dst` with HeadWrites and checks every
// destination slot; returns the number of writes.
std::size_t HandOff(const KvRankHeads& src, const KvRankHeads& dst) {
  const std::vector<int64_t> src_ids = {0, 1, 2, 4}, dst_ids = {3, 4, 5, 0};
  auto runs = CoalesceBlockRuns(src_ids, dst_ids);
  EXPECT_TRUE(runs.ok());
  std::vector<std::vector<uint8_t>> src_pools = Pools(src, true), dst_pools = Pools(dst, false);
  std::vector<RegionId> local;
  for (std::size_t r = 0; r < src.heads.size(); ++r) local.push_back(100 + r);
  std::vector<RemoteRegionId> remote;
  for (std::size_t r = 0; r < dst.heads.size(); ++r) remote.push_back(200 + r);
  auto ops = HeadWrites(*runs, src, local, dst, remote);
  EXPECT_TRUE(ops.ok()) << ops.status();
  if (!ops.ok()) return 0;
  for (const WriteOp& op : *ops) {
    const auto& from = src_pools.at(op.local_region - 100);
    auto& to = dst_pools.at(op.remote_region - 200);
    EXPECT_LE(op.local_offset + op.bytes, from.size());
    EXPECT_LE(op.remote_offset + op.bytes, to.size());
    std::memcpy(to.data() + op.remote_offset, from.data() + op.local_offset, op.bytes);
  }
  for (std::size_t d = 0; d < dst.heads.size(); ++d) {
    const std::vector<int>& heads = dst.heads[d];
    const std::size_t block = 2 * heads.size() * dst.head_bytes;
    for (std::size_t n = 0; n < src_ids.size(); ++n) {
      for (int kv = 0; kv < 2; ++kv) {
        for (std::size_t j = 0; j < heads.size(); ++j) {
          for (std::size_t i = 0; i < dst.head_bytes; ++i) {
            EXPECT_EQ(dst_pools[d][dst_ids[n] * block + (kv * heads.size() + j) * dst.head_bytes + i],
                      Value(src_ids[n], kv, heads[j], i))
                << "rank " << d << " block " << dst_ids[n] << " kv " << kv << " slot " << j;
          }
        }
      }
    }
  }
  return ops->size();
}

TEST(HeadWrites, PrefillTp2ToDecodeTp1) {
  // SmolLM2's 3 KV heads: ranks hold {0, 1} and {2}; one decode rank holds all three.
  EXPECT_GT(HandOff({{{0, 1}, {2}}, kHeadBytes}, {{{0, 1, 2}}, kHeadBytes}), 0u);
}

TEST(HeadWrites, PrefillTp1ToDecodeTp2AndReplicatedHeads) {
  HandOff({{{0, 1, 2}}, kHeadBytes}, {{{0, 1}, {2}}, kHeadBytes});
  // TP 4 with 3 KV heads: {0}, {1}, {1, 2}, {2} (head 1 and 2 replicated on two ranks each).
  HandOff({{{0, 1}, {2}}, kHeadBytes}, {{{0}, {1}, {1, 2}, {2}}, kHeadBytes});
  // An expanded rank (one KV head per query head) on the receiving side.
  HandOff({{{0, 1}}, kHeadBytes}, {{{0, 1, 1}, {1}}, kHeadBytes});
}

TEST(HeadWrites, SameHeadsMoveWholeBlockRuns) {
  const KvRankHeads tp2 = {{{0, 1}, {2, 3}}, kHeadBytes};
  // Runs {0,1,2}->{3,4,5} and {4}->{0}: two writes per rank.
  EXPECT_EQ(HandOff(tp2, tp2), 4u);
}

TEST(HeadWrites, MissingHeadIsRefused) {
  auto ops = HeadWrites({}, {{{0, 1}}, kHeadBytes}, {1}, {{{0}, {2}}, kHeadBytes}, {2, 3});
  ASSERT_FALSE(ops.ok());
  EXPECT_EQ(ops.status().message(), "KV hand-off: destination rank 1 needs KV head 2, which no source rank holds");
  EXPECT_ERROR(HeadWrites({}, {{{0}}, kHeadBytes}, {1}, {{{0}}, 2 * kHeadBytes}, {2}),
               absl::StatusCode::kInvalidArgument,
               "KV hand-off: 4-byte head slabs here, 8 at the destination");  // slab sizes differ
}

// A destination layout that would leave a head unwritten, or a rank with nothing to receive, is refused
// before any write (what a decode worker's malformed or hostile RemotePrefill request could declare).
TEST(HeadWrites, DestinationMustTakeEveryHead) {
  EXPECT_ERROR(HeadWrites({}, {{{0, 1, 2}}, kHeadBytes}, {1}, {{{0}, {1}}, kHeadBytes}, {2, 3}),
               absl::StatusCode::kInvalidArgument, "KV hand-off: no destination rank holds KV head 2");
  EXPECT_ERROR(HeadWrites({}, {{{0, 1}}, kHeadBytes}, {1}, {{{0, 1}, {}}, kHeadBytes}, {2, 3}),
               absl::StatusCode::kInvalidArgument, "KV hand-off: destination rank 1 holds no KV head");
}

TEST(HeadWrites, LayerWritesPickEachRanksRegionOfTheLayer) {
  // Three layers, rank-major region lists as workers export them: [rank * num_layers + layer].
  const KvRankHeads src = {{{0, 1}, {2}}, kHeadBytes}, dst = {{{0, 1, 2}}, kHeadBytes};
  const std::vector<RegionId> local = {10, 11, 12, 20, 21, 22};
  const std::vector<RemoteRegionId> remote = {30, 31, 32};
  const std::vector<BlockRun> runs = *CoalesceBlockRuns({0, 1}, {4, 5});
  auto layer1 = LayerWrites(runs, 1, 3, src, local, dst, remote);
  auto expected = HeadWrites(runs, src, {11, 21}, dst, {31});
  ASSERT_TRUE(layer1.ok() && expected.ok());
  ASSERT_EQ(layer1->size(), expected->size());
  for (std::size_t i = 0; i < layer1->size(); ++i) {
    EXPECT_EQ((*layer1)[i].local_region, (*expected)[i].local_region);
    EXPECT_EQ((*layer1)[i].remote_region, (*expected)[i].remote_region);
    EXPECT_EQ((*layer1)[i].local_offset, (*expected)[i].local_offset);
    EXPECT_EQ((*layer1)[i].remote_offset, (*expected)[i].remote_offset);
    EXPECT_EQ((*layer1)[i].bytes, (*expected)[i].bytes);
  }
  EXPECT_ERROR(LayerWrites(runs, 3, 3, src, local, dst, remote), absl::StatusCode::kInvalidArgument,
               "KV hand-off: layer 3 of 3");
  EXPECT_ERROR(LayerWrites(runs, 0, 3, src, {10, 11, 12}, dst, remote), absl::StatusCode::kInvalidArgument,
               "3 regions here for 2 ranks");
}

}  // namespace
}  // namespace tandem::transfer
