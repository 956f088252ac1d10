// How the HTTP server frames requests (http_server.cc): its parser's limits, the empty lines it skips
// before a request line, the path it routes on, the 400 for each kind of bad framing, and the version
// of a request line the parser refused for its version (505). fuzz/fuzz_http_request.cc runs these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "boost/beast/http/error.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/string_body.hpp"
#include "tandem/frontend/api_error.h"

namespace tandem::frontend {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// Request headers larger than this get a 400 (bodies over the server's max_request_bytes a 413).
inline constexpr uint64_t kMaxRequestHeaderBytes = 64 * 1024;

// A fresh parser for the next request on a connection, with the server's limits.
void LimitRequestParser(RequestParser& parser, int64_t max_request_bytes);

// RFC 9112 §2.2: the CR and LF bytes at the start of `bytes` (empty lines before a request line, e.g.
// a CRLF a client sent after a POST body), which the server drops rather than failing the parse.
size_t LeadingEmptyLineBytes(std::string_view bytes);

// The path a request target routes on: the target without its query.
std::string RequestPath(std::string_view target);

// What the HTTP parser rejected, as the 400 a client gets ("expected ..."); nullopt for errors that
// are not about the request's bytes (end of stream, timeouts, resets: the connection is just closed).
std::optional<ApiError> FramingError(const boost::system::error_code& ec);

// The version of a request line `METHOD TARGET HTTP/d.d` at the start of `bytes`, when it has that
// shape (Beast rejects every version but 1.0 and 1.1 alike, as bad_version).
std::optional<unsigned> RequestLineVersion(std::string_view bytes);

}  // namespace tandem::frontend
