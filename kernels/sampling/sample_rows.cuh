// Sampling on the device: one token per fp32 logits row, as the engine's CPU sampler
// (src/engine/sampler.cc) draws it, so that only one int per row leaves the GPU.
//
// Per row, in order: the row's logit edits (bias, repetition/presence/frequency penalties, masks) are
// applied in place; then either the argmax (lowest id on ties) or a draw: temperature, top_k, min_p,
// top_p, then the token whose cumulative probability first exceeds `uniform` times the kept mass,
// walking the kept tokens by descending logit (ascending id on ties) when top_p < 1 and by ascending
// id otherwise — the CPU sampler's orders, so the same uniform gives the same token up to rounding at
// a boundary. No sort: each step is a radix select over (logit, id) keys with integer (2^-31
// fixed-point) probability masses, so a row's result does not depend on thread timing.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels {

// One logit's change, applied as the CPU sampler does: x += bias; if repetition (the token is in the
// prompt or output): x = x > 0 ? x / rep : x * rep; if count > 0: x -= presence + frequency * count;
// if masked: x = -inf.
struct LogitEdit {
  int32_t token = 0;
  float bias = 0.0f;
  int32_t count = 0;  // occurrences in the output so far
  uint32_t flags = 0;
};
inline constexpr uint32_t kEditRepetition = 1;  // the repetition penalty applies
inline constexpr uint32_t kEditMasked = 2;      // the token may not be sampled (min_tokens)

enum class SampleMode : int32_t {
  kArgmax = 0,  // greedy after the edits
  kDraw = 1,    // temperature, top_k, min_p, top_p, one draw
};

struct SampleRowParams {
  SampleMode mode = SampleMode::kArgmax;
  int32_t top_k = 0;  // <= 0 or >= vocab: off
  float inv_temperature = 1.0f;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  const LogitEdit* edits = nullptr;  // device memory, num_edits entries, one per token
  int32_t num_edits = 0;
  double uniform = 0.0;  // the draw, in [0, 1)
};

// Largest vocabulary SampleRows handles (the token id takes 18 bits of the sort key).
inline constexpr int kSampleMaxVocab = 1 << 18;

// Lets SampleRows' kernel use the shared memory it needs on the current device; SampleRows calls it
// too, but call it before capturing a graph that samples (it is not a stream operation).
cudaError_t PrepareSampleRows();

// For r < rows: applies params[r]'s edits to logits[r, :] in place and writes the row's token to
// out[r]. params and the edits are read when the kernel runs (a captured graph
// replays with the values of the moment). NaN logits count as -inf.
cudaError_t SampleRows(float* logits, int rows, int vocab, const SampleRowParams* params, int32_t* out,
                       cudaStream_t stream);

}  // namespace tandem::kernels
