// Turning "these source blocks into these destination blocks" into transport writes.
// KV layout (docs/architecture.md): one pool per layer, kv[layer]: [num_blocks, 2 (K,V), kv_heads, block_size,
// head_dim], so one block of one layer is one contiguous range of `block_bytes`, and runs of
// consecutive block ids on both sides coalesce into one write.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/transfer/kv_transport.h"

namespace tandem::transfer {

struct BlockRun {
  int64_t src_block = 0;
  int64_t dst_block = 0;
  int64_t count = 0;
};

// Pairs src[i] -> dst[i] and merges consecutive pairs where both ids advance by one.
// Errors if the lists differ in length or hold a negative id.
absl::StatusOr<std::vector<BlockRun>> CoalesceBlockRuns(const std::vector<int64_t>& src_blocks,
                                                        const std::vector<int64_t>& dst_blocks);

// The writes that move `runs` of one layer, whose pools are the given local and remote regions.
std::vector<WriteOp> LayerWrites(const std::vector<BlockRun>& runs, RegionId local_layer_region,
                                 RemoteRegionId remote_layer_region, std::size_t block_bytes);

// One worker's KV pools under tensor parallelism: rank r's pool of a layer holds the model's KV heads
// heads[r] in slot order, each block [2 (K, V), heads[r].size(), block_size, head_dim], each head's
// slab of one block `head_bytes` = block_size * head_dim * element size. A worker at tensor_parallel 1
// is one rank holding every head in order.
struct KvRankHeads {
  std::vector<std::vector<int>> heads;
  std::size_t head_bytes = 0;
};

// OK when `dst`'s ranks can be filled from `src`'s: the same head slab size; every destination rank
// lists at least one head, each held by some source rank (a rank may list one twice: an expanded pool
// with one KV head per query head); and every head the source holds goes to some destination rank,
// so none is left unwritten there (InvalidArgument naming the first violation).
absl::Status CheckHandOff(const KvRankHeads& src, const KvRankHeads& dst);

// The writes that move `runs` of one layer between pools whose ranks hold different heads (prefill
// TP 2 -> decode TP 1, TP 1 -> TP 2, ...): each destination rank's slot j receives its head straight
// from the first source rank holding it, consecutive slots from consecutive source slots in one write.
// `local_regions[r]` / `remote_regions[r]`: rank r's region of this layer on each side.
// InvalidArgument when CheckHandOff fails or the region lists do not match the ranks.
absl::StatusOr<std::vector<WriteOp>> HeadWrites(const std::vector<BlockRun>& runs, const KvRankHeads& src,
                                                const std::vector<RegionId>& local_regions, const KvRankHeads& dst,
                                                const std::vector<RemoteRegionId>& remote_regions);

// HeadWrites for layer `layer` of pools registered one region per layer and rank: `local_regions` and
// `remote_regions` list every rank's regions rank-major ([rank * num_layers + layer]), as workers
// export them. What every sender of a prefill's blocks posts, layer by layer.
absl::StatusOr<std::vector<WriteOp>> LayerWrites(const std::vector<BlockRun>& runs, int layer, int num_layers,
                                                 const KvRankHeads& src, const std::vector<RegionId>& local_regions,
                                                 const KvRankHeads& dst,
                                                 const std::vector<RemoteRegionId>& remote_regions);

}  // namespace tandem::transfer
