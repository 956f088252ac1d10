// The quickstart model file itself (scripts/fetch_model.sh puts it in the cache). Skipped with a
// message when it is absent.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/models.h"
#include "tandem/model/gguf.h"
#include "tandem/model/loader.h"

namespace tandem::model {
namespace {

using ::testing::HasSubstr;


#define SKIP_IF_NO_MODEL(path)                                                               \
  if (!std::filesystem::exists(path)) {                                                      \
    GTEST_SKIP() << "SmolLM2 GGUF not found at " << path                                     \
                 << " (run scripts/fetch_model.sh, or set TANDEM_SMOLLM2_GGUF to the file)"; \
  }

TEST(SmolLM2GgufTest, MetadataAndTokenizer) {
  const std::string path = test_support::SmolLM2GgufPath();
  SKIP_IF_NO_MODEL(path);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ(*(*f)->GetString("general.architecture"), "llama");
  EXPECT_EQ(*(*f)->GetU32("llama.block_count"), 30u);
  EXPECT_EQ(*(*f)->GetU32("llama.embedding_length"), 576u);
  EXPECT_EQ(*(*f)->GetU32("llama.attention.head_count"), 9u);
  EXPECT_EQ(*(*f)->GetU32("llama.attention.head_count_kv"), 3u);
  auto meta = ReadGgufMetadata(**f);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->tokenizer_model, "gpt2");
  EXPECT_EQ(meta->tokens.size(), 49152u);
  EXPECT_FALSE(meta->merges.empty());
  EXPECT_EQ(meta->token_types.size(), 49152u);
  EXPECT_FALSE(meta->chat_template.empty());
  EXPECT_THAT(meta->chat_template, HasSubstr("<|im_start|>"));
  ASSERT_GE(meta->eos_token_id, 0);
  EXPECT_EQ(meta->tokens[static_cast<size_t>(meta->eos_token_id)], "<|im_end|>");
  bool any_q4_1 = false;
  for (const GgufTensorInfo& t : (*f)->tensors()) any_q4_1 |= t.type == GgmlType::kQ4_1;
  EXPECT_TRUE(any_q4_1);
}

TEST(SmolLM2GgufTest, LoadsQuicklyWithExpectedShapes) {
  const std::string path = test_support::SmolLM2GgufPath();
  SKIP_IF_NO_MODEL(path);
  LoadOptions o;
  o.path = path;
  const auto start = std::chrono::steady_clock::now();
  auto m = LoadModel(o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(m.ok()) << m.status();
  std::printf("SmolLM2-135M Q4_1 GGUF loaded and dequantized to fp32 in %.3f s\n", seconds);
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.architecture, Architecture::kLlama);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(m->weights.lm_head.SharesStorageWith(m->weights.embed_tokens));
  EXPECT_EQ(m->weights.layers[29].k_proj.shape(), std::vector<int64_t>({192, 576}));
  EXPECT_EQ(m->weights.layers[0].down_proj.shape(), std::vector<int64_t>({576, 1536}));
  for (const Tensor* t : {&m->weights.embed_tokens, &m->weights.layers[7].q_proj, &m->weights.final_norm}) {
    for (int64_t i = 0; i < t->numel(); ++i) ASSERT_TRUE(std::isfinite(t->data<float>()[i]));
  }
}

// After un-permuting, Q and K rows i and i + head_dim/2 of a head form one rotary pair: the same
// frequency, and in a trained model rows of similar norm (the low-frequency pairs carry much larger
// weights than the high-frequency ones). Averaged over layers and heads, the per-row norm profile
// is then nearly the same on both halves of a head; in the converter's interleaved layout it is not.
// Mean relative difference between the row-norm profile at i and at i + head_dim/2.
double HalfProfileMismatch(const std::vector<double>& profile) {
  const size_t half = profile.size() / 2;
  double diff = 0;
  for (size_t i = 0; i < half; ++i) {
    diff += std::abs(profile[i] - profile[i + half]) / (0.5 * (profile[i] + profile[i + half]));
  }
  return diff / static_cast<double>(half);
}

std::vector<double> RowNormProfile(const ModelWeights& w, bool k, int n_heads, int hd) {
  std::vector<double> profile(static_cast<size_t>(hd), 0.0);
  for (const LayerWeights& l : w.layers) {
    const Tensor& t = k ? l.k_proj : l.q_proj;
    const int64_t cols = t.dim(1);
    for (int h = 0; h < n_heads; ++h) {
      for (int r = 0; r < hd; ++r) {
        const float* row = t.data<float>() + (static_cast<int64_t>(h) * hd + r) * cols;
        double s = 0;
        for (int64_t c = 0; c < cols; ++c) s += static_cast<double>(row[c]) * row[c];
        profile[static_cast<size_t>(r)] += std::sqrt(s);
      }
    }
  }
  return profile;
}

TEST(SmolLM2GgufTest, QkRowsAreInRotateHalfOrder) {
  const std::string path = test_support::SmolLM2GgufPath();
  SKIP_IF_NO_MODEL(path);
  LoadOptions o;
  o.path = path;
  o.show_progress = false;
  auto m = LoadModel(o);
  ASSERT_TRUE(m.ok()) << m.status();
  const int hd = m->config.head_dim;
  for (bool k : {false, true}) {
    const std::vector<double> profile =
        RowNormProfile(m->weights, k, k ? m->config.num_kv_heads : m->config.num_attention_heads, hd);
    const double hf_mismatch = HalfProfileMismatch(profile);
    // The same rows read in the interleaved order (what skipping the un-permute would give).
    std::vector<double> interleaved(profile.size());
    for (int j = 0; j < hd / 2; ++j) {
      interleaved[static_cast<size_t>(2 * j)] = profile[static_cast<size_t>(j)];
      interleaved[static_cast<size_t>(2 * j + 1)] = profile[static_cast<size_t>(j + hd / 2)];
    }
    const double gguf_mismatch = HalfProfileMismatch(interleaved);
    std::printf("%s rotary-pair row-norm mismatch: rotate_half order %.3f, interleaved order %.3f\n",
                k ? "K" : "Q", hf_mismatch, gguf_mismatch);
    EXPECT_LT(hf_mismatch * 4, gguf_mismatch);
  }
}

}  // namespace
}  // namespace tandem::model
