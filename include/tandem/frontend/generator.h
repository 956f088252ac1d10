// The frontend's contract with whatever produces tokens: today LocalGenerator (an engine in this
// process), later the router (gRPC to remote prefill/decode workers). The frontend validates,
// templates and tokenizes; a Generator gets prompt token ids and sampling parameters and streams
// back per-choice tokens, text deltas, logprobs, finish reasons and usage.
//
// Threading: Generate() only posts the request and returns at once; the callback runs later on a
// generator-owned thread and must not block (the HTTP/gRPC layers post the event to their own
// executors). Events for one request arrive in order; exactly one event has `final` set, and it is
// the last. Cancel() may be called from any thread, at any time, any number of times: once the
// request is known it ends with FinishReason::kAborted (and frees its KV blocks); its final event
// still arrives.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "tandem/wire/worker_report.h"

namespace tandem::tokenizer {
class Tokenizer;
}  // namespace tandem::tokenizer

namespace tandem::frontend {

struct GenerateRequest {
  std::string request_id;  // unique per request ("cmpl-..." / "chatcmpl-..."), in every log line
  std::string model;
  std::vector<int32_t> prompt_token_ids;

  // Sampling (OpenAI / vLLM semantics; already validated by the frontend).
  int32_t n = 1;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;  // 0: off
  float min_p = 0.0f;
  std::optional<uint64_t> seed;
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;
  std::vector<std::string> stop;  // stop strings; the text is trimmed before the match
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::optional<int32_t> logprobs;  // set: the chosen token's logprob plus this many top ones
  bool skip_special_tokens = true;
};

enum class FinishReason { kNone, kStop, kLength, kAborted, kError };

// "stop" | "length" | "abort" | "error" ("" for kNone): OpenAI's finish_reason strings.
const char* FinishReasonName(FinishReason reason);

// The text of one token for logprobs (special tokens kept; the raw piece when it does not decode).
std::string TokenText(const tokenizer::Tokenizer& tokenizer, int32_t token_id);

// The model id served by default: the model file's or directory's name, without ".gguf".
std::string DefaultModelName(const std::string& model_path);

struct TopLogprob {
  int32_t token_id = 0;
  std::string token;  // the token's text (bytes that aren't valid UTF-8 are replaced)
  float logprob = 0.0f;
};

struct TokenLogprob {
  int32_t token_id = 0;
  std::string token;
  float logprob = 0.0f;
  std::vector<TopLogprob> top;  // best first, `logprobs` of them
};

// New output of one choice (0..n-1) since its previous delta.
struct ChoiceDelta {
  int32_t index = 0;
  std::vector<int32_t> token_ids;
  std::string text;                    // stop strings already trimmed
  std::vector<TokenLogprob> logprobs;  // one per token when requested
  FinishReason finish_reason = FinishReason::kNone;
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;  // summed over the n choices
  int32_t cached_prompt_tokens = 0;
};

struct GenerateEvent {
  absl::Status status;               // not OK: the request failed (the event is final)
  std::vector<ChoiceDelta> choices;  // only choices with news
  bool final = false;                // the last event: every choice has a finish reason, usage is set
  Usage usage;
};

using StreamCallback = std::function<void(GenerateEvent event)>;

struct ModelCard {
  std::string id;
  int64_t created = 0;  // unix seconds
  std::string owned_by = "tandem";
  int64_t max_model_len = 0;
  int32_t vocab_size = 0;
};

struct GeneratorHealth {
  bool ready = false;  // at least one decode-capable worker can take requests
  std::string detail;
};

// One worker of a deployment as the router's load feed last saw it (RemoteGenerator).
struct WorkerMetrics {
  std::string id;
  std::string role;  // prefill | decode | both
  std::string address;
  bool up = false;  // its load stream is live; the fields below are its latest report (only when up)
  wire::WorkerLoad load;
  wire::WorkerCounters counters;  // cumulative since the worker process started
};

// Point-in-time gauges for /metrics.
struct GeneratorStats {
  int64_t num_running = 0;
  int64_t num_waiting = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t num_preemptions = 0;
  double prefix_cache_hit_rate = 0;
  int64_t transfer_bytes = 0;  // KV bytes moved between workers (0 when aggregated)
  int64_t num_steps = 0;
  // Disaggregated deployments (RemoteGenerator) only: the router's prefill decisions and the workers.
  int64_t routed_remote_prefills = 0;
  int64_t routed_local_prefills = 0;
  std::vector<WorkerMetrics> workers;  // empty when aggregated
};

class Generator {
 public:
  virtual ~Generator() = default;

  // Starts generating; returns an error (and never calls `on_event`) when the request can't be
  // accepted (e.g. InvalidArgument for a prompt the model can't take, ResourceExhausted when full).
  virtual absl::Status Generate(GenerateRequest request, StreamCallback on_event) = 0;
  virtual void Cancel(const std::string& request_id) = 0;
  virtual std::vector<ModelCard> ListModels() const = 0;
  virtual GeneratorHealth Health() const = 0;
  virtual GeneratorStats Stats() const = 0;
};

}  // namespace tandem::frontend
