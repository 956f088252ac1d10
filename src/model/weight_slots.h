// The list of tensors a config calls for, with their names in each file format and expected shapes.
// Every loader walks this one list, so the formats cannot disagree about what a model contains.
// Internal to the model module.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/core/tensor.h"
#include "tandem/model/model_config.h"
#include "tandem/model/weights.h"

namespace tandem::model {

struct WeightSlot {
  std::string hf_name;         // "model.layers.3.self_attn.q_proj.weight"
  std::string gguf_name;       // "blk.3.attn_q.weight"
  std::vector<int64_t> shape;  // row-major, as in weights.h
  Tensor* dst = nullptr;       // where the fp32 tensor goes
  // Q and K projections (and their biases): the number of heads whose rows llama.cpp's converter
  // permuted (num_attention_heads for Q, num_kv_heads for K); 0 for every other tensor.
  int64_t gguf_permute_heads = 0;
  bool is_norm = false;  // a norm weight (dummy weights fill these near 1)
  // A linear layer's weight (q/k/v/o, gate/up/down, lm_head): what NVFP4 quantizes.
  bool is_linear = false;

  // The module the tensor belongs to, as NVFP4 checkpoints and exclude_modules name it: hf_name
  // without its last component ("model.layers.3.self_attn.q_proj" for "...q_proj.weight").
  std::string module() const { return hf_name.substr(0, hf_name.rfind('.')); }
};

// Slots for `config` pointing into `weights` (whose layers vector is resized to num_layers).
// lm_head is listed only when the embeddings are not tied; call TieEmbeddings after loading.
std::vector<WeightSlot> ListWeightSlots(const ModelConfig& config, ModelWeights* weights);

// lm_head = embed_tokens (shared storage) when config.tie_word_embeddings.
void TieEmbeddings(const ModelConfig& config, ModelWeights* weights);

}  // namespace tandem::model
