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

}  // namespace tandem::transfer
