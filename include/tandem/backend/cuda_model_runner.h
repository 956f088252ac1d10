// The Llama-family forward pass on an NVIDIA GPU (Hopper first): bf16 weights and activations, fp32
// accumulation, cuBLASLt GEMMs (q/k/v and gate/up fused), tandem's own small kernels (kernels/),
// FlashInfer paged attention where it has the geometry and a plain reference kernel elsewhere, and a
// bf16 paged KV cache in the same [blocks, 2, kv_heads, block_size, head_dim] layout as the CPU's.
//
// A step is planned on the host first (backend/batch.h's BatchPlan packed into pinned staging with
// fixed capacities, the attention plan), then launched on the runner's stream with no host work
// between kernels. Decode-only steps are captured as CUDA graphs, one per padded batch size, and
// replayed; prefill and mixed steps run eagerly. Only the rows of logits the plan asks for come back
// to the host, fp32.
//
// Threading: one thread drives a runner (the engine thread). Built only with CUDA (TANDEM_HAS_CUDA).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/batch.h"
#include "tandem/backend/collective.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/backend/model_runner.h"
#include "tandem/model/dummy_weights.h"
#include "tandem/model/model_config.h"
#include "tandem/model/nvfp4.h"
#include "tandem/model/weights.h"

namespace tandem::backend {

struct CudaModelRunnerOptions {
  int device = 0;                 // CUDA ordinal
  int max_num_tokens = 8192;      // most new tokens in one step (max_num_batched_tokens)
  int max_num_seqs = 256;         // most sequences in one step
  int max_model_len = 8192;       // longest sequence (sizes the block tables)
  int block_size = 16;            // tokens per KV block
  int num_blocks = 0;             // KV blocks per layer; 0: as many as gpu_memory_utilization allows
  // Share of the device's memory this runner may take in all (weights, workspaces, KV pool), counted
  // from what it allocates itself, so pools sharing a GPU each take their own fraction.
  double gpu_memory_utilization = 0.90;
  bool cuda_graphs = true;        // replay decode steps from CUDA graphs
  bool tune_gemms = true;         // time cuBLASLt's candidates per decode-graph shape before capture
  // engine.batch_invariant: a sequence's logits bitwise the same in any batch (one GEMM algorithm per
  // shape, the prefill attention kernel for every step, NVFP4 linears dequantized for every step);
  // turns cuda_graphs and tune_gemms off. Not with tensor parallelism (InvalidArgument).
  bool batch_invariant = false;
  // Tensor parallelism: this runner is rank collective->rank() of collective->size() on `device` (not
  // owned; an NcclCollectiveGroup's rank). It keeps its shard of the weights (model/tensor_parallel.h)
  // and a KV pool of its KV heads, all-reduces the bf16 outputs of o_proj and down_proj on its stream
  // (inside the decode graphs too), and only rank 0 computes logits. Given at size 1, the all-reduces
  // are still issued (a copy). Null: the whole model, no collectives. NVFP4 linears split with their
  // per-16 scales (model::ShardNvfp4).
  Collective* collective = nullptr;
};

// What one step returns, in pinned host memory valid until the next step.
struct CudaStepOutput {
  std::span<const float> logits;    // [num_logits, vocab] fp32; rows whose plan.logits_full is 0 are stale
  // [num_logits] each row's token, sampled on the GPU as plan.logits_sampling says (the plain argmax,
  // lowest id on ties, for rows whose plan.logits_full is 1: the host samples those).
  std::span<const int32_t> tokens;
};

class CudaModelRunner {
 public:
  // Uploads `weights` (host fp32, converted to bf16 on the device tensor by tensor), allocates the
  // step workspaces for the options' capacities, then the KV pool. `nvfp4` (LoadedModel::nvfp4, may
  // be null): a linear whose parts are all there (q/k/v, o, gate/up, down of a layer) stays NVFP4 on
  // the device, each part with its own scale2, and runs through the NVFP4 GEMM for steps of up to
  // kNvfp4GemmMaxRows rows (decode), dequantized into a bf16 scratch for cuBLASLt above that.
  // `dummy` (LoadedModel::dummy, may be null): tensors loaded without host data (load_format dummy,
  // LoadOptions::dummy_on_device) are generated on the device, the same values the host generator
  // gives; not with tensor parallelism (each rank's shard is cut from host data).
  static absl::StatusOr<std::unique_ptr<CudaModelRunner>> Create(
      const model::ModelConfig& config, const model::ModelWeights& weights, const CudaModelRunnerOptions& options,
      const std::map<std::string, model::Nvfp4Tensor>* nvfp4 = nullptr,
      const std::map<std::string, model::DummyFill>* dummy = nullptr);
  // Most rows for which a step runs an NVFP4 linear through the NVFP4 GEMV (kernels/gemm/NOTES.md, v2:
  // faster than dequantize + cuBLASLt up to m = 64 on every Llama-3-8B shape, slower from m = 128).
  static constexpr int kNvfp4GemmMaxRows = 64;
  ~CudaModelRunner();
  CudaModelRunner(const CudaModelRunner&) = delete;
  CudaModelRunner& operator=(const CudaModelRunner&) = delete;

  const model::ModelConfig& config() const;
  const CudaModelRunnerOptions& options() const;
  KvPool& kv_pool();
  // False on tensor-parallel ranks other than 0: their steps return no logits and no tokens.
  bool computes_logits() const;
  // Whether Forward samples the rows not marked logits_full on the GPU (CudaStepOutput::tokens); false
  // on non-leader ranks and for vocabularies over kernels::kSampleMaxVocab, whose rows all go to the host.
  bool samples_rows() const;
  // Bytes of weights on the device.
  size_t weight_bytes() const;
  // Linear weight matrices (after fusing q/k/v and gate/up) kept in NVFP4 on the device.
  int num_nvfp4_matrices() const;

  // PlanBatch against the runner's KV pool and capacities (more tokens or sequences than the
  // options allow is InvalidArgument).
  absl::StatusOr<BatchPlan> Plan(const std::vector<SequenceStep>& steps) const;

  // Runs one step: writes every new token's K/V and returns, for the logits rows the plan asked for
  // (plan order), each row's token sampled on the GPU and, where plan.logits_full says so, the whole fp32 row.
  // `on_layer_done` (optional) is called for each layer in order once that layer's K/V writes have
  // completed on the device; the launches of later layers are already queued, so the GPU never
  // waits for the host.
  absl::StatusOr<CudaStepOutput> Forward(const BatchPlan& plan, const RunnerLayerCallback* on_layer_done = nullptr);

  // Runs the same step as Forward without CUDA graphs (a decode step padded to its graph's batch
  // size, launched eagerly; tests compare the two bitwise).
  absl::StatusOr<CudaStepOutput> ForwardEager(const BatchPlan& plan);

 private:
  struct Impl;
  explicit CudaModelRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::backend
