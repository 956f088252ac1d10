#include "tandem/backend/model_runner.h"

#include <cmath>
#include <cstring>

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "gguf_weights.h"
#include "tandem/backend/rope.h"
#include "tandem/model/gguf.h"
#include "tandem/model/tensor_parallel.h"
#include "tandem/core/status.h"

namespace tandem::backend {

struct ModelRunner::Layer {
  const float* input_norm = nullptr;  // [hidden]
  Matrix qkv;                         // [(nq + 2 nkv) * hd, hidden]: q rows, then k, then v
  const float* qkv_bias = nullptr;    // [(nq + 2 nkv) * hd] or null
  const float* q_norm = nullptr;      // [hd] or null
  const float* k_norm = nullptr;      // [hd] or null
  Matrix o;                           // [hidden, nq * hd]
  const float* post_norm = nullptr;   // [hidden]
  Matrix gate_up;                     // [2 * inter, hidden]: gate rows, then up
  Matrix down;                        // [hidden, inter]
};

ModelRunner::ModelRunner(Backend* backend, const model::ModelConfig& config)
    : backend_(backend), config_(config) {}
ModelRunner::~ModelRunner() = default;

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(Backend* backend,
                                                                 const model::ModelConfig& config,
                                                                 const model::ModelWeights& weights,
                                                                 const ModelRunnerOptions& options) {
  if (backend == nullptr) return absl::InvalidArgumentError("model runner: backend is null");
  TANDEM_RETURN_IF_ERROR(model::ValidateConfig(config, config.name));
  TANDEM_RETURN_IF_ERROR(model::ValidateWeights(config, weights, config.name));
  if (options.collective == nullptr || options.collective->size() == 1) {
    std::unique_ptr<ModelRunner> runner(new ModelRunner(backend, config));
    TANDEM_RETURN_IF_ERROR(runner->Upload(weights, options));
    return runner;
  }
  TANDEM_ASSIGN_OR_RETURN(const model::TensorParallelShard shard,
                          model::PlanTensorParallelShard(config, options.collective->rank(), options.collective->size()));
  std::unique_ptr<ModelRunner> runner(new ModelRunner(backend, model::ShardConfig(config, shard)));
  runner->collective_ = options.collective;
  ModelRunnerOptions rank_options = options;
  rank_options.gguf_path.clear();  // block formats are not split
  TANDEM_RETURN_IF_ERROR(runner->Upload(model::ShardWeights(config, weights, shard), rank_options));
  return runner;
}

namespace {

// Concatenates host fp32 tensors (each contiguous) into one host vector.
std::vector<float> Concat(std::initializer_list<const Tensor*> parts) {
  size_t total = 0;
  for (const Tensor* t : parts) total += static_cast<size_t>(t->numel());
  std::vector<float> out;
  out.reserve(total);
  for (const Tensor* t : parts) out.insert(out.end(), t->data<float>(), t->data<float>() + t->numel());
  return out;
}

}  // namespace

int ModelRunner::num_matrices(WeightFormat format) const {
  return static_cast<int>(std::count_if(all_matrices_.begin(), all_matrices_.end(),
                                        [format](const Matrix& m) { return m.format == format; }));
}

absl::Status ModelRunner::Upload(const model::ModelWeights& weights, const ModelRunnerOptions& options) {
  // The CPU backend computes in fp32: 16-bit weights (LoadOptions::keep_16bit) are for the CUDA runner.
  if (weights.embed_tokens.defined() && weights.embed_tokens.dtype() != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat("model runner: the CPU backend needs fp32 weights, found ",
                                                   weights.embed_tokens.DebugString(),
                                                   " (loaded with keep_16bit, which is for backend: cuda)"));
  }
  auto upload = [this](const float* host, size_t count) -> absl::StatusOr<const float*> {
    TANDEM_ASSIGN_OR_RETURN(auto buffer, backend_->Allocate(count * sizeof(float)));
    TANDEM_RETURN_IF_ERROR(backend_->CopyFromHost(buffer->data(), host, count * sizeof(float)));
    const float* p = buffer->as<float>();
    storage_.push_back(std::move(buffer));
    return p;
  };
  auto upload_tensor = [&](const Tensor& t) -> absl::StatusOr<const float*> {
    return upload(t.data<float>(), static_cast<size_t>(t.numel()));
  };
  const model::ModelConfig& c = config_;
  const int hd = c.head_dim, nq = c.num_attention_heads, nkv = c.num_kv_heads;
  const int qkv_rows = (nq + 2 * nkv) * hd;

  std::unique_ptr<model::GgufFile> gguf;
  if (!options.gguf_path.empty()) {
    TANDEM_ASSIGN_OR_RETURN(gguf, model::GgufFile::Open(options.gguf_path));
  }
  std::vector<WeightFormat> supported;
  for (WeightFormat f : {WeightFormat::kQ4_1, WeightFormat::kQ8_0}) {
    if (backend_->SupportsWeightFormat(f)) supported.push_back(f);
  }
  // A matrix made of `parts` (rows concatenated): block-quantized when the GGUF allows, else fp32.
  // `fp32_alias`: already-uploaded fp32 data to use instead of a new copy when not packed.
  auto matrix = [&](const std::vector<GgufMatrixPart>& parts,
                    const float* fp32_alias = nullptr) -> absl::StatusOr<Matrix> {
    int64_t rows = 0;
    for (const GgufMatrixPart& p : parts) rows += p.fp32->dim(0);
    const int64_t cols = parts.front().fp32->dim(1);
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    std::optional<PackedMatrix> packed;
    if (gguf != nullptr) packed = PackGgufMatrix(*gguf, parts, supported);
    if (packed.has_value()) {
      TANDEM_ASSIGN_OR_RETURN(auto buffer, backend_->Allocate(packed->rows.size()));
      TANDEM_RETURN_IF_ERROR(backend_->CopyFromHost(buffer->data(), packed->rows.data(), packed->rows.size()));
      m.format = packed->format;
      m.blocks = buffer->as<uint8_t>();
      storage_.push_back(std::move(buffer));
    } else if (fp32_alias != nullptr) {
      m.data = fp32_alias;
    } else if (parts.size() == 1) {
      TANDEM_ASSIGN_OR_RETURN(m.data, upload(parts.front().fp32->data<float>(), static_cast<size_t>(rows * cols)));
    } else {
      std::vector<float> fused;
      fused.reserve(static_cast<size_t>(rows * cols));
      for (const GgufMatrixPart& p : parts) {
        fused.insert(fused.end(), p.fp32->data<float>(), p.fp32->data<float>() + p.fp32->numel());
      }
      TANDEM_ASSIGN_OR_RETURN(m.data, upload(fused.data(), fused.size()));
    }
    all_matrices_.push_back(m);
    return m;
  };

  TANDEM_ASSIGN_OR_RETURN(embed_, upload_tensor(weights.embed_tokens));
  TANDEM_ASSIGN_OR_RETURN(final_norm_, upload_tensor(weights.final_norm));
  const bool tied = !weights.lm_head.defined() || weights.lm_head.SharesStorageWith(weights.embed_tokens);
  if (tied) {  // shares the embedding table unless a packed copy is kept
    TANDEM_ASSIGN_OR_RETURN(lm_head_, matrix({{"token_embd.weight", &weights.embed_tokens, 0}}, embed_));
  } else {
    TANDEM_ASSIGN_OR_RETURN(lm_head_, matrix({{"output.weight", &weights.lm_head, 0}}));
  }
  for (size_t li = 0; li < weights.layers.size(); ++li) {
    const model::LayerWeights& lw = weights.layers[li];
    const std::string blk = absl::StrCat("blk.", li, ".");
    Layer layer;
    TANDEM_ASSIGN_OR_RETURN(layer.input_norm, upload_tensor(lw.input_norm));
    TANDEM_ASSIGN_OR_RETURN(layer.post_norm, upload_tensor(lw.post_attention_norm));
    TANDEM_ASSIGN_OR_RETURN(layer.qkv, matrix({{blk + "attn_q.weight", &lw.q_proj, nq},
                                               {blk + "attn_k.weight", &lw.k_proj, nkv},
                                               {blk + "attn_v.weight", &lw.v_proj, 0}}));
    if (layer.qkv.rows != qkv_rows) return absl::InternalError("model runner: fused qkv has the wrong row count");
    if (c.attention_bias) {
      const std::vector<float> bias = Concat({&lw.q_bias, &lw.k_bias, &lw.v_bias});
      TANDEM_ASSIGN_OR_RETURN(layer.qkv_bias, upload(bias.data(), bias.size()));
    }
    if (c.qk_norm) {
      TANDEM_ASSIGN_OR_RETURN(layer.q_norm, upload_tensor(lw.q_norm));
      TANDEM_ASSIGN_OR_RETURN(layer.k_norm, upload_tensor(lw.k_norm));
    }
    TANDEM_ASSIGN_OR_RETURN(layer.o, matrix({{blk + "attn_output.weight", &lw.o_proj, 0}}));
    TANDEM_ASSIGN_OR_RETURN(layer.gate_up,
                            matrix({{blk + "ffn_gate.weight", &lw.gate_proj, 0}, {blk + "ffn_up.weight", &lw.up_proj, 0}}));
    TANDEM_ASSIGN_OR_RETURN(layer.down, matrix({{blk + "ffn_down.weight", &lw.down_proj, 0}}));
    layers_.push_back(layer);
  }
  const std::vector<float> inv_freq = ComputeRopeInvFreq(c);
  TANDEM_ASSIGN_OR_RETURN(inv_freq_, backend_->Allocate(inv_freq.size() * sizeof(float)));
  TANDEM_RETURN_IF_ERROR(
      backend_->CopyFromHost(inv_freq_->data(), inv_freq.data(), inv_freq.size() * sizeof(float)));
  return absl::OkStatus();
}

KvCacheSpec ModelRunner::MakeKvCacheSpec(int num_blocks, int block_size) const {
  KvCacheSpec spec;
  spec.num_layers = config_.num_layers;
  spec.num_kv_heads = config_.num_kv_heads;
  spec.head_dim = config_.head_dim;
  spec.block_size = block_size;
  spec.num_blocks = num_blocks;
  return spec;
}

absl::StatusOr<BatchPlan> ModelRunner::Plan(const std::vector<SequenceStep>& steps, const KvPool& cache) const {
  return PlanBatch(steps, cache.spec().block_size, cache.spec().num_blocks, config_.vocab_size,
                   config_.max_position_embeddings);
}

absl::Status ModelRunner::EnsureWorkspace(int num_tokens, int num_logits, const BatchPlan& plan) {
  const model::ModelConfig& c = config_;
  auto alloc = [this](std::unique_ptr<Buffer>* buffer, int64_t floats) -> absl::Status {
    TANDEM_ASSIGN_OR_RETURN(*buffer, backend_->Allocate(static_cast<size_t>(floats) * sizeof(float)));
    return absl::OkStatus();
  };
  if (num_tokens > capacity_tokens_) {
    const int64_t n = num_tokens;
    const int64_t hd = c.head_dim;
    TANDEM_RETURN_IF_ERROR(alloc(&residual_, n * c.hidden_size));
    TANDEM_RETURN_IF_ERROR(alloc(&normed_, n * c.hidden_size));
    TANDEM_RETURN_IF_ERROR(alloc(&qkv_, n * (c.num_attention_heads + 2 * c.num_kv_heads) * hd));
    TANDEM_RETURN_IF_ERROR(alloc(&attn_, n * c.num_attention_heads * hd));
    TANDEM_RETURN_IF_ERROR(alloc(&proj_, n * c.hidden_size));
    TANDEM_RETURN_IF_ERROR(alloc(&gate_up_, n * 2 * c.intermediate_size));
    TANDEM_RETURN_IF_ERROR(alloc(&act_, n * c.intermediate_size));
    TANDEM_RETURN_IF_ERROR(alloc(&cos_sin_, n * hd));
    capacity_tokens_ = num_tokens;
  }
  if (num_logits > capacity_logits_) {
    TANDEM_RETURN_IF_ERROR(alloc(&logit_hidden_, int64_t{num_logits} * c.hidden_size));
    TANDEM_RETURN_IF_ERROR(alloc(&logit_normed_, int64_t{num_logits} * c.hidden_size));
    TANDEM_RETURN_IF_ERROR(alloc(&logits_, int64_t{num_logits} * c.vocab_size));
    capacity_logits_ = num_logits;
  }
  const size_t meta_bytes = sizeof(int64_t) * plan.slot_mapping.size() +
                            sizeof(int32_t) * (plan.token_ids.size() + plan.positions.size() +
                                               plan.token_seq.size() + plan.block_tables.size() +
                                               plan.context_lens.size() + plan.logits_token_index.size()) +
                            64;
  if (meta_bytes > capacity_meta_) {
    TANDEM_ASSIGN_OR_RETURN(meta_, backend_->Allocate(meta_bytes * 2));
    capacity_meta_ = meta_bytes * 2;
  }
  return absl::OkStatus();
}

absl::StatusOr<BatchView> ModelRunner::UploadPlan(const BatchPlan& plan) {
  BatchView view;
  view.num_tokens = plan.num_tokens;
  view.num_seqs = plan.num_seqs;
  view.block_size = plan.block_size;
  view.max_blocks_per_seq = plan.max_blocks_per_seq;
  view.max_context_len = plan.max_context_len;
  view.num_logits = plan.num_logits();
  // Host staging in the same layout as meta_, then one copy.
  std::vector<uint8_t> staging;
  staging.reserve(capacity_meta_);
  auto put = [&](const auto& vec) {
    const size_t offset = staging.size();
    const size_t bytes = vec.size() * sizeof(vec[0]);
    staging.resize(offset + bytes);
    if (bytes > 0) std::memcpy(staging.data() + offset, vec.data(), bytes);
    return offset;
  };
  const size_t slot_off = put(plan.slot_mapping);  // int64 first: stays 8-byte aligned
  const size_t ids_off = put(plan.token_ids);
  const size_t pos_off = put(plan.positions);
  const size_t seq_off = put(plan.token_seq);
  const size_t table_off = put(plan.block_tables);
  const size_t ctx_off = put(plan.context_lens);
  const size_t logit_off = put(plan.logits_token_index);
  TANDEM_RETURN_IF_ERROR(backend_->CopyFromHost(meta_->data(), staging.data(), staging.size()));
  const uint8_t* base = meta_->as<uint8_t>();
  view.slot_mapping = reinterpret_cast<const int64_t*>(base + slot_off);
  view.token_ids = reinterpret_cast<const int32_t*>(base + ids_off);
  view.positions = reinterpret_cast<const int32_t*>(base + pos_off);
  view.token_seq = reinterpret_cast<const int32_t*>(base + seq_off);
  view.block_tables = reinterpret_cast<const int32_t*>(base + table_off);
  view.context_lens = reinterpret_cast<const int32_t*>(base + ctx_off);
  view.logits_token_index = reinterpret_cast<const int32_t*>(base + logit_off);
  return view;
}

absl::StatusOr<std::vector<float>> ModelRunner::Forward(const BatchPlan& plan, KvPool& cache,
                                                        const RunnerLayerCallback* on_layer_done) {
  const model::ModelConfig& c = config_;
  const KvCacheSpec& spec = cache.spec();
  if (spec.num_layers != c.num_layers || spec.num_kv_heads != c.num_kv_heads || spec.head_dim != c.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model runner: kv cache has ", spec.num_layers, " layers x ", spec.num_kv_heads, " kv heads x head_dim ",
        spec.head_dim, ", the model needs ", c.num_layers, " x ", c.num_kv_heads, " x ", c.head_dim));
  }
  if (plan.block_size != spec.block_size) {
    return absl::InvalidArgumentError(absl::StrCat("model runner: plan made for block size ", plan.block_size,
                                                   ", the kv cache has ", spec.block_size));
  }
  const int n = plan.num_tokens;
  const int m = plan.num_logits();
  TANDEM_RETURN_IF_ERROR(EnsureWorkspace(n, m, plan));
  TANDEM_ASSIGN_OR_RETURN(const BatchView batch, UploadPlan(plan));

  Backend& b = *backend_;
  const int hidden = c.hidden_size, hd = c.head_dim, nq = c.num_attention_heads, nkv = c.num_kv_heads;
  const int ld_qkv = (nq + 2 * nkv) * hd;
  const float eps = c.rms_norm_eps;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float* x = residual_->as<float>();  // [n, hidden] residual stream
  float* h = normed_->as<float>();    // [n, hidden] normalized input of a sublayer
  float* qkv = qkv_->as<float>();     // [n, (nq + 2 nkv) * hd]
  float* q = qkv;
  float* k = qkv + nq * hd;
  float* v = k + nkv * hd;
  float* attn = attn_->as<float>();        // [n, nq * hd]
  float* proj = proj_->as<float>();        // [n, hidden] output of a sublayer
  float* gate_up = gate_up_->as<float>();  // [n, 2 * inter]
  float* act = act_->as<float>();          // [n, inter]
  float* cos_sin = cos_sin_->as<float>();  // [n, hd]

  b.Embedding(batch.token_ids, n, embed_, hidden, x);
  b.RotaryTable(batch.positions, n, inv_freq_->as<float>(), hd, cos_sin);
  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& layer = layers_[static_cast<size_t>(l)];
    if (l == 0) {
      b.RmsNorm(x, layer.input_norm, n, hidden, eps, h);
    } else {
      b.AddRmsNorm(x, proj, layer.input_norm, n, hidden, eps, h);  // x += previous MLP output
    }
    b.MatMul(h, n, layer.qkv, qkv);
    if (layer.qkv_bias != nullptr) b.AddBias(qkv, n, ld_qkv, ld_qkv, layer.qkv_bias);
    if (layer.q_norm != nullptr) {
      b.HeadRmsNorm(q, n, ld_qkv, nq, hd, layer.q_norm, eps);
      b.HeadRmsNorm(k, n, ld_qkv, nkv, hd, layer.k_norm, eps);
    }
    b.Rotary(q, n, ld_qkv, nq, hd, cos_sin);
    b.Rotary(k, n, ld_qkv, nkv, hd, cos_sin);
    b.WriteKv(k, v, ld_qkv, batch, cache, l);
    if (on_layer_done != nullptr) {
      TANDEM_RETURN_IF_ERROR(b.Synchronize());  // the layer's K/V are in memory before anyone reads them
      (*on_layer_done)(l);
    }
    b.PagedAttention(q, ld_qkv, batch, cache, l, nq, scale, attn);
    b.MatMul(attn, n, layer.o, proj);
    if (collective_ != nullptr) {  // partial sums over this rank's heads
      TANDEM_RETURN_IF_ERROR(collective_->AllReduceSum(proj, static_cast<size_t>(n) * hidden, DType::kF32, nullptr));
    }
    b.AddRmsNorm(x, proj, layer.post_norm, n, hidden, eps, h);  // x += attention output
    b.MatMul(h, n, layer.gate_up, gate_up);
    b.SiluMul(gate_up, n, c.intermediate_size, act);
    b.MatMul(act, n, layer.down, proj);
    if (collective_ != nullptr) {  // partial sums over this rank's intermediate columns
      TANDEM_RETURN_IF_ERROR(collective_->AllReduceSum(proj, static_cast<size_t>(n) * hidden, DType::kF32, nullptr));
    }
  }
  if (!computes_logits()) {
    TANDEM_RETURN_IF_ERROR(b.Synchronize());
    return std::vector<float>();
  }
  std::vector<float> logits(static_cast<size_t>(m) * c.vocab_size);
  if (m == 0) return logits;
  float* hidden_rows = logit_hidden_->as<float>();  // [m, hidden]
  float* mlp_rows = h;                              // [m, hidden] (reuses normed_, m <= n)
  float* normed_rows = logit_normed_->as<float>();  // [m, hidden]
  b.GatherRows(x, hidden, batch.logits_token_index, m, hidden_rows);
  b.GatherRows(proj, hidden, batch.logits_token_index, m, mlp_rows);
  b.AddRmsNorm(hidden_rows, mlp_rows, final_norm_, m, hidden, eps, normed_rows);
  b.MatMul(normed_rows, m, lm_head_, logits_->as<float>());
  TANDEM_RETURN_IF_ERROR(b.Synchronize());
  TANDEM_RETURN_IF_ERROR(b.CopyToHost(logits.data(), logits_->data(), logits.size() * sizeof(float)));
  return logits;
}

}  // namespace tandem::backend
