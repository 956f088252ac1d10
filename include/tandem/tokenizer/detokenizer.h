// Streaming detokenization: token ids in, newly completed text out, never a broken UTF-8 character;
// stop strings are found even when they span tokens.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::tokenizer {

struct DetokenizerOptions {
  bool skip_special_tokens = true;
  // Generation stops at the first occurrence of any of these in the output text.
  std::vector<std::string> stop_strings;
  // Whether the matched stop string itself is emitted (the text before it always is).
  bool include_stop_string = false;
};

class IncrementalDetokenizer {
 public:
  // `prompt_ids` (optional) gives context, so the first generated token decodes as it would after the
  // prompt (e.g. keeps its leading space under sentencepiece-style decoders). The tokenizer must
  // outlive the detokenizer.
  IncrementalDetokenizer(const Tokenizer& tokenizer, DetokenizerOptions options,
                         const std::vector<TokenId>& prompt_ids = {});

  // Adds one generated token and returns the text it completes (possibly empty: an incomplete
  // character, or a possible start of a stop string, is held back). Empty once stopped.
  std::string Push(TokenId id);
  // End of the stream: returns everything still held back (an incomplete character becomes U+FFFD).
  std::string Finish();

  // Whether a stop string matched; no more text is emitted after that.
  bool stopped() const { return stopped_; }
  // The stop string that matched (empty if none).
  const std::string& matched_stop() const { return matched_stop_; }
  // All text emitted so far.
  const std::string& text() const { return emitted_; }

 private:
  // The text of the tokens from prefix_offset_ to read_offset_ (already emitted), and from
  // prefix_offset_ to the end: the new text is what the second adds to the first.
  std::pair<std::string, std::string> DecodeWindow() const;
  // Runs new text through the stop-string filter; `final` releases held-back text.
  std::string Filter(const std::string& delta, bool final);

  const Tokenizer& tokenizer_;
  DetokenizerOptions options_;
  std::vector<TokenId> ids_;
  size_t prefix_offset_ = 0;
  size_t read_offset_ = 0;
  std::string pending_;  // decoded text held back because it may begin a stop string
  std::string emitted_;
  std::string matched_stop_;
  bool stopped_ = false;
};

}  // namespace tandem::tokenizer
