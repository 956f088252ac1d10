#include "weight_slots.h"

#include "absl/strings/str_cat.h"

namespace tandem::model {

std::vector<WeightSlot> ListWeightSlots(const ModelConfig& c, ModelWeights* w) {
  const int64_t hidden = c.hidden_size;
  const int64_t inter = c.intermediate_size;
  const int64_t q_dim = static_cast<int64_t>(c.num_attention_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  const int64_t vocab = c.vocab_size;
  std::vector<WeightSlot> slots;
  auto add = [&](std::string hf, std::string gguf, std::vector<int64_t> shape, Tensor* dst, int64_t heads = 0,
                 bool is_norm = false) {
    slots.push_back(WeightSlot{std::move(hf), std::move(gguf), std::move(shape), dst, heads, is_norm, false});
  };
  auto linear = [&](std::string hf, std::string gguf, std::vector<int64_t> shape, Tensor* dst, int64_t heads = 0) {
    add(std::move(hf), std::move(gguf), std::move(shape), dst, heads);
    slots.back().is_linear = true;
  };
  w->layers.resize(static_cast<size_t>(c.num_layers));
  add("model.embed_tokens.weight", "token_embd.weight", {vocab, hidden}, &w->embed_tokens);
  for (int i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w->layers[static_cast<size_t>(i)];
    const std::string hf = absl::StrCat("model.layers.", i, ".");
    const std::string gg = absl::StrCat("blk.", i, ".");
    add(hf + "input_layernorm.weight", gg + "attn_norm.weight", {hidden}, &l.input_norm, 0, true);
    linear(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", {q_dim, hidden}, &l.q_proj,
        c.num_attention_heads);
    linear(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kv_dim, hidden}, &l.k_proj, c.num_kv_heads);
    linear(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kv_dim, hidden}, &l.v_proj);
    linear(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", {hidden, q_dim}, &l.o_proj);
    if (c.attention_bias) {
      add(hf + "self_attn.q_proj.bias", gg + "attn_q.bias", {q_dim}, &l.q_bias, c.num_attention_heads);
      add(hf + "self_attn.k_proj.bias", gg + "attn_k.bias", {kv_dim}, &l.k_bias, c.num_kv_heads);
      add(hf + "self_attn.v_proj.bias", gg + "attn_v.bias", {kv_dim}, &l.v_bias);
    }
    if (c.qk_norm) {
      add(hf + "self_attn.q_norm.weight", gg + "attn_q_norm.weight", {c.head_dim}, &l.q_norm, 0, true);
      add(hf + "self_attn.k_norm.weight", gg + "attn_k_norm.weight", {c.head_dim}, &l.k_norm, 0, true);
    }
    add(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", {hidden}, &l.post_attention_norm, 0,
        true);
    linear(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {inter, hidden}, &l.gate_proj);
    linear(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {inter, hidden}, &l.up_proj);
    linear(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {hidden, inter}, &l.down_proj);
  }
  add("model.norm.weight", "output_norm.weight", {hidden}, &w->final_norm, 0, true);
  if (!c.tie_word_embeddings) linear("lm_head.weight", "output.weight", {vocab, hidden}, &w->lm_head);
  return slots;
}

void TieEmbeddings(const ModelConfig& config, ModelWeights* weights) {
  if (config.tie_word_embeddings) weights->lm_head = weights->embed_tokens;
}

}  // namespace tandem::model
