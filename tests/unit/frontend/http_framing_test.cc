// What the HTTP server answers to bytes its parser rejects, and how it frames what it accepts.
#include "http_framing.h"

#include "boost/asio/error.hpp"
#include "gtest/gtest.h"

namespace tandem::frontend {
namespace {

namespace http = boost::beast::http;

// Issue 17 (4): malformed framing was closed with nothing sent.
TEST(HttpFramingTest, ParserErrorsAboutTheBytesAre400sSayingWhatWasExpected) {
  for (http::error e : {http::error::bad_method, http::error::bad_target, http::error::bad_version,
                        http::error::bad_field, http::error::bad_value, http::error::bad_content_length,
                        http::error::bad_transfer_encoding, http::error::bad_chunk, http::error::bad_line_ending,
                        http::error::partial_message, http::error::bad_obs_fold}) {
    const std::optional<ApiError> error = FramingError(http::make_error_code(e));
    ASSERT_TRUE(error.has_value()) << static_cast<int>(e);
    EXPECT_EQ(error->http_status, 400);
    EXPECT_EQ(error->code, "malformed_request");
    EXPECT_NE(error->message.find("expected"), std::string::npos) << error->message;
  }
  // Not about the request's bytes: the connection just closes.
  EXPECT_FALSE(FramingError(http::make_error_code(http::error::end_of_stream)).has_value());
  EXPECT_FALSE(FramingError(boost::asio::error::make_error_code(boost::asio::error::connection_reset)).has_value());
}

TEST(HttpFramingTest, RequestLineVersion) {
  EXPECT_EQ(RequestLineVersion("GET /v1/models HTTP/2.0\r\nHost: x\r\n\r\n"), 20u);
  EXPECT_EQ(RequestLineVersion("GET / HTTP/0.9\r\n"), 9u);
  EXPECT_EQ(RequestLineVersion("POST /v1/completions HTTP/3.1\r\n"), 31u);
  EXPECT_FALSE(RequestLineVersion("GET / HTTP/2\r\n").has_value());
  EXPECT_FALSE(RequestLineVersion("GET /\r\n").has_value());
  EXPECT_FALSE(RequestLineVersion("HELLO THERE\r\n").has_value());
  EXPECT_FALSE(RequestLineVersion("GET / HTTP/1.1").has_value());  // no line end yet
  EXPECT_FALSE(RequestLineVersion(" / HTTP/2.0\r\n").has_value());
}

TEST(HttpFramingTest, EmptyLinesBeforeARequestAndTheRoutedPath) {
  EXPECT_EQ(LeadingEmptyLineBytes("\r\n\r\nGET / HTTP/1.1\r\n"), 4u);
  EXPECT_EQ(LeadingEmptyLineBytes("\n\rGET"), 2u);
  EXPECT_EQ(LeadingEmptyLineBytes("GET /\r\n"), 0u);
  EXPECT_EQ(LeadingEmptyLineBytes("\r\n"), 2u);
  EXPECT_EQ(LeadingEmptyLineBytes(""), 0u);
  EXPECT_EQ(RequestPath("/v1/models?limit=2"), "/v1/models");
  EXPECT_EQ(RequestPath("/health"), "/health");
  EXPECT_EQ(RequestPath("?"), "");
}

// The server's limits: a body over max_request_bytes is body_limit (its 413), headers over 64 KiB
// header_limit (a 400).
TEST(HttpFramingTest, ParserLimits) {
  const auto parse = [](const std::string& bytes, int64_t max_body) {
    RequestParser parser;
    LimitRequestParser(parser, max_body);
    boost::system::error_code ec;
    parser.eager(true);
    parser.put(boost::asio::buffer(bytes), ec);
    return ec;
  };
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 10), http::error::body_limit);
  EXPECT_FALSE(parse("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 10));
  const std::string big_header = "GET / HTTP/1.1\r\nX: " + std::string(kMaxRequestHeaderBytes, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse(big_header, 10), http::error::header_limit);
}

}  // namespace
}  // namespace tandem::frontend
