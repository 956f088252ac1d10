#include "tandem/model/model_config.h"

#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "tandem/core/file.h"
#include "tandem/core/status.h"

namespace tandem::model {

using nlohmann::json;

const char* ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return "llama";
    case Architecture::kMistral:
      return "mistral";
    case Architecture::kQwen2:
      return "qwen2";
    case Architecture::kQwen3:
      return "qwen3";
  }
  return "?";
}

namespace {

absl::Status Invalid(absl::string_view source, absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", field, ": ", what));
}

// Reads an integer field; missing or null → `fallback` when given, else an error.
absl::StatusOr<int> GetInt(const json& j, absl::string_view source, const char* key,
                           std::optional<int> fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback.has_value()) return *fallback;
    return Invalid(source, key, "required field is missing");
  }
  if (!it->is_number_integer())
    return Invalid(source, key, absl::StrCat("expected an integer, found ", it->dump()));
  const int64_t v = it->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) return Invalid(source, key, absl::StrCat("value ", v, " out of range"));
  return static_cast<int>(v);
}

absl::StatusOr<double> GetNumber(const json& j, absl::string_view source, const char* key, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) return Invalid(source, key, absl::StrCat("expected a number, found ", it->dump()));
  return it->get<double>();
}

absl::StatusOr<bool> GetBool(const json& j, absl::string_view source, const char* key, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    return Invalid(source, key, absl::StrCat("expected true or false, found ", it->dump()));
  return it->get<bool>();
}

// eos_token_id: an integer, a list of integers, or null.
absl::StatusOr<std::vector<int>> GetIdList(const json& j, absl::string_view source, const char* key) {
  std::vector<int> ids;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ids;
  if (it->is_number_integer()) {
    ids.push_back(it->get<int>());
    return ids;
  }
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer())
        return Invalid(source, key, absl::StrCat("expected integer ids, found ", v.dump()));
      ids.push_back(v.get<int>());
    }
    return ids;
  }
  return Invalid(source, key, absl::StrCat("expected an integer or a list of integers, found ", it->dump()));
}

absl::StatusOr<Architecture> ParseArchitecture(const json& j, absl::string_view source) {
  std::string arch_name;
  auto arch = j.find("architectures");
  if (arch != j.end() && !arch->is_null()) {
    if (!arch->is_array() || arch->empty() || !(*arch)[0].is_string()) {
      return Invalid(source, "architectures",
                     absl::StrCat("expected a list of class names, found ", arch->dump()));
    }
    if (arch->size() > 1) {
      return Invalid(source, "architectures",
                     absl::StrCat("expected exactly one architecture, found ", arch->dump()));
    }
    arch_name = (*arch)[0].get<std::string>();
    if (arch_name == "LlamaForCausalLM") return Architecture::kLlama;
    if (arch_name == "MistralForCausalLM") return Architecture::kMistral;
    if (arch_name == "Qwen2ForCausalLM") return Architecture::kQwen2;
    if (arch_name == "Qwen3ForCausalLM") return Architecture::kQwen3;
    return Invalid(source, "architectures",
                   absl::StrCat("unsupported architecture '", arch_name,
                                "': expected LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or "
                                "Qwen3ForCausalLM"));
  }
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) {
    return Invalid(source, "architectures", "missing, and no model_type to fall back on");
  }
  const std::string model_type = mt->get<std::string>();
  if (model_type == "llama") return Architecture::kLlama;
  if (model_type == "mistral") return Architecture::kMistral;
  if (model_type == "qwen2") return Architecture::kQwen2;
  if (model_type == "qwen3") return Architecture::kQwen3;
  return Invalid(
      source, "model_type",
      absl::StrCat("unsupported model_type '", model_type, "': expected llama, mistral, qwen2 or qwen3"));
}

absl::Status ParseRopeScaling(const json& j, absl::string_view source, const char* field, RopeScaling* out) {
  *out = RopeScaling();
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_object())
    return Invalid(source, field, absl::StrCat("expected an object or null, found ", j.dump()));
  std::string type;
  if (auto it = j.find("rope_type"); it != j.end() && it->is_string()) {
    type = it->get<std::string>();
  } else if (auto t = j.find("type"); t != j.end() && t->is_string()) {
    type = t->get<std::string>();
  }
  if (type.empty() || type == "default") {
    // A factor other than 1 without a recognised type would be some scaling we cannot identify.
    if (auto f = j.find("factor");
        f != j.end() && !f->is_null() && !(f->is_number() && f->get<double>() == 1.0)) {
      return Invalid(source, field, absl::StrCat("has a factor but no recognised type: ", j.dump()));
    }
    return absl::OkStatus();
  }
  if (type != "llama3") {
    return Invalid(
        source, absl::StrCat(field, ".type"),
        absl::StrCat("unsupported rope scaling '", type, "': only llama3 (or null) is implemented"));
  }
  out->type = RopeScaling::Type::kLlama3;
  for (const char* key :
       {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    if (!j.contains(key) || !j[key].is_number()) {
      return Invalid(source, absl::StrCat(field, ".", key), "required for llama3 rope scaling (a number)");
    }
  }
  out->factor = j["factor"].get<float>();
  out->low_freq_factor = j["low_freq_factor"].get<float>();
  out->high_freq_factor = j["high_freq_factor"].get<float>();
  out->original_max_position_embeddings = j["original_max_position_embeddings"].get<int>();
  if (out->factor <= 0 || out->low_freq_factor <= 0 || out->high_freq_factor <= out->low_freq_factor ||
      out->original_max_position_embeddings <= 0) {
    return Invalid(source, field,
                   absl::StrCat("expected factor > 0, 0 < low_freq_factor < high_freq_factor and "
                                "original_max_position_embeddings > 0, found ",
                                j.dump()));
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ParseJson(const std::string& text, absl::string_view source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": expected a JSON object"));
  return j;
}

}  // namespace

absl::Status ValidateConfig(const ModelConfig& c, absl::string_view source) {
  auto positive = [&](int v, const char* field) -> absl::Status {
    if (v <= 0) return Invalid(source, field, absl::StrCat("expected a positive value, found ", v));
    return absl::OkStatus();
  };
  TANDEM_RETURN_IF_ERROR(positive(c.hidden_size, "hidden_size"));
  TANDEM_RETURN_IF_ERROR(positive(c.intermediate_size, "intermediate_size"));
  TANDEM_RETURN_IF_ERROR(positive(c.num_layers, "num_hidden_layers"));
  TANDEM_RETURN_IF_ERROR(positive(c.num_attention_heads, "num_attention_heads"));
  TANDEM_RETURN_IF_ERROR(positive(c.num_kv_heads, "num_key_value_heads"));
  TANDEM_RETURN_IF_ERROR(positive(c.head_dim, "head_dim"));
  TANDEM_RETURN_IF_ERROR(positive(c.vocab_size, "vocab_size"));
  TANDEM_RETURN_IF_ERROR(positive(c.max_position_embeddings, "max_position_embeddings"));
  if (c.num_attention_heads % c.num_kv_heads != 0) {
    return Invalid(source, "num_key_value_heads",
                   absl::StrCat("num_attention_heads (", c.num_attention_heads,
                                ") must be a multiple of it (", c.num_kv_heads, ")"));
  }
  if (c.head_dim % 2 != 0)
    return Invalid(source, "head_dim", absl::StrCat("must be even for rotary, found ", c.head_dim));
  if (!(c.rms_norm_eps > 0.0f))
    return Invalid(source, "rms_norm_eps", absl::StrCat("expected > 0, found ", c.rms_norm_eps));
  if (!(c.rope_theta > 0.0))
    return Invalid(source, "rope_theta", absl::StrCat("expected > 0, found ", c.rope_theta));
  for (int id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return Invalid(source, "eos_token_id",
                     absl::StrCat("id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  if (c.bos_token_id >= c.vocab_size) {
    return Invalid(source, "bos_token_id",
                   absl::StrCat("id ", c.bos_token_id, " outside the vocabulary [0, ", c.vocab_size, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& source_name) {
  const absl::string_view src = source_name;
  TANDEM_ASSIGN_OR_RETURN(json j, ParseJson(json_text, src));
  ModelConfig c;
  TANDEM_ASSIGN_OR_RETURN(c.architecture, ParseArchitecture(j, src));
  TANDEM_ASSIGN_OR_RETURN(c.hidden_size, GetInt(j, src, "hidden_size", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.intermediate_size, GetInt(j, src, "intermediate_size", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.num_layers, GetInt(j, src, "num_hidden_layers", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.num_attention_heads, GetInt(j, src, "num_attention_heads", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.num_kv_heads, GetInt(j, src, "num_key_value_heads", c.num_attention_heads));
  TANDEM_ASSIGN_OR_RETURN(c.vocab_size, GetInt(j, src, "vocab_size", std::nullopt));
  // transformers' per-architecture defaults.
  int default_max_pos = 2048;
  switch (c.architecture) {
    case Architecture::kLlama:
      break;
    case Architecture::kMistral:
      default_max_pos = 4096 * 32;
      break;
    case Architecture::kQwen2:
    case Architecture::kQwen3:
      default_max_pos = 32768;
      break;
  }
  TANDEM_ASSIGN_OR_RETURN(c.max_position_embeddings,
                          GetInt(j, src, "max_position_embeddings", default_max_pos));
  if (c.num_attention_heads <= 0) return Invalid(src, "num_attention_heads", "expected a positive value");
  TANDEM_ASSIGN_OR_RETURN(c.head_dim, GetInt(j, src, "head_dim", c.hidden_size / c.num_attention_heads));
  if (!j.contains("head_dim") && c.hidden_size % c.num_attention_heads != 0) {
    return Invalid(src, "hidden_size",
                   absl::StrCat("not a multiple of num_attention_heads (", c.num_attention_heads,
                                ") and no head_dim given"));
  }
  TANDEM_ASSIGN_OR_RETURN(double eps, GetNumber(j, src, "rms_norm_eps", 1e-6));
  c.rms_norm_eps = static_cast<float>(eps);

  // Rotary: rope_theta + rope_scaling, or (newer transformers) rope_parameters holding both.
  TANDEM_ASSIGN_OR_RETURN(c.rope_theta, GetNumber(j, src, "rope_theta", 10000.0));
  if (auto rp = j.find("rope_parameters"); rp != j.end() && !rp->is_null()) {
    if (!rp->is_object())
      return Invalid(src, "rope_parameters", absl::StrCat("expected an object, found ", rp->dump()));
    TANDEM_ASSIGN_OR_RETURN(c.rope_theta, GetNumber(*rp, src, "rope_theta", c.rope_theta));
    TANDEM_RETURN_IF_ERROR(ParseRopeScaling(*rp, src, "rope_parameters", &c.rope_scaling));
  }
  if (auto rs = j.find("rope_scaling"); rs != j.end()) {
    TANDEM_RETURN_IF_ERROR(ParseRopeScaling(*rs, src, "rope_scaling", &c.rope_scaling));
  }
  if (auto prf = j.find("partial_rotary_factor"); prf != j.end() && !prf->is_null()) {
    if (!prf->is_number() || prf->get<double>() != 1.0) {
      return Invalid(src, "partial_rotary_factor",
                     absl::StrCat("only 1.0 is supported, found ", prf->dump()));
    }
  }

  if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
    if (!act->is_string() || act->get<std::string>() != "silu") {
      return Invalid(src, "hidden_act", absl::StrCat("only silu is supported, found ", act->dump()));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(c.tie_word_embeddings, GetBool(j, src, "tie_word_embeddings", false));
  TANDEM_ASSIGN_OR_RETURN(bool attention_bias, GetBool(j, src, "attention_bias", false));
  TANDEM_ASSIGN_OR_RETURN(bool mlp_bias, GetBool(j, src, "mlp_bias", false));
  if (mlp_bias) return Invalid(src, "mlp_bias", "true is not supported (MLP projections without bias only)");
  switch (c.architecture) {
    case Architecture::kLlama:
    case Architecture::kMistral:
    case Architecture::kQwen3:
      // In these, attention_bias also puts a bias on o_proj, which tandem does not implement.
      if (attention_bias) {
        return Invalid(src, "attention_bias",
                       absl::StrCat("true is not supported for ", ArchitectureName(c.architecture),
                                    " (it adds an o_proj bias)"));
      }
      c.attention_bias = false;
      break;
    case Architecture::kQwen2:
      c.attention_bias = true;  // Qwen2 always has q/k/v biases and no o_proj bias.
      break;
  }
  c.qk_norm = c.architecture == Architecture::kQwen3;

  // Sliding-window attention changes the maths once a sequence is longer than the window.
  TANDEM_ASSIGN_OR_RETURN(bool use_sliding_window,
                          GetBool(j, src, "use_sliding_window", c.architecture == Architecture::kMistral));
  if (use_sliding_window) {
    // MistralConfig's default window is 4096 when the key is absent; null turns it off.
    std::optional<int64_t> window;
    auto sw = j.find("sliding_window");
    if (sw == j.end()) {
      if (c.architecture == Architecture::kMistral) window = 4096;
    } else if (!sw->is_null()) {
      if (!sw->is_number_integer()) {
        return Invalid(src, "sliding_window", absl::StrCat("expected an integer, found ", sw->dump()));
      }
      window = sw->get<int64_t>();
    }
    if (window.has_value() && *window < c.max_position_embeddings) {
      return Invalid(src, "sliding_window",
                     absl::StrCat("sliding-window attention (window ", *window, " < max_position_embeddings ",
                                  c.max_position_embeddings, ") is not supported"));
    }
  }
  if (auto ri = j.find("rope_interleaved"); ri != j.end() && ri->is_boolean() && ri->get<bool>()) {
    return Invalid(src, "rope_interleaved", "true is not supported (HF rotate_half rotary only)");
  }
  if (auto lt = j.find("layer_types"); lt != j.end() && lt->is_array()) {
    for (const auto& t : *lt) {
      if (!t.is_string() || t.get<std::string>() != "full_attention") {
        if (!use_sliding_window && t.is_string() && t.get<std::string>() == "sliding_attention") continue;
        return Invalid(src, "layer_types",
                       absl::StrCat("only full_attention layers are supported, found ", t.dump()));
      }
    }
  }
  for (const char* key : {"attn_logit_softcapping", "final_logit_softcapping"}) {
    if (auto it = j.find(key); it != j.end() && !it->is_null()) {
      return Invalid(src, key, absl::StrCat("logit soft-capping is not supported, found ", it->dump()));
    }
  }
  // Model Optimizer NVFP4 is read by the safetensors loader (nvfp4_checkpoint.h); nothing else.
  if (auto q = j.find("quantization_config"); q != j.end() && !q->is_null()) {
    const bool nvfp4 = q->is_object() && q->value("quant_algo", "") == "NVFP4";
    if (!nvfp4) {
      return Invalid(src, "quantization_config",
                     absl::StrCat("only NVIDIA Model Optimizer NVFP4 checkpoints are supported, found ", q->dump()));
    }
  }

  TANDEM_ASSIGN_OR_RETURN(c.eos_token_ids, GetIdList(j, src, "eos_token_id"));
  TANDEM_ASSIGN_OR_RETURN(c.bos_token_id, GetInt(j, src, "bos_token_id", -1));
  c.name = source_name;
  TANDEM_RETURN_IF_ERROR(ValidateConfig(c, src));
  return c;
}

absl::Status ApplyGenerationConfig(const std::string& json_text, const std::string& source_name,
                                   ModelConfig* config) {
  TANDEM_ASSIGN_OR_RETURN(json j, ParseJson(json_text, source_name));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int> eos, GetIdList(j, source_name, "eos_token_id"));
  if (!eos.empty()) config->eos_token_ids = std::move(eos);
  if (auto it = j.find("bos_token_id"); it != j.end() && !it->is_null()) {
    TANDEM_ASSIGN_OR_RETURN(config->bos_token_id, GetInt(j, source_name, "bos_token_id", -1));
  }
  return ValidateConfig(*config, source_name);
}

absl::StatusOr<ModelConfig> LoadHfConfigFromDir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config_path));
  TANDEM_ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(text, config_path));
  const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
  std::error_code ec;
  if (fs::exists(gen_path, ec)) {
    TANDEM_ASSIGN_OR_RETURN(std::string gen_text, ReadFileToString(gen_path));
    TANDEM_RETURN_IF_ERROR(ApplyGenerationConfig(gen_text, gen_path, &config));
  }
  config.name = fs::path(dir).lexically_normal().filename().string();
  if (config.name.empty()) config.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  return config;
}

absl::StatusOr<ModelConfig> PresetConfig(absl::string_view name) {
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  c.name = std::string(name);
  if (name == "llama-3-8b" || name == "llama-3-70b") {
    const bool big = name == "llama-3-70b";
    c.hidden_size = big ? 8192 : 4096;
    c.intermediate_size = big ? 28672 : 14336;
    c.num_layers = big ? 80 : 32;
    c.num_attention_heads = big ? 64 : 32;
    c.num_kv_heads = 8;
    c.head_dim = 128;
    c.vocab_size = 128256;
    c.max_position_embeddings = 8192;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = false;
    c.bos_token_id = 128000;
    c.eos_token_ids = {128001, 128009};
  } else if (name == "smollm2-135m") {
    c.hidden_size = 576;
    c.intermediate_size = 1536;
    c.num_layers = 30;
    c.num_attention_heads = 9;
    c.num_kv_heads = 3;
    c.head_dim = 64;
    c.vocab_size = 49152;
    c.max_position_embeddings = 8192;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 100000.0;
    c.tie_word_embeddings = true;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
  } else if (name == "tiny-llama") {
    c.hidden_size = 64;
    c.intermediate_size = 160;
    c.num_layers = 2;
    c.num_attention_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 257;
    c.max_position_embeddings = 512;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = false;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
  } else {
    return absl::NotFoundError(absl::StrCat(
        "unknown model preset '", name, "': expected llama-3-8b, llama-3-70b, smollm2-135m or tiny-llama"));
  }
  TANDEM_RETURN_IF_ERROR(ValidateConfig(c, name));
  return c;
}

}  // namespace tandem::model
