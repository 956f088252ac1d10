// ApiError bodies: OpenAI's error JSON, safe for any bytes a client sent.
#include "tandem/frontend/api_error.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem::frontend {
namespace {

// Issue 17 (1): `GET /\xff` echoed the path into the 404 body and nlohmann's dump() threw
// type_error 316 out of the connection handler, ending the process.
TEST(ApiErrorTest, BodyWithNonUtf8ClientTextDoesNotThrow) {
  for (const std::string& target : {std::string("/\xff"), std::string("/v1/models/abc\xfe"),
                                   std::string("/\xc3"), std::string("/ok\xed\xa0\x80")}) {
    std::string body;
    ASSERT_NO_THROW(body = NotFoundRoute(target).Body()) << target;
    const nlohmann::json parsed = nlohmann::json::parse(body);
    const std::string message = parsed["error"]["message"].get<std::string>();
    EXPECT_NE(message.find("\xef\xbf\xbd"), std::string::npos) << message;  // U+FFFD
    EXPECT_EQ(parsed["error"]["code"], "not_found");
  }
  ASSERT_NO_THROW(ModelNotFound("abc\xfe").Body());
  ASSERT_NO_THROW(MethodNotAllowed("G\xffT", "/\xff").Body());
}

TEST(ApiErrorTest, DumpJsonReplacesInvalidUtf8) {
  EXPECT_EQ(DumpJson(nlohmann::json{{"prompt", std::string("a\xff")}}), "{\"prompt\":\"a\xef\xbf\xbd\"}");
  EXPECT_EQ(DumpJson(nlohmann::json{{"prompt", "caf\xc3\xa9"}}), "{\"prompt\":\"caf\xc3\xa9\"}");
}

}  // namespace
}  // namespace tandem::frontend
