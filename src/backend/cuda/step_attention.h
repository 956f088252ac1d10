// The attention of one step, planned once per step on the host and run once per layer. Two kinds:
// FlashInfer's paged kernels (head_dim 64 and 128, the production path) and tandem's reference kernel
// (any head_dim up to 256, e.g. the golden test models' 16). Both read the step's batch from device
// buffers at fixed addresses, so a decode step's Run can be captured in a CUDA graph and replayed
// after a new Plan.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention/reference_attention.cuh"
#include "tandem/backend/batch.h"

namespace tandem::backend::cuda {

struct AttentionSetup {
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
  int max_num_tokens = 0;
  int max_num_seqs = 0;
  int max_blocks_per_seq = 0;
  bool batch_invariant = false;  // one kernel for every step (FlashInfer: the sm90 prefill kernel)
  // The step's batch on the device, at fixed addresses (the reference kernel reads it).
  kernels::PagedBatchDevice batch;
};

class StepAttention {
 public:
  virtual ~StepAttention() = default;
  virtual const char* name() const = 0;
  // Plans `plan` (already validated against the capacities). graph_seqs > 0: a decode step about to
  // be captured or replayed as a graph of graph_seqs rows (>= plan.num_seqs); rows past the plan's
  // are padding (token 0 at position 0, no KV write) and attend over block 0, whatever it holds.
  virtual absl::Status Plan(const BatchPlan& plan, int graph_seqs, cudaStream_t stream) = 0;
  // q: [n, num_q_heads * head_dim] rows of stride ld_q; kv_layer: one layer's pool; out [n, nq * hd].
  virtual absl::Status Run(const __nv_bfloat16* q, int ld_q, int n, const __nv_bfloat16* kv_layer,
                           __nv_bfloat16* out, float scale, cudaStream_t stream) = 0;
};

// FlashInfer when it supports the geometry (head_dim 64 or 128, its GQA group sizes), else the
// reference kernel.
absl::StatusOr<std::unique_ptr<StepAttention>> CreateStepAttention(const AttentionSetup& setup);

// The reference kernel alone (tests compare the two).
std::unique_ptr<StepAttention> CreateReferenceAttention(const AttentionSetup& setup);

}  // namespace tandem::backend::cuda
