#include "tandem/bench/stream_client.h"

#include <cstddef>
#include <limits>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "nlohmann/json.hpp"
#include "tandem/bench/sse_parser.h"

namespace tandem::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Runs one asynchronous operation to completion on `ioc` (so beast::tcp_stream's deadline applies).
template <typename Start>
beast::error_code RunOne(asio::io_context& ioc, Start start) {
  beast::error_code result = asio::error::would_block;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

std::string Truncate(std::string s, size_t n) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  return s;
}

// The text an event's choice carries: completions `text`, chat `delta.content` (or a reasoning
// model's `delta.reasoning_content`).
std::string ChoiceText(const json& choice) {
  std::string out;
  if (auto it = choice.find("text"); it != choice.end() && it->is_string()) out += it->get<std::string>();
  if (auto d = choice.find("delta"); d != choice.end() && d->is_object()) {
    for (const char* key : {"content", "reasoning_content"}) {
      if (auto it = d->find(key); it != d->end() && it->is_string()) out += it->get<std::string>();
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<Endpoint> ParseBaseUrl(std::string_view url_view) {
  const std::string original(url_view);
  std::string url = original;
  if (url.rfind("https://", 0) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--url ", original, ": https is not supported (expected http://HOST:PORT)"));
  }
  if (url.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--url: expected http://HOST:PORT[/PREFIX], found '", original, "'"));
  }
  url = url.substr(7);
  Endpoint e;
  const size_t slash = url.find('/');
  std::string authority = url.substr(0, slash);
  if (slash != std::string::npos) {
    std::string prefix = url.substr(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    e.prefix = prefix;
  }
  const size_t colon = authority.rfind(':');
  const size_t bracket = authority.rfind(']');
  if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) {
    e.host = authority;
    e.port = "80";
  } else {
    e.host = authority.substr(0, colon);
    e.port = authority.substr(colon + 1);
    int port = 0;
    if (!absl::SimpleAtoi(e.port, &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("--url ", original, ": expected a port 1-65535, found '", e.port, "'"));
    }
  }
  if (!e.host.empty() && e.host.front() == '[' && e.host.back() == ']')
    e.host = e.host.substr(1, e.host.size() - 2);
  if (e.host.empty()) return absl::InvalidArgumentError(absl::StrCat("--url ", original, ": no host"));
  return e;
}

bool ApplyEvent(std::string_view data, double now_s, StreamResult* result) {
  if (data == "[DONE]") return true;
  json chunk = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (chunk.is_discarded() || !chunk.is_object()) {
    result->error =
        absl::StrCat("malformed stream: expected a JSON object or [DONE] in a data: event, found '",
                     Truncate(std::string(data), 200), "'");
    return true;
  }
  if (auto err = chunk.find("error"); err != chunk.end() && !err->is_null()) {
    std::string message = err->is_object() && err->contains("message") && (*err)["message"].is_string()
                              ? (*err)["message"].get<std::string>()
                              : err->dump();
    result->error = absl::StrCat("server error event: ", Truncate(message, 500));
    return true;
  }
  if (auto id = chunk.find("id"); result->response_id.empty() && id != chunk.end() && id->is_string()) {
    result->response_id = id->get<std::string>();
  }
  std::string text;
  bool has_token = false;
  if (auto choices = chunk.find("choices"); choices != chunk.end() && choices->is_array()) {
    for (const json& choice : *choices) {
      if (!choice.is_object()) continue;
      text += ChoiceText(choice);
      // A token that decodes to no text yet (a partial UTF-8 sequence) still arrives with its ids
      // or logprobs on servers that send them; count the event when it says so.
      if (auto lp = choice.find("logprobs"); lp != choice.end() && !lp->is_null()) has_token = true;
    }
  }
  if (!text.empty() || has_token) {
    result->content_times.push_back(now_s);
    result->text += text;
  }
  if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
    if (auto p = usage->find("prompt_tokens"); p != usage->end() && p->is_number_integer()) {
      result->usage_prompt_tokens = p->get<int64_t>();
    }
    if (auto c = usage->find("completion_tokens"); c != usage->end() && c->is_number_integer()) {
      result->usage_completion_tokens = c->get<int64_t>();
    }
  }
  return false;
}

StreamResult SendStreaming(const Endpoint& endpoint, const StreamRequest& request, Clock::time_point t0) {
  StreamResult result;
  result.start_s = Since(t0);
  const auto deadline =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(request.timeout_s));
  auto fail = [&](std::string what) {
    result.ok = false;
    result.error = std::move(what);
    result.end_s = Since(t0);
    return result;
  };
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  const auto addresses = resolver.resolve(endpoint.host, endpoint.port, ec);
  if (ec) return fail(absl::StrCat("cannot resolve ", endpoint.host, ":", endpoint.port, ": ", ec.message()));
  beast::tcp_stream stream(ioc);
  stream.expires_after(deadline);
  ec = RunOne(ioc, [&](auto handler) { stream.async_connect(addresses, handler); });
  if (ec)
    return fail(absl::StrCat("cannot connect to ", endpoint.host, ":", endpoint.port, ": ", ec.message()));
  stream.socket().set_option(tcp::no_delay(true), ec);

  http::request<http::string_body> req{http::verb::post, endpoint.prefix + request.path, 11};
  req.set(http::field::host, endpoint.host + ":" + endpoint.port);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "text/event-stream");
  req.set(http::field::user_agent, "tandem-bench");
  if (!request.api_key.empty()) req.set(http::field::authorization, "Bearer " + request.api_key);
  req.keep_alive(false);
  req.body() = request.body;
  req.prepare_payload();
  ec = RunOne(ioc, [&](auto handler) { http::async_write(stream, req, handler); });
  if (ec) return fail(absl::StrCat("sending the request: ", ec.message()));

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  ec = RunOne(ioc, [&](auto handler) { http::async_read_header(stream, buffer, parser, handler); });
  if (ec == asio::error::operation_aborted || ec == beast::error::timeout) {
    return fail(absl::StrCat("no response within ", request.timeout_s, " s"));
  }
  if (ec) return fail(absl::StrCat("reading the response header: ", ec.message()));
  result.http_status = parser.get().result_int();
  const bool is_stream =
      absl::StrContains(std::string(parser.get()[http::field::content_type]), "text/event-stream");

  SseParser sse;
  std::string plain_body;  // an error response's body
  bool done = false;
  char buf[16384];
  while (!parser.is_done()) {
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    ec = RunOne(ioc, [&](auto handler) { http::async_read_some(stream, buffer, parser, handler); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec == beast::error::timeout)
      return fail(absl::StrCat("the stream did not finish within ", request.timeout_s, " s"));
    if (ec) {
      return fail(absl::StrCat("reading the stream: ", ec.message(),
                               result.content_times.empty() ? "" : " (mid-stream)"));
    }
    const size_t n = sizeof buf - parser.get().body().size;
    const double now = Since(t0);
    if (result.http_status != 200 || !is_stream) {
      if (plain_body.size() < 4096) plain_body.append(buf, n);
      continue;
    }
    if (done) continue;  // bytes after [DONE] or an error event are read and dropped
    auto events = sse.Feed(std::string_view(buf, n));
    if (!events.ok()) return fail(std::string(events.status().message()));
    for (const std::string& data : *events) {
      if (ApplyEvent(data, now, &result)) {
        done = true;
        result.end_s = now;
        break;
      }
    }
  }
  if (!done) result.end_s = Since(t0);
  if (result.http_status != 200) {
    return fail(absl::StrCat("HTTP ", result.http_status, ": ", Truncate(plain_body, 500)));
  }
  if (!is_stream) {
    return fail(absl::StrCat("expected an event stream (Content-Type text/event-stream), found '",
                             std::string(parser.get()[http::field::content_type]),
                             "': ", Truncate(plain_body, 200)));
  }
  if (!result.error.empty()) return fail(result.error);
  if (!done) {
    return fail(sse.HasPartialEvent() ? "the stream ended inside an event (no [DONE])"
                                      : "the stream ended without data: [DONE]");
  }
  result.ok = true;
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return result;
}

absl::StatusOr<std::string> FetchFirstModelId(const Endpoint& endpoint, const std::string& api_key,
                                              double timeout_s) {
  const std::string where =
      absl::StrCat("http://", endpoint.host, ":", endpoint.port, endpoint.prefix, "/v1/models");
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  const auto addresses = resolver.resolve(endpoint.host, endpoint.port, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot resolve ", endpoint.host, ": ", ec.message()));
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s)));
  ec = RunOne(ioc, [&](auto handler) { stream.async_connect(addresses, handler); });
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", endpoint.host, ":", endpoint.port, ": ", ec.message()));
  http::request<http::empty_body> req{http::verb::get, endpoint.prefix + "/v1/models", 11};
  req.set(http::field::host, endpoint.host + ":" + endpoint.port);
  req.set(http::field::user_agent, "tandem-bench");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  req.keep_alive(false);
  ec = RunOne(ioc, [&](auto handler) { http::async_write(stream, req, handler); });
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (!ec) ec = RunOne(ioc, [&](auto handler) { http::async_read(stream, buffer, res, handler); });
  if (ec) return absl::UnavailableError(absl::StrCat("GET ", where, ": ", ec.message()));
  if (res.result_int() != 200) {
    return absl::FailedPreconditionError(
        absl::StrCat("GET ", where, ": HTTP ", res.result_int(), ": ", Truncate(res.body(), 300)));
  }
  json body = json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("data") && body["data"].is_array() && !body["data"].empty() &&
      body["data"][0].is_object() && body["data"][0].contains("id") && body["data"][0]["id"].is_string()) {
    return body["data"][0]["id"].get<std::string>();
  }
  return absl::FailedPreconditionError(absl::StrCat("GET ", where,
                                                    ": expected {\"data\": [{\"id\": ...}]}, found ",
                                                    Truncate(res.body(), 300), " (give --model)"));
}

}  // namespace tandem::bench
