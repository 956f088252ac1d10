// Incremental parser for Server-Sent Events as the OpenAI streaming API sends them: bytes arrive
// split anywhere (mid-line, mid-UTF-8), `data:` lines accumulate into one event that a blank line
// ends (several `data:` lines are joined with '\n'); comments (`:`) and the fields `event`, `id`,
// `retry` are ignored. Lines end with LF, CRLF or CR. Not thread-safe: one parser per stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::bench {

class SseParser {
 public:
  // A line longer than this is an error (a server that never sends a newline would otherwise
  // grow the buffer without bound).
  static constexpr size_t kMaxLineBytes = 16 << 20;

  // Appends bytes; returns the data of every event they complete, in order.
  absl::StatusOr<std::vector<std::string>> Feed(std::string_view bytes);

  // True when bytes of an unfinished line or event are held: a stream that ends here was cut off.
  bool HasPartialEvent() const { return !line_.empty() || has_data_; }

 private:
  void EndLine(std::vector<std::string>* events);

  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool last_was_cr_ = false;
};

}  // namespace tandem::bench
