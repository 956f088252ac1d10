#include "added_vocab.h"

#include "utf8.h"

namespace tandem::tokenizer {
namespace {

// The character ending just before byte `end`.
char32_t LastChar(std::string_view s, size_t end, size_t* start) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  size_t len = 0;
  *start = b;
  return DecodeUtf8(s, b, &len);
}

}  // namespace

void AddedTokenMatcher::Build(const std::vector<std::string>& patterns, const std::vector<const AddedToken*>& tokens) {
  tokens_ = tokens;
  edges_.clear();
  terminal_.assign(1, -1);
  for (size_t i = 0; i < patterns.size(); ++i) {
    const std::string& p = patterns[i];
    if (p.empty()) continue;
    first_byte_[static_cast<unsigned char>(p[0])] = true;
    int node = 0;
    for (unsigned char c : p) {
      uint64_t key = (static_cast<uint64_t>(node) << 8) | c;
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        int next = static_cast<int>(terminal_.size());
        terminal_.push_back(-1);
        edges_.emplace(key, next);
        node = next;
      } else {
        node = it->second;
      }
    }
    if (terminal_[node] < 0) terminal_[node] = static_cast<int>(i);
  }
}

bool AddedTokenMatcher::FindLeftmostLongest(std::string_view text, size_t from, size_t* start, size_t* end,
                                            int* index) const {
  for (size_t s = from; s < text.size(); ++s) {
    if (!first_byte_[static_cast<unsigned char>(text[s])]) continue;
    int node = 0, best = -1;
    size_t best_end = 0;
    for (size_t p = s; p < text.size(); ++p) {
      auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[p]));
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_[node] >= 0) {
        best = terminal_[node];
        best_end = p + 1;
      }
    }
    if (best >= 0) {
      *start = s;
      *end = best_end;
      *index = best;
      return true;
    }
  }
  return false;
}

std::vector<AddedMatch> AddedTokenMatcher::FindMatches(std::string_view text) const {
  std::vector<AddedMatch> out;
  if (tokens_.empty()) return out;
  size_t search = 0, consumed = 0;
  size_t start = 0, end = 0;
  int index = -1;
  while (FindLeftmostLongest(text, search, &start, &end, &index)) {
    search = end;
    const AddedToken& tok = *tokens_[index];
    if (tok.single_word) {
      size_t cs = 0, len = 0;
      bool start_space = start == 0 || !IsUnicodeAlphanumeric(LastChar(text, start, &cs));
      bool stop_space = end == text.size() || !IsUnicodeAlphanumeric(DecodeUtf8(text, end, &len));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t cs = 0;
        if (!IsUnicodeWhitespace(LastChar(text, s, &cs))) break;
        s = cs;
      }
      start = std::max(s, consumed);
    }
    if (tok.rstrip) {
      while (end < text.size()) {
        size_t len = 0;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, end, &len))) break;
        end += len;
      }
      search = end;
    }
    out.push_back({start, end, tok.id});
    consumed = end;
  }
  return out;
}

}  // namespace tandem::tokenizer
