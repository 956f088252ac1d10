#include "utf8.h"

#include <utf8proc.h>

namespace tandem::tokenizer {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

bool IsCont(unsigned char c) { return (c & 0xC0) == 0x80; }

// Number of bytes of the longest valid prefix of a sequence starting at s[pos] (a "maximal subpart"),
// and whether the sequence is complete. Returns the full length for a complete character.
size_t ValidSubpart(std::string_view s, size_t pos, bool* complete) {
  *complete = false;
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    *complete = true;
    return 1;
  }
  size_t width = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    width = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    width = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    width = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  size_t n = 1;
  for (; n < width; ++n) {
    if (pos + n >= s.size()) return n;  // truncated: incomplete
    const auto c = static_cast<unsigned char>(s[pos + n]);
    if (n == 1 ? (c < lo || c > hi) : !IsCont(c)) return n;
  }
  *complete = true;
  return width;
}

}  // namespace

size_t Utf8SequenceLength(std::string_view s, size_t pos) {
  bool complete = false;
  size_t n = ValidSubpart(s, pos, &complete);
  return complete ? n : 0;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Only the last up-to-3 bytes can be an incomplete sequence.
  size_t start = s.size() >= 3 ? s.size() - 3 : 0;
  for (size_t i = start; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80 || IsCont(b)) continue;
    bool complete = false;
    size_t n = ValidSubpart(s, i, &complete);
    if (!complete && n > 0 && i + n == s.size()) return i;  // a valid-so-far tail
  }
  return s.size();
}

std::string Utf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    bool complete = false;
    size_t n = ValidSubpart(s, i, &complete);
    if (complete) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out.append(kReplacement);
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

char32_t DecodeUtf8(std::string_view s, size_t pos, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  size_t n = Utf8SequenceLength(s, pos);
  if (n == 0) {
    *len = 1;
    return 0xFFFD;
  }
  *len = n;
  char32_t cp = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  return cp;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsUnicodeWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool IsUnicodeAlphanumeric(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  const int cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || cat == UTF8PROC_CATEGORY_MC ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

bool IsUnicodeNumeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

}  // namespace tandem::tokenizer
