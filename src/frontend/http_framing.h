// What the HTTP server answers to requests its parser rejects (http_server.cc): the 400 for each
// kind of bad framing, and the version of a request line the parser refused for its version (505).
#pragma once

#include <optional>
#include <string_view>

#include "boost/beast/http/error.hpp"
#include "tandem/frontend/api_error.h"

namespace tandem::frontend {

// What the HTTP parser rejected, as the 400 a client gets ("expected ..."); nullopt for errors that
// are not about the request's bytes (end of stream, timeouts, resets: the connection is just closed).
std::optional<ApiError> FramingError(const boost::system::error_code& ec);

// The version of a request line `METHOD TARGET HTTP/d.d` at the start of `bytes`, when it has that
// shape (Beast rejects every version but 1.0 and 1.1 alike, as bad_version).
std::optional<unsigned> RequestLineVersion(std::string_view bytes);

}  // namespace tandem::frontend
