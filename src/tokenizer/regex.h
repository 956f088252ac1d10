// A compiled PCRE2 pattern (UTF + UCP, JIT when available) that lists non-overlapping matches.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::tokenizer {

class Regex {
 public:
  // `pattern` uses the Oniguruma/Rust-regex syntax of tokenizer.json, which PCRE2 accepts for the
  // constructs real tokenizers use (look-ahead, \p{..}, inline (?i:...)).
  // With `literal`, the pattern is a plain string to find.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(const std::string& pattern, bool literal = false);
  ~Regex();

  // Appends [start, end) byte ranges of all non-overlapping matches in `text` (valid UTF-8).
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

 private:
  Regex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::tokenizer
