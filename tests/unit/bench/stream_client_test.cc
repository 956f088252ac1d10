#include "tandem/bench/stream_client.h"

#include "gtest/gtest.h"

namespace tandem::bench {
namespace {

TEST(StreamClientTest, ParseBaseUrl) {
  auto e = ParseBaseUrl("http://127.0.0.1:8000");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, "8000");
  EXPECT_EQ(e->prefix, "");
  e = ParseBaseUrl("http://example:81/openai/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->prefix, "/openai");
  e = ParseBaseUrl("http://[::1]:9000");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(ParseBaseUrl("http://host").value().port, "80");
  EXPECT_NE(ParseBaseUrl("https://x:1").status().message().find("https is not supported"), std::string::npos);
  EXPECT_NE(ParseBaseUrl("localhost:8000").status().message().find("expected http://HOST:PORT"),
            std::string::npos);
  EXPECT_NE(ParseBaseUrl("http://h:99999").status().message().find("expected a port"), std::string::npos);
}

TEST(StreamClientTest, ApplyEventReadsCompletionsAndChatChunks) {
  StreamResult r;
  EXPECT_FALSE(ApplyEvent(R"({"choices":[{"index":0,"text":"Hel"}]})", 1.0, &r));
  EXPECT_FALSE(ApplyEvent(R"({"choices":[{"index":0,"delta":{"role":"assistant"}}]})", 1.5, &r));  // no text
  EXPECT_FALSE(ApplyEvent(R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})", 2.0, &r));
  EXPECT_FALSE(ApplyEvent(R"({"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}})", 2.5, &r));
  EXPECT_TRUE(ApplyEvent("[DONE]", 3.0, &r));
  EXPECT_EQ(r.text, "Hello");
  EXPECT_EQ(r.content_times, (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(r.usage_prompt_tokens, 5);
  EXPECT_EQ(r.usage_completion_tokens, 2);
  EXPECT_TRUE(r.error.empty());
}

TEST(StreamClientTest, ApplyEventReportsMalformedAndErrorEvents) {
  StreamResult r;
  EXPECT_TRUE(ApplyEvent("{not json", 1.0, &r));
  EXPECT_NE(r.error.find("malformed stream: expected a JSON object or [DONE]"), std::string::npos) << r.error;
  StreamResult e;
  EXPECT_TRUE(ApplyEvent(R"({"error":{"message":"out of blocks","type":"server_error"}})", 1.0, &e));
  EXPECT_EQ(e.error, "server error event: out of blocks");
}

TEST(StreamClientTest, UnreachableServerIsAClearError) {
  // Port 1 on loopback: nothing listens there.
  StreamRequest req{"/v1/completions", "{}", "", 5};
  StreamResult r = SendStreaming(Endpoint{"127.0.0.1", "1", ""}, req, Clock::now());
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("cannot connect to 127.0.0.1:1"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace tandem::bench
