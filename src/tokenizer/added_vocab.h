// Added tokens (special and user-defined): found in the text before pre-tokenization by
// leftmost-longest matching, honouring single_word, lstrip and rstrip as `tokenizers` does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::tokenizer {

struct AddedToken {
  std::string content;
  TokenId id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

struct AddedMatch {
  size_t start;
  size_t end;
  TokenId id;
};

// A byte trie over a set of added tokens.
class AddedTokenMatcher {
 public:
  // `patterns[i]` is the text to look for (the normalized content for normalized tokens).
  void Build(const std::vector<std::string>& patterns, const std::vector<const AddedToken*>& tokens);
  bool empty() const { return tokens_.empty(); }
  // All matches in `text`, after the single_word/lstrip/rstrip rules, in order and non-overlapping.
  std::vector<AddedMatch> FindMatches(std::string_view text) const;

 private:
  // Longest pattern starting at the leftmost position >= `from`; false when none.
  bool FindLeftmostLongest(std::string_view text, size_t from, size_t* start, size_t* end, int* index) const;

  std::vector<const AddedToken*> tokens_;
  absl::flat_hash_map<uint64_t, int> edges_;  // (node << 8 | byte) -> node
  std::vector<int> terminal_;                 // node -> token index or -1
  bool first_byte_[256] = {};
};

}  // namespace tandem::tokenizer
