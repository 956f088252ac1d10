// Model weights as the forward pass consumes them: every tensor fp32 (or, loaded with
// LoadOptions::keep_16bit, the checkpoint's bf16/fp16), row-major, [out, in] exactly as
// Hugging Face stores nn.Linear weights (y = x W^T), with HF's rotary convention (rotate_half: the
// pairs rotated together are (i, i + head_dim/2) within each head). Loaders convert whatever they
// read (bf16/fp16 safetensors, quantized GGUF with its Q/K row permutation) to this one form.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "tandem/core/tensor.h"
#include "tandem/model/model_config.h"

namespace tandem::model {

// nq = num_attention_heads, nkv = num_kv_heads, hd = head_dim, inter = intermediate_size.
struct LayerWeights {
  Tensor input_norm;           // [hidden]                     input_layernorm.weight
  Tensor q_proj;               // [nq * hd, hidden]            self_attn.q_proj.weight
  Tensor k_proj;               // [nkv * hd, hidden]           self_attn.k_proj.weight
  Tensor v_proj;               // [nkv * hd, hidden]           self_attn.v_proj.weight
  Tensor o_proj;               // [hidden, nq * hd]            self_attn.o_proj.weight
  Tensor q_bias;               // [nq * hd]   empty unless config.attention_bias
  Tensor k_bias;               // [nkv * hd]  empty unless config.attention_bias
  Tensor v_bias;               // [nkv * hd]  empty unless config.attention_bias
  Tensor q_norm;               // [hd]        empty unless config.qk_norm (Qwen3)
  Tensor k_norm;               // [hd]        empty unless config.qk_norm (Qwen3)
  Tensor post_attention_norm;  // [hidden]                     post_attention_layernorm.weight
  Tensor gate_proj;            // [inter, hidden]              mlp.gate_proj.weight
  Tensor up_proj;              // [inter, hidden]              mlp.up_proj.weight
  Tensor down_proj;            // [hidden, inter]              mlp.down_proj.weight
};

struct ModelWeights {
  Tensor embed_tokens;  // [vocab, hidden]   model.embed_tokens.weight
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // [hidden]          model.norm.weight
  Tensor lm_head;     // [vocab, hidden]   lm_head.weight; same storage as embed_tokens when tied
};

// Checks that every tensor the config calls for is present, fp32, bf16 or fp16, and has the shape
// above, and that
// the optional ones are empty when the config does not call for them. Errors name the tensor.
absl::Status ValidateWeights(const ModelConfig& config, const ModelWeights& weights,
                             absl::string_view source_name);

// Number of parameters (tied embeddings counted once).
int64_t NumParameters(const ModelWeights& weights);

}  // namespace tandem::model
