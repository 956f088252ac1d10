// tokenizer.json pre-tokenizers: Split, ByteLevel, Digits, Metaspace, WhitespaceSplit, Sequence.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::tokenizer {

struct PreToken {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original input (Metaspace prepend_scheme "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits each piece further (and may rewrite its text).
  virtual void PreTokenize(std::vector<PreToken>* pieces) const = 0;
  // Whether the pipeline ends in a byte-level mapping (BPE then works on raw bytes).
  virtual bool byte_level() const { return false; }
};

// Null json yields a null pointer. Unknown types are an error naming the type.
absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& j);

// The GPT-2 regex used by ByteLevel(use_regex=true).
extern const char kGpt2Pattern[];

}  // namespace tandem::tokenizer
