// The architecture description of a Llama-family model, read from a Hugging Face config.json (or
// from GGUF metadata, or a named preset for dummy weights). Everything the forward pass needs to
// know about the maths is here; a config field that would change the maths in a way tandem does
// not implement is an InvalidArgument error naming the field, never a silent approximation.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::model {

enum class Architecture {
  kLlama,    // LlamaForCausalLM (Llama 2/3/3.1/3.2, SmolLM2)
  kMistral,  // MistralForCausalLM (same maths as Llama; sliding window must be off)
  kQwen2,    // Qwen2ForCausalLM: q/k/v projections carry a bias
  kQwen3,    // Qwen3ForCausalLM: per-head RMSNorm on q and k (q_norm/k_norm) before rotary
};

// "llama", "mistral", "qwen2", "qwen3".
const char* ArchitectureName(Architecture arch);

struct RopeScaling {
  enum class Type {
    kNone,    // plain rotary with rope_theta
    kLlama3,  // Llama 3.1 frequency-dependent scaling (factor, low/high_freq_factor, original_max_pos)
  };
  Type type = Type::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_attention_heads = 0;
  int num_kv_heads = 0;  // == num_attention_heads for MHA
  int head_dim = 0;      // config "head_dim" when present, else hidden_size / num_attention_heads
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;     // q, k, v projections have a bias (Qwen2; Llama's attention_bias)
  bool qk_norm = false;            // per-head RMSNorm of q and k over head_dim (Qwen3)
  std::vector<int> eos_token_ids;  // from config.json, replaced by generation_config.json's when given
  int bos_token_id = -1;           // -1: none
  std::string name;                // where it came from: directory name, GGUF general.name or preset
};

// Parses a Hugging Face config.json. `source_name` (usually the file path) prefixes error messages.
// Supported: architectures LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM
// (or model_type llama/mistral/qwen2/qwen3); hidden_act silu; rope_scaling null or type/rope_type
// "llama3"; no sliding window in effect; no attention/MLP bias beyond what the architecture implies.
absl::StatusOr<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& source_name);

// Applies a generation_config.json: eos_token_id (int or list) replaces config->eos_token_ids and
// bos_token_id replaces config->bos_token_id when present.
absl::Status ApplyGenerationConfig(const std::string& json_text, const std::string& source_name,
                                   ModelConfig* config);

// Reads <dir>/config.json and, when present, <dir>/generation_config.json. name = the directory's
// base name.
absl::StatusOr<ModelConfig> LoadHfConfigFromDir(const std::string& dir);

// Named shapes for dummy weights: "llama-3-8b", "llama-3-70b", "smollm2-135m", "tiny-llama" (a small
// GQA shape for tests). Unknown name → NotFound listing the known ones.
absl::StatusOr<ModelConfig> PresetConfig(absl::string_view name);

// Checks internal consistency (positive sizes, heads divide, head_dim even, ...). ParseHfConfig and
// the loaders call it; exposed for configs built by hand.
absl::Status ValidateConfig(const ModelConfig& config, absl::string_view source_name);

}  // namespace tandem::model
