// Chained block hashes for prefix caching and KV-aware routing.
//
// A full block's hash covers its parent block's hash, its own token ids and a salt (model and
// adapter), so equal hashes mean "the same tokens after the same prefix under the same weights".
// The hash is XXH64 (a strong, fast, non-cryptographic 64-bit hash) over the little-endian bytes
// parent(8) | salt(8) | tokens(4 each); it is deterministic across processes and machines, which
// the router relies on when it compares hashes reported by different workers.
//
// Collisions: the prefix cache never trusts a hash alone. A lookup also compares the cached
// block's parent hash and its stored token ids with the request's, so a colliding block is a
// cache miss, not wrong KV. A second block that arrives with a hash already cached (the same
// content computed twice, or a true collision) is simply not cached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace tandem::kvcache {

using BlockHash = uint64_t;

// The parent hash of a sequence's first block.
inline constexpr BlockHash kRootParentHash = 0;

// XXH64 of `len` bytes at `data` with `seed`.
uint64_t Xxh64(const void* data, size_t len, uint64_t seed);

// The salt for a model (and optional adapter) name: a deployment's workers must agree on it.
uint64_t HashSalt(std::string_view model_id, std::string_view adapter_id = {});

// hash(parent, tokens, salt) of one full block.
BlockHash HashBlock(BlockHash parent, std::span<const int32_t> tokens, uint64_t salt);

// Hashes of every full block of `tokens` (a trailing partial block gets none).
std::vector<BlockHash> HashFullBlocks(std::span<const int32_t> tokens, int32_t block_size, uint64_t salt);

}  // namespace tandem::kvcache
