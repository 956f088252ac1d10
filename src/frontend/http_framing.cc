#include "http_framing.h"

namespace tandem::frontend {

namespace http = boost::beast::http;

void LimitRequestParser(RequestParser& parser, int64_t max_request_bytes) {
  parser.body_limit(static_cast<uint64_t>(max_request_bytes));
  parser.header_limit(kMaxRequestHeaderBytes);
}

size_t LeadingEmptyLineBytes(std::string_view bytes) {
  size_t n = 0;
  while (n < bytes.size() && (bytes[n] == '\r' || bytes[n] == '\n')) ++n;
  return n;
}

std::string RequestPath(std::string_view target) { return std::string(target.substr(0, target.find('?'))); }

// What the HTTP parser rejected, as the 400 a client gets; nullopt for errors that are not about the
// request's bytes (end of stream, timeouts, resets: the connection is just closed).
std::optional<ApiError> FramingError(const boost::system::error_code& ec) {
  if (ec.category() != http::make_error_code(http::error::bad_method).category()) return std::nullopt;
  switch (static_cast<http::error>(ec.value())) {
    case http::error::end_of_stream:
    case http::error::need_more:
    case http::error::unexpected_body:
    case http::error::need_buffer:
    case http::error::end_of_chunk:
    case http::error::buffer_overflow:
    case http::error::header_limit:
    case http::error::body_limit:
    case http::error::bad_alloc:
    case http::error::bad_status:
    case http::error::bad_reason:
    case http::error::stale_parser:
    case http::error::short_read:
      return std::nullopt;
    case http::error::partial_message:
      return MalformedHttp("expected the rest of the request, found the end of the stream");
    case http::error::bad_line_ending:
      return MalformedHttp("expected CRLF line endings");
    case http::error::bad_method:
      return MalformedHttp("expected a request line 'METHOD TARGET HTTP/1.1'");
    case http::error::bad_target:
      return MalformedHttp("expected a request target in the request line");
    case http::error::bad_version:
      return MalformedHttp("expected 'HTTP/1.1' or 'HTTP/1.0' ending the request line");
    case http::error::bad_field:
      return MalformedHttp("expected header lines 'Name: value'");
    case http::error::bad_value:
      return MalformedHttp("expected header values without control characters");
    case http::error::bad_content_length:
      return MalformedHttp("expected one Content-Length holding a non-negative decimal number");
    case http::error::bad_transfer_encoding:
      return MalformedHttp("expected Transfer-Encoding chunked, and no Content-Length with it");
    case http::error::bad_chunk:
      return MalformedHttp("expected chunks framed as 'HEX-SIZE CRLF data CRLF'");
    case http::error::bad_chunk_extension:
      return MalformedHttp("expected well-formed chunk extensions");
    case http::error::bad_obs_fold:
      return MalformedHttp("expected no obsolete line folding in headers");
  }
  return MalformedHttp("the HTTP parser rejected it");
}

// The version of a request line `METHOD TARGET HTTP/d.d` at the start of `bytes`, when it has that
// shape (the parser rejects every version but 1.0 and 1.1 alike, as a bad version).
std::optional<unsigned> RequestLineVersion(std::string_view bytes) {
  const size_t end = bytes.find("\r\n");
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view line = bytes.substr(0, end);
  const size_t first_space = line.find(' ');
  const size_t last_space = line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == 0 || last_space <= first_space + 1) {
    return std::nullopt;
  }
  const std::string_view v = line.substr(last_space + 1);
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !digit(v[5]) || v[6] != '.' || !digit(v[7])) return std::nullopt;
  return static_cast<unsigned>((v[5] - '0') * 10 + (v[7] - '0'));
}

}  // namespace tandem::frontend
