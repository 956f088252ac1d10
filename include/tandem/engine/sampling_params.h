// Per-request sampling parameters (OpenAI / vLLM semantics) and their validation.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace tandem::engine {

struct SamplingParams {
  int32_t n = 1;                    // sequences per request; they share the prompt's KV blocks
  float temperature = 1.0f;         // 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;                // 0 or -1: off
  float top_p = 1.0f;               // (0, 1]
  float min_p = 0.0f;               // [0, 1]: drop tokens with p < min_p * max p
  float repetition_penalty = 1.0f;  // > 0; over prompt and output tokens (CTRL-style)
  float presence_penalty = 0.0f;    // [-2, 2]; over output tokens
  float frequency_penalty = 0.0f;   // [-2, 2]; over output tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> added to its logit
  std::optional<uint64_t> seed;  // same seed and request -> same tokens, whatever the batch
  int32_t max_tokens = 16;       // output tokens, >= 1
  int32_t min_tokens = 0;        // EOS and stop_token_ids are masked until this many
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;          // don't stop on the model's EOS tokens
  std::optional<int32_t> logprobs;  // set: return the chosen token's logprob and this many top ones

  bool greedy() const { return temperature < 1e-5f; }
  // Whether any of the repetition, presence and frequency penalties is on.
  bool penalized() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }

  // Checks ranges and token ids against `vocab_size`; the message names the field, the expected
  // range and the value found.
  absl::Status Validate(int32_t vocab_size) const;
};

}  // namespace tandem::engine
