// Bytes a client sends on one HTTP connection, framed the way the server frames them
// (src/frontend/http_framing.h): empty lines skipped, each request parsed with the server's limits
// (bodies up to 64 KiB here, headers up to 64 KiB) in pieces of a size the first byte picks (as
// reads arrive), pipelined requests one after another. A rejected request must map to the 400 (or
// 505) the server sends, whose body serializes; an accepted one's path is routed and a completions
// or chat body goes through the OpenAI request parser, as the server would.
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "boost/asio/buffer.hpp"
#include "http_framing.h"
#include "tandem/frontend/openai_request.h"

namespace http = boost::beast::http;
using tandem::frontend::ApiError;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;  // bytes per read
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  for (int request = 0; request < 8 && !rest.empty(); ++request) {
    rest.remove_prefix(tandem::frontend::LeadingEmptyLineBytes(rest));
    if (rest.empty()) break;
    tandem::frontend::RequestParser parser;
    parser.eager(true);
    tandem::frontend::LimitRequestParser(parser, 64 << 10);
    boost::system::error_code ec;
    size_t used = 0, received = 0;
    while (!parser.is_done()) {
      received = std::min(rest.size(), received + piece);
      const size_t n = parser.put(boost::asio::buffer(rest.data() + used, received - used), ec);
      used += n;
      if (ec == http::error::need_more) ec = {};
      if (ec) break;
      if (n == 0 && received == rest.size() && !parser.is_done()) {
        parser.put_eof(ec);  // the client closed the connection
        break;
      }
    }
    if (ec) {
      std::optional<ApiError> error = tandem::frontend::FramingError(ec);
      if (error && ec == http::error::bad_version) {
        if (std::optional<unsigned> v = tandem::frontend::RequestLineVersion(rest)) {
          error = tandem::frontend::HttpVersionNotSupported(*v);
        }
      }
      if (error) (void)error->Body();
      return 0;  // the server closes the connection after a framing error
    }
    if (!parser.is_done()) return 0;
    const http::request<http::string_body>& req = parser.get();
    const std::string path =
        tandem::frontend::RequestPath(std::string_view(req.target().data(), req.target().size()));
    if (req.method() == http::verb::post && (path == "/v1/completions" || path == "/v1/chat/completions")) {
      const auto kind =
          path == "/v1/completions" ? tandem::frontend::ApiKind::kCompletion : tandem::frontend::ApiKind::kChat;
      auto parsed = tandem::frontend::ParseOpenAiRequest(kind, req.body());
      if (auto* error = std::get_if<ApiError>(&parsed)) (void)error->Body();
    }
    rest.remove_prefix(used);
  }
  return 0;
}
