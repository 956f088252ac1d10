// Builds OpenAI responses from Generator events: Server-Sent Events chunks for `stream: true`
// (chat: a role delta first, content deltas, a finish_reason chunk, the usage chunk when
// stream_options.include_usage, then `data: [DONE]`), or one JSON body with `usage` at the end.
// Not thread-safe: the transport feeds it events in order on one executor.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tandem/frontend/api_error.h"
#include "tandem/frontend/generator.h"
#include "tandem/frontend/openai_service.h"

namespace tandem::frontend {

class ResponseBuilder {
 public:
  explicit ResponseBuilder(const PreparedRequest& prepared);

  // Streaming: the SSE frames to send before any event (chat: the role deltas).
  std::string StreamBegin() const;
  // Applies one sub-request's event. Streaming: returns the SSE frames it produces (the last
  // event of the last sub-request also yields the usage chunk and `data: [DONE]`).
  std::string OnEvent(size_t sub, const GenerateEvent& event);

  bool done() const { return finished_subs_ == num_subs_ || error_.has_value(); }
  bool failed() const { return error_.has_value(); }
  const ApiError& error() const { return *error_; }
  // Non-streaming, once done(): the response body (or the error).
  HttpReply FinalReply() const;

 private:
  struct ChoiceState {
    std::string text;
    std::vector<int32_t> token_ids;
    std::vector<TokenLogprob> logprobs;
    int64_t text_offset = 0;  // completions logprobs: offsets into the returned text
    std::vector<int64_t> offsets;
    FinishReason finish_reason = FinishReason::kNone;
  };

  nlohmann::json ChunkBase() const;
  nlohmann::json UsageJson() const;
  nlohmann::json ChatLogprobs(const std::vector<TokenLogprob>& logprobs) const;
  nlohmann::json CompletionLogprobs(const std::vector<TokenLogprob>& logprobs,
                                    const std::vector<int64_t>& offsets) const;
  std::string StreamDelta(int32_t index, const ChoiceDelta& delta, const std::vector<int64_t>& offsets) const;

  const PreparedRequest& prepared_;
  const bool chat_;
  const int32_t n_;
  const size_t num_subs_;
  std::vector<ChoiceState> choices_;  // [num_subs * n]
  std::vector<bool> sub_final_;
  size_t finished_subs_ = 0;
  Usage usage_;
  std::optional<ApiError> error_;
};

}  // namespace tandem::frontend
