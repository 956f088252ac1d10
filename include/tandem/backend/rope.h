// Rotary inverse frequencies exactly as Hugging Face transformers computes them
// (modeling_rope_utils: _compute_default_rope_parameters and _compute_llama3_parameters), in fp32.
#pragma once

#include <vector>

#include "tandem/model/model_config.h"

namespace tandem::backend {

// [head_dim / 2] inverse frequencies for config.rope_theta and config.rope_scaling.
std::vector<float> ComputeRopeInvFreq(const model::ModelConfig& config);

}  // namespace tandem::backend
