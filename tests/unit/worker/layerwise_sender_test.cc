// LayerwiseKvSender over the real `local` transport (whose writes land at once, so each layer's
// arrival can be checked at the moment it is reported): layer L of the blocks a chunk completed leaves
// when layer L is reported, never a block of the decode worker's cached prefix, never a partial block
// before the final chunk; the notification comes with the final chunk's last layer only; a sequence
// whose chunks stop following each other (preemption) falls back to the caller's full send.
#include "layerwise_sender.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/transfer/local_transport.h"

namespace tandem::worker {
namespace {

constexpr int kLayers = 3;
constexpr int kBlockSize = 4;  // tokens per block
constexpr int kBlockBytes = 32;
constexpr int kBlocks = 16;
// One KV head: a block is its K slab and its V slab of 16 bytes each.
const transfer::KvRankHeads kHeads = {{{0}}, kBlockBytes / 2};

// Two pools of kLayers x kBlocks blocks; source byte = (layer, block) tag, destination zeroed.
class LayerwiseSenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int l = 0; l < kLayers; ++l) {
      src_[l].resize(kBlocks * kBlockBytes);
      dst_[l].assign(kBlocks * kBlockBytes, 0);
      for (int b = 0; b < kBlocks; ++b) std::memset(&src_[l][b * kBlockBytes], Tag(l, b), kBlockBytes);
      auto r = src_t_.RegisterMemory({src_[l].data(), src_[l].size(), backend::MemoryKind::kHost, -1});
      ASSERT_TRUE(r.ok());
      local_.push_back(*r);
      auto d = dst_t_.RegisterMemory({dst_[l].data(), dst_[l].size(), backend::MemoryKind::kHost, -1});
      ASSERT_TRUE(d.ok());
      auto descriptor = dst_t_.ExportRegion(*d);
      ASSERT_TRUE(descriptor.ok());
      descriptors_.push_back(*descriptor);
    }
    auto address = dst_t_.LocalAddress();
    ASSERT_TRUE(address.ok());
    auto peer = src_t_.Connect(*address);
    ASSERT_TRUE(peer.ok());
    peer_ = *peer;
    for (const std::string& d : descriptors_) {
      auto remote = src_t_.ImportRegion(peer_, d);
      ASSERT_TRUE(remote.ok());
      remote_.push_back(*remote);
    }
    sender_ = std::make_unique<LayerwiseKvSender>(&src_t_, local_, kHeads, kBlockSize);
  }

  static char Tag(int layer, int block) { return static_cast<char>(1 + layer * kBlocks + block); }

  // The byte at destination block `block` of `layer` (0: nothing written).
  char Dst(int layer, int block) const { return dst_[layer][static_cast<size_t>(block) * kBlockBytes]; }

  KvDestination Destination(int64_t tokens, std::vector<int64_t> dst_blocks, int64_t first_block) {
    KvDestination d;
    d.peer = peer_;
    d.layers = remote_;
    d.heads = kHeads;
    d.dst_blocks = std::move(dst_blocks);
    d.num_tokens = tokens;
    d.first_block = first_block;
    d.notification = "kv-done:r";
    return d;
  }

  // One step of the prefill-only sequence "r": `count` tokens from `start`, with its block table.
  engine::StepPlan Step(int32_t start, int32_t count, const std::vector<kvcache::BlockId>& table) {
    tokens_.assign(static_cast<size_t>(count), 7);
    table_ = table;
    engine::StepPlan plan;
    engine::ExecSequence local;  // a local sequence in the same step is not streamed
    local.token_ids = tokens_;
    local.block_table = other_table_;
    local.request_id = "other";
    plan.seqs.push_back(local);
    engine::ExecSequence s;
    s.token_ids = tokens_;
    s.start_position = start;
    s.block_table = table_;
    s.request_id = "r";
    s.kv_role = engine::KvRole::kPrefillOnly;
    plan.seqs.push_back(s);
    return plan;
  }

  transfer::LocalTransport src_t_, dst_t_;
  std::vector<char> src_[kLayers], dst_[kLayers];
  std::vector<transfer::RegionId> local_;
  std::vector<std::string> descriptors_;
  std::vector<transfer::RemoteRegionId> remote_;
  transfer::PeerId peer_ = 0;
  std::unique_ptr<LayerwiseKvSender> sender_;
  std::vector<int32_t> tokens_;
  std::vector<kvcache::BlockId> table_;
  std::vector<kvcache::BlockId> other_table_ = {15};
};

TEST_F(LayerwiseSenderTest, EachLayerLeavesWhenReportedAndTheNoticeComesWithTheLast) {
  // 18 tokens = 5 blocks (the last one partial); the decode worker has block 0 cached (first block
  // 1). Source blocks 2 6 7 8 9 go to destination blocks 10 11 12 5 6.
  const std::vector<kvcache::BlockId> table = {2, 6, 7, 8, 9};
  ASSERT_TRUE(sender_->Start("r", Destination(18, {10, 11, 12, 5, 6}, 1)).ok());
  // Chunk 1: tokens [0, 10): blocks 0, 1 full (block 0 is the decode worker's), block 2 partial.
  const engine::StepPlan one = Step(0, 10, {2, 6, 7});
  for (int l = 0; l < kLayers; ++l) {
    sender_->OnLayerDone(one, l);
    EXPECT_EQ(Dst(l, 11), Tag(l, 6)) << "layer " << l << ": its full block left when reported";
    EXPECT_EQ(Dst(l, 10), 0) << "the decode worker's cached block is never sent";
    EXPECT_EQ(Dst(l, 12), 0) << "a partial block waits";
    if (l + 1 < kLayers) {
      EXPECT_EQ(Dst(l + 1, 11), 0) << "layer " << l + 1 << " left early";
    }
  }
  EXPECT_TRUE(dst_t_.TakeNotifications().empty());
  // Chunk 2 (final): tokens [10, 18): blocks 2, 3 full, 4 partial, all go now.
  const engine::StepPlan two = Step(10, 8, table);
  for (int l = 0; l < kLayers; ++l) {
    sender_->OnLayerDone(two, l);
    EXPECT_EQ(Dst(l, 12), Tag(l, 7));
    EXPECT_EQ(Dst(l, 5), Tag(l, 8));
    EXPECT_EQ(Dst(l, 6), Tag(l, 9));
    const std::vector<std::string> notes = dst_t_.TakeNotifications();
    if (l + 1 < kLayers) {
      EXPECT_TRUE(notes.empty()) << "notified before layer " << kLayers - 1;
    } else {
      EXPECT_EQ(notes, std::vector<std::string>{"kv-done:r"});
    }
  }
  const LayerwiseKvSender::Result r = sender_->Finish("r", 1000);
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.complete);
  for (int l = 0; l < kLayers; ++l) EXPECT_EQ(Dst(l, 10), 0);
  // Forgotten: a later step of the same id streams nothing; Finish says it is unknown.
  sender_->OnLayerDone(Step(0, 4, {3}), 0);
  EXPECT_EQ(sender_->Finish("r", 1000).status.code(), absl::StatusCode::kNotFound);
}

TEST_F(LayerwiseSenderTest, PrefixAlreadyComputedHereLeavesWithTheFirstChunk) {
  // The prefill worker's own prefix cache covered tokens [0, 8): the first chunk starts at 8, and
  // blocks 0 and 1 go with it (the decode worker has nothing cached).
  ASSERT_TRUE(sender_->Start("r", Destination(12, {4, 5, 6}, 0)).ok());
  const engine::StepPlan only = Step(8, 4, {1, 2, 3});
  for (int l = 0; l < kLayers; ++l) sender_->OnLayerDone(only, l);
  for (int l = 0; l < kLayers; ++l) {
    EXPECT_EQ(Dst(l, 4), Tag(l, 1));
    EXPECT_EQ(Dst(l, 5), Tag(l, 2));
    EXPECT_EQ(Dst(l, 6), Tag(l, 3));
  }
  EXPECT_EQ(dst_t_.TakeNotifications().size(), 1u);
  EXPECT_TRUE(sender_->Finish("r", 1000).complete);
}

TEST_F(LayerwiseSenderTest, ARecomputedSequenceFallsBackToTheFullSend) {
  ASSERT_TRUE(sender_->Start("r", Destination(16, {4, 5, 6, 7}, 0)).ok());
  const engine::StepPlan one = Step(0, 8, {1, 2});
  for (int l = 0; l < kLayers; ++l) sender_->OnLayerDone(one, l);
  // Preempted: recomputed from the start into other blocks. Nothing more is streamed, no notice.
  const engine::StepPlan again = Step(0, 16, {9, 10, 11, 12});
  for (int l = 0; l < kLayers; ++l) sender_->OnLayerDone(again, l);
  EXPECT_EQ(Dst(0, 6), 0);
  EXPECT_TRUE(dst_t_.TakeNotifications().empty());
  const LayerwiseKvSender::Result r = sender_->Finish("r", 1000);
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.complete);
}

TEST_F(LayerwiseSenderTest, BadDestinationsAndDuplicateIdsAreRefused) {
  EXPECT_EQ(sender_->Start("r", Destination(18, {1, 2}, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sender_->Start("r", Destination(8, {1, 2}, 3)).code(), absl::StatusCode::kInvalidArgument);
  KvDestination fewer_layers = Destination(8, {1, 2}, 0);
  fewer_layers.layers.pop_back();
  EXPECT_EQ(sender_->Start("r", fewer_layers).code(), absl::StatusCode::kInvalidArgument);
  KvDestination other_heads = Destination(8, {1, 2}, 0);  // a decode rank holding a head this pool lacks
  other_heads.heads = {{{1}}, kBlockBytes / 2};
  const absl::Status refused = sender_->Start("r", other_heads);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(), "KV hand-off: destination rank 0 needs KV head 1, which no source rank holds");
  ASSERT_TRUE(sender_->Start("r", Destination(8, {1, 2}, 0)).ok());
  EXPECT_EQ(sender_->Start("r", Destination(8, {1, 2}, 0)).code(), absl::StatusCode::kAlreadyExists);
  const LayerwiseKvSender::Result r = sender_->Finish("r", 1000);
  EXPECT_TRUE(r.status.ok());
  EXPECT_FALSE(r.complete) << "no step ran it";
}

}  // namespace
}  // namespace tandem::worker
