// tokenizer.json normalizers: NFC/NFD/NFKC/NFKD, Lowercase, Replace, Prepend, Strip, Sequence.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string Normalize(std::string text) const = 0;
};

// Null json yields a null pointer (no normalization). Unknown types are an error naming the type.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& j);

}  // namespace tandem::tokenizer

namespace tandem::tokenizer {
class Regex;
// A tokenizer.json pattern object: {"Regex": "..."} or {"String": "..."}.
absl::StatusOr<std::unique_ptr<Regex>> ParsePattern(const nlohmann::json& pattern);
}  // namespace tandem::tokenizer
