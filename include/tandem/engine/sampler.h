// CPU sampling of one token per sequence from its logits row, with every OpenAI/vLLM parameter.
//
// Order of operations on a row of fp32 logits [vocab]:
//   1. logit_bias added; 2. repetition penalty (prompt + output tokens: positive logits divided,
//   negative multiplied), presence and frequency penalties (output tokens); 3. until min_tokens
//   outputs exist, EOS (unless ignore_eos) and stop_token_ids are masked to -inf;
//   4. greedy: argmax (lowest id on ties); otherwise logits / temperature, top_k, softmax, min_p
//   (drop p < min_p * p_max), top_p (smallest set, by descending p, whose mass reaches top_p),
//   then one draw, walking the kept tokens by descending logit (ascending id on ties) when top_p < 1
//   and by ascending id otherwise. Logprobs are the model's raw log-softmax (before steps 1-4), as
//   vLLM returns by default.
//
// Steps 1-3 and the parameters of step 4 are data (backend::RowSampling, from Describe): the CPU
// applies them here, the CUDA backend on the GPU (kernels/sampling/sample_rows.cuh) with the same
// draw, so a seeded request gets the same tokens on both up to rounding at a boundary.
//
// Randomness is counter-based: draw k of a sequence uses SplitMix64(seed, k), where k is the
// number of output tokens so far. The draw depends only on the seed and the sequence's own
// history, never on batch composition, chunking or preemption.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "tandem/backend/row_sampling.h"
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

// A sequence's description (Sampler::Describe) kept from step to step: each Update counts only the
// output tokens since the last one, so a request with penalties costs O(new tokens) a step instead of
// a walk over its prompt and output. Same edits as Describe gives for the same input (in another
// order); rebuilt when min_tokens is reached (its masks go) or the history is not the one it grew from.
class RowSamplingCache {
 public:
  const backend::RowSampling& Update(const SamplerInput& input, int32_t vocab);

 private:
  backend::LogitEdit* Edit(int32_t token, int32_t vocab);
  void Build(const SamplerInput& input, int32_t vocab);

  backend::RowSampling row_;
  absl::flat_hash_map<int32_t, int32_t> slot_;  // token -> index in row_.edits
  size_t counted_ = 0;                          // output tokens counted
  bool masked_ = false;                         // row_ holds min_tokens masks
  bool built_ = false;
};

class Sampler {
 public:
  // `logits`: [vocab] fp32, one sequence's row.
  SampleResult Sample(std::span<const float> logits, const SamplerInput& input);
  // How to sample the input's next token from a row of `vocab` logits: its edits (steps 1-3, one per
  // token they touch), the parameters of step 4 and the draw. Logprobs are not part of it.
  void Describe(const SamplerInput& input, int32_t vocab, backend::RowSampling* out);

 private:
  std::vector<float> work_;          // [vocab] processed logits
  std::vector<int32_t> candidates_;  // token ids still in play
  std::vector<float> probs_;         // their probabilities, same order
  std::vector<float> by_token_;      // [vocab] probabilities by token id (the top_p walk)
  std::vector<int32_t> slot_;        // [vocab] index of the token's edit, -1 for none (reset after use)
  backend::RowSampling row_;         // the current Sample's description
};

}  // namespace tandem::engine
