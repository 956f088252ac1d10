#include "tandem/model/weights.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "weight_slots.h"

namespace tandem::model {

absl::Status ValidateWeights(const ModelConfig& config, const ModelWeights& weights,
                             absl::string_view source_name) {
  if (weights.layers.size() != static_cast<size_t>(config.num_layers)) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": ", weights.layers.size(),
                                                   " layers of weights, config expects ", config.num_layers));
  }
  ModelWeights copy = weights;  // shallow: tensors share storage
  for (const WeightSlot& slot : ListWeightSlots(config, &copy)) {
    const Tensor& t = *slot.dst;
    if (!t.defined())
      return absl::InvalidArgumentError(absl::StrCat(source_name, ": ", slot.hf_name, " is missing"));
    const bool float_type = t.dtype() == DType::kF32 || t.dtype() == DType::kBF16 || t.dtype() == DType::kF16;
    if (!float_type || t.shape() != slot.shape) {
      return absl::InvalidArgumentError(absl::StrCat(source_name, ": ", slot.hf_name, " is ", t.DebugString(),
                                                     ", expected f32, bf16 or f16 [", absl::StrJoin(slot.shape, ", "),
                                                     "]"));
    }
  }
  // Tied: the same storage, or both without host data (dummy weights a backend generates itself).
  const bool shape_only = weights.lm_head.raw_data() == nullptr && weights.embed_tokens.raw_data() == nullptr &&
                          weights.lm_head.shape() == weights.embed_tokens.shape();
  if (config.tie_word_embeddings && !weights.lm_head.SharesStorageWith(weights.embed_tokens) && !shape_only) {
    return absl::InvalidArgumentError(absl::StrCat(
        source_name, ": tie_word_embeddings is set but lm_head does not share embed_tokens' storage"));
  }
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const LayerWeights& l = weights.layers[i];
    if (!config.attention_bias && (l.q_bias.defined() || l.k_bias.defined() || l.v_bias.defined())) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name, ": layer ", i, " has q/k/v biases but the config has no attention bias"));
    }
    if (!config.qk_norm && (l.q_norm.defined() || l.k_norm.defined())) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name, ": layer ", i, " has q_norm/k_norm but the config has no qk_norm"));
    }
  }
  return absl::OkStatus();
}

int64_t NumParameters(const ModelWeights& w) {
  int64_t n = w.embed_tokens.numel() + w.final_norm.numel();
  if (!w.lm_head.SharesStorageWith(w.embed_tokens)) n += w.lm_head.numel();
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t :
         {&l.input_norm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.q_bias, &l.k_bias, &l.v_bias,
          &l.q_norm, &l.k_norm, &l.post_attention_norm, &l.gate_proj, &l.up_proj, &l.down_proj}) {
      n += t->numel();
    }
  }
  return n;
}

}  // namespace tandem::model
