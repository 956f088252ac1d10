// How the nccl transport groups one write's ops into NCCL sends. Pure host code: the writer and
// the receiver each derive the plan from the op sizes and the two parameters the writer puts in
// the write descriptor, and must get the same one, since NCCL pairs sends and receives by order.
//
// Ops of at least `pack_below` bytes travel as they are (one ncclSend each, in the first group).
// Smaller ones travel packed: gathered into a staging buffer of at most `chunk_bytes` per NCCL
// group, sent as one message, scattered on the far side. One p2p op costs microseconds, so 64 KiB
// blocks sent one by one reach a few percent of NVLink (11 GB/s on 2 H200, vs 200 GB/s packed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace tandem::transfer {

// The writer's parameters (a receiver uses the ones in the descriptor).
inline constexpr uint64_t kPackBelow = 2ull << 20;
inline constexpr uint64_t kChunkBytes = 64ull << 20;

struct PackPlan {
  std::vector<std::size_t> direct;               // ops sent as they are, in the first group; ascending
  std::vector<std::vector<std::size_t>> chunks;  // ops packed together, one group each; ascending
  uint64_t largest_chunk = 0;                    // bytes of the largest chunk: the staging buffer's size
};

// Plans a write whose op i moves `bytes[i]` bytes. Packed ops fill chunks in op order, each op
// whole: one that would overflow the current chunk starts the next (a single op larger than
// `chunk_bytes`, possible when pack_below > chunk_bytes, gets a chunk of its own). A plan that
// would pack one op alone sends it direct instead: packing it only adds two copies.
PackPlan MakePackPlan(std::span<const uint64_t> bytes, uint64_t pack_below, uint64_t chunk_bytes);

}  // namespace tandem::transfer
