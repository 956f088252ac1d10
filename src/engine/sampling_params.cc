#include "tandem/engine/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::engine {
namespace {

absl::Status Bad(const char* field, const std::string& expected, auto found) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, ", found ", found));
}

}  // namespace

absl::Status SamplingParams::Validate(int32_t vocab_size) const {
  if (n < 1) return Bad("n", ">= 1", n);
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) return Bad("temperature", ">= 0", temperature);
  if (top_k < -1) return Bad("top_k", "-1, 0 (off) or >= 1", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Bad("top_p", "in (0, 1]", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Bad("min_p", "in [0, 1]", min_p);
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return Bad("repetition_penalty", "> 0", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return Bad("presence_penalty", "in [-2, 2]", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return Bad("frequency_penalty", "in [-2, 2]", frequency_penalty);
  }
  for (const auto& [token, bias] : logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return Bad("logit_bias", absl::StrCat("token ids in [0, ", vocab_size, ")"), token);
    }
    if (!std::isfinite(bias)) return Bad("logit_bias", "finite biases", bias);
  }
  if (max_tokens < 1) return Bad("max_tokens", ">= 1", max_tokens);
  if (min_tokens < 0 || min_tokens > max_tokens) {
    return Bad("min_tokens", absl::StrCat("in [0, max_tokens=", max_tokens, "]"), min_tokens);
  }
  for (int32_t token : stop_token_ids) {
    if (token < 0 || token >= vocab_size) {
      return Bad("stop_token_ids", absl::StrCat("token ids in [0, ", vocab_size, ")"), token);
    }
  }
  if (logprobs.has_value() && (*logprobs < 0 || *logprobs > 20))
    return Bad("logprobs", "in [0, 20]", *logprobs);
  return absl::OkStatus();
}

}  // namespace tandem::engine
