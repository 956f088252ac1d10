// OpenAI-style API errors: an HTTP status plus {"error": {"message", "type", "param", "code"}}.
// Bad input is always 4xx; 500 only for failures that are the server's own.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace tandem::frontend {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  int retry_after_s = 0;  // > 0: sent as the Retry-After header (overload, too many connections)

  nlohmann::json ToJson() const;
  // The JSON text. Messages may echo client bytes (a path, a model id) that are not UTF-8: those
  // become U+FFFD instead of throwing.
  std::string Body() const;
};

ApiError InvalidRequest(std::string message, std::string param = "", std::string code = "");
ApiError ModelNotFound(const std::string& model);
ApiError Unauthorized();
ApiError NotFoundRoute(const std::string& target);
ApiError MethodNotAllowed(const std::string& method, const std::string& target);
ApiError PayloadTooLarge(long long limit_bytes);
ApiError Overloaded(long long max_queued);
// 429 with Retry-After: a request would wait about `expected_s` to start, more than `limit_s`.
ApiError QueueWaitTooLong(double expected_s, double limit_s, int retry_after_s);
// 429 + Retry-After: the API key used its `limit` ("requests_per_minute" / "tokens_per_minute" of
// frontend.rate_limit, `per_minute`) for now. `never`: the request alone needs more tokens than a
// minute's allowance (`tokens`): 400, no wait will do.
ApiError RateLimited(const char* limit, double per_minute, double retry_after_s, bool never, double tokens);
// 503 for a connection beyond frontend.max_connections.
ApiError TooManyConnections(long long max_connections);
// 400 for a request the HTTP parser rejected (bad framing); `what` says what was wrong.
ApiError MalformedHttp(const std::string& what);
// 505 for a well-formed request line of an HTTP version other than 1.0 and 1.1.
ApiError HttpVersionNotSupported(unsigned version);

// Maps a generator's error status to the API error clients see (InvalidArgument/OutOfRange -> 400,
// NotFound -> 404, ResourceExhausted -> 429, Unavailable -> 503, DeadlineExceeded -> 504,
// Cancelled -> 499, else 500).
ApiError FromStatus(const absl::Status& status);

// `text` with every HOST:PORT (IPv4, [IPv6] or name, e.g. a worker's address) replaced by
// "<address>": worker errors reach clients, the cluster's addresses must not (the log has them).
std::string WithoutWorkerAddresses(std::string_view text);

// json.dump() for anything that may hold client-supplied text: invalid UTF-8 becomes U+FFFD (plain
// dump() throws type_error 316 on it).
std::string DumpJson(const nlohmann::json& value);

}  // namespace tandem::frontend
