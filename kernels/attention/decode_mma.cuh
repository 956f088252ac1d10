// Internal to kernels/attention: tandem's own batch-decode attention (one query row per sequence) on
// tensor cores, for the GQA shapes of today's models. One CTA per (KV split, kv head, sequence) reads
// its KV tiles once through a cp.async pipeline and computes every query head of the GQA group at once
// with mma.sync m16n8k16 (the group's heads are the 16 rows of the A operand, zero-padded), so each K
// and V byte leaves HBM once and the arithmetic stays far below the tensor cores' rate. When one
// sequence's KV is split over several CTAs, the last of them to finish combines their partial outputs
// by their log-sum-exps (no second kernel). Same layouts and contract as paged_attention.cuh (causal
// decode: a row sees its whole sequence). kernels/attention/NOTES.md has the floor and the
// measurements.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels::attention_units {

// The group sizes (num_qo_heads / num_kv_heads) the kernel takes: the group's heads fill at most the
// 16 rows of one MMA tile.
inline constexpr int kDecodeMmaMaxGroup = 16;

struct DecodeMmaArgs {
  const __nv_bfloat16* q = nullptr;  // [num_seqs, num_qo_heads, head_dim], row stride ld_q
  int ld_q = 0;
  const __nv_bfloat16* kv = nullptr;  // one layer's pool [blocks, 2, num_kv_heads, block_size, head_dim]
  __nv_bfloat16* out = nullptr;       // [num_seqs, num_qo_heads * head_dim]
  const int32_t* kv_indptr = nullptr;  // device, as in PagedAttention::Plan
  const int32_t* kv_indices = nullptr;
  const int32_t* kv_last_page_len = nullptr;
  int num_seqs = 0;
  int num_qo_heads = 0;
  int num_kv_heads = 0;
  int block_size = 0;
  // KV splits per sequence (>= 1). With more than one, `partial` holds
  // num_seqs * num_splits * num_qo_heads * (head_dim + 1) floats (outputs, then log-sum-exps) and
  // `counters` num_seqs * num_kv_heads ints, zero before the launch and left zero after it (the
  // splits of a (sequence, kv head) count themselves there; the last one merges and resets it).
  int num_splits = 1;  // at most 16 (the merge's shared memory)
  float* partial = nullptr;
  int* counters = nullptr;
  float sm_scale = 0.f;
};

// Splits per sequence for a step of `num_seqs` sequences: enough CTAs for two per SM (what fits with
// the pipeline's shared memory), at most 16 and at most `max_tiles` (the longest sequence's 64-token
// tiles; pass INT32_MAX when the lengths are not known, as for a CUDA graph replayed with other
// lengths).
int DecodeMmaSplits(int num_seqs, int num_kv_heads, int num_sms, int max_tiles);

// Floats of `partial` a step needs (0 when num_splits == 1).
size_t DecodeMmaPartialFloats(int num_seqs, int num_splits, int num_qo_heads, int head_dim);

// Launches the step (and the merge when num_splits > 1) on `stream`; only launches, so it can be
// captured. head_dim 64 or 128, group size 1..16, any block_size.
template <int kHeadDim>
cudaError_t DecodeMma(const DecodeMmaArgs& args, cudaStream_t stream);

}  // namespace tandem::kernels::attention_units
