#include "tandem/backend/rope.h"

#include "gtest/gtest.h"

namespace tandem::backend {
namespace {

TEST(RopeInvFreq, DefaultMatchesTransformers) {
  model::ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 100000.0;  // SmolLM2
  const std::vector<float> f = ComputeRopeInvFreq(c);
  ASSERT_EQ(f.size(), 32u);
  // transformers LlamaRotaryEmbedding.inv_freq for this config.
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.6978305578231812f);
  EXPECT_FLOAT_EQ(f[2], 0.486967533826828f);
  EXPECT_FLOAT_EQ(f[3], 0.33982083201408386f);
  EXPECT_FLOAT_EQ(f[30], 2.0535249859676696e-05f);
  EXPECT_FLOAT_EQ(f[31], 1.4330126759887207e-05f);
}

TEST(RopeInvFreq, Llama3ScalingMatchesTransformers) {
  model::ModelConfig c;
  c.head_dim = 16;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = model::RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 32.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 64;
  // transformers _compute_llama3_parameters for this config: high, medium and low frequencies.
  const std::vector<float> want = {1.0f, 0.06713303923606873f, 0.001175188459455967f,
                                   0.00022789578360971063f, 4.4194170186528936e-05f, 8.570255886297673e-06f,
                                   1.6619674170215148e-06f, 3.2229328894572973e-07f};
  const std::vector<float> f = ComputeRopeInvFreq(c);
  ASSERT_EQ(f.size(), want.size());
  for (size_t i = 0; i < f.size(); ++i) EXPECT_FLOAT_EQ(f[i], want[i]) << i;
}

}  // namespace
}  // namespace tandem::backend
