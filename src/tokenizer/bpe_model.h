// Byte-pair encoding as `tokenizers`' BPE model does it: merges by rank with a heap over a linked list
// of symbols (O(n log n) in the word length), byte fallback, unknown tokens, and a word cache.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::tokenizer {

struct BpeOptions {
  // Words are raw bytes; each byte starts as the token of its byte-level character (GPT-2 style).
  bool byte_level = false;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::string unk_token;  // empty: none
};

class BpeModel {
 public:
  // `vocab[id]` is the token string (empty for an unused id). `merges` are pairs of token strings in
  // priority order.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(std::vector<std::string> vocab,
                                                          const std::vector<std::pair<std::string, std::string>>& merges,
                                                          BpeOptions options);
  // A sentencepiece-style model that merges the adjacent pair whose concatenation has the highest
  // score (llama.cpp's SPM tokenizer), used for GGUF `llama` vocabularies.
  static absl::StatusOr<std::unique_ptr<BpeModel>> CreateFromScores(std::vector<std::string> vocab,
                                                                    const std::vector<float>& scores,
                                                                    BpeOptions options);
  // tokenizer.json "model" object of type BPE.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model, bool byte_level);

  // Appends the ids of one pre-token.
  void Tokenize(std::string_view word, std::vector<TokenId>* out) const;

  int vocab_size() const { return static_cast<int>(vocab_.size()); }
  // Empty for an unknown id.
  const std::string& IdToToken(TokenId id) const;
  TokenId TokenToId(std::string_view token) const;  // -1 when absent

 private:
  struct Merge {
    int32_t rank;
    TokenId new_id;
  };
  BpeModel() = default;
  absl::Status Init();
  static uint64_t PairKey(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // The ids of the word's bytes (byte-level) or characters (with byte fallback / unk), before merging.
  void InitialSymbols(std::string_view word, std::vector<TokenId>* ids) const;
  void MergeSmall(std::vector<TokenId>* ids) const;
  void MergeLarge(std::vector<TokenId>* ids) const;
  const Merge* FindMerge(TokenId a, TokenId b) const {
    auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  }

  BpeOptions options_;
  std::vector<std::string> vocab_;
  absl::flat_hash_map<std::string, TokenId> token_to_id_;
  // Byte-level models: raw bytes of each token -> id, and the id of every single byte.
  absl::flat_hash_map<std::string, TokenId> bytes_to_id_;
  TokenId byte_ids_[256];
  TokenId byte_fallback_ids_[256];
  TokenId unk_id_ = -1;
  absl::flat_hash_map<uint64_t, Merge> merges_;

  static constexpr size_t kMaxCachedWordBytes = 64;
  static constexpr size_t kMaxCacheEntries = 100000;
  mutable std::mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<TokenId>> cache_;
};

}  // namespace tandem::tokenizer
