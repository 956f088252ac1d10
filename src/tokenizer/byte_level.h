// GPT-2's reversible byte <-> printable-character mapping (bytes_to_unicode).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tandem::tokenizer {

// The UTF-8 string of the character standing for byte `b`.
const std::string& ByteToChars(unsigned char b);
// The raw bytes of a byte-level string, or nullopt if it contains a character outside the mapping.
std::optional<std::string> ByteLevelToBytes(std::string_view s);

}  // namespace tandem::tokenizer
