// Parsing and validating OpenAI request bodies (/v1/chat/completions, /v1/completions) into a
// transport-neutral request. Pure functions of the JSON: what needs the model (its name, the
// tokenizer, the context length) is checked afterwards by OpenAiService::Prepare.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "nlohmann/json.hpp"
#include "tandem/frontend/api_error.h"
#include "tandem/frontend/generator.h"

namespace tandem::frontend {

enum class ApiKind { kChat, kCompletion };

// One completions prompt: text (tokenized by the frontend) or token ids (used as they are).
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> token_ids;
};

struct OpenAiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;
  nlohmann::json messages;           // chat: normalized [{"role", "content": string}, ...]
  std::vector<PromptInput> prompts;  // completions: one or more prompts
  GenerateRequest params;            // sampling parameters (prompt ids and request id filled later)
  bool max_tokens_given = false;     // else: chat -> what is left of the context, completions -> 16
  bool stream = false;
  bool include_usage = false;             // stream_options.include_usage
  bool echo = false;                      // completions: prepend the prompt text
  bool chat_logprobs = false;             // chat: logprobs=true (top count in params.logprobs)
  bool add_generation_prompt = true;      // chat extension (vLLM)
  std::vector<std::string> unknown_keys;  // accepted, logged once per key by the caller
};

// Parses `body` (the raw HTTP body). Returns the request or the 400 error naming the parameter.
std::variant<OpenAiRequest, ApiError> ParseOpenAiRequest(ApiKind kind, const std::string& body);
std::variant<OpenAiRequest, ApiError> ParseOpenAiRequest(ApiKind kind, const nlohmann::json& body);

// A JSON array of token ids into `out`; the 400 naming `key` and the offending value when `v` is not
// an array of integers in [0, 2^31) (ids are never narrowed: 4294967301 is rejected, not read as 5).
std::optional<ApiError> ParseTokenIdList(const nlohmann::json& v, const char* key, std::vector<int32_t>* out);

}  // namespace tandem::frontend
