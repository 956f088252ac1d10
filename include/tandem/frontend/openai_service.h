// Transport-neutral OpenAI API logic: authorization, validation, chat templating, tokenization,
// submission to the Generator, and the non-generating endpoints (/v1/models, /health, /metrics,
// /tokenize, /detokenize). The HTTP server and the gRPC server are thin layers over it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tandem/frontend/admission.h"
#include "tandem/frontend/api_error.h"
#include "tandem/frontend/generator.h"
#include "tandem/frontend/metrics.h"
#include "tandem/frontend/openai_request.h"
#include "tandem/frontend/rate_limiter.h"

namespace tandem::tokenizer {
class Tokenizer;
}  // namespace tandem::tokenizer

namespace tandem::frontend {

struct ServiceOptions {
  std::string model_name;  // the id clients pass as `model`
  int64_t max_model_len = 8192;
  int64_t max_queued_requests = 4096;
  double max_queue_wait_s = 30;  // admission control (see admission.h); 0: off
  std::vector<std::string> api_keys;  // empty: no authorization
  double rate_limit_requests_per_minute = 0;  // per API key (rate_limiter.h); 0: off
  double rate_limit_tokens_per_minute = 0;
};

// Keeps a request counted as in flight while alive.
class InFlightGuard {
 public:
  explicit InFlightGuard(Metrics* metrics) : metrics_(metrics) { metrics_->AddInFlight(1); }
  ~InFlightGuard() { metrics_->AddInFlight(-1); }
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;

 private:
  Metrics* metrics_;
};

// A validated, tokenized request: one GenerateRequest per completions prompt (chat: exactly one).
struct PreparedRequest {
  OpenAiRequest request;
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;
  std::vector<GenerateRequest> subs;
  std::vector<std::string> prompt_texts;  // per sub, for echo
  double arrival_s = 0;                   // monotonic seconds
  std::string api_key;                    // the key it came with (KeyOf): whose rate limits it counts against
  std::shared_ptr<InFlightGuard> in_flight;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string server_timing;  // optional `Server-Timing` header, e.g. "engine;dur=12.5" (milliseconds)
  int retry_after_s = 0;      // > 0: a `Retry-After` header
};

// Receives each sub-request's events on generator threads.
using SubEventSink = std::function<void(size_t sub, GenerateEvent event)>;

// Monotonic seconds (steady clock).
double NowSeconds();

class OpenAiService {
 public:
  OpenAiService(Generator* generator, const tokenizer::Tokenizer* tokenizer, ServiceOptions options);

  // True when keys are off, or `authorization` is "Bearer <a configured key>" (constant-time compare).
  bool Authorized(std::string_view authorization) const;
  // The API key of an authorized `authorization` header ("" with keys off): rate limits are per key.
  std::string KeyOf(std::string_view authorization) const;

  std::variant<PreparedRequest, ApiError> Prepare(ApiKind kind, const std::string& body);
  std::variant<PreparedRequest, ApiError> Prepare(OpenAiRequest request);

  // Submits every sub-request; events go to `sink` (which must not block). On error nothing is
  // left running. Records TTFT / inter-token / token metrics.
  std::optional<ApiError> Start(PreparedRequest& prepared, SubEventSink sink);
  void Cancel(const PreparedRequest& prepared);

  // Graceful drain: from now on Start() refuses with 503 (the frontend is shutting down) and
  // Health() answers 503 {"status": "draining"}; requests already started go on. Idempotent.
  void BeginDrain() { draining_ = true; }
  bool draining() const { return draining_.load(); }

  HttpReply Models() const;
  // Readiness: 200 {"status": "ok"} when a request could be served now, else 503 with the reason
  // (no live worker, or "draining").
  HttpReply Health() const;
  // Liveness: 200 {"status": "alive"} for as long as the server answers, draining included.
  HttpReply Live() const;
  HttpReply MetricsText() const;
  HttpReply Tokenize(const std::string& body) const;
  HttpReply Detokenize(const std::string& body) const;

  Generator& generator() { return *generator_; }
  Metrics& metrics() { return metrics_; }
  const ServiceOptions& options() const { return options_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  std::optional<ApiError> CheckModel(const std::string& model) const;
  // /tokenize and /detokenize: `body` as a JSON object into `req`, its optional "model" checked.
  std::optional<ApiError> ParseUtilityBody(const std::string& body, nlohmann::json* req) const;
  std::optional<ApiError> CheckTokenIds(const std::vector<int32_t>& ids, const char* param) const;
  void LogUnknownKeys(const std::vector<std::string>& keys);

  Generator* generator_;
  const tokenizer::Tokenizer* tokenizer_;
  const ServiceOptions options_;
  Metrics metrics_;
  AdmissionControl admission_;
  RateLimiter limiter_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{1};  // a random start (the constructor); ids are unique per process
  std::atomic<uint64_t> next_ticket_{1};  // admission tickets, one per sub-request
  std::mutex unknown_mu_;
  std::vector<std::string> unknown_logged_;
};

}  // namespace tandem::frontend
