#include "tandem/backend/rope.h"

#include <cmath>
#include <numbers>

namespace tandem::backend {

std::vector<float> ComputeRopeInvFreq(const model::ModelConfig& config) {
  const int dim = config.head_dim;
  const int half = dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  // inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all fp32.
  const float base = static_cast<float>(config.rope_theta);
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv_freq[static_cast<size_t>(i)] = 1.0f / std::pow(base, exponent);
  }
  switch (config.rope_scaling.type) {
    case model::RopeScaling::Type::kNone:
      break;
    case model::RopeScaling::Type::kLlama3: {
      const model::RopeScaling& rs = config.rope_scaling;
      const float factor = rs.factor;
      const float low = rs.low_freq_factor;
      const float high = rs.high_freq_factor;
      const float old_context = static_cast<float>(rs.original_max_position_embeddings);
      const float low_freq_wavelen = old_context / low;
      const float high_freq_wavelen = old_context / high;
      const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
      for (float& f : inv_freq) {
        const float wavelen = two_pi / f;
        // wavelen > low_freq_wavelen: divide by factor; wavelen < high_freq_wavelen: keep.
        const float scaled = wavelen > low_freq_wavelen ? f / factor : f;
        const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
        if (medium) {
          const float smooth = (old_context / wavelen - low) / (high - low);
          f = (1.0f - smooth) * scaled / factor + smooth * scaled;
        } else {
          f = scaled;
        }
      }
      break;
    }
  }
  return inv_freq;
}

}  // namespace tandem::backend
