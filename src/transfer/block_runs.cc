#include "tandem/transfer/block_runs.h"

#include "absl/strings/str_cat.h"

namespace tandem::transfer {

absl::StatusOr<std::vector<BlockRun>> CoalesceBlockRuns(const std::vector<int64_t>& src_blocks,
                                                        const std::vector<int64_t>& dst_blocks) {
  if (src_blocks.size() != dst_blocks.size()) {
    return absl::InvalidArgumentError(absl::StrCat("block lists differ in length: ", src_blocks.size(),
                                                   " source vs ", dst_blocks.size(), " destination blocks"));
  }
  std::vector<BlockRun> runs;
  for (std::size_t i = 0; i < src_blocks.size(); ++i) {
    if (src_blocks[i] < 0 || dst_blocks[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("negative block id at index ", i, ": ", src_blocks[i], " -> ", dst_blocks[i]));
    }
    if (!runs.empty()) {
      BlockRun& last = runs.back();
      if (src_blocks[i] == last.src_block + last.count && dst_blocks[i] == last.dst_block + last.count) {
        ++last.count;
        continue;
      }
    }
    runs.push_back({src_blocks[i], dst_blocks[i], 1});
  }
  return runs;
}

std::vector<WriteOp> LayerWrites(const std::vector<BlockRun>& runs, RegionId local_layer_region,
                                 RemoteRegionId remote_layer_region, std::size_t block_bytes) {
  std::vector<WriteOp> ops;
  ops.reserve(runs.size());
  for (const BlockRun& run : runs) {
    ops.push_back({local_layer_region, static_cast<std::size_t>(run.src_block) * block_bytes, remote_layer_region,
                   static_cast<std::size_t>(run.dst_block) * block_bytes,
                   static_cast<std::size_t>(run.count) * block_bytes});
  }
  return ops;
}

}  // namespace tandem::transfer
