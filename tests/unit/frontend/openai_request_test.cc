// Validation of OpenAI request bodies: each bad body gets a 400 naming the offending parameter,
// and good bodies map onto the Generator's sampling parameters.
#include "tandem/frontend/openai_request.h"

#include <string>
#include <variant>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::frontend {
namespace {

struct BadCase {
  const char* name;
  ApiKind kind;
  const char* body;
  const char* param;  // expected error param ("" = null)
};

class BadRequestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRequestTest, RejectedWith400AndParam) {
  const BadCase& c = GetParam();
  auto result = ParseOpenAiRequest(c.kind, std::string(c.body));
  ASSERT_TRUE(std::holds_alternative<ApiError>(result)) << c.body;
  const ApiError& error = std::get<ApiError>(result);
  EXPECT_EQ(error.http_status, 400);
  EXPECT_EQ(error.type, "invalid_request_error");
  EXPECT_EQ(error.param, c.param) << error.message;
  EXPECT_FALSE(error.message.empty());
  const nlohmann::json j = error.ToJson();
  ASSERT_TRUE(j.contains("error"));
  for (const char* key : {"message", "type", "param", "code"}) EXPECT_TRUE(j["error"].contains(key)) << key;
}

constexpr ApiKind kChat = ApiKind::kChat;
constexpr ApiKind kCmpl = ApiKind::kCompletion;
#define MSGS R"("messages": [{"role": "user", "content": "hi"}])"

INSTANTIATE_TEST_SUITE_P(
    Table, BadRequestTest,
    ::testing::Values(
        BadCase{"not_json", kChat, "{not json", ""}, BadCase{"not_object", kChat, "[1, 2]", ""},
        BadCase{"missing_model", kChat, "{" MSGS "}", "model"},
        BadCase{"model_not_string", kChat, R"({"model": 3, )" MSGS "}", "model"},
        BadCase{"missing_messages", kChat, R"({"model": "m"})", "messages"},
        BadCase{"empty_messages", kChat, R"({"model": "m", "messages": []})", "messages"},
        BadCase{"messages_not_array", kChat, R"({"model": "m", "messages": "hi"})", "messages"},
        BadCase{"message_not_object", kChat, R"({"model": "m", "messages": ["hi"]})", "messages[0]"},
        BadCase{"bad_role", kChat, R"({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})",
                "messages[0].role"},
        BadCase{"missing_role", kChat, R"({"model": "m", "messages": [{"content": "x"}]})",
                "messages[0].role"},
        BadCase{"content_number", kChat, R"({"model": "m", "messages": [{"role": "user", "content": 5}]})",
                "messages[0].content"},
        BadCase{
            "image_part", kChat,
            R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
            "messages[0].content"},
        BadCase{"missing_prompt", kCmpl, R"({"model": "m"})", "prompt"},
        BadCase{"prompt_number", kCmpl, R"({"model": "m", "prompt": 5})", "prompt"},
        BadCase{"prompt_empty_string", kCmpl, R"({"model": "m", "prompt": ""})", "prompt"},
        BadCase{"prompt_mixed_array", kCmpl, R"({"model": "m", "prompt": ["a", 1]})", "prompt"},
        BadCase{"prompt_negative_id", kCmpl, R"({"model": "m", "prompt": [1, -2]})", "prompt"},
        BadCase{"max_tokens_zero", kChat, R"({"model": "m", "max_tokens": 0, )" MSGS "}", "max_tokens"},
        BadCase{"max_tokens_string", kChat, R"({"model": "m", "max_tokens": "10", )" MSGS "}", "max_tokens"},
        BadCase{"max_completion_tokens_neg", kChat,
                R"({"model": "m", "max_completion_tokens": -1, )" MSGS "}", "max_completion_tokens"},
        BadCase{"temperature_high", kChat, R"({"model": "m", "temperature": 2.5, )" MSGS "}", "temperature"},
        BadCase{"temperature_bool", kChat, R"({"model": "m", "temperature": true, )" MSGS "}", "temperature"},
        BadCase{"top_p_zero", kChat, R"({"model": "m", "top_p": 0, )" MSGS "}", "top_p"},
        BadCase{"top_k_bad", kChat, R"({"model": "m", "top_k": -5, )" MSGS "}", "top_k"},
        BadCase{"min_p_bad", kChat, R"({"model": "m", "min_p": 1.5, )" MSGS "}", "min_p"},
        BadCase{"n_zero", kChat, R"({"model": "m", "n": 0, )" MSGS "}", "n"},
        BadCase{"n_huge", kChat, R"({"model": "m", "n": 1000, )" MSGS "}", "n"},
        BadCase{"stop_number", kChat, R"({"model": "m", "stop": 7, )" MSGS "}", "stop"},
        BadCase{"stop_empty", kChat, R"({"model": "m", "stop": [""], )" MSGS "}", "stop"},
        BadCase{"seed_float", kChat, R"({"model": "m", "seed": 1.5, )" MSGS "}", "seed"},
        BadCase{"presence_penalty", kChat, R"({"model": "m", "presence_penalty": 3, )" MSGS "}",
                "presence_penalty"},
        BadCase{"frequency_penalty", kChat, R"({"model": "m", "frequency_penalty": -3, )" MSGS "}",
                "frequency_penalty"},
        BadCase{"repetition_penalty", kChat, R"({"model": "m", "repetition_penalty": 0, )" MSGS "}",
                "repetition_penalty"},
        BadCase{"logit_bias_key", kChat, R"({"model": "m", "logit_bias": {"abc": 1}, )" MSGS "}",
                "logit_bias"},
        BadCase{"logit_bias_value", kChat, R"({"model": "m", "logit_bias": {"5": 101}, )" MSGS "}",
                "logit_bias"},
        BadCase{"chat_logprobs_int", kChat, R"({"model": "m", "logprobs": 3, )" MSGS "}", "logprobs"},
        BadCase{"top_logprobs_without", kChat, R"({"model": "m", "top_logprobs": 3, )" MSGS "}",
                "top_logprobs"},
        BadCase{"top_logprobs_high", kChat,
                R"({"model": "m", "logprobs": true, "top_logprobs": 21, )" MSGS "}", "top_logprobs"},
        BadCase{"completion_logprobs_high", kCmpl, R"({"model": "m", "prompt": "x", "logprobs": 50})",
                "logprobs"},
        BadCase{"stream_string", kChat, R"({"model": "m", "stream": "yes", )" MSGS "}", "stream"},
        BadCase{"stream_options_without_stream", kChat,
                R"({"model": "m", "stream_options": {"include_usage": true}, )" MSGS "}", "stream_options"},
        BadCase{"include_usage_string", kChat,
                R"({"model": "m", "stream": true, "stream_options": {"include_usage": "y"}, )" MSGS "}",
                "stream_options.include_usage"},
        BadCase{"min_tokens_over_max", kChat, R"({"model": "m", "min_tokens": 9, "max_tokens": 3, )" MSGS "}",
                "min_tokens"},
        BadCase{"stop_token_ids_bad", kChat, R"({"model": "m", "stop_token_ids": ["a"], )" MSGS "}",
                "stop_token_ids"},
        BadCase{"ignore_eos_string", kChat, R"({"model": "m", "ignore_eos": "true", )" MSGS "}",
                "ignore_eos"},
        BadCase{"best_of_differs", kCmpl, R"({"model": "m", "prompt": "x", "best_of": 3})", "best_of"},
        BadCase{"suffix", kCmpl, R"({"model": "m", "prompt": "x", "suffix": "tail"})", "suffix"},
        BadCase{"user_number", kChat, R"({"model": "m", "user": 5, )" MSGS "}", "user"}),
    [](const ::testing::TestParamInfo<BadCase>& param_info) { return std::string(param_info.param.name); });

TEST(OpenAiRequestTest, ChatMapsEveryParameter) {
  auto result = ParseOpenAiRequest(kChat, std::string(R"({
      "model": "m", "messages": [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
      "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "n": 3,
      "stop": "END", "seed": 42, "presence_penalty": 0.1, "frequency_penalty": 0.2, "repetition_penalty": 1.1,
      "logit_bias": {"17": -100}, "logprobs": true, "top_logprobs": 4, "stream": true,
      "stream_options": {"include_usage": true}, "ignore_eos": true, "min_tokens": 2, "stop_token_ids": [5, 6],
      "skip_special_tokens": false, "user": "u", "tools": [], "vendor_x": 1})"));
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(result)) << std::get<ApiError>(result).message;
  const OpenAiRequest& r = std::get<OpenAiRequest>(result);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_TRUE(r.max_tokens_given);
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.top_k, 40);
  EXPECT_FLOAT_EQ(r.params.min_p, 0.05f);
  EXPECT_EQ(r.params.n, 3);
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.params.seed, 42u);
  EXPECT_FLOAT_EQ(r.params.presence_penalty, 0.1f);
  EXPECT_FLOAT_EQ(r.params.frequency_penalty, 0.2f);
  EXPECT_FLOAT_EQ(r.params.repetition_penalty, 1.1f);
  ASSERT_EQ(r.params.logit_bias.size(), 1u);
  EXPECT_EQ(r.params.logit_bias[0].first, 17);
  EXPECT_EQ(r.params.logprobs, 4);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.params.ignore_eos);
  EXPECT_EQ(r.params.min_tokens, 2);
  EXPECT_EQ(r.params.stop_token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_FALSE(r.params.skip_special_tokens);
  EXPECT_EQ(r.unknown_keys, (std::vector<std::string>{"tools", "vendor_x"}));
}

TEST(OpenAiRequestTest, CompletionPromptShapes) {
  auto one = ParseOpenAiRequest(
      kCmpl, std::string(R"({"model": "m", "prompt": "hello", "logprobs": 2, "echo": true})"));
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(one));
  EXPECT_EQ(std::get<OpenAiRequest>(one).prompts.size(), 1u);
  EXPECT_EQ(std::get<OpenAiRequest>(one).params.logprobs, 2);
  EXPECT_TRUE(std::get<OpenAiRequest>(one).echo);
  EXPECT_FALSE(std::get<OpenAiRequest>(one).max_tokens_given);

  auto strings = ParseOpenAiRequest(kCmpl, std::string(R"({"model": "m", "prompt": ["a", "b", "c"]})"));
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(strings));
  EXPECT_EQ(std::get<OpenAiRequest>(strings).prompts.size(), 3u);

  auto ids = ParseOpenAiRequest(kCmpl, std::string(R"({"model": "m", "prompt": [1, 2, 3]})"));
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(ids));
  ASSERT_EQ(std::get<OpenAiRequest>(ids).prompts.size(), 1u);
  EXPECT_EQ(std::get<OpenAiRequest>(ids).prompts[0].token_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(std::get<OpenAiRequest>(ids).prompts[0].text.has_value());

  auto nested = ParseOpenAiRequest(kCmpl, std::string(R"({"model": "m", "prompt": [[1, 2], [3]]})"));
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(nested));
  EXPECT_EQ(std::get<OpenAiRequest>(nested).prompts.size(), 2u);
}

TEST(OpenAiRequestTest, NullMeansAbsent) {
  auto r =
      ParseOpenAiRequest(kChat, std::string(R"({"model": "m", "messages": [{"role": "user", "content": "x"}],
      "temperature": null, "stop": null, "seed": null, "max_tokens": null, "top_k": -1})"));
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(r));
  EXPECT_FLOAT_EQ(std::get<OpenAiRequest>(r).params.temperature, 1.0f);
  EXPECT_FALSE(std::get<OpenAiRequest>(r).params.seed.has_value());
  EXPECT_FALSE(std::get<OpenAiRequest>(r).max_tokens_given);
  EXPECT_EQ(std::get<OpenAiRequest>(r).params.top_k, 0);
}

// Issue 17 (6): /detokenize read ids with get<int32_t>(), so 4294967301 came back as token 5.
TEST(OpenAiRequestTest, TokenIdListRejectsIdsOutsideInt32WithoutWrapping) {
  std::vector<int32_t> ids;
  for (const char* bad : {"[4294967301]", "[2147483648]", "[-1]", "[18446744073709551615]", "[9223372036854775813]",
                          "[1.5]", "[\"3\"]", "[1, 4294967296]"}) {
    auto error = ParseTokenIdList(nlohmann::json::parse(bad), "tokens", &ids);
    ASSERT_TRUE(error.has_value()) << bad;
    EXPECT_EQ(error->http_status, 400);
    EXPECT_EQ(error->param, "tokens");
    const std::string last = nlohmann::json::parse(bad).back().dump();
    EXPECT_NE(error->message.find(last), std::string::npos) << error->message;  // names the id
  }
  ASSERT_FALSE(ParseTokenIdList(nlohmann::json::parse("[0, 5, 2147483647]"), "tokens", &ids).has_value());
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 5, 2147483647}));
  EXPECT_TRUE(ParseTokenIdList(nlohmann::json::parse("{}"), "tokens", &ids).has_value());
}

}  // namespace
}  // namespace tandem::frontend
