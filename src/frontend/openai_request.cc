#include "tandem/frontend/openai_request.h"

#include <cmath>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::frontend {

namespace {

using nlohmann::json;

constexpr int32_t kMaxN = 128;
constexpr int32_t kMaxLogprobs = 20;

const std::set<std::string>& CommonKeys() {
  static const std::set<std::string> kKeys = {"model",
                                              "max_tokens",
                                              "temperature",
                                              "top_p",
                                              "n",
                                              "stop",
                                              "seed",
                                              "presence_penalty",
                                              "frequency_penalty",
                                              "logit_bias",
                                              "logprobs",
                                              "user",
                                              "stream",
                                              "stream_options",
                                              "top_k",
                                              "min_p",
                                              "repetition_penalty",
                                              "ignore_eos",
                                              "min_tokens",
                                              "stop_token_ids",
                                              "skip_special_tokens",
                                              "best_of"};
  return kKeys;
}

std::string TypeName(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// A present, non-null value of `body[key]`, or nullptr.
const json* Field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// Each Get* returns an error when the value is present but invalid; `out` is untouched when absent.
std::optional<ApiError> GetBool(const json& body, const char* key, bool* out) {
  const json* v = Field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) {
    return InvalidRequest(absl::StrCat("'", key, "' must be a boolean, got ", TypeName(*v), "."), key);
  }
  *out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> GetInt(const json& body, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  const json* v = Field(body, key);
  if (v == nullptr) return std::nullopt;
  int64_t value = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidRequest(absl::StrCat("'", key, "' is out of range: ", u, "."), key);
    }
    value = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    value = v->get<int64_t>();
  } else {
    return InvalidRequest(absl::StrCat("'", key, "' must be an integer, got ", TypeName(*v), "."), key);
  }
  if (value < lo || value > hi) {
    return InvalidRequest(absl::StrCat("'", key, "' must be in [", lo, ", ", hi, "], got ", value, "."), key);
  }
  *out = value;
  return std::nullopt;
}

std::optional<ApiError> GetInt32(const json& body, const char* key, int64_t lo, int64_t hi, int32_t* out) {
  int64_t value = *out;
  if (auto err = GetInt(body, key, lo, hi, &value)) return err;
  *out = static_cast<int32_t>(value);
  return std::nullopt;
}

// A number in [lo, hi] (or (lo, hi] when `lo_open`).
std::optional<ApiError> GetFloat(const json& body, const char* key, double lo, double hi, bool lo_open,
                                 float* out) {
  const json* v = Field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) {
    return InvalidRequest(absl::StrCat("'", key, "' must be a number, got ", TypeName(*v), "."), key);
  }
  const double value = v->get<double>();
  if (!std::isfinite(value) || value > hi || (lo_open ? value <= lo : value < lo)) {
    return InvalidRequest(
        absl::StrCat("'", key, "' must be in ", lo_open ? "(" : "[", lo, ", ", hi, "], got ", value, "."),
        key);
  }
  *out = static_cast<float>(value);
  return std::nullopt;
}

std::optional<ApiError> ParseStop(const json& body, GenerateRequest* params) {
  const json* v = Field(body, "stop");
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) {
    if (v->get<std::string>().empty()) return InvalidRequest("'stop' must not be an empty string.", "stop");
    params->stop = {v->get<std::string>()};
    return std::nullopt;
  }
  if (!v->is_array()) {
    return InvalidRequest(
        absl::StrCat("'stop' must be a string or an array of strings, got ", TypeName(*v), "."), "stop");
  }
  for (const json& s : *v) {
    if (!s.is_string() || s.get<std::string>().empty()) {
      return InvalidRequest(absl::StrCat("'stop' must hold non-empty strings, found ", s.dump(), "."),
                            "stop");
    }
    params->stop.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> ParseLogitBias(const json& body, GenerateRequest* params) {
  const json* v = Field(body, "logit_bias");
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) {
    return InvalidRequest(
        absl::StrCat("'logit_bias' must be an object of token id -> bias, got ", TypeName(*v), "."),
        "logit_bias");
  }
  for (const auto& [key, bias] : v->items()) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(key, &id) || id < 0) {
      return InvalidRequest(absl::StrCat("'logit_bias' keys must be token ids, found \"", key, "\"."),
                            "logit_bias");
    }
    if (!bias.is_number() || bias.get<double>() < -100.0 || bias.get<double>() > 100.0) {
      return InvalidRequest(absl::StrCat("'logit_bias' values must be numbers in [-100, 100], found ",
                                         bias.dump(), " for ", key, "."),
                            "logit_bias");
    }
    params->logit_bias.emplace_back(id, bias.get<float>());
  }
  return std::nullopt;
}

// Chat content: a string, or an array of {"type": "text", "text": ...} parts (joined), or null.
std::optional<ApiError> NormalizeContent(const json& content, size_t index, std::string* out) {
  const std::string param = absl::StrCat("messages[", index, "].content");
  if (content.is_null()) return std::nullopt;
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) {
    return InvalidRequest(
        absl::StrCat("'", param, "' must be a string or an array of parts, got ", TypeName(content), "."),
        param);
  }
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return InvalidRequest(absl::StrCat("'", param,
                                         "' parts must be {\"type\": \"text\", \"text\": string}; only "
                                         "text content is supported, found ",
                                         part.dump(), "."),
                            param);
    }
    *out += part["text"].get<std::string>();
  }
  return std::nullopt;
}

std::optional<ApiError> ParseMessages(const json& body, OpenAiRequest* req) {
  const json* v = Field(body, "messages");
  if (v == nullptr) return InvalidRequest("'messages' is required.", "messages");
  if (!v->is_array() || v->empty()) {
    return InvalidRequest(absl::StrCat("'messages' must be a non-empty array, got ",
                                       v->is_array() ? "an empty array" : TypeName(*v), "."),
                          "messages");
  }
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
  req->messages = json::array();
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    if (!m.is_object()) {
      return InvalidRequest(absl::StrCat("'messages[", i, "]' must be an object, got ", TypeName(m), "."),
                            absl::StrCat("messages[", i, "]"));
    }
    const std::string role_param = absl::StrCat("messages[", i, "].role");
    if (!m.contains("role") || !m["role"].is_string()) {
      return InvalidRequest(absl::StrCat("'", role_param, "' is required and must be a string."), role_param);
    }
    const std::string role = m["role"].get<std::string>();
    if (kRoles.count(role) == 0) {
      return InvalidRequest(absl::StrCat("'", role_param,
                                         "' must be one of system, developer, user, assistant, "
                                         "tool; got '",
                                         role, "'."),
                            role_param);
    }
    std::string content;
    if (!m.contains("content") && role != "assistant") {
      return InvalidRequest(absl::StrCat("'messages[", i, "].content' is required."),
                            absl::StrCat("messages[", i, "].content"));
    }
    if (m.contains("content")) {
      if (auto err = NormalizeContent(m["content"], i, &content)) return err;
    }
    json normalized = m;  // keeps extra fields (name, tool_calls) for templates that use them
    normalized["content"] = content;
    req->messages.push_back(std::move(normalized));
  }
  return std::nullopt;
}

std::optional<ApiError> ParsePrompt(const json& body, OpenAiRequest* req) {
  const json* v = Field(body, "prompt");
  if (v == nullptr) return InvalidRequest("'prompt' is required.", "prompt");
  const char* kShape =
      "'prompt' must be a string, an array of strings, an array of token ids or an array of "
      "arrays of token ids";
  if (v->is_string()) {
    req->prompts.push_back(PromptInput{v->get<std::string>(), {}});
  } else if (v->is_array() && !v->empty()) {
    const json& first = v->front();
    if (first.is_number_integer()) {
      PromptInput p;
      if (auto err = ParseTokenIdList(*v, "prompt", &p.token_ids)) return err;
      req->prompts.push_back(std::move(p));
    } else if (first.is_string()) {
      for (const json& s : *v) {
        if (!s.is_string()) return InvalidRequest(absl::StrCat(kShape, "; found a mixed array."), "prompt");
        req->prompts.push_back(PromptInput{s.get<std::string>(), {}});
      }
    } else if (first.is_array()) {
      for (const json& ids : *v) {
        PromptInput p;
        if (auto err = ParseTokenIdList(ids, "prompt", &p.token_ids)) return err;
        req->prompts.push_back(std::move(p));
      }
    } else {
      return InvalidRequest(absl::StrCat(kShape, "; found an array of ", TypeName(first), "."), "prompt");
    }
  } else {
    return InvalidRequest(
        absl::StrCat(kShape, "; got ", v->is_array() ? "an empty array" : TypeName(*v), "."), "prompt");
  }
  for (const PromptInput& p : req->prompts) {
    if ((p.text && p.text->empty()) || (!p.text && p.token_ids.empty())) {
      return InvalidRequest("'prompt' must not be empty.", "prompt");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> ParseBody(ApiKind kind, const json& body, OpenAiRequest* req) {
  if (!body.is_object()) {
    return InvalidRequest(absl::StrCat("The request body must be a JSON object, got ", TypeName(body), "."));
  }
  req->kind = kind;
  const json* model = Field(body, "model");
  if (model == nullptr) return InvalidRequest("'model' is required.", "model");
  if (!model->is_string()) {
    return InvalidRequest(absl::StrCat("'model' must be a string, got ", TypeName(*model), "."), "model");
  }
  req->model = model->get<std::string>();

  if (kind == ApiKind::kChat) {
    if (auto err = ParseMessages(body, req)) return err;
  } else {
    if (auto err = ParsePrompt(body, req)) return err;
  }

  GenerateRequest& p = req->params;
  p.model = req->model;
  const int64_t kIntMax = std::numeric_limits<int32_t>::max();
  // max_completion_tokens (chat) supersedes the deprecated max_tokens.
  const char* max_key =
      kind == ApiKind::kChat && Field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (Field(body, max_key) != nullptr) {
    if (auto err = GetInt32(body, max_key, 1, kIntMax, &p.max_tokens)) return err;
    req->max_tokens_given = true;
  }
  if (auto err = GetFloat(body, "temperature", 0.0, 2.0, false, &p.temperature)) return err;
  if (auto err = GetFloat(body, "top_p", 0.0, 1.0, true, &p.top_p)) return err;
  if (auto err = GetInt32(body, "top_k", -1, kIntMax, &p.top_k)) return err;
  if (p.top_k == -1) p.top_k = 0;
  if (auto err = GetFloat(body, "min_p", 0.0, 1.0, false, &p.min_p)) return err;
  if (auto err = GetInt32(body, "n", 1, kMaxN, &p.n)) return err;
  if (const json* best_of = Field(body, "best_of")) {
    if (!best_of->is_number_integer() || best_of->get<int64_t>() != p.n) {
      return InvalidRequest(
          absl::StrCat("'best_of' is only supported equal to n (", p.n, "), got ", best_of->dump(), "."),
          "best_of");
    }
  }
  if (auto err = ParseStop(body, &p)) return err;
  if (const json* seed = Field(body, "seed")) {
    if (!seed->is_number_integer()) {
      return InvalidRequest(absl::StrCat("'seed' must be an integer, got ", TypeName(*seed), "."), "seed");
    }
    p.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
  }
  if (auto err = GetFloat(body, "presence_penalty", -2.0, 2.0, false, &p.presence_penalty)) return err;
  if (auto err = GetFloat(body, "frequency_penalty", -2.0, 2.0, false, &p.frequency_penalty)) return err;
  if (auto err = GetFloat(body, "repetition_penalty", 0.0, 10.0, true, &p.repetition_penalty)) return err;
  if (auto err = ParseLogitBias(body, &p)) return err;
  if (auto err = GetBool(body, "ignore_eos", &p.ignore_eos)) return err;
  if (auto err = GetInt32(body, "min_tokens", 0, kIntMax, &p.min_tokens)) return err;
  if (req->max_tokens_given && p.min_tokens > p.max_tokens) {
    return InvalidRequest(
        absl::StrCat("'min_tokens' (", p.min_tokens, ") must not exceed max_tokens (", p.max_tokens, ")."),
        "min_tokens");
  }
  if (const json* ids = Field(body, "stop_token_ids")) {
    if (auto err = ParseTokenIdList(*ids, "stop_token_ids", &p.stop_token_ids)) return err;
  }
  if (auto err = GetBool(body, "skip_special_tokens", &p.skip_special_tokens)) return err;

  if (kind == ApiKind::kChat) {
    if (auto err = GetBool(body, "logprobs", &req->chat_logprobs)) return err;
    int32_t top = 0;
    if (auto err = GetInt32(body, "top_logprobs", 0, kMaxLogprobs, &top)) return err;
    if (Field(body, "top_logprobs") != nullptr && !req->chat_logprobs) {
      return InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs");
    }
    if (req->chat_logprobs) p.logprobs = top;
    if (auto err = GetBool(body, "add_generation_prompt", &req->add_generation_prompt)) return err;
  } else {
    if (Field(body, "logprobs") != nullptr) {
      int32_t top = 0;
      if (auto err = GetInt32(body, "logprobs", 0, kMaxLogprobs, &top)) return err;
      p.logprobs = top;
    }
    if (auto err = GetBool(body, "echo", &req->echo)) return err;
    if (const json* suffix = Field(body, "suffix")) {
      if (!suffix->is_string() || !suffix->get<std::string>().empty()) {
        return InvalidRequest("'suffix' is not supported.", "suffix");
      }
    }
  }

  if (auto err = GetBool(body, "stream", &req->stream)) return err;
  if (const json* options = Field(body, "stream_options")) {
    if (!req->stream)
      return InvalidRequest("'stream_options' is only allowed when 'stream' is true.", "stream_options");
    if (!options->is_object()) {
      return InvalidRequest(absl::StrCat("'stream_options' must be an object, got ", TypeName(*options), "."),
                            "stream_options");
    }
    if (auto err = GetBool(*options, "include_usage", &req->include_usage)) {
      err->param = "stream_options.include_usage";
      return err;
    }
  }
  if (const json* user = Field(body, "user"); user != nullptr && !user->is_string()) {
    return InvalidRequest(absl::StrCat("'user' must be a string, got ", TypeName(*user), "."), "user");
  }

  for (const auto& [key, value] : body.items()) {
    const bool known = CommonKeys().count(key) > 0 ||
                       (kind == ApiKind::kChat ? (key == "messages" || key == "max_completion_tokens" ||
                                                  key == "top_logprobs" || key == "add_generation_prompt")
                                               : (key == "prompt" || key == "echo" || key == "suffix"));
    if (!known) req->unknown_keys.push_back(key);
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> ParseTokenIdList(const json& v, const char* key, std::vector<int32_t>* out) {
  if (!v.is_array()) {
    return InvalidRequest(absl::StrCat("'", key, "' must be an array of token ids, got ", TypeName(v), "."),
                          key);
  }
  out->clear();
  constexpr uint64_t kMaxId = std::numeric_limits<int32_t>::max();
  for (const json& id : v) {
    // Read as the JSON number it is (unsigned or signed 64-bit), never narrowed before the check.
    const bool in_range = id.is_number_unsigned()  ? id.get<uint64_t>() <= kMaxId
                          : id.is_number_integer() ? id.get<int64_t>() >= 0 &&
                                                         static_cast<uint64_t>(id.get<int64_t>()) <= kMaxId
                                                   : false;
    if (!in_range) {
      return InvalidRequest(
          absl::StrCat("'", key, "' must hold token ids in [0, 2^31), found ", id.dump(), "."), key);
    }
    out->push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return std::nullopt;
}


std::variant<OpenAiRequest, ApiError> ParseOpenAiRequest(ApiKind kind, const nlohmann::json& body) {
  OpenAiRequest req;
  if (auto err = ParseBody(kind, body, &req)) return *std::move(err);
  return req;
}

std::variant<OpenAiRequest, ApiError> ParseOpenAiRequest(ApiKind kind, const std::string& body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidRequest("The request body is not valid JSON.");
  return ParseOpenAiRequest(kind, parsed);
}

}  // namespace tandem::frontend
