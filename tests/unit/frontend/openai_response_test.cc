// ResponseBuilder: OpenAI's non-streaming bodies and SSE chunk sequences from Generator events.
#include "tandem/frontend/openai_response.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::frontend {
namespace {

using nlohmann::json;

PreparedRequest MakePrepared(ApiKind kind, int n, bool stream, bool include_usage, size_t num_prompts = 1) {
  PreparedRequest p;
  p.request.kind = kind;
  p.request.model = std::string("m");  // move-assigned: GCC 12 -O3 warns (-Wrestrict) on assigning the literal
  p.request.params.n = n;
  p.request.stream = stream;
  p.request.include_usage = include_usage;
  p.id = std::string(kind == ApiKind::kChat ? "chatcmpl-1" : "cmpl-1");
  p.created = 123;
  p.subs.resize(num_prompts);
  p.prompt_texts.resize(num_prompts);
  return p;
}

GenerateEvent Tokens(int index, std::vector<int32_t> ids, std::string text,
                     FinishReason finish = FinishReason::kNone) {
  GenerateEvent e;
  ChoiceDelta d;
  d.index = index;
  d.token_ids = std::move(ids);
  d.text = std::move(text);
  d.finish_reason = finish;
  e.choices.push_back(std::move(d));
  return e;
}

// The JSON payloads of `data: ...` lines, and whether [DONE] ended them.
std::vector<json> ParseSse(const std::string& sse, bool* done) {
  std::vector<json> out;
  *done = false;
  size_t pos = 0;
  while (pos < sse.size()) {
    size_t end = sse.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos);
    if (end == std::string::npos) break;
    std::string line = sse.substr(pos, end - pos);
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << line;
    std::string payload = line.substr(6);
    if (payload == "[DONE]") {
      *done = true;
    } else {
      EXPECT_FALSE(*done) << "data after [DONE]";
      out.push_back(json::parse(payload));
    }
    pos = end + 2;
  }
  return out;
}

TEST(ResponseBuilderTest, ChatNonStreamingWithUsageAndTwoChoices) {
  PreparedRequest p = MakePrepared(ApiKind::kChat, 2, false, false);
  ResponseBuilder b(p);
  EXPECT_EQ(b.OnEvent(0, Tokens(0, {1, 2}, "Hel")), "");
  EXPECT_FALSE(b.done());
  b.OnEvent(0, Tokens(1, {3}, "Yo", FinishReason::kLength));
  GenerateEvent last = Tokens(0, {4}, "lo", FinishReason::kStop);
  last.final = true;
  last.usage = Usage{5, 4, 0};
  b.OnEvent(0, last);
  ASSERT_TRUE(b.done());
  HttpReply reply = b.FinalReply();
  EXPECT_EQ(reply.status, 200);
  json body = json::parse(reply.body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["id"], "chatcmpl-1");
  ASSERT_EQ(body["choices"].size(), 2u);
  EXPECT_EQ(body["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][1]["message"]["content"], "Yo");
  EXPECT_EQ(body["choices"][1]["finish_reason"], "length");
  EXPECT_TRUE(body["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(body["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(body["usage"]["completion_tokens"], 4);
  EXPECT_EQ(body["usage"]["total_tokens"], 9);
}

TEST(ResponseBuilderTest, ChatStreamingChunkOrder) {
  PreparedRequest p = MakePrepared(ApiKind::kChat, 1, true, true);
  ResponseBuilder b(p);
  std::string sse = b.StreamBegin();
  sse += b.OnEvent(0, Tokens(0, {1}, "Hi"));
  GenerateEvent last = Tokens(0, {2}, "", FinishReason::kStop);
  last.final = true;
  last.usage = Usage{3, 2, 0};
  sse += b.OnEvent(0, last);
  bool done = false;
  std::vector<json> chunks = ParseSse(sse, &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chunks[1]["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(chunks[1]["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(chunks[1]["usage"].is_null());
  EXPECT_EQ(chunks[2]["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(chunks[3]["choices"].empty());
  EXPECT_EQ(chunks[3]["usage"]["total_tokens"], 5);
}

TEST(ResponseBuilderTest, CompletionsMultiPromptIndexesAndLogprobs) {
  PreparedRequest p = MakePrepared(ApiKind::kCompletion, 2, false, false, /*num_prompts=*/2);
  p.request.params.logprobs = 1;
  ResponseBuilder b(p);
  for (size_t sub = 0; sub < 2; ++sub) {
    for (int i = 0; i < 2; ++i) {
      GenerateEvent e = Tokens(i, {7}, "ab", FinishReason::kLength);
      e.choices[0].logprobs.push_back(TokenLogprob{7, "ab", -0.5f, {TopLogprob{7, "ab", -0.5f}}});
      e.final = i == 1;
      e.usage = Usage{4, 2, 0};
      b.OnEvent(sub, e);
    }
  }
  ASSERT_TRUE(b.done());
  json body = json::parse(b.FinalReply().body);
  EXPECT_EQ(body["object"], "text_completion");
  ASSERT_EQ(body["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(body["choices"][i]["index"], i);
    EXPECT_EQ(body["choices"][i]["text"], "ab");
    const json& lp = body["choices"][i]["logprobs"];
    EXPECT_EQ(lp["tokens"], json::array({"ab"}));
    EXPECT_FLOAT_EQ(lp["token_logprobs"][0].get<float>(), -0.5f);
    EXPECT_FLOAT_EQ(lp["top_logprobs"][0]["ab"].get<float>(), -0.5f);
    EXPECT_EQ(lp["text_offset"], json::array({0}));
  }
  EXPECT_EQ(body["usage"]["prompt_tokens"], 8);
  EXPECT_EQ(body["usage"]["completion_tokens"], 4);
}

TEST(ResponseBuilderTest, ErrorEventBecomesOpenAiError) {
  PreparedRequest p = MakePrepared(ApiKind::kCompletion, 1, true, false);
  ResponseBuilder b(p);
  GenerateEvent e;
  e.status = absl::ResourceExhaustedError("KV cache full");
  e.final = true;
  bool done = false;
  std::vector<json> chunks = ParseSse(b.OnEvent(0, e), &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0]["error"]["message"], "KV cache full");
  EXPECT_TRUE(b.failed());
  EXPECT_EQ(b.FinalReply().status, 429);
}

TEST(ApiErrorTest, StatusMapping) {
  EXPECT_EQ(FromStatus(absl::InvalidArgumentError("x")).http_status, 400);
  EXPECT_EQ(FromStatus(absl::NotFoundError("x")).http_status, 404);
  EXPECT_EQ(FromStatus(absl::ResourceExhaustedError("x")).http_status, 429);
  EXPECT_EQ(FromStatus(absl::UnavailableError("x")).http_status, 503);
  EXPECT_EQ(FromStatus(absl::InternalError("x")).http_status, 500);
  json j = ModelNotFound("gpt-9").ToJson();
  EXPECT_EQ(j["error"]["code"], "model_not_found");
  EXPECT_EQ(j["error"]["param"], "model");
  EXPECT_TRUE(InvalidRequest("m").ToJson()["error"]["param"].is_null());
}

}  // namespace
}  // namespace tandem::frontend
