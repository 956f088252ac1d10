#include "tandem/frontend/openai_service.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tandem/core/logging.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::frontend {
namespace {

using nlohmann::json;

// Compares without an early exit, so the time taken doesn't reveal how much of a key matched.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// The key of an "Authorization: Bearer <key>" header; empty when the header is not that.
std::string_view BearerKey(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer) return {};
  return authorization.substr(kBearer.size());
}

HttpReply JsonReply(int status, const json& body) {
  return HttpReply{status, "application/json", DumpJson(body)};
}
HttpReply ErrorReply(const ApiError& error) {
  return HttpReply{error.http_status, "application/json", error.Body(), "", error.retry_after_s};
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

OpenAiService::OpenAiService(Generator* generator, const tokenizer::Tokenizer* tokenizer,
                             ServiceOptions options)
    : generator_(generator),
      tokenizer_(tokenizer),
      options_(std::move(options)),
      admission_(options_.max_queue_wait_s),
      limiter_(options_.rate_limit_requests_per_minute, options_.rate_limit_tokens_per_minute) {
  // Request ids start at a random point per process: several frontends share the workers, which
  // refuse an id that is already live on them (two frontends counting from 1 collided).
  std::random_device rd;
  next_id_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

bool OpenAiService::Authorized(std::string_view authorization) const {
  if (options_.api_keys.empty()) return true;
  const std::string_view key = BearerKey(authorization);
  if (key.empty()) return false;
  bool match = false;
  for (const std::string& k : options_.api_keys) match |= ConstantTimeEquals(key, k);
  return match;
}

std::string OpenAiService::KeyOf(std::string_view authorization) const {
  return options_.api_keys.empty() ? std::string() : std::string(BearerKey(authorization));
}

void OpenAiService::LogUnknownKeys(const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  std::lock_guard<std::mutex> lock(unknown_mu_);
  for (const std::string& key : keys) {
    if (std::find(unknown_logged_.begin(), unknown_logged_.end(), key) != unknown_logged_.end()) continue;
    unknown_logged_.push_back(key);
    TLOG_WARN("frontend: ignoring unsupported request parameter '{}' (logged once)", key);
  }
}

std::optional<ApiError> OpenAiService::CheckModel(const std::string& model) const {
  for (const ModelCard& card : generator_->ListModels()) {
    if (card.id == model) return std::nullopt;
  }
  return ModelNotFound(model);
}

std::optional<ApiError> OpenAiService::CheckTokenIds(const std::vector<int32_t>& ids,
                                                     const char* param) const {
  const int32_t vocab = tokenizer_->vocab_size();
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) {
      return InvalidRequest(
          absl::StrCat("'", param, "' holds token id ", id, ", outside the vocabulary [0, ", vocab, ")."),
          param);
    }
  }
  return std::nullopt;
}

std::variant<PreparedRequest, ApiError> OpenAiService::Prepare(ApiKind kind, const std::string& body) {
  auto parsed = ParseOpenAiRequest(kind, body);
  if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
  return Prepare(std::get<OpenAiRequest>(std::move(parsed)));
}

std::variant<PreparedRequest, ApiError> OpenAiService::Prepare(OpenAiRequest request) {
  LogUnknownKeys(request.unknown_keys);
  if (auto err = CheckModel(request.model)) return *err;
  GenerateRequest& params = request.params;
  if (request.echo && params.logprobs.has_value()) {
    return InvalidRequest("'echo' together with 'logprobs' is not supported.", "echo");
  }
  if (auto err = CheckTokenIds(params.stop_token_ids, "stop_token_ids")) return *err;
  std::vector<int32_t> bias_ids;
  for (const auto& [id, bias] : params.logit_bias) bias_ids.push_back(id);
  if (auto err = CheckTokenIds(bias_ids, "logit_bias")) return *err;

  PreparedRequest prepared;
  prepared.arrival_s = NowSeconds();
  prepared.created = UnixSeconds();
  prepared.id = absl::StrFormat("%s-%016x", request.kind == ApiKind::kChat ? "chatcmpl" : "cmpl",
                                next_id_.fetch_add(1) * 0x9E3779B97F4A7C15ull);

  std::vector<std::vector<int32_t>> prompts;
  if (request.kind == ApiKind::kChat) {
    if (!tokenizer_->has_chat_template()) {
      return InvalidRequest("This model has no chat template; use /v1/completions.", "messages");
    }
    auto text = tokenizer_->ApplyChatTemplate(request.messages, request.add_generation_prompt);
    if (!text.ok()) {
      return InvalidRequest(
          absl::StrCat("The chat template rejected the messages: ", text.status().message()), "messages");
    }
    auto ids = tokenizer_->Encode(*text, /*add_special_tokens=*/false);
    if (!ids.ok())
      return InvalidRequest(absl::StrCat("Tokenizing the prompt failed: ", ids.status().message()));
    prompts.push_back(*std::move(ids));
    prepared.prompt_texts.push_back(*std::move(text));
  } else {
    for (const PromptInput& p : request.prompts) {
      if (p.text.has_value()) {
        auto ids = tokenizer_->Encode(*p.text, /*add_special_tokens=*/true);
        if (!ids.ok())
          return InvalidRequest(absl::StrCat("Tokenizing the prompt failed: ", ids.status().message()));
        prompts.push_back(*std::move(ids));
        prepared.prompt_texts.push_back(*p.text);
      } else {
        if (auto err = CheckTokenIds(p.token_ids, "prompt")) return *err;
        prompts.push_back(p.token_ids);
        std::string text;
        if (request.echo) {
          auto decoded = tokenizer_->Decode(p.token_ids, /*skip_special_tokens=*/false);
          if (decoded.ok()) text = *std::move(decoded);
        }
        prepared.prompt_texts.push_back(std::move(text));
      }
    }
  }

  const int64_t max_len = options_.max_model_len;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t len = static_cast<int64_t>(prompts[i].size());
    if (len == 0) return InvalidRequest("The prompt is empty after tokenization.", "prompt");
    if (len >= max_len) {
      return InvalidRequest(absl::StrCat("This model's maximum context length is ", max_len,
                                         " tokens, but the prompt "
                                         "has ",
                                         len, " tokens."),
                            request.kind == ApiKind::kChat ? "messages" : "prompt",
                            "context_length_exceeded");
    }
    GenerateRequest sub = params;
    if (request.max_tokens_given) {
      if (len + sub.max_tokens > max_len) {
        return InvalidRequest(
            absl::StrCat("This model's maximum context length is ", max_len, " tokens; the prompt has ", len,
                         " tokens and max_tokens is ", sub.max_tokens, "."),
            "max_tokens", "context_length_exceeded");
      }
    } else {
      const int64_t left = max_len - len;
      sub.max_tokens =
          static_cast<int32_t>(request.kind == ApiKind::kChat ? left : std::min<int64_t>(16, left));
    }
    if (sub.min_tokens > sub.max_tokens) {
      return InvalidRequest(absl::StrCat("'min_tokens' (", sub.min_tokens, ") must not exceed max_tokens (",
                                         sub.max_tokens, ")."),
                            "min_tokens");
    }
    sub.prompt_token_ids = std::move(prompts[i]);
    sub.request_id = prompts.size() == 1 ? prepared.id : absl::StrCat(prepared.id, "-", i);
    prepared.subs.push_back(std::move(sub));
  }
  prepared.request = std::move(request);
  return prepared;
}

std::optional<ApiError> OpenAiService::Start(PreparedRequest& prepared, SubEventSink sink) {
  if (draining_) {
    return ApiError{503, "The server is shutting down and takes no new requests; retry (another replica serves it).",
                    "server_error", "", "service_unavailable", 1};
  }
  if (limiter_.enabled()) {
    double tokens = 0;  // what the request may use: its prompts, and max_tokens for every sequence
    for (const GenerateRequest& sub : prepared.subs) {
      tokens += static_cast<double>(sub.prompt_token_ids.size()) + static_cast<double>(sub.max_tokens) * sub.n;
    }
    if (const RateLimiter::Decision d = limiter_.Admit(prepared.api_key, tokens, NowSeconds()); !d.admit) {
      return RateLimited(d.limit, d.per_minute, d.retry_after_s, d.never, tokens);
    }
  }
  if (metrics_.in_flight() >= options_.max_queued_requests) return Overloaded(options_.max_queued_requests);
  if (const GeneratorHealth health = generator_->Health(); !health.ready) {
    return ApiError{503, absl::StrCat("No worker can take requests: ", health.detail), "server_error", "",
                    "service_unavailable"};
  }
  const double admitted_at = NowSeconds();
  if (const AdmissionControl::Decision d = admission_.Check(admitted_at); !d.admit) {
    return QueueWaitTooLong(d.expected_wait_s, options_.max_queue_wait_s, d.retry_after_s);
  }
  prepared.in_flight = std::make_shared<InFlightGuard>(&metrics_);
  auto shared_sink = std::make_shared<SubEventSink>(std::move(sink));
  for (size_t i = 0; i < prepared.subs.size(); ++i) {
    struct Timing {
      bool first = true;
      double last = 0;
    };
    auto timing = std::make_shared<Timing>();
    const double arrival = prepared.arrival_s;
    const uint64_t ticket = next_ticket_.fetch_add(1);
    admission_.Queued(ticket, admitted_at);
    metrics_.AddPromptTokens(static_cast<int64_t>(prepared.subs[i].prompt_token_ids.size()));
    StreamCallback on_event = [this, i, timing, arrival, ticket, shared_sink](GenerateEvent event) {
      size_t tokens = 0;
      for (const ChoiceDelta& c : event.choices) tokens += c.token_ids.size();
      if (tokens > 0) {
        const double now = NowSeconds();
        if (timing->first) {
          metrics_.ObserveTtft(now - arrival);
          admission_.Started(ticket, now);
          timing->first = false;
        } else {
          metrics_.ObserveInterToken(now - timing->last);
        }
        timing->last = now;
        metrics_.AddGenerationTokens(static_cast<int64_t>(tokens));
      }
      if (event.final) admission_.Left(ticket);
      if (event.final && event.status.ok()) metrics_.ObserveE2e(NowSeconds() - arrival);
      (*shared_sink)(i, std::move(event));
    };
    absl::Status status = generator_->Generate(prepared.subs[i], std::move(on_event));
    if (!status.ok()) {
      for (size_t j = 0; j < i; ++j) generator_->Cancel(prepared.subs[j].request_id);
      admission_.Left(ticket);  // the others leave with their final events
      return FromStatus(status);
    }
  }
  return std::nullopt;
}

void OpenAiService::Cancel(const PreparedRequest& prepared) {
  for (const GenerateRequest& sub : prepared.subs) generator_->Cancel(sub.request_id);
}

HttpReply OpenAiService::Models() const {
  json data = json::array();
  for (const ModelCard& card : generator_->ListModels()) {
    data.push_back({{"id", card.id},
                    {"object", "model"},
                    {"created", card.created},
                    {"owned_by", card.owned_by},
                    {"max_model_len", card.max_model_len}});
  }
  return JsonReply(200, {{"object", "list"}, {"data", std::move(data)}});
}

HttpReply OpenAiService::Health() const {
  if (draining_) {
    return JsonReply(503, {{"status", "draining"}, {"detail", "shutting down: finishing the requests in flight"}});
  }
  const GeneratorHealth health = generator_->Health();
  if (health.ready) return JsonReply(200, {{"status", "ok"}});
  return JsonReply(503, {{"status", "unavailable"}, {"detail", health.detail}});
}

HttpReply OpenAiService::Live() const { return JsonReply(200, {{"status", "alive"}}); }

HttpReply OpenAiService::MetricsText() const {
  return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.Render(generator_->Stats())};
}

std::optional<ApiError> OpenAiService::ParseUtilityBody(const std::string& body, json* req) const {
  *req = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (req->is_discarded() || !req->is_object()) return InvalidRequest("The request body must be a JSON object.");
  if (req->contains("model") && !(*req)["model"].is_null()) {
    if (!(*req)["model"].is_string()) return InvalidRequest("'model' must be a string.", "model");
    return CheckModel((*req)["model"].get<std::string>());
  }
  return std::nullopt;
}

HttpReply OpenAiService::Tokenize(const std::string& body) const {
  json req;
  if (auto err = ParseUtilityBody(body, &req)) return ErrorReply(*err);
  std::string text;
  bool add_special = true;
  if (req.contains("messages")) {
    json chat = {{"model", options_.model_name}, {"messages", req["messages"]}};
    auto parsed = ParseOpenAiRequest(ApiKind::kChat, chat);
    if (auto* error = std::get_if<ApiError>(&parsed)) return ErrorReply(*error);
    bool add_generation_prompt = true;
    if (req.contains("add_generation_prompt")) {
      if (!req["add_generation_prompt"].is_boolean()) {
        return ErrorReply(
            InvalidRequest("'add_generation_prompt' must be a boolean.", "add_generation_prompt"));
      }
      add_generation_prompt = req["add_generation_prompt"].get<bool>();
    }
    auto rendered =
        tokenizer_->ApplyChatTemplate(std::get<OpenAiRequest>(parsed).messages, add_generation_prompt);
    if (!rendered.ok())
      return ErrorReply(InvalidRequest(std::string(rendered.status().message()), "messages"));
    text = *std::move(rendered);
    add_special = false;
  } else if (req.contains("prompt") && req["prompt"].is_string()) {
    text = req["prompt"].get<std::string>();
  } else {
    return ErrorReply(InvalidRequest("'prompt' (a string) or 'messages' is required.", "prompt"));
  }
  if (req.contains("add_special_tokens")) {
    if (!req["add_special_tokens"].is_boolean()) {
      return ErrorReply(InvalidRequest("'add_special_tokens' must be a boolean.", "add_special_tokens"));
    }
    add_special = req["add_special_tokens"].get<bool>();
  }
  auto ids = tokenizer_->Encode(text, add_special);
  if (!ids.ok()) return ErrorReply(InvalidRequest(std::string(ids.status().message()), "prompt"));
  return JsonReply(200,
                   {{"count", ids->size()}, {"max_model_len", options_.max_model_len}, {"tokens", *ids}});
}

HttpReply OpenAiService::Detokenize(const std::string& body) const {
  json req;
  if (auto err = ParseUtilityBody(body, &req)) return ErrorReply(*err);
  if (!req.contains("tokens") || !req["tokens"].is_array()) {
    return ErrorReply(InvalidRequest("'tokens' (an array of token ids) is required.", "tokens"));
  }
  std::vector<int32_t> ids;
  if (auto err = ParseTokenIdList(req["tokens"], "tokens", &ids)) return ErrorReply(*err);
  if (auto err = CheckTokenIds(ids, "tokens")) return ErrorReply(*err);
  auto text = tokenizer_->Decode(ids, /*skip_special_tokens=*/false);
  if (!text.ok()) return ErrorReply(InvalidRequest(std::string(text.status().message()), "tokens"));
  return JsonReply(200, {{"prompt", *text}});
}

}  // namespace tandem::frontend
