// Causal paged attention over tandem's KV pools, bf16: tandem's tensor-core decode kernel
// (decode_mma.cuh; FlashInfer's batch decode on request) when every sequence of the step has one
// query row, else FlashInfer's Hopper (sm90, "FA3") paged prefill kernel; all read the pools in
// place. Plain C++ interface (this header is included from .cc files compiled by g++): no FlashInfer
// type appears here.
//
// One PagedAttention per model: Plan once per step (host work: copies the step's block tables to
// the device and runs FlashInfer's scheduler), then Run once per layer with that layer's pool.
//
// Layouts (bf16 everywhere, "HND" pools as in DESIGN.md "KV cache layout"):
//   q    [num_tokens, num_qo_heads, head_dim], row stride ld_q elements (q may sit inside a fused
//        qkv row); the query rows of sequence s are rows [qo_indptr[s], qo_indptr[s+1]).
//   kv   one layer's pool [num_blocks, 2 (K, V), num_kv_heads, block_size, head_dim]: K of block b
//        at kv + b*2*H*B*D, V at kv + b*2*H*B*D + H*B*D (H = num_kv_heads, B = block_size, D = head_dim).
//   out  [num_tokens, num_qo_heads * head_dim], contiguous.
// Query row i of sequence s sits at position kv_len(s) - qo_len(s) + i and attends to positions
// [0, that] of s (causal, bottom-right aligned); query head h reads kv head h / (num_qo_heads /
// num_kv_heads). kv_len(s) counts every token of s in the cache, this step's new ones included (their
// K and V must be written before Run).
//
// Built for: head_dim 64 and 128; group size num_qo_heads / num_kv_heads in {1, 2, 3, 4, 6, 8, 16}
// (FlashInfer's DISPATCH_GQA_GROUP_SIZE); any block_size from 1 to 256 (16 is the engine's).
// Create says which value is outside these.
//
// Errors: every call returns "" on success, else a message naming the call, what was expected and
// what was found (CUDA errors as CudaErrorText in common/cuda_check.cuh). Nothing throws:
// FlashInfer's exceptions are caught at this boundary.
//
// Threading and streams: one host thread at a time. Plan and Run must go on the same stream (or the
// caller orders them): Plan's copies overwrite device arrays that the previous step's Runs read.
// Plan waits (host) for its previous Plan's copies before reusing its pinned staging memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

namespace tandem::kernels {

struct AttentionGeometry {
  int num_qo_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;    // 64 or 128
  int block_size = 0;  // tokens per KV block, 1..256
};

// Which FlashInfer kernel the current plan runs.
enum class AttentionKernel {
  kNone,         // not planned yet
  kDecode,       // FlashInfer's BatchDecodeWithPagedKVCache (set_flashinfer_decode), split-KV when it helps
  kDecodeMma,    // tandem's tensor-core GQA decode (decode_mma.cuh), split-KV when the batch is small
  kPrefillSm90,  // Hopper paged prefill (FA3), causal
};

class PagedAttention {
 public:
  // Allocates the device and pinned workspaces for steps of at most `max_tokens` query rows,
  // `max_seqs` sequences and `max_blocks` block ids in total (sum over the sequences' block tables).
  // Needs a current CUDA device of compute capability 9.0 (the prefill kernel is sm90-only).
  // Errors on unsupported geometry (naming the value and what is supported) or limits (max_tokens,
  // max_seqs, max_blocks >= 1; ceil(max_tokens / T) + max_seqs - 1 <= 4096 with the sm90 query tile
  // T = 128, or 192 for head_dim 64, so that FlashInfer's sm90 scheduler keeps one schedule per head,
  // the only variant compiled).
  [[nodiscard]] static std::string Create(const AttentionGeometry& geometry, int max_tokens, int max_seqs,
                                          int max_blocks, std::unique_ptr<PagedAttention>* out);

  ~PagedAttention();
  PagedAttention(const PagedAttention&) = delete;
  PagedAttention& operator=(const PagedAttention&) = delete;

  // Plans one step from a host CSR description (pageable host memory, read before Plan returns):
  //   qo_indptr[num_seqs + 1]        query rows of each sequence (qo_indptr[0] = 0, each >= 1 row)
  //   kv_indptr[num_seqs + 1]        into kv_indices (kv_indptr[0] = 0, each sequence >= 1 block)
  //   kv_indices[kv_indptr[num_seqs]] block ids of each sequence in position order, in [0, 2^31)
  //   kv_last_page_len[num_seqs]     tokens in each sequence's last block, 1..block_size
  // so kv_len(s) = (kv_indptr[s+1] - kv_indptr[s] - 1) * block_size + kv_last_page_len[s], and each
  // qo_len(s) <= kv_len(s). Validates all of it, copies the arrays to the device on `stream` and runs
  // FlashInfer's plan (which copies its schedule to the device on `stream` too).
  // Picks the decode kernel when every sequence has one query row, else the sm90 prefill kernel.
  //
  // for_graph (decode steps only; an error on a prefill step): the decode grid is fixed by num_seqs
  // alone and Run reads the step only through device arrays at fixed addresses, so a Run captured
  // in a CUDA graph after a for_graph Plan of num_seqs sequences may be replayed after any later
  // for_graph Plan of the same num_seqs (same q, kv, out pointers, ld_q and sm_scale, which the graph
  // bakes in). Plan itself is never captured.
  [[nodiscard]] std::string Plan(const int32_t* qo_indptr, const int32_t* kv_indptr,
                                 const int32_t* kv_indices, const int32_t* kv_last_page_len, int num_seqs,
                                 bool for_graph, cudaStream_t stream);

  // Runs the planned step for one layer. Shapes as at the top of this file; num_tokens is the plan's
  // qo_indptr[num_seqs]. ld_q >= num_qo_heads * head_dim and a multiple of 8 (16-byte rows: the
  // kernels load q in 16-byte vectors and the sm90 kernel through TMA); q, kv and out 16-byte
  // aligned. Only launches (no host synchronisation, no allocation), so it can be captured.
  [[nodiscard]] std::string Run(const __nv_bfloat16* q, int ld_q, const __nv_bfloat16* kv, __nv_bfloat16* out,
                                float sm_scale, cudaStream_t stream);

  // Every later Plan picks the sm90 prefill kernel, decode steps too (not for_graph): it splits no
  // sequence's KV and a query row's result does not depend on the other rows of the step, so a
  // sequence's attention is bitwise the same in any batch (engine.batch_invariant).
  void set_prefill_only(bool prefill_only);

  // Decode steps run FlashInfer's CUDA-core decode kernel instead of tandem's tensor-core one (the
  // default, unless TANDEM_FLASHINFER_DECODE=1 is set when Create runs); for side-by-side benchmarks.
  void set_flashinfer_decode(bool flashinfer_decode);

  AttentionKernel planned_kernel() const;
  int planned_num_seqs() const;
  int planned_num_tokens() const;
  const AttentionGeometry& geometry() const;

  // Bytes of device and pinned host memory this object holds (workspaces and step arrays).
  size_t device_bytes() const;
  size_t pinned_bytes() const;

  struct State;  // defined in paged_attention.cu

 private:
  explicit PagedAttention(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// "decode", "decode_mma", "prefill_sm90" or "none".
const char* AttentionKernelName(AttentionKernel kernel);

}  // namespace tandem::kernels
