// Composes the backend ops into the forward pass of the Llama family (Llama, Mistral, Qwen2 with
// q/k/v bias, Qwen3 with per-head q/k RMSNorm) over the paged KV cache. One Forward() runs one planned
// step: any mix of prefill chunks and decode tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/backend.h"
#include "tandem/backend/batch.h"
#include "tandem/backend/collective.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/model/model_config.h"
#include "tandem/model/weights.h"

namespace tandem::backend {

struct ModelRunnerOptions {
  // The GGUF file `weights` were loaded from, if any. Its Q4_1 / Q8_0 matrices are then kept
  // block-quantized in backend memory (about 5x fewer bytes read per decode step) where the backend
  // supports the format and the blocks dequantize to exactly `weights` (checked row by row, so the
  // logits are bit-for-bit those of the fp32 path); every other matrix stays fp32.
  std::string gguf_path;
  // Tensor parallelism: this runner is rank collective->rank() of collective->size() (not owned;
  // null: the whole model). The runner keeps its shard of the weights (tensor_parallel.h), sums the
  // partial outputs of o_proj and down_proj over the ranks, and only rank 0 computes logits (the
  // other ranks' Forward returns none). GGUF block formats are not split: a rank keeps fp32.
  Collective* collective = nullptr;
};

// Called by Forward once per layer, in order, with the layer index: as soon as that layer's K/V of
// every new token of the step is in the KV cache, before the rest of the step runs (this layer's
// attention and MLP, the later layers). The K/V blocks of that layer are not written again by the step,
// so the callee may start copying them out (layer-wise KV streaming, issue 7). On a backend that runs
// asynchronously the writes have completed (Synchronize) when it is called.
using RunnerLayerCallback = std::function<void(int layer)>;

class ModelRunner {
 public:
  // Validates the weights against the config and copies them (this rank's shard of them) into backend
  // memory (q/k/v and gate/up fused into one matrix each). `weights` may be released afterwards.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(Backend* backend, const model::ModelConfig& config,
                                                             const model::ModelWeights& weights,
                                                             const ModelRunnerOptions& options = {});

  // How many weight matrices are stored in each format (after fusing), e.g. for logs and tests.
  int num_matrices(WeightFormat format) const;
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // The model's config with this rank's heads and intermediate size (the model's at tensor_parallel 1).
  const model::ModelConfig& config() const { return config_; }
  Backend& backend() { return *backend_; }

  // False on tensor-parallel ranks other than 0, whose Forward returns no logits.
  bool computes_logits() const { return collective_ == nullptr || collective_->rank() == 0; }

  // The KV cache shape this model (this rank's KV heads) needs for `num_blocks` blocks of `block_size`
  // tokens.
  KvCacheSpec MakeKvCacheSpec(int num_blocks, int block_size) const;

  // Plans a step against `cache` (PlanBatch with this model's vocabulary and position limit).
  absl::StatusOr<BatchPlan> Plan(const std::vector<SequenceStep>& steps, const KvPool& cache) const;

  // Runs one step: writes every new token's K/V into `cache` and returns the logits of the rows the
  // plan asked for, [plan.num_logits(), vocab_size] fp32 row-major, in plan order. `on_layer_done`
  // (optional, owned by the caller) is called after each layer's K/V writes; null costs nothing.
  absl::StatusOr<std::vector<float>> Forward(const BatchPlan& plan, KvPool& cache,
                                             const RunnerLayerCallback* on_layer_done = nullptr);

 private:
  struct Layer;
  ModelRunner(Backend* backend, const model::ModelConfig& config);
  absl::Status Upload(const model::ModelWeights& weights, const ModelRunnerOptions& options);
  absl::Status EnsureWorkspace(int num_tokens, int num_logits, const BatchPlan& plan);
  absl::StatusOr<BatchView> UploadPlan(const BatchPlan& plan);

  Backend* backend_;
  model::ModelConfig config_;
  Collective* collective_ = nullptr;  // tensor parallelism, or null
  std::vector<std::unique_ptr<Buffer>> storage_;  // every weight buffer
  std::vector<Layer> layers_;
  const float* embed_ = nullptr;  // [vocab, hidden]
  const float* final_norm_ = nullptr;
  Matrix lm_head_;
  std::vector<Matrix> all_matrices_;
  std::unique_ptr<Buffer> inv_freq_;  // [head_dim / 2]

  // Step workspace, grown on demand.
  int capacity_tokens_ = 0;
  int capacity_logits_ = 0;
  size_t capacity_meta_ = 0;
  std::unique_ptr<Buffer> residual_, normed_, qkv_, attn_, proj_, gate_up_, act_, cos_sin_, logit_hidden_,
      logit_normed_, logits_, meta_;
};

}  // namespace tandem::backend
