// NVFP4 checkpoints (issue 13): quantizing at load, writing Model Optimizer's layout, reading it back
// bit for bit, and the errors a malformed checkpoint gets. The model is the golden Llama (hidden 64,
// head_dim 16, 2 layers), so every linear has a multiple of 16 inputs.
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tandem/model/loader.h"
#include "tandem/model/nvfp4_checkpoint.h"
#include "tandem/model/safetensors.h"
#include "test_files.h"

namespace tandem::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
using testing::ScratchDir;

const std::string kLlama = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama";

const char* kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

LoadedModel Load(const std::string& path, bool quantize) {
  LoadOptions options;
  options.path = path;
  options.quantize_nvfp4 = quantize;
  options.show_progress = false;
  absl::StatusOr<LoadedModel> m = LoadModel(options);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : LoadedModel{};
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data<float>(), b.data<float>(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

// Every tensor of the two models, compared bit for bit.
void ExpectSameWeights(const ModelWeights& a, const ModelWeights& b) {
  EXPECT_TRUE(SameBits(a.embed_tokens, b.embed_tokens));
  EXPECT_TRUE(SameBits(a.final_norm, b.final_norm));
  EXPECT_TRUE(SameBits(a.lm_head, b.lm_head));
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE(i);
    const LayerWeights &x = a.layers[i], &y = b.layers[i];
    for (auto t : {&LayerWeights::input_norm, &LayerWeights::q_proj, &LayerWeights::k_proj, &LayerWeights::v_proj,
                   &LayerWeights::o_proj, &LayerWeights::post_attention_norm, &LayerWeights::gate_proj,
                   &LayerWeights::up_proj, &LayerWeights::down_proj}) {
      EXPECT_TRUE(SameBits(x.*t, y.*t));
    }
  }
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Rewrites dir/model.safetensors with `edit` applied to its tensor list.
void EditTensors(const std::string& dir, const std::function<void(std::vector<SafetensorsWriteEntry>&)>& edit) {
  const std::string path = dir + "/model.safetensors";
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<std::vector<uint8_t>> copies;
  std::vector<SafetensorsWriteEntry> entries;
  copies.reserve((*file)->tensors().size());
  for (const auto& [name, info] : (*file)->tensors()) {
    copies.emplace_back(info.data, info.data + info.nbytes);
    entries.push_back({name, info.dtype, info.shape, copies.back().data(), info.nbytes});
  }
  edit(entries);
  file->reset();
  ASSERT_TRUE(WriteSafetensors(path, std::move(entries)).ok());
}

TEST(Nvfp4CheckpointTest, QuantizingAtLoadKeepsExactDequantizationAndExcludesLmHead) {
  const LoadedModel plain = Load(kLlama, false);
  const LoadedModel q = Load(kLlama, true);
  ASSERT_EQ(q.nvfp4.size(), 14u);  // 7 linears x 2 layers; lm_head excluded
  EXPECT_EQ(q.nvfp4_exclude_modules, std::vector<std::string>{"lm_head"});
  EXPECT_EQ(q.nvfp4.count("lm_head.weight"), 0u);
  EXPECT_TRUE(SameBits(q.weights.lm_head, plain.weights.lm_head));
  EXPECT_TRUE(SameBits(q.weights.embed_tokens, plain.weights.embed_tokens));
  for (int l = 0; l < 2; ++l) {
    const LayerWeights& lw = q.weights.layers[static_cast<size_t>(l)];
    const Tensor* fp32[] = {&lw.q_proj, &lw.k_proj, &lw.v_proj, &lw.o_proj, &lw.gate_proj, &lw.up_proj, &lw.down_proj};
    const LayerWeights& pw = plain.weights.layers[static_cast<size_t>(l)];
    EXPECT_TRUE(SameBits(lw.input_norm, pw.input_norm));
    for (int i = 0; i < 7; ++i) {
      const std::string name = "model.layers." + std::to_string(l) + "." + kLinears[i] + ".weight";
      SCOPED_TRACE(name);
      auto it = q.nvfp4.find(name);
      ASSERT_NE(it, q.nvfp4.end());
      // The fp32 weights are the NVFP4 tensor's dequantization, bit for bit ...
      std::vector<float> deq(static_cast<size_t>(fp32[i]->numel()));
      ASSERT_TRUE(DequantizeNvfp4(it->second, deq.data()).ok());
      EXPECT_EQ(std::memcmp(deq.data(), fp32[i]->data<float>(), deq.size() * sizeof(float)), 0);
      // ... which is the same quantization of the original weights again.
      const Tensor* orig[] = {&pw.q_proj, &pw.k_proj, &pw.v_proj, &pw.o_proj, &pw.gate_proj, &pw.up_proj, &pw.down_proj};
      auto requant = QuantizeNvfp4(orig[i]->data<float>(), orig[i]->dim(0), orig[i]->dim(1));
      ASSERT_TRUE(requant.ok());
      EXPECT_EQ(requant->packed, it->second.packed);
      EXPECT_EQ(requant->scales, it->second.scales);
      EXPECT_EQ(requant->scale2, it->second.scale2);
      EXPECT_FALSE(SameBits(*fp32[i], *orig[i]));  // quantization changed them
    }
  }
}

TEST(Nvfp4CheckpointTest, WrittenCheckpointReloadsIdentically) {
  ScratchDir scratch;
  LoadedModel q = Load(kLlama, true);
  const std::string out = scratch.Path("nvfp4");
  ASSERT_TRUE(WriteNvfp4Checkpoint(q, out).ok());

  // Model Optimizer's files: the description twice, the tokenizer and generation config copied.
  const json hf_quant = json::parse(ReadText(out + "/hf_quant_config.json"));
  EXPECT_EQ(hf_quant["quantization"]["quant_algo"], "NVFP4");
  EXPECT_EQ(hf_quant["quantization"]["group_size"], 16);
  EXPECT_EQ(hf_quant["quantization"]["exclude_modules"], json::array({"lm_head"}));
  const json config = json::parse(ReadText(out + "/config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "modelopt");
  EXPECT_EQ(config["quantization_config"]["quant_algo"], "NVFP4");
  for (const fs::directory_entry& e : fs::directory_iterator(kLlama)) {
    const std::string name = e.path().filename().string();
    if (name == "config.json" || e.path().extension() == ".safetensors") continue;
    EXPECT_EQ(ReadText(out + "/" + name), ReadText(e.path().string())) << name;
  }
  // Model Optimizer's tensors: U8 [N, K/2], F8_E4M3 [N, K/16], one F32; the rest bf16 (exact here).
  {
    auto file = SafetensorsFile::Open(out + "/model.safetensors");
    ASSERT_TRUE(file.ok()) << file.status();
    const SafetensorsTensorInfo* w = (*file)->Find("model.layers.1.mlp.down_proj.weight");
    const SafetensorsTensorInfo* s = (*file)->Find("model.layers.1.mlp.down_proj.weight_scale");
    const SafetensorsTensorInfo* s2 = (*file)->Find("model.layers.1.mlp.down_proj.weight_scale_2");
    ASSERT_TRUE(w != nullptr && s != nullptr && s2 != nullptr);
    EXPECT_EQ(w->dtype, DType::kU8);
    EXPECT_EQ(w->shape, (std::vector<int64_t>{64, 48}));
    EXPECT_EQ(s->dtype, DType::kF8E4M3);
    EXPECT_EQ(s->shape, (std::vector<int64_t>{64, 6}));
    EXPECT_EQ(s2->dtype, DType::kF32);
    EXPECT_TRUE(s2->shape.empty());
    EXPECT_EQ((*file)->Find("lm_head.weight")->dtype, DType::kBF16);
  }

  const LoadedModel back = Load(out, false);
  ExpectSameWeights(back.weights, q.weights);
  EXPECT_EQ(back.nvfp4_exclude_modules, q.nvfp4_exclude_modules);
  ASSERT_EQ(back.nvfp4.size(), q.nvfp4.size());
  for (const auto& [name, t] : q.nvfp4) {
    SCOPED_TRACE(name);
    const Nvfp4Tensor& b = back.nvfp4.at(name);
    EXPECT_EQ(b.rows, t.rows);
    EXPECT_EQ(b.cols, t.cols);
    EXPECT_EQ(b.packed, t.packed);
    EXPECT_EQ(b.scales, t.scales);
    EXPECT_EQ(b.scale2, t.scale2);
  }
  EXPECT_TRUE(fs::exists(out + "/reference.json"));  // the other files came along
  // Asking to quantize an NVFP4 checkpoint takes it as it is.
  const LoadedModel again = Load(out, true);
  ExpectSameWeights(again.weights, q.weights);
  EXPECT_EQ(again.nvfp4.size(), q.nvfp4.size());
}

TEST(Nvfp4CheckpointTest, ExcludedModulesStayUnquantized) {
  LoadOptions options;
  options.path = kLlama;
  options.quantize_nvfp4 = true;
  options.show_progress = false;
  options.nvfp4_exclude_modules = {"lm_head", "model.layers.0.*", "*.down_proj"};
  auto m = LoadModel(options);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->nvfp4.size(), 6u);  // layer 1 without down_proj
  EXPECT_EQ(m->nvfp4.count("model.layers.1.mlp.up_proj.weight"), 1u);
  EXPECT_EQ(m->nvfp4.count("model.layers.1.mlp.down_proj.weight"), 0u);
  EXPECT_EQ(m->nvfp4.count("model.layers.0.self_attn.q_proj.weight"), 0u);
  EXPECT_TRUE(ModuleExcluded("model.layers.12.self_attn.q_proj", {"model.layers.1?.*"}));
  EXPECT_FALSE(ModuleExcluded("model.layers.1.self_attn.q_proj", {"model.layers.1?.*"}));
  EXPECT_FALSE(ModuleExcluded("lm_head_extra", {"lm_head"}));
}

TEST(Nvfp4CheckpointTest, QuantizationDescriptions) {
  auto parse = [](const std::string& text) { return ParseNvfp4QuantConfig(text, "x.json"); };
  auto none = parse(R"({"architectures": ["LlamaForCausalLM"]})");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto hf = parse(R"({"quantization": {"quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]}})");
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ((*hf)->exclude_modules, std::vector<std::string>{"lm_head"});
  auto cfg = parse(R"({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_TRUE((*cfg)->exclude_modules.empty());
  struct Bad {
    const char* text;
    const char* message;
  };
  for (const Bad& b : {
           Bad{R"({"quantization": {"quant_algo": "FP8"}})", "quantization.quant_algo: only NVFP4"},
           Bad{R"({"quantization": {"quant_algo": "NVFP4", "group_size": 32}})", "group_size"},
           Bad{R"({"quantization": {"quant_algo": "NVFP4", "exclude_modules": "lm_head"}})", "exclude_modules"},
           Bad{R"({"quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8"}})", "kv_cache_quant_algo"},
           Bad{R"({"quantization_config": {"quant_method": "gptq", "quant_algo": "NVFP4"}})", "quant_method"},
           Bad{R"([1, 2])", "not a JSON object"},
       }) {
    auto r = parse(b.text);
    ASSERT_FALSE(r.ok()) << b.text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(b.message)) << b.text;
  }
}

TEST(Nvfp4CheckpointTest, MalformedCheckpointsGetErrorsNamingTheTensor) {
  ScratchDir scratch;
  LoadedModel q = Load(kLlama, true);
  const std::string base = scratch.Path("base");
  ASSERT_TRUE(WriteNvfp4Checkpoint(q, base).ok());
  auto load_error = [](const std::string& dir) {
    LoadOptions options;
    options.path = dir;
    options.show_progress = false;
    auto m = LoadModel(options);
    return m.ok() ? std::string("loaded") : std::string(m.status().message());
  };
  auto copy = [&](const std::string& name) {
    const std::string dir = scratch.Path(name);
    fs::copy(base, dir);
    return dir;
  };
  const std::string layer = "model.layers.0.mlp.up_proj";
  {  // no description of the quantization: U8 weights are not silently read as numbers
    const std::string dir = copy("no_description");
    fs::remove(dir + "/hf_quant_config.json");
    json config = json::parse(ReadText(dir + "/config.json"));
    config.erase("quantization_config");
    WriteText(dir + "/config.json", config.dump());
    EXPECT_THAT(load_error(dir), HasSubstr("is U8 (an NVFP4 weight?) but neither"));
  }
  {
    const std::string dir = copy("no_scale");
    EditTensors(dir, [&](std::vector<SafetensorsWriteEntry>& e) {
      std::erase_if(e, [&](const SafetensorsWriteEntry& t) { return t.name == layer + ".weight_scale"; });
    });
    EXPECT_THAT(load_error(dir), HasSubstr("'" + layer + "': weight is U8 (NVFP4) but weight_scale"));
  }
  {
    const std::string dir = copy("scale_dtype");
    EditTensors(dir, [&](std::vector<SafetensorsWriteEntry>& e) {
      for (SafetensorsWriteEntry& t : e) {
        if (t.name == layer + ".weight_scale") t.dtype = DType::kU8;
      }
    });
    EXPECT_THAT(load_error(dir), HasSubstr("weight_scale is u8 [96, 4], expected F8_E4M3 [96, 4]"));
  }
  {
    const std::string dir = copy("nan_scale");
    std::vector<uint8_t> patched;
    EditTensors(dir, [&](std::vector<SafetensorsWriteEntry>& e) {
      for (SafetensorsWriteEntry& t : e) {
        if (t.name != layer + ".weight_scale") continue;
        const uint8_t* bytes = static_cast<const uint8_t*>(t.data);
        patched.assign(bytes, bytes + t.nbytes);
        patched[5] = 0x7F;  // row 1, group 1 of 4
        t.data = patched.data();
      }
    });
    EXPECT_THAT(load_error(dir), HasSubstr("weight_scale [1, 1] is NaN"));
  }
  {
    const std::string dir = copy("packed_shape");
    EditTensors(dir, [&](std::vector<SafetensorsWriteEntry>& e) {
      for (SafetensorsWriteEntry& t : e) {
        if (t.name == layer + ".weight") t.shape = {48, 64};
      }
    });
    EXPECT_THAT(load_error(dir), HasSubstr("weight has shape [48, 64], expected [96, 32]"));
  }
  {  // an extra tensor the layout does not have
    const std::string dir = copy("stray");
    float one = 1.f;
    EditTensors(dir, [&](std::vector<SafetensorsWriteEntry>& e) {
      e.push_back({layer + ".k_scale", DType::kF32, {}, &one, 4});
    });
    EXPECT_THAT(load_error(dir), HasSubstr("unexpected tensor '" + layer + ".k_scale'"));
  }
  // The writer refuses a directory in use and models it cannot describe.
  EXPECT_EQ(WriteNvfp4Checkpoint(q, base).code(), absl::StatusCode::kAlreadyExists);
  LoadedModel plain = Load(kLlama, false);
  EXPECT_THAT(std::string(WriteNvfp4Checkpoint(plain, scratch.Path("plain")).message()),
              HasSubstr("no linear weight was quantized"));
}

TEST(Nvfp4CheckpointTest, SafetensorsWriterRoundTripsEveryDtype) {
  ScratchDir scratch;
  const std::string path = scratch.Path("t.safetensors");
  const std::vector<float> f = {1.5f, -2.f, 0.25f};
  const std::vector<uint8_t> u = {1, 2, 3, 4};
  const float scalar = 3.f;
  ASSERT_TRUE(WriteSafetensors(path, {{"b", DType::kF8E4M3, {2, 2}, u.data(), 4},
                                      {"a", DType::kF32, {3}, f.data(), 12},
                                      {"s", DType::kF32, {}, &scalar, 4}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(std::memcmp((*file)->Find("a")->data, f.data(), 12), 0);
  EXPECT_EQ((*file)->Find("b")->dtype, DType::kF8E4M3);
  EXPECT_EQ(std::memcmp((*file)->Find("b")->data, u.data(), 4), 0);
  EXPECT_EQ((*file)->Find("s")->shape, std::vector<int64_t>{});
  EXPECT_THAT(std::string(WriteSafetensors(path, {{"a", DType::kF32, {4}, f.data(), 12}}).message()),
              HasSubstr("'a' has 12 bytes, its shape and dtype need 16"));
  EXPECT_THAT(std::string(WriteSafetensors(path, {{"a", DType::kF32, {3}, f.data(), 12},
                                                  {"a", DType::kF32, {3}, f.data(), 12}})
                              .message()),
              HasSubstr("given twice"));
}

}  // namespace
}  // namespace tandem::model
