// The encoding pipeline of `tokenizers`: added tokens -> normalizer -> pre-tokenizer -> BPE ->
// post-processor, and decoding through the decoder chain.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "added_vocab.h"
#include "bpe_model.h"
#include "decoder.h"
#include "nlohmann/json.hpp"
#include "normalizer.h"
#include "pre_tokenizer.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::tokenizer {

struct PipelineParts {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Decoder> decoder;
  std::vector<AddedToken> added_tokens;
  // Ids the post-processor puts around a single sequence when special tokens are added.
  std::vector<TokenId> prefix_ids;
  std::vector<TokenId> suffix_ids;
};

class TokenizerImpl {
 public:
  static absl::StatusOr<std::unique_ptr<TokenizerImpl>> FromJson(const nlohmann::json& tokenizer);
  static absl::StatusOr<std::unique_ptr<TokenizerImpl>> FromParts(PipelineParts parts);

  absl::Status Encode(std::string_view text, bool add_special_tokens, std::vector<TokenId>* out) const;
  // Ids with no token are skipped, as `tokenizers` does.
  std::string Decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const;
  // nullptr for an unknown id.
  const std::string* IdToPiece(TokenId id) const;
  TokenId PieceToId(std::string_view piece) const;
  bool IsSpecial(TokenId id) const;
  bool IsAdded(TokenId id) const { return added_by_id_.contains(id); }
  int vocab_size() const { return vocab_size_; }

 private:
  TokenizerImpl() = default;
  absl::Status Init();
  void EncodeSegment(std::string_view text, bool at_start, std::vector<TokenId>* out) const;

  PipelineParts p_;
  absl::flat_hash_map<TokenId, size_t> added_by_id_;
  absl::flat_hash_map<std::string, size_t> added_by_content_;
  AddedTokenMatcher raw_matcher_;
  AddedTokenMatcher normalized_matcher_;
  int vocab_size_ = 0;
};

}  // namespace tandem::tokenizer
