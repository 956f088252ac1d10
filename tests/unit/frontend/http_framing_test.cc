// What the HTTP server answers to bytes its parser rejects.
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

}  // namespace
}  // namespace tandem::frontend
