// One streaming request to an OpenAI-compatible server (`/v1/completions` or
// `/v1/chat/completions` with `"stream": true`) over plain HTTP/1.1, timing every event as its
// bytes come off the socket. Synchronous: the caller's thread runs the request (one io_context per
// call, so a timeout needs no other thread). HTTPS is not spoken; a benchmark runs next to the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::bench {

// "http://host:port[/prefix]": the prefix is prepended to every path (e.g. a proxy's "/openai").
struct Endpoint {
  std::string host;
  std::string port;
  std::string prefix;  // "" or "/something", no trailing slash
};
absl::StatusOr<Endpoint> ParseBaseUrl(std::string_view url);

using Clock = std::chrono::steady_clock;

// What one streamed request did. Times are seconds since `t0` given to SendStreaming.
struct StreamResult {
  bool ok = false;
  std::string error;  // why not ok: connection, HTTP status and body, malformed stream, server error event
  int http_status = 0;
  double start_s = 0;                 // just before connecting
  std::vector<double> content_times;  // each event that carried generated text (or a token), in order
  std::string text;                   // the generated text, concatenated
  std::string response_id;            // the chunks' "id", to match the server's own logs
  int64_t usage_prompt_tokens = -1;   // from the server's `usage`, when it sent one
  int64_t usage_completion_tokens = -1;
  double end_s = 0;  // when the stream ended ([DONE] or the connection closed)
};

struct StreamRequest {
  std::string path;        // "/v1/completions" or "/v1/chat/completions"
  std::string body;        // the JSON request; must ask for "stream": true
  std::string api_key;     // sent as "Authorization: Bearer KEY" when not empty
  double timeout_s = 600;  // the whole request, connect to last byte
};

// Sends `request` and reads its event stream to the end. Never throws; failures are in the result.
StreamResult SendStreaming(const Endpoint& endpoint, const StreamRequest& request, Clock::time_point t0);

// GET /v1/models: the first model's id (what `--model` defaults to).
absl::StatusOr<std::string> FetchFirstModelId(const Endpoint& endpoint, const std::string& api_key,
                                              double timeout_s);

// Applies one SSE event's data to `result` (exposed for tests): "[DONE]" → returns true (stream
// done); a JSON chunk → its text (choices[].text or choices[].delta.content/reasoning_content) and
// usage; an {"error": ...} object or anything that is not JSON → result->error, returns true.
bool ApplyEvent(std::string_view data, double now_s, StreamResult* result);

}  // namespace tandem::bench
