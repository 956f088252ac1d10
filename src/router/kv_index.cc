#include "tandem/router/kv_index.h"

namespace tandem::router {

void KvIndex::AddWorker(const std::string& worker_id) { blocks_.try_emplace(worker_id); }

void KvIndex::RemoveWorker(const std::string& worker_id) { blocks_.erase(worker_id); }

void KvIndex::Apply(const std::string& worker_id, const kvcache::KvEvent& event) {
  auto it = blocks_.find(worker_id);
  if (it == blocks_.end()) return;
  absl::flat_hash_set<kvcache::BlockHash>& held = it->second;
  switch (event.type) {
    case kvcache::KvEventType::kBlockStored:
      held.insert(event.block_hashes.begin(), event.block_hashes.end());
      return;
    case kvcache::KvEventType::kBlockRemoved:
      for (kvcache::BlockHash h : event.block_hashes) held.erase(h);
      return;
    case kvcache::KvEventType::kAllCleared:
      held.clear();
      return;
  }
}

int64_t KvIndex::MatchedPrefixBlocks(const std::string& worker_id,
                                     std::span<const kvcache::BlockHash> prompt_hashes) const {
  auto it = blocks_.find(worker_id);
  if (it == blocks_.end()) return 0;
  // A worker reuses blocks only as an unbroken chain from the first one.
  int64_t matched = 0;
  for (kvcache::BlockHash h : prompt_hashes) {
    if (!it->second.contains(h)) break;
    ++matched;
  }
  return matched;
}

int64_t KvIndex::NumBlocks(const std::string& worker_id) const {
  auto it = blocks_.find(worker_id);
  return it == blocks_.end() ? 0 : static_cast<int64_t>(it->second.size());
}

}  // namespace tandem::router
