// UTF-8 helpers with the exact semantics the tokenizer needs (Rust's from_utf8_lossy, char classes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::tokenizer {

// Length in bytes of the well-formed UTF-8 sequence starting at s[pos], or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t pos);
// Whether the whole string is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);
// Length of the longest prefix that ends on a complete character boundary, treating a trailing
// incomplete-but-possibly-valid sequence as not yet complete. Invalid bytes in the middle count as complete.
size_t CompleteUtf8Prefix(std::string_view s);
// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string Utf8Lossy(std::string_view bytes);
// Decodes the character at s[pos] (s must be valid UTF-8 there); sets *len to its byte length.
char32_t DecodeUtf8(std::string_view s, size_t pos, size_t* len);
void AppendUtf8(char32_t cp, std::string* out);

// Rust char::is_whitespace (Unicode White_Space).
bool IsUnicodeWhitespace(char32_t cp);
// Rust char::is_alphanumeric (approximated by general categories L*, N*, Mc).
bool IsUnicodeAlphanumeric(char32_t cp);
// Rust char::is_numeric (general categories Nd, Nl, No).
bool IsUnicodeNumeric(char32_t cp);

}  // namespace tandem::tokenizer
