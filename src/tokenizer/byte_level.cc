#include "byte_level.h"

#include <array>

#include "absl/container/flat_hash_map.h"
#include "utf8.h"

namespace tandem::tokenizer {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_chars;
  absl::flat_hash_map<char32_t, unsigned char> char_to_byte;
  Tables() {
    std::array<bool, 256> direct{};
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      char32_t cp = direct[b] ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      AppendUtf8(cp, &byte_to_chars[b]);
      char_to_byte[cp] = static_cast<unsigned char>(b);
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

const std::string& ByteToChars(unsigned char b) { return GetTables().byte_to_chars[b]; }

std::optional<std::string> ByteLevelToBytes(std::string_view s) {
  const auto& t = GetTables();
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    char32_t cp = DecodeUtf8(s, i, &len);
    auto it = t.char_to_byte.find(cp);
    if (it == t.char_to_byte.end()) return std::nullopt;
    out.push_back(static_cast<char>(it->second));
    i += len;
  }
  return out;
}

}  // namespace tandem::tokenizer
