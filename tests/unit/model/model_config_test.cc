#include "tandem/model/model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_files.h"

namespace tandem::model {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json LlamaJson() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
    "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
    "vocab_size": 49152, "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000.0,
    "rope_scaling": null, "hidden_act": "silu", "tie_word_embeddings": true, "bos_token_id": 1,
    "eos_token_id": 2, "attention_bias": false, "mlp_bias": false, "torch_dtype": "bfloat16"})");
}

absl::Status ErrorFor(const json& j) { return ParseHfConfig(j.dump(), "cfg.json").status(); }

TEST(ModelConfigTest, ParsesSmolLM2StyleLlama) {
  auto c = ParseHfConfig(LlamaJson().dump(), "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kLlama);
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->intermediate_size, 1536);
  EXPECT_EQ(c->num_layers, 30);
  EXPECT_EQ(c->num_attention_heads, 9);
  EXPECT_EQ(c->num_kv_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_DOUBLE_EQ(c->rope_theta, 100000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>({2}));
}

TEST(ModelConfigTest, ParsesLlama3RopeScalingAndEosList) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  j["eos_token_id"] = {128001, 128008, 128009};
  j["vocab_size"] = 128256;
  auto c = ParseHfConfig(j.dump(), "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_FLOAT_EQ(c->rope_scaling.factor, 32.0f);
  EXPECT_FLOAT_EQ(c->rope_scaling.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(c->rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>({128001, 128008, 128009}));
}

TEST(ModelConfigTest, ParsesQwen2WithBiasAndQwen3WithQkNormAndHeadDim) {
  json q2 = LlamaJson();
  q2["architectures"] = {"Qwen2ForCausalLM"};
  q2["use_sliding_window"] = false;
  q2["sliding_window"] = 4096;
  q2.erase("attention_bias");
  auto c2 = ParseHfConfig(q2.dump(), "q2.json");
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->architecture, Architecture::kQwen2);
  EXPECT_TRUE(c2->attention_bias);
  EXPECT_FALSE(c2->qk_norm);

  json q3 = LlamaJson();
  q3["architectures"] = {"Qwen3ForCausalLM"};
  q3["head_dim"] = 128;  // not hidden / heads
  auto c3 = ParseHfConfig(q3.dump(), "q3.json");
  ASSERT_TRUE(c3.ok()) << c3.status();
  EXPECT_EQ(c3->architecture, Architecture::kQwen3);
  EXPECT_EQ(c3->head_dim, 128);
  EXPECT_TRUE(c3->qk_norm);
  EXPECT_FALSE(c3->attention_bias);
}

TEST(ModelConfigTest, MistralWithoutEffectiveSlidingWindowIsAccepted) {
  json j = LlamaJson();
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = nullptr;
  auto c = ParseHfConfig(j.dump(), "m.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kMistral);
  j["sliding_window"] = 8192;  // == max_position_embeddings: never in effect
  EXPECT_TRUE(ParseHfConfig(j.dump(), "m.json").ok());
}

TEST(ModelConfigTest, DefaultsWhenOptionalFieldsAreMissing) {
  json j = LlamaJson();
  for (const char* k : {"num_key_value_heads", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                        "hidden_act", "max_position_embeddings", "bos_token_id", "eos_token_id"}) {
    j.erase(k);
  }
  auto c = ParseHfConfig(j.dump(), "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 9);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-6f);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_EQ(c->bos_token_id, -1);
  EXPECT_TRUE(c->eos_token_ids.empty());
}

struct BadCase {
  const char* name;
  std::function<void(json&)> edit;
  const char* field;  // the error must name it
};

TEST(ModelConfigTest, EachUnsupportedOrInvalidFieldIsAnErrorNamingIt) {
  const std::vector<BadCase> cases = {
      {"architecture", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; }, "architectures"},
      {"model_type only",
       [](json& j) {
         j.erase("architectures");
         j["model_type"] = "gemma";
       },
       "model_type"},
      {"hidden_act", [](json& j) { j["hidden_act"] = "gelu"; }, "hidden_act"},
      {"rope type",
       [](json& j) {
         j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
       },
       "rope_scaling.type"},
      {"rope linear",
       [](json& j) {
         j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
       },
       "rope_scaling"},
      {"llama3 missing",
       [](json& j) {
         j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}};
       },
       "rope_scaling.high_freq_factor"},
      {"mistral window",
       [](json& j) {
         j["architectures"] = {"MistralForCausalLM"};
         j["sliding_window"] = 4096;
       },
       "sliding_window"},
      {"mistral default window",
       [](json& j) {
         j["architectures"] = {"MistralForCausalLM"};
         j.erase("sliding_window");
       },
       "sliding_window"},
      {"rope_interleaved", [](json& j) { j["rope_interleaved"] = true; }, "rope_interleaved"},
      {"qwen2 window",
       [](json& j) {
         j["architectures"] = {"Qwen2ForCausalLM"};
         j.erase("attention_bias");
         j["use_sliding_window"] = true;
         j["sliding_window"] = 1024;
       },
       "sliding_window"},
      {"llama attention_bias", [](json& j) { j["attention_bias"] = true; }, "attention_bias"},
      {"mlp_bias", [](json& j) { j["mlp_bias"] = true; }, "mlp_bias"},
      {"missing hidden_size", [](json& j) { j.erase("hidden_size"); }, "hidden_size"},
      {"string hidden_size", [](json& j) { j["hidden_size"] = "576"; }, "hidden_size"},
      {"kv heads", [](json& j) { j["num_key_value_heads"] = 4; }, "num_key_value_heads"},
      {"odd head_dim", [](json& j) { j["head_dim"] = 63; }, "head_dim"},
      {"zero layers", [](json& j) { j["num_hidden_layers"] = 0; }, "num_hidden_layers"},
      {"partial rotary", [](json& j) { j["partial_rotary_factor"] = 0.5; }, "partial_rotary_factor"},
      {"softcap", [](json& j) { j["final_logit_softcapping"] = 30.0; }, "final_logit_softcapping"},
      {"quantized",
       [](json& j) {
         j["quantization_config"] = {{"quant_method", "gptq"}};
       },
       "quantization_config"},
      {"eos outside vocab", [](json& j) { j["eos_token_id"] = 49152; }, "eos_token_id"},
      {"eos type", [](json& j) { j["eos_token_id"] = "2"; }, "eos_token_id"},
  };
  for (const BadCase& bc : cases) {
    json j = LlamaJson();
    bc.edit(j);
    absl::Status s = ErrorFor(j);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bc.name << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(bc.field)) << bc.name;
    EXPECT_THAT(std::string(s.message()), HasSubstr("cfg.json")) << bc.name;
  }
}

TEST(ModelConfigTest, InvalidJsonIsAnError) {
  absl::Status s = ParseHfConfig("{not json", "broken.json").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("broken.json"));
}

TEST(ModelConfigTest, GenerationConfigReplacesEosIds) {
  testing::ScratchDir dir;
  testing::WriteFile(dir.Path("config.json"), LlamaJson().dump());
  testing::WriteFile(dir.Path("generation_config.json"), R"({"bos_token_id": 1, "eos_token_id": [2, 0]})");
  auto c = LoadHfConfigFromDir(dir.Path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_ids, std::vector<int>({2, 0}));
  EXPECT_FALSE(c->name.empty());
}

TEST(ModelConfigTest, PresetsHaveRealShapes) {
  auto c8 = PresetConfig("llama-3-8b");
  ASSERT_TRUE(c8.ok());
  EXPECT_EQ(c8->hidden_size, 4096);
  EXPECT_EQ(c8->num_layers, 32);
  EXPECT_EQ(c8->num_kv_heads, 8);
  auto c70 = PresetConfig("llama-3-70b");
  ASSERT_TRUE(c70.ok());
  EXPECT_EQ(c70->hidden_size, 8192);
  EXPECT_EQ(c70->num_layers, 80);
  EXPECT_EQ(c70->intermediate_size, 28672);
  EXPECT_EQ(PresetConfig("gpt-5").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem::model
