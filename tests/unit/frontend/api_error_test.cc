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

// Issue 17 (5): worker errors reached clients with the workers' ids and addresses.
TEST(ApiErrorTest, WorkerAddressesAreWithheld) {
  EXPECT_EQ(WithoutWorkerAddresses("prefill worker 127.0.0.1:40123 unreachable: connection refused"),
            "prefill worker <address> unreachable: connection refused");
  EXPECT_EQ(WithoutWorkerAddresses("peer [::1]:5000, then decode-host-7.cluster.local:50051."),
            "peer <address>, then <address>.");
  EXPECT_EQ(WithoutWorkerAddresses("ipv4:10.1.2.3:8001 failed"), "ipv4:<address> failed");
  // Not addresses: times, ratios, a port-less host.
  EXPECT_EQ(WithoutWorkerAddresses("at 12:30, n = 3: expected 1:2 on host-a"),
            "at 12:30, n = 3: expected 1:2 on host-a");
}

}  // namespace
}  // namespace tandem::frontend
