// load_format: dummy — how each tensor's seeded random values are generated, so that a backend can
// generate them where they live (the CUDA runner fills its device tensors: no host copy of a model's
// weights). Values depend only on (seed, tensor name, element index): rows are cut into chunks of
// rows_per_chunk; chunk c starts a splitmix64 stream from
//   s = mix(name_state + gamma) ^ (c * rows_per_chunk)
// and its k-th element (k from 0, row-major within the chunk) is
//   offset + scale * u,  u = (int32(mix(s + (k + 1) gamma) >> 40) - 2^23) / 2^23  (uniform in [-1, 1))
// in fp32, rounded to bf16 (or kept fp32) as the tensor's dtype says. offset is 0 or scale a power
// of two, so no fused multiply-add can change the result.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include "tandem/core/tensor.h"
#include "tandem/model/model_config.h"
#include "tandem/model/weights.h"

namespace tandem::model {

struct DummyFill {
  uint64_t name_state = 0;     // mix(seed + gamma) ^ fnv1a(hf_name)
  int64_t cols = 1;            // elements per row
  int64_t rows_per_chunk = 1;  // rows per splitmix64 stream
  float scale = 0.f;
  float offset = 0.f;
};

inline constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;

inline uint64_t SplitMixFinalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The fp32 value of element `index` (row-major) of a tensor filled by `fill`: what the host generator
// writes, computed on its own (the reference for a device generator).
float DummyValue(const DummyFill& fill, int64_t index);

// The tensors of `weights` that LoadModel left without host data (LoadOptions::dummy_on_device), with
// how to fill each: `fills` is LoadedModel::dummy, by Hugging Face name. A tied lm_head is the
// embedding's tensor and is listed once, as the embedding.
std::unordered_map<const Tensor*, DummyFill> DummyFillsByTensor(const ModelConfig& config,
                                                                 const ModelWeights& weights,
                                                                 const std::map<std::string, DummyFill>& fills);

}  // namespace tandem::model
