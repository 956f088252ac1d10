// CPU sampling of one token per sequence from its logits row, with every OpenAI/vLLM parameter.
//
// Order of operations on a row of fp32 logits [vocab]:
//   1. logit_bias added; 2. repetition penalty (prompt + output tokens: positive logits divided,
//   negative multiplied), presence and frequency penalties (output tokens); 3. until min_tokens
//   outputs exist, EOS (unless ignore_eos) and stop_token_ids are masked to -inf;
//   4. greedy: argmax (lowest id on ties); otherwise logits / temperature, top_k, softmax, min_p
//   (drop p < min_p * p_max), top_p (smallest set, by descending p, whose mass reaches top_p),
//   then one draw. Logprobs are the model's raw log-softmax (before steps 1-4), as vLLM returns
//   by default.
//
// Randomness is counter-based: draw k of a sequence uses SplitMix64(seed, k), where k is the
// number of output tokens so far. The draw depends only on the seed and the sequence's own
// history, never on batch composition, chunking or preemption.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "tandem/engine/sampling_params.h"

namespace tandem::engine {

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct SampleResult {
  int32_t token = 0;
  float logprob = 0.0f;                    // of `token`, when logprobs were asked for
  std::vector<TokenLogprob> top_logprobs;  // params.logprobs entries, descending
};

struct SamplerInput {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt;
  std::span<const int32_t> output;
  uint64_t seed = 0;
  std::span<const int32_t> eos_token_ids;
};

// A uniform double in [0, 1) from (seed, counter).
double UniformDraw(uint64_t seed, uint64_t counter);
// An independent seed for stream `stream` of `seed` (sequence i > 0 of a request with n > 1).
uint64_t DeriveSeed(uint64_t seed, uint64_t stream);

class Sampler {
 public:
  // `logits`: [vocab] fp32, one sequence's row.
  SampleResult Sample(std::span<const float> logits, const SamplerInput& input);

 private:
  std::vector<float> work_;          // [vocab] processed logits
  std::vector<int32_t> candidates_;  // token ids still in play
  std::vector<float> probs_;         // their probabilities, same order
  std::vector<int32_t> counts_;      // [vocab] output-token counts (penalties)
  std::vector<uint8_t> seen_;        // [vocab] prompt-or-output membership (repetition penalty)
};

}  // namespace tandem::engine
