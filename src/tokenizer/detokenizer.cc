#include "tandem/tokenizer/detokenizer.h"

#include <algorithm>

namespace tandem::tokenizer {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
// How many prompt tokens give enough context for the first generated token.
constexpr size_t kPromptContext = 5;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, DetokenizerOptions options,
                                               const std::vector<TokenId>& prompt_ids)
    : tokenizer_(tokenizer), options_(std::move(options)) {
  size_t keep = std::min(prompt_ids.size(), kPromptContext);
  ids_.assign(prompt_ids.end() - static_cast<std::ptrdiff_t>(keep), prompt_ids.end());
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
  options_.stop_strings.erase(std::remove(options_.stop_strings.begin(), options_.stop_strings.end(), ""),
                              options_.stop_strings.end());
}

std::pair<std::string, std::string> IncrementalDetokenizer::DecodeWindow() const {
  const bool skip = options_.skip_special_tokens;
  std::vector<TokenId> prefix(ids_.begin() + static_cast<std::ptrdiff_t>(prefix_offset_),
                              ids_.begin() + static_cast<std::ptrdiff_t>(read_offset_));
  std::vector<TokenId> all(ids_.begin() + static_cast<std::ptrdiff_t>(prefix_offset_), ids_.end());
  return {tokenizer_.Decode(prefix, skip).value_or(""), tokenizer_.Decode(all, skip).value_or("")};
}

std::string IncrementalDetokenizer::Push(TokenId id) {
  if (stopped_) return "";
  ids_.push_back(id);
  const auto [prefix_text, new_text] = DecodeWindow();
  // Emit only when the text grew and does not end in a character still waiting for its bytes.
  if (new_text.size() <= prefix_text.size() || EndsWith(new_text, kReplacement) ||
      new_text.compare(0, prefix_text.size(), prefix_text) != 0) {
    return "";
  }
  std::string delta = new_text.substr(prefix_text.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return Filter(delta, false);
}

std::string IncrementalDetokenizer::Finish() {
  if (stopped_) return "";
  std::string delta;
  if (read_offset_ < ids_.size()) {
    const auto [prefix_text, new_text] = DecodeWindow();
    if (new_text.compare(0, prefix_text.size(), prefix_text) == 0) delta = new_text.substr(prefix_text.size());
    prefix_offset_ = read_offset_ = ids_.size();
  }
  return Filter(delta, true);
}

std::string IncrementalDetokenizer::Filter(const std::string& delta, bool final) {
  pending_ += delta;
  std::string out;
  // The earliest complete stop string wins.
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const auto& stop : options_.stop_strings) {
    size_t pos = pending_.find(stop);
    if (pos != std::string::npos && (pos < best || (pos == best && stop.size() > best_stop->size()))) {
      best = pos;
      best_stop = &stop;
    }
  }
  if (best_stop != nullptr) {
    out = pending_.substr(0, best);
    if (options_.include_stop_string) out += *best_stop;
    matched_stop_ = *best_stop;
    stopped_ = true;
    pending_.clear();
    emitted_ += out;
    return out;
  }
  size_t hold = 0;
  if (!final) {
    // Hold back the longest tail of the text that could still grow into a stop string.
    for (const auto& stop : options_.stop_strings) {
      for (size_t len = std::min(stop.size() - 1, pending_.size()); len > hold; --len) {
        if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
          hold = len;
          break;
        }
      }
    }
  }
  out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  emitted_ += out;
  return out;
}

}  // namespace tandem::tokenizer
