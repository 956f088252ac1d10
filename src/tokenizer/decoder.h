// tokenizer.json decoders: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Transforms the token strings (`decode_chain` in `tokenizers`); the result is joined by the caller.
  virtual std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const = 0;
};

// Null json yields a null pointer (tokens are concatenated as they are).
absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const nlohmann::json& j);

}  // namespace tandem::tokenizer
