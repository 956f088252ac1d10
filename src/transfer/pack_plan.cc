#include "pack_plan.h"

#include <algorithm>
#include <utility>

namespace tandem::transfer {

PackPlan MakePackPlan(std::span<const uint64_t> bytes, uint64_t pack_below, uint64_t chunk_bytes) {
  PackPlan plan;
  std::vector<std::size_t> chunk;
  uint64_t chunk_total = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] >= pack_below) {
      plan.direct.push_back(i);
      continue;
    }
    if (!chunk.empty() && chunk_total + bytes[i] > chunk_bytes) {
      plan.chunks.push_back(std::move(chunk));
      plan.largest_chunk = std::max(plan.largest_chunk, chunk_total);
      chunk.clear();
      chunk_total = 0;
    }
    chunk.push_back(i);
    chunk_total += bytes[i];
  }
  if (!chunk.empty()) {
    plan.chunks.push_back(std::move(chunk));
    plan.largest_chunk = std::max(plan.largest_chunk, chunk_total);
  }
  if (plan.chunks.size() == 1 && plan.chunks[0].size() == 1) {  // nothing to pack
    plan.direct.push_back(plan.chunks[0][0]);
    std::sort(plan.direct.begin(), plan.direct.end());
    plan.chunks.clear();
    plan.largest_chunk = 0;
  }
  return plan;
}

}  // namespace tandem::transfer
