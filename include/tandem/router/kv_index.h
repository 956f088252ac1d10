// The router's view of each worker's prefix cache: the block hashes it holds, kept from the
// worker's KV events (stored / removed / all cleared), and how many leading blocks of a prompt
// each worker could reuse. Not thread-safe; Router guards it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/kvcache/kv_events.h"

namespace tandem::router {

class KvIndex {
 public:
  void AddWorker(const std::string& worker_id);
  void RemoveWorker(const std::string& worker_id);
  // Applies one event of `worker_id` (ignored for a worker not added).
  void Apply(const std::string& worker_id, const kvcache::KvEvent& event);

  // Leading blocks of `prompt_hashes` (a chain, as from kvcache::HashFullBlocks) the worker holds.
  int64_t MatchedPrefixBlocks(const std::string& worker_id,
                              std::span<const kvcache::BlockHash> prompt_hashes) const;
  int64_t NumBlocks(const std::string& worker_id) const;

 private:
  absl::flat_hash_map<std::string, absl::flat_hash_set<kvcache::BlockHash>> blocks_;
};

}  // namespace tandem::router
