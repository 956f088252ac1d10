// How one logits row becomes a token where the logits are (the CUDA backend samples on the GPU), as
// the engine's CPU sampler draws it: the engine's Sampler::Describe turns a request's parameters and
// history into this, and Sampler::Sample applies the same description on the host.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace tandem::backend {

// One token's logit change (sampler.h, steps 1-3): bias, then the repetition penalty where the token
// is in the prompt or output, then presence + frequency * count where it is in the output, then a mask.
struct LogitEdit {
  int32_t token = 0;
  float bias = 0.0f;
  int32_t count = 0;        // occurrences in the output so far
  bool repetition = false;  // the repetition penalty applies
  bool masked = false;      // -inf (min_tokens not reached yet)
};

struct RowSampling {
  bool greedy = true;  // the argmax after the edits (temperature 0 or top_k 1)
  float temperature = 1.0f;
  int32_t top_k = 0;  // <= 0 or >= vocab: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  double uniform = 0.0;          // this draw, in [0, 1)
  std::vector<LogitEdit> edits;  // one per token

  // The logit `x` of edits' token `e` after the edit. The GPU kernel (kernels/sampling/sample_rows.cu)
  // computes the same expression in the same order.
  float Edit(float x, const LogitEdit& e) const {
    x += e.bias;
    if (e.repetition && repetition_penalty != 1.0f) x = x > 0.0f ? x / repetition_penalty : x * repetition_penalty;
    if (e.count > 0) x -= presence_penalty + frequency_penalty * static_cast<float>(e.count);
    return e.masked ? -std::numeric_limits<float>::infinity() : x;
  }
};

}  // namespace tandem::backend
