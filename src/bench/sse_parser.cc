#include "tandem/bench/sse_parser.h"

#include "absl/strings/str_cat.h"

namespace tandem::bench {

void SseParser::EndLine(std::vector<std::string>* events) {
  if (line_.empty()) {  // a blank line dispatches the event, if it has data
    if (has_data_) events->push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  std::string_view line = line_;
  if (line.front() != ':') {  // ':' starts a comment
    std::string_view field = line, value;
    if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    }
  }
  line_.clear();
}

absl::StatusOr<std::vector<std::string>> SseParser::Feed(std::string_view bytes) {
  std::vector<std::string> events;
  for (char c : bytes) {
    if (c == '\n' && last_was_cr_) {  // the LF of a CRLF: the line already ended at the CR
      last_was_cr_ = false;
      continue;
    }
    last_was_cr_ = c == '\r';
    if (c == '\n' || c == '\r') {
      EndLine(&events);
      continue;
    }
    line_.push_back(c);
    if (line_.size() > kMaxLineBytes) {
      return absl::DataLossError(absl::StrCat("server-sent events: expected lines of at most ", kMaxLineBytes,
                                              " bytes, found a longer one (is this an event stream?)"));
    }
  }
  return events;
}

}  // namespace tandem::bench
