// A plain paged attention kernel for any head_dim up to 256: one warp per (token, query head), keys
// visited one by one in position order with an fp32 online softmax. It is the fallback where the
// FlashInfer kernels lack the geometry (the golden test models have head_dim 16) and the simplest
// device reference for them; it is not fast (no tensor cores, one key per warp step).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "rope/rope_kv.cuh"

namespace tandem::kernels {

// The step's token-to-sequence map, device pointers (backend/batch.h's BatchPlan uploaded as is).
struct PagedBatchDevice {
  const int32_t* positions = nullptr;     // [num_tokens] absolute position of each query token
  const int32_t* token_seq = nullptr;     // [num_tokens] sequence of each token
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
};

// Causal GQA attention: query token t (of sequence s at position p), head h, attends over positions
// [0, p] of s read from `kv_layer` (kv head h / (num_q_heads / num_kv_heads)).
// q: [n, num_q_heads * head_dim] rows of stride ld_q; out: [n, num_q_heads * head_dim] bf16.
cudaError_t ReferencePagedAttention(const __nv_bfloat16* q, int ld_q, int n, int num_q_heads,
                                    const PagedBatchDevice& batch, const KvPoolLayout& layout,
                                    const __nv_bfloat16* kv_layer, float scale, __nv_bfloat16* out,
                                    cudaStream_t stream);

}  // namespace tandem::kernels
