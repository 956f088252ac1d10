#include "tandem/kvcache/block_hash.h"

#include <cstring>

namespace tandem::kvcache {
namespace {

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ULL;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t Read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86-64, aarch64)
}

inline uint32_t Read32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline uint64_t Round(uint64_t acc, uint64_t input) {
  acc += input * kPrime2;
  acc = Rotl(acc, 31);
  return acc * kPrime1;
}

inline uint64_t MergeRound(uint64_t acc, uint64_t val) {
  acc ^= Round(0, val);
  return acc * kPrime1 + kPrime4;
}

}  // namespace

uint64_t Xxh64(const void* data, size_t len, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* const end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = seed + kPrime1 + kPrime2;
    uint64_t v2 = seed + kPrime2;
    uint64_t v3 = seed;
    uint64_t v4 = seed - kPrime1;
    const unsigned char* const limit = end - 32;
    do {
      v1 = Round(v1, Read64(p));
      v2 = Round(v2, Read64(p + 8));
      v3 = Round(v3, Read64(p + 16));
      v4 = Round(v4, Read64(p + 24));
      p += 32;
    } while (p <= limit);
    h = Rotl(v1, 1) + Rotl(v2, 7) + Rotl(v3, 12) + Rotl(v4, 18);
    h = MergeRound(h, v1);
    h = MergeRound(h, v2);
    h = MergeRound(h, v3);
    h = MergeRound(h, v4);
  } else {
    h = seed + kPrime5;
  }
  h += static_cast<uint64_t>(len);
  while (p + 8 <= end) {
    h ^= Round(0, Read64(p));
    h = Rotl(h, 27) * kPrime1 + kPrime4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= static_cast<uint64_t>(Read32(p)) * kPrime1;
    h = Rotl(h, 23) * kPrime2 + kPrime3;
    p += 4;
  }
  while (p < end) {
    h ^= static_cast<uint64_t>(*p) * kPrime5;
    h = Rotl(h, 11) * kPrime1;
    ++p;
  }
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

uint64_t HashSalt(std::string_view model_id, std::string_view adapter_id) {
  const uint64_t model = Xxh64(model_id.data(), model_id.size(), 0);
  return Xxh64(adapter_id.data(), adapter_id.size(), model);
}

BlockHash HashBlock(BlockHash parent, std::span<const int32_t> tokens, uint64_t salt) {
  // parent(8) | salt(8) | tokens(4 each), built on the stack for the usual block sizes.
  constexpr size_t kStackTokens = 64;
  unsigned char stack[16 + 4 * kStackTokens];
  std::vector<unsigned char> heap;
  unsigned char* buf = stack;
  const size_t len = 16 + 4 * tokens.size();
  if (tokens.size() > kStackTokens) {
    heap.resize(len);
    buf = heap.data();
  }
  std::memcpy(buf, &parent, 8);
  std::memcpy(buf + 8, &salt, 8);
  if (!tokens.empty()) std::memcpy(buf + 16, tokens.data(), 4 * tokens.size());
  return Xxh64(buf, len, 0);
}

std::vector<BlockHash> HashFullBlocks(std::span<const int32_t> tokens, int32_t block_size, uint64_t salt) {
  std::vector<BlockHash> hashes;
  const size_t full = tokens.size() / static_cast<size_t>(block_size);
  hashes.reserve(full);
  BlockHash parent = kRootParentHash;
  for (size_t i = 0; i < full; ++i) {
    parent = HashBlock(parent, tokens.subspan(i * block_size, block_size), salt);
    hashes.push_back(parent);
  }
  return hashes;
}

}  // namespace tandem::kvcache
