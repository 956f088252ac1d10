#include "tandem/frontend/api_error.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::frontend {

nlohmann::json ApiError::ToJson() const {
  nlohmann::json error = {{"message", message}, {"type", type}};
  error["param"] = param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param);
  error["code"] = code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code);
  return {{"error", std::move(error)}};
}

std::string WithoutWorkerAddresses(std::string_view text) {
  auto is_host_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == '_';
  };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    // A host ends at a ':' followed by 1-5 digits (the port) that no further host character follows.
    size_t start = i;
    size_t end = i;
    if (text[i] == '[') {
      end = text.find(']', i);
      end = end == std::string_view::npos ? i : end + 1;
    } else {
      while (end < text.size() && is_host_char(text[end])) ++end;
    }
    if (end > start && end < text.size() && text[end] == ':') {
      size_t port = end + 1;
      while (port < text.size() && is_digit(text[port]) && port - end <= 5) ++port;
      const bool has_port = port > end + 1 && port - end - 1 <= 5;
      // The port ends the address: what follows is not part of a name or number (a sentence's
      // full stop may follow; "10.1" after "ipv4:" is a host, not a port).
      const bool boundary = port == text.size() ||
                            (!is_host_char(text[port]) ||
                             (text[port] == '.' && (port + 1 == text.size() || !is_host_char(text[port + 1]))));
      const bool looks_like_host = text[start] == '[' || text.substr(start, end - start).find_first_not_of(
                                                           "0123456789") != std::string_view::npos;
      if (has_port && boundary && looks_like_host) {
        out += "<address>";
        i = port;
        continue;
      }
    }
    if (end == start) end = start + 1;
    out.append(text.substr(start, end - start));
    i = end;
  }
  return out;
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ApiError::Body() const { return DumpJson(ToJson()); }

ApiError InvalidRequest(std::string message, std::string param, std::string code) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

ApiError ModelNotFound(const std::string& model) {
  return ApiError{404, absl::StrCat("The model `", model, "` does not exist."), "invalid_request_error",
                  "model", "model_not_found"};
}

ApiError Unauthorized() {
  return ApiError{401, "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.",
                  "invalid_request_error", "", "invalid_api_key"};
}

ApiError NotFoundRoute(const std::string& target) {
  return ApiError{404, absl::StrCat("Unknown endpoint: ", target), "invalid_request_error", "", "not_found"};
}

ApiError MethodNotAllowed(const std::string& method, const std::string& target) {
  return ApiError{405, absl::StrCat("Method ", method, " is not allowed on ", target),
                  "invalid_request_error", "", "method_not_allowed"};
}

ApiError PayloadTooLarge(long long limit_bytes) {
  return ApiError{413, absl::StrCat("Request body is larger than the limit of ", limit_bytes, " bytes."),
                  "invalid_request_error", "", "request_too_large"};
}

ApiError Overloaded(long long max_queued) {
  ApiError error{429, absl::StrCat("The server is overloaded: ", max_queued, " requests are already queued."),
                 "rate_limit_error", "", "server_overloaded"};
  error.retry_after_s = 1;
  return error;
}

ApiError RateLimited(const char* limit, double per_minute, double retry_after_s, bool never, double tokens) {
  if (never) {
    return ApiError{400,
                    absl::StrFormat("The request needs %.0f tokens (prompt plus max_tokens for each sequence), "
                                    "more than this API key's limit of %.0f tokens per minute.",
                                    tokens, per_minute),
                    "invalid_request_error", "max_tokens", "rate_limit_exceeded"};
  }
  const int retry_after = static_cast<int>(std::ceil(retry_after_s));
  ApiError error{429,
                 absl::StrFormat("Rate limit reached for this API key: %s %.0f. Retry after %d s.", limit, per_minute,
                                 std::max(1, retry_after)),
                 "rate_limit_error", "", "rate_limit_exceeded"};
  error.retry_after_s = std::max(1, retry_after);
  return error;
}

ApiError QueueWaitTooLong(double expected_s, double limit_s, int retry_after_s) {
  ApiError error{429,
                 absl::StrFormat("The server is overloaded: a request would wait about %.0f s to start, more "
                                 "than the limit of %.0f s. Retry after %d s.",
                                 expected_s, limit_s, retry_after_s),
                 "rate_limit_error", "", "server_overloaded"};
  error.retry_after_s = retry_after_s;
  return error;
}

ApiError TooManyConnections(long long max_connections) {
  ApiError error{503, absl::StrCat("The server has its maximum of ", max_connections, " open connections; retry later."),
                 "server_error", "", "too_many_connections"};
  error.retry_after_s = 1;
  return error;
}

ApiError MalformedHttp(const std::string& what) {
  return ApiError{400, absl::StrCat("Malformed HTTP request: ", what, "."), "invalid_request_error", "",
                  "malformed_request"};
}

ApiError HttpVersionNotSupported(unsigned version) {
  return ApiError{505,
                  absl::StrCat("HTTP version not supported: expected HTTP/1.0 or HTTP/1.1, found HTTP/",
                               version / 10, ".", version % 10, "."),
                  "invalid_request_error", "", "http_version_not_supported"};
}

ApiError FromStatus(const absl::Status& status) {
  const std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return InvalidRequest(message);
    case absl::StatusCode::kNotFound:
      return ApiError{404, message, "invalid_request_error", "", "not_found"};
    case absl::StatusCode::kResourceExhausted:
      return ApiError{429, message, "rate_limit_error", "", "server_overloaded"};
    case absl::StatusCode::kUnavailable:
      return ApiError{503, message, "server_error", "", "service_unavailable"};
    case absl::StatusCode::kCancelled:
      return ApiError{499, message, "invalid_request_error", "", "cancelled"};
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return ApiError{401, message, "invalid_request_error", "", "invalid_api_key"};
    case absl::StatusCode::kDeadlineExceeded:
      return ApiError{504, message, "server_error", "", "timeout"};
    case absl::StatusCode::kOk:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kDoNotUseReservedForFutureExpansionUseDefaultInSwitchInstead_:
      break;
  }
  return ApiError{500, message.empty() ? "internal error" : message, "server_error", "", "internal_error"};
}

}  // namespace tandem::frontend
