#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tandem/model/loader.h"
#include "test_files.h"

namespace tandem::model {
namespace {

LoadOptions DummyOptions(const std::string& config, uint64_t seed = 0, std::optional<int> layers = {}) {
  LoadOptions o;
  o.format = LoadFormat::kDummy;
  o.dummy_config = config;
  o.seed = seed;
  o.num_layers = layers;
  o.show_progress = false;
  return o;
}

absl::StatusOr<LoadedModel> Dummy(const std::string& config, uint64_t seed, std::optional<int> layers = {}) {
  return LoadModel(DummyOptions(config, seed, layers));
}

bool SameValues(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST(DummyLoaderTest, DeterministicPerSeedAndDifferentAcrossSeeds) {
  auto a = Dummy("tiny-llama", 7);
  auto b = Dummy("tiny-llama", 7);
  auto c = Dummy("tiny-llama", 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status();
  EXPECT_TRUE(SameValues(a->weights.embed_tokens, b->weights.embed_tokens));
  EXPECT_TRUE(SameValues(a->weights.layers[1].down_proj, b->weights.layers[1].down_proj));
  EXPECT_TRUE(SameValues(a->weights.lm_head, b->weights.lm_head));
  EXPECT_FALSE(SameValues(a->weights.layers[1].down_proj, c->weights.layers[1].down_proj));
  EXPECT_FALSE(SameValues(a->weights.layers[0].q_proj, a->weights.layers[1].q_proj));
}

// keep_16bit: bf16 weights holding the fp32 values rounded to nearest even (what the CUDA runner's
// upload of the fp32 weights computes), half the host memory.
TEST(DummyLoaderTest, Keep16BitIsTheFp32ValuesRoundedToBf16) {
  LoadOptions o = DummyOptions("tiny-llama", 3);
  auto fp32 = LoadModel(o);
  o.keep_16bit = true;
  auto bf16 = LoadModel(o);
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << fp32.status() << bf16.status();
  for (const auto& [a, b] : {std::pair{&fp32->weights.embed_tokens, &bf16->weights.embed_tokens},
                             std::pair{&fp32->weights.layers[1].down_proj, &bf16->weights.layers[1].down_proj},
                             std::pair{&fp32->weights.layers[0].input_norm, &bf16->weights.layers[0].input_norm}}) {
    ASSERT_EQ(b->dtype(), DType::kBF16);
    ASSERT_EQ(a->shape(), b->shape());
    for (int64_t i = 0; i < a->numel(); ++i) {
      ASSERT_EQ(b->data<uint16_t>()[i], FloatToBf16(a->data<float>()[i])) << b->DebugString() << " element " << i;
    }
  }
  EXPECT_TRUE(bf16->weights.lm_head.SharesStorageWith(bf16->weights.embed_tokens) ==
              fp32->weights.lm_head.SharesStorageWith(fp32->weights.embed_tokens));
}

// dummy_on_device: tensors with shapes and no data, and a generator per tensor whose closed form
// (DummyValue, what the CUDA runner's kernel computes) gives the host generator's values bit for bit.
TEST(DummyLoaderTest, OnDeviceLeavesNoHostDataAndDescribesTheHostValues) {
  LoadOptions o = DummyOptions("tiny-llama", 3);
  auto host = LoadModel(o);
  o.dummy_on_device = true;
  auto device = LoadModel(o);
  ASSERT_TRUE(host.ok() && device.ok()) << host.status() << device.status();
  const std::unordered_map<const Tensor*, DummyFill> fills =
      DummyFillsByTensor(device->config, device->weights, device->dummy);
  EXPECT_EQ(fills.size(), device->dummy.size());
  const ModelWeights& h = host->weights;
  const ModelWeights& d = device->weights;
  using Pair = std::pair<const Tensor*, const Tensor*>;
  for (const auto& [want, got] : {Pair{&h.embed_tokens, &d.embed_tokens}, Pair{&h.layers[0].q_proj, &d.layers[0].q_proj},
                                  Pair{&h.layers[1].down_proj, &d.layers[1].down_proj},
                                  Pair{&h.layers[1].input_norm, &d.layers[1].input_norm},
                                  Pair{&h.final_norm, &d.final_norm}}) {
    EXPECT_EQ(got->raw_data(), nullptr);
    EXPECT_EQ(got->dtype(), DType::kBF16);
    ASSERT_EQ(got->shape(), want->shape());
    auto fill = fills.find(got);
    ASSERT_NE(fill, fills.end()) << got->DebugString();
    for (int64_t i = 0; i < want->numel(); ++i) {
      const float v = DummyValue(fill->second, i);
      ASSERT_EQ(std::memcmp(&v, want->template data<float>() + i, 4), 0) << want->DebugString() << " element " << i;
    }
  }
}

// A tied lm_head (SmolLM2) is the embedding's shape-only tensor: the model validates and loads.
TEST(DummyLoaderTest, OnDeviceLoadsATiedModel) {
  LoadOptions o = DummyOptions("smollm2-135m", 0, 1);
  o.dummy_on_device = true;
  auto loaded = LoadModel(o);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->config.tie_word_embeddings);
  EXPECT_EQ(loaded->weights.lm_head.raw_data(), nullptr);
  EXPECT_EQ(loaded->weights.lm_head.shape(), loaded->weights.embed_tokens.shape());
  EXPECT_EQ(DummyFillsByTensor(loaded->config, loaded->weights, loaded->dummy).size(), loaded->dummy.size());
}

TEST(DummyLoaderTest, OnDeviceCannotBeQuantizedAtLoad) {
  LoadOptions o = DummyOptions("tiny-llama");
  o.dummy_on_device = true;
  o.quantize_nvfp4 = true;
  auto loaded = LoadModel(o);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()), ::testing::HasSubstr("NVFP4"));
}

TEST(DummyLoaderTest, FixedValuesAcrossMachines) {
  // splitmix64 stream values are fixed by the algorithm: pin a few so a change to the generator (or
  // a platform difference) shows up.
  auto a = Dummy("tiny-llama", 0);
  ASSERT_TRUE(a.ok()) << a.status();
  const float* e = a->weights.embed_tokens.data<float>();
  const float* n = a->weights.final_norm.data<float>();
  const float a_embed = std::sqrt(3.0f / 64.0f);
  for (int i = 0; i < 64; ++i) {
    EXPECT_LE(std::abs(e[i]), a_embed);
    EXPECT_GE(n[i], 0.875f);
    EXPECT_LE(n[i], 1.125f);
  }
  std::printf("tiny-llama seed 0: embed[0..2] = %.9g %.9g %.9g, norm[0] = %.9g\n", e[0], e[1], e[2], n[0]);
  EXPECT_EQ(e[0], a->weights.embed_tokens.data<float>()[0]);
}

TEST(DummyLoaderTest, LayerSubsetAtRealShapes) {
  // SmolLM2 shapes, first 2 of 30 layers: only those layers are allocated. (A llama-3-70b layer
  // subset works the same way but needs ~12 GB for the embeddings alone, too much for a unit test.)
  auto m = Dummy("smollm2-135m", 1, 2);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.num_layers, 2);
  EXPECT_EQ(m->weights.layers.size(), 2u);
  EXPECT_EQ(m->weights.layers[1].q_proj.shape(), std::vector<int64_t>({576, 576}));
  EXPECT_EQ(m->weights.layers[1].k_proj.shape(), std::vector<int64_t>({192, 576}));
  EXPECT_EQ(m->weights.layers[0].gate_proj.shape(), std::vector<int64_t>({1536, 576}));
  EXPECT_EQ(m->weights.embed_tokens.shape(), std::vector<int64_t>({49152, 576}));
  EXPECT_TRUE(m->weights.lm_head.SharesStorageWith(m->weights.embed_tokens));
  LoadOptions o;
  o.format = LoadFormat::kDummy;
  o.dummy_config = "llama-3-70b";
  o.num_layers = 81;
  EXPECT_EQ(LoadModel(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DummyLoaderTest, ConfigFromJsonFileAndErrors) {
  testing::ScratchDir dir;
  testing::WriteFile(dir.Path("config.json"), R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 32,
      "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "head_dim": 16, "vocab_size": 97, "tie_word_embeddings": true})");
  auto m = Dummy(dir.Path("config.json"), 3);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->config.qk_norm);
  EXPECT_EQ(m->weights.layers[1].q_norm.shape(), std::vector<int64_t>({16}));
  EXPECT_TRUE(m->weights.lm_head.SharesStorageWith(m->weights.embed_tokens));
  auto bad = Dummy("llama-9-1t", 0);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Dummy("", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::model
