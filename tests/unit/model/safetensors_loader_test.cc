#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tandem/model/loader.h"
#include "tandem/model/safetensors.h"
#include "test_files.h"

namespace tandem::model {
namespace {

using nlohmann::json;
using testing::BuildSafetensors;
using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::StTensor;
using testing::WriteFile;

// Tiny GQA model: hidden 8, 2 heads of 4, 1 kv head, inter 12, vocab 11, 2 layers.
json TinyConfig(const std::string& arch, bool tied) {
  return json{{"architectures", {arch}},
              {"hidden_size", 8},
              {"intermediate_size", 12},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 2},
              {"num_key_value_heads", 1},
              {"vocab_size", 11},
              {"max_position_embeddings", 64},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 10000.0},
              {"tie_word_embeddings", tied},
              {"bos_token_id", 1},
              {"eos_token_id", 2}};
}

std::map<std::string, StTensor> TinyTensors(const json& cfg, const std::string& dtype, uint32_t seed) {
  const int64_t h = 8, inter = 12, q = 8, kv = 4, vocab = 11;
  std::map<std::string, StTensor> t;
  uint32_t s = seed;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    t[name] = StTensor{dtype, shape, testing::RandomValues(static_cast<size_t>(n), s++)};
  };
  add("model.embed_tokens.weight", {vocab, h});
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h});
    add(p + "self_attn.q_proj.weight", {q, h});
    add(p + "self_attn.k_proj.weight", {kv, h});
    add(p + "self_attn.v_proj.weight", {kv, h});
    add(p + "self_attn.o_proj.weight", {h, q});
    if (cfg["architectures"][0] == "Qwen2ForCausalLM") {
      add(p + "self_attn.q_proj.bias", {q});
      add(p + "self_attn.k_proj.bias", {kv});
      add(p + "self_attn.v_proj.bias", {kv});
    }
    if (cfg["architectures"][0] == "Qwen3ForCausalLM") {
      add(p + "self_attn.q_norm.weight", {4});
      add(p + "self_attn.k_norm.weight", {4});
    }
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "mlp.gate_proj.weight", {inter, h});
    add(p + "mlp.up_proj.weight", {inter, h});
    add(p + "mlp.down_proj.weight", {h, inter});
  }
  add("model.norm.weight", {h});
  if (!cfg["tie_word_embeddings"].get<bool>()) add("lm_head.weight", {vocab, h});
  return t;
}

float Rounded(const std::string& dtype, float v) {
  if (dtype == "F16") return HalfToFloat(FloatToHalf(v));
  if (dtype == "BF16") return Bf16ToFloat(FloatToBf16(v));
  return v;
}

void ExpectTensorEq(const Tensor& t, const StTensor& src, const std::string& name) {
  ASSERT_TRUE(t.defined()) << name;
  ASSERT_EQ(t.dtype(), DType::kF32) << name;
  ASSERT_EQ(t.shape(), src.shape) << name;
  for (size_t i = 0; i < src.values.size(); ++i) {
    ASSERT_EQ(t.data<float>()[i], Rounded(src.dtype, src.values[i])) << name << "[" << i << "]";
  }
}

void WriteModel(const ScratchDir& dir, const json& cfg, const std::map<std::string, StTensor>& tensors,
                bool sharded) {
  WriteFile(dir.Path("config.json"), cfg.dump());
  if (!sharded) {
    WriteFile(dir.Path("model.safetensors"), BuildSafetensors(tensors));
    return;
  }
  std::map<std::string, StTensor> a, b;
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (const auto& [name, t] : tensors) {
    const bool first = name.find("layers.1.") == std::string::npos && name != "lm_head.weight";
    (first ? a : b)[name] = t;
    index["weight_map"][name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  WriteFile(dir.Path("model-00001-of-00002.safetensors"), BuildSafetensors(a));
  WriteFile(dir.Path("model-00002-of-00002.safetensors"), BuildSafetensors(b));
  WriteFile(dir.Path("model.safetensors.index.json"), index.dump());
}

void ExpectAllLoaded(const LoadedModel& m, const std::map<std::string, StTensor>& t) {
  const ModelWeights& w = m.weights;
  ExpectTensorEq(w.embed_tokens, t.at("model.embed_tokens.weight"), "embed");
  ExpectTensorEq(w.final_norm, t.at("model.norm.weight"), "norm");
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const LayerWeights& l = w.layers[static_cast<size_t>(i)];
    ExpectTensorEq(l.input_norm, t.at(p + "input_layernorm.weight"), p + "input_layernorm");
    ExpectTensorEq(l.q_proj, t.at(p + "self_attn.q_proj.weight"), p + "q");
    ExpectTensorEq(l.k_proj, t.at(p + "self_attn.k_proj.weight"), p + "k");
    ExpectTensorEq(l.v_proj, t.at(p + "self_attn.v_proj.weight"), p + "v");
    ExpectTensorEq(l.o_proj, t.at(p + "self_attn.o_proj.weight"), p + "o");
    ExpectTensorEq(l.post_attention_norm, t.at(p + "post_attention_layernorm.weight"), p + "post");
    ExpectTensorEq(l.gate_proj, t.at(p + "mlp.gate_proj.weight"), p + "gate");
    ExpectTensorEq(l.up_proj, t.at(p + "mlp.up_proj.weight"), p + "up");
    ExpectTensorEq(l.down_proj, t.at(p + "mlp.down_proj.weight"), p + "down");
    if (m.config.attention_bias) {
      ExpectTensorEq(l.q_bias, t.at(p + "self_attn.q_proj.bias"), p + "q_bias");
      ExpectTensorEq(l.k_bias, t.at(p + "self_attn.k_proj.bias"), p + "k_bias");
      ExpectTensorEq(l.v_bias, t.at(p + "self_attn.v_proj.bias"), p + "v_bias");
    } else {
      EXPECT_FALSE(l.q_bias.defined());
    }
    if (m.config.qk_norm) {
      ExpectTensorEq(l.q_norm, t.at(p + "self_attn.q_norm.weight"), p + "q_norm");
      ExpectTensorEq(l.k_norm, t.at(p + "self_attn.k_norm.weight"), p + "k_norm");
    } else {
      EXPECT_FALSE(l.q_norm.defined());
    }
  }
  if (m.config.tie_word_embeddings) {
    EXPECT_TRUE(w.lm_head.SharesStorageWith(w.embed_tokens));
  } else {
    ExpectTensorEq(w.lm_head, t.at("lm_head.weight"), "lm_head");
  }
}

absl::StatusOr<LoadedModel> Load(const std::string& path) {
  LoadOptions o;
  o.path = path;
  o.show_progress = false;
  return LoadModel(o);
}

TEST(SafetensorsLoaderTest, SingleFileF32Tied) {
  ScratchDir dir;
  json cfg = TinyConfig("LlamaForCausalLM", true);
  auto t = TinyTensors(cfg, "F32", 1);
  WriteModel(dir, cfg, t, false);
  WriteFile(dir.Path("tokenizer.json"), "{}");
  WriteFile(dir.Path("tokenizer_config.json"), R"({"chat_template": "{{ messages }}"})");
  auto m = Load(dir.Path());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->format, LoadFormat::kSafetensors);
  ExpectAllLoaded(*m, t);
  EXPECT_EQ(m->tokenizer_json_path, dir.Path("tokenizer.json"));
  EXPECT_EQ(m->chat_template, "{{ messages }}");
  EXPECT_FALSE(m->gguf.has_value());
}

TEST(SafetensorsLoaderTest, ShardedBf16Untied) {
  ScratchDir dir;
  json cfg = TinyConfig("LlamaForCausalLM", false);
  auto t = TinyTensors(cfg, "BF16", 2);
  WriteModel(dir, cfg, t, true);
  auto m = Load(dir.Path());
  ASSERT_TRUE(m.ok()) << m.status();
  ExpectAllLoaded(*m, t);
  EXPECT_FALSE(m->weights.lm_head.SharesStorageWith(m->weights.embed_tokens));
}

TEST(SafetensorsLoaderTest, F16Qwen2BiasesAndQwen3QkNorm) {
  for (const char* arch : {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"}) {
    ScratchDir dir;
    json cfg = TinyConfig(arch, false);
    auto t = TinyTensors(cfg, "F16", 3);
    WriteModel(dir, cfg, t, false);
    auto m = Load(dir.Path());
    ASSERT_TRUE(m.ok()) << arch << ": " << m.status();
    ExpectAllLoaded(*m, t);
  }
}

// Every defined tensor of `w` with its Hugging Face name.
std::vector<std::pair<std::string, const Tensor*>> NamedTensors(const ModelWeights& w) {
  std::vector<std::pair<std::string, const Tensor*>> out = {
      {"model.embed_tokens.weight", &w.embed_tokens},
      {"model.norm.weight", &w.final_norm},
      {"lm_head.weight", &w.lm_head}};
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const auto& [name, t] : std::vector<std::pair<std::string, const Tensor*>>{
             {"input_layernorm.weight", &l.input_norm}, {"self_attn.q_proj.weight", &l.q_proj},
             {"self_attn.k_proj.weight", &l.k_proj}, {"self_attn.v_proj.weight", &l.v_proj},
             {"self_attn.o_proj.weight", &l.o_proj}, {"self_attn.q_proj.bias", &l.q_bias},
             {"self_attn.k_proj.bias", &l.k_bias}, {"self_attn.v_proj.bias", &l.v_bias},
             {"post_attention_layernorm.weight", &l.post_attention_norm}, {"mlp.gate_proj.weight", &l.gate_proj},
             {"mlp.up_proj.weight", &l.up_proj}, {"mlp.down_proj.weight", &l.down_proj}}) {
      out.emplace_back(p + name, t);
    }
  }
  std::erase_if(out, [](const auto& e) { return !e.second->defined(); });
  return out;
}

// keep_16bit (backend: cuda): bf16 and fp16 tensors stay 16-bit, as views of the mapped file that
// outlive the loader, with the values of the fp32 load; fp32 tensors load as before; quantizing at
// load gives the same NVFP4 tensors from either.
TEST(SafetensorsLoaderTest, Keep16BitViewsTheCheckpointWithTheSameValues) {
  // The tiny checkpoints in three dtypes; NVFP4 needs 16-multiple widths: the golden Qwen2 (bf16).
  const std::string golden = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/qwen2";
  for (const char* dtype : {"BF16", "F16", "F32", "golden BF16"}) {
    SCOPED_TRACE(dtype);
    ScratchDir dir;
    json cfg = TinyConfig("Qwen2ForCausalLM", false);
    auto t = TinyTensors(cfg, std::string(dtype) == "golden BF16" ? "BF16" : dtype, 4);
    WriteModel(dir, cfg, t, true);
    for (const bool nvfp4 : {false, true}) {
      if (nvfp4 != (std::string(dtype) == "golden BF16")) continue;
      LoadOptions o;
      o.path = nvfp4 ? golden : dir.Path();
      o.show_progress = false;
      o.quantize_nvfp4 = nvfp4;
      auto fp32 = LoadModel(o);
      o.keep_16bit = true;
      auto kept = LoadModel(o);
      ASSERT_TRUE(fp32.ok()) << fp32.status();
      ASSERT_TRUE(kept.ok()) << kept.status();
      const DType want = std::string(dtype) == "F16" ? DType::kF16 : std::string(dtype) == "F32" ? DType::kF32
                                                                                                  : DType::kBF16;
      const auto named_a = NamedTensors(fp32->weights), named_b = NamedTensors(kept->weights);
      ASSERT_EQ(named_a.size(), named_b.size());
      for (size_t i = 0; i < named_a.size(); ++i) {
        const std::string& name = named_b[i].first;
        const Tensor& tb = *named_b[i].second;
        // Quantized linears hold their dequantization: fp32 in the fp32 load, rounded to bf16 in a
        // 16-bit load (an fp32 checkpoint stays fp32 throughout).
        const bool rounded = nvfp4 && kept->nvfp4.count(name) != 0 && want != DType::kF32;
        EXPECT_EQ(tb.dtype(), rounded ? DType::kBF16 : want) << name;
        std::vector<float> va = ToFloat32(*named_a[i].second);
        if (rounded) {
          for (float& v : va) v = Bf16ToFloat(FloatToBf16(v));
        }
        EXPECT_EQ(va, ToFloat32(tb)) << name;
      }
      EXPECT_EQ(fp32->nvfp4.size(), kept->nvfp4.size());
      for (const auto& [name, q] : fp32->nvfp4) {
        ASSERT_EQ(kept->nvfp4.count(name), 1u) << name;
        EXPECT_EQ(q.packed, kept->nvfp4.at(name).packed) << name;
        EXPECT_EQ(q.scales, kept->nvfp4.at(name).scales) << name;
        EXPECT_EQ(q.scale2, kept->nvfp4.at(name).scale2) << name;
      }
    }
  }
}

TEST(SafetensorsLoaderTest, LayerOverrideLoadsAPrefix) {
  ScratchDir dir;
  json cfg = TinyConfig("LlamaForCausalLM", true);
  WriteModel(dir, cfg, TinyTensors(cfg, "F32", 4), true);
  LoadOptions o;
  o.path = dir.Path();
  o.num_layers = 1;
  o.show_progress = false;
  auto m = LoadModel(o);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.num_layers, 1);
  EXPECT_EQ(m->weights.layers.size(), 1u);
  o.num_layers = 3;
  EXPECT_EQ(LoadModel(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsLoaderTest, MissingWrongShapeWrongDtypeAndExtraTensorsNameTheTensor) {
  json cfg = TinyConfig("LlamaForCausalLM", false);
  {
    ScratchDir dir;
    auto t = TinyTensors(cfg, "F32", 5);
    t.erase("model.layers.1.mlp.up_proj.weight");
    WriteModel(dir, cfg, t, false);
    absl::Status s = Load(dir.Path()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("model.layers.1.mlp.up_proj.weight"));
  }
  {
    ScratchDir dir;
    auto t = TinyTensors(cfg, "F32", 6);
    t["model.layers.0.self_attn.k_proj.weight"].shape = {8, 4};  // transposed
    WriteModel(dir, cfg, t, false);
    absl::Status s = Load(dir.Path()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("model.layers.0.self_attn.k_proj.weight"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("model.safetensors"));
  }
  {
    ScratchDir dir;
    auto t = TinyTensors(cfg, "F32", 7);
    t["model.layers.0.self_attn.o_proj.bias"] = StTensor{"F32", {8}, std::vector<float>(8, 0.5f)};
    WriteModel(dir, cfg, t, false);
    absl::Status s = Load(dir.Path()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("unexpected tensor 'model.layers.0.self_attn.o_proj.bias'"));
  }
  {
    ScratchDir dir;
    absl::Status s = Load(dir.Path()).status();  // no config.json
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("config.json"));
  }
}

TEST(SafetensorsFileTest, TruncatedFileNamesFileAndTensor) {
  ScratchDir dir;
  std::map<std::string, StTensor> t;
  t["a"] = StTensor{"F32", {4}, {1, 2, 3, 4}};
  t["b"] = StTensor{"BF16", {2, 3}, {1, 2, 3, 4, 5, 6}};
  const std::string bytes = BuildSafetensors(t);
  const std::string path = dir.Path("x.safetensors");
  // Every truncation length: never a crash, always an error that names the file.
  for (size_t len = 0; len < bytes.size(); ++len) {
    WriteFile(path, bytes.substr(0, len));
    auto f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok()) << "length " << len;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(path)) << "length " << len;
  }
  WriteFile(path, bytes.substr(0, bytes.size() - 1));
  auto f = SafetensorsFile::Open(path);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("tensor 'b'"));
  WriteFile(path, bytes);
  auto ok = SafetensorsFile::Open(path);
  ASSERT_TRUE(ok.ok()) << ok.status();
  auto b = ToFloat32(*(*ok)->Find("b"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->data<float>()[5], 6.0f);
}

TEST(SafetensorsFileTest, BitFlippedHeadersNeverCrash) {
  ScratchDir dir;
  std::map<std::string, StTensor> t;
  t["w"] = StTensor{"F16", {3, 5}, testing::RandomValues(15, 9)};
  t["v"] = StTensor{"F32", {7}, testing::RandomValues(7, 10)};
  const std::string bytes = BuildSafetensors(t);
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  const std::string path = dir.Path("flip.safetensors");
  int errors = 0;
  for (size_t pos = 0; pos < 8 + header_len; ++pos) {
    for (int bit : {0, 3, 6, 7}) {
      std::string flipped = bytes;
      flipped[pos] = static_cast<char>(flipped[pos] ^ (1 << bit));
      WriteFile(path, flipped);
      auto f = SafetensorsFile::Open(path);
      if (!f.ok()) {
        ++errors;
        EXPECT_THAT(std::string(f.status().message()), HasSubstr(path));
        continue;
      }
      // A flip that still parses must describe tensors that lie inside the file.
      for (const auto& [name, info] : (*f)->tensors()) {
        auto v = ToFloat32(info);
        if (v.ok()) {
          EXPECT_EQ(static_cast<uint64_t>(v->numel()) * DTypeSize(info.dtype), info.nbytes);
        }
      }
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(SafetensorsFileTest, HugeHeaderLengthIsAnError) {
  ScratchDir dir;
  std::string bytes(16, '\0');
  const uint64_t n = ~0ull;
  std::memcpy(bytes.data(), &n, 8);
  WriteFile(dir.Path("h.safetensors"), bytes);
  auto f = SafetensorsFile::Open(dir.Path("h.safetensors"));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace tandem::model
