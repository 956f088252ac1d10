#include "tandem/transfer/block_runs.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"

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

namespace {

// Where each head lives on the source side: (rank, slot), the first rank holding it.
std::map<int, std::pair<size_t, size_t>> HeadLocations(const KvRankHeads& src) {
  std::map<int, std::pair<size_t, size_t>> where;
  for (size_t r = 0; r < src.heads.size(); ++r) {
    for (size_t i = 0; i < src.heads[r].size(); ++i) where.emplace(src.heads[r][i], std::pair{r, i});
  }
  return where;
}

}  // namespace

absl::Status CheckHandOff(const KvRankHeads& src, const KvRankHeads& dst) {
  if (src.head_bytes != dst.head_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("KV hand-off: ", src.head_bytes, "-byte head slabs here, ",
                                                   dst.head_bytes, " at the destination"));
  }
  const std::map<int, std::pair<size_t, size_t>> where = HeadLocations(src);
  std::set<int> covered;
  for (size_t d = 0; d < dst.heads.size(); ++d) {
    if (dst.heads[d].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("KV hand-off: destination rank ", d, " holds no KV head"));
    }
    for (int head : dst.heads[d]) {
      if (!where.contains(head)) {
        return absl::InvalidArgumentError(absl::StrCat("KV hand-off: destination rank ", d, " needs KV head ", head,
                                                       ", which no source rank holds"));
      }
      covered.insert(head);
    }
  }
  // A head no destination rank takes would be left unwritten there: the decode side would attend to
  // stale KV (a KV head may be on several ranks, as tensor parallelism replicates them; not on none).
  for (const auto& [head, location] : where) {
    if (!covered.contains(head)) {
      return absl::InvalidArgumentError(absl::StrCat("KV hand-off: no destination rank holds KV head ", head));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WriteOp>> HeadWrites(const std::vector<BlockRun>& runs, const KvRankHeads& src,
                                                const std::vector<RegionId>& local_regions, const KvRankHeads& dst,
                                                const std::vector<RemoteRegionId>& remote_regions) {
  TANDEM_RETURN_IF_ERROR(CheckHandOff(src, dst));
  if (local_regions.size() != src.heads.size() || remote_regions.size() != dst.heads.size()) {
    return absl::InvalidArgumentError(absl::StrCat("KV hand-off: ", src.heads.size(), " source ranks with ",
                                                   local_regions.size(), " regions; ", dst.heads.size(),
                                                   " destination ranks with ", remote_regions.size(), " regions"));
  }
  const std::map<int, std::pair<size_t, size_t>> where = HeadLocations(src);
  // A segment: destination slots [j, j + len) of rank d from source slots [i, i + len) of rank s.
  struct Segment {
    size_t d, j, s, i, len;
  };
  std::vector<Segment> segments;
  for (size_t d = 0; d < dst.heads.size(); ++d) {
    for (size_t j = 0; j < dst.heads[d].size(); ++j) {
      const auto [s, i] = where.at(dst.heads[d][j]);  // CheckHandOff: every head is there
      if (!segments.empty()) {
        Segment& last = segments.back();
        if (last.d == d && last.s == s && last.j + last.len == j && last.i + last.len == i) {
          ++last.len;
          continue;
        }
      }
      segments.push_back({d, j, s, i, 1});
    }
  }
  const size_t hb = src.head_bytes;
  std::vector<WriteOp> ops;
  for (const Segment& g : segments) {
    const size_t src_heads = src.heads[g.s].size(), dst_heads = dst.heads[g.d].size();
    const size_t src_block = 2 * src_heads * hb, dst_block = 2 * dst_heads * hb;
    if (g.len == src_heads && g.len == dst_heads) {  // whole blocks: one write per run
      for (const WriteOp& op : LayerWrites(runs, local_regions[g.s], remote_regions[g.d], src_block)) ops.push_back(op);
      continue;
    }
    for (const BlockRun& run : runs) {
      for (int64_t b = 0; b < run.count; ++b) {
        for (size_t kv = 0; kv < 2; ++kv) {  // K slab, then V slab
          ops.push_back({local_regions[g.s],
                         static_cast<size_t>(run.src_block + b) * src_block + (kv * src_heads + g.i) * hb,
                         remote_regions[g.d],
                         static_cast<size_t>(run.dst_block + b) * dst_block + (kv * dst_heads + g.j) * hb,
                         g.len * hb});
        }
      }
    }
  }
  return ops;
}

absl::StatusOr<std::vector<WriteOp>> LayerWrites(const std::vector<BlockRun>& runs, int layer, int num_layers,
                                                 const KvRankHeads& src, const std::vector<RegionId>& local_regions,
                                                 const KvRankHeads& dst,
                                                 const std::vector<RemoteRegionId>& remote_regions) {
  const size_t layers = static_cast<size_t>(num_layers);
  const size_t l = static_cast<size_t>(layer);
  if (layer < 0 || layer >= num_layers || local_regions.size() != src.heads.size() * layers ||
      remote_regions.size() != dst.heads.size() * layers) {
    return absl::InvalidArgumentError(absl::StrCat("KV hand-off: layer ", layer, " of ", num_layers, " with ",
                                                   local_regions.size(), " regions here for ", src.heads.size(),
                                                   " ranks and ", remote_regions.size(), " there for ",
                                                   dst.heads.size()));
  }
  std::vector<RegionId> local;
  for (size_t r = 0; r < src.heads.size(); ++r) local.push_back(local_regions[r * layers + l]);
  std::vector<RemoteRegionId> remote;
  for (size_t r = 0; r < dst.heads.size(); ++r) remote.push_back(remote_regions[r * layers + l]);
  return HeadWrites(runs, src, local, dst, remote);
}

}  // namespace tandem::transfer
