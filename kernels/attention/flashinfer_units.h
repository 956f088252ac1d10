// Internal to kernels/attention: the calls paged_attention.cu makes into the units that instantiate
// FlashInfer's templates (one unit per kernel family and head_dim, so that no unit compiles more than
// it must and units build in parallel). Plain types only; FlashInfer's plan info structs travel as
// their ToVector() form, as FlashInfer's own Python bindings pass them.
//
// Every function returns "" or an error message; FlashInfer's exceptions are caught inside.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::kernels::attention_units {

// FlashInfer's two workspaces: `float_ws` for split-KV partial outputs, `int_ws` for the schedule,
// which plan functions fill in `int_ws_pinned` (host, page-locked, same size) and copy to `int_ws`.
struct Workspaces {
  void* float_ws = nullptr;
  size_t float_bytes = 0;
  void* int_ws = nullptr;
  void* int_ws_pinned = nullptr;
  size_t int_bytes = 0;
};

// The step's CSR on the host (as given to Plan) and its device copy (what kernels read).
struct StepCsr {
  int num_seqs = 0;
  int num_tokens = 0;                     // qo_indptr[num_seqs]
  const int32_t* qo_indptr_h = nullptr;   // [num_seqs + 1]
  const int32_t* kv_indptr_h = nullptr;   // [num_seqs + 1], in blocks
  const int32_t* kv_len_h = nullptr;      // [num_seqs], in tokens
  int32_t* kv_indptr_d = nullptr;         // [num_seqs + 1]
  int32_t* kv_indices_d = nullptr;        // [kv_indptr[num_seqs]]
  int32_t* kv_last_page_len_d = nullptr;  // [num_seqs]
};

// Geometry and the per-layer pointers of one Run.
struct RunArgs {
  int num_qo_heads = 0;
  int num_kv_heads = 0;
  int block_size = 0;
  const void* q = nullptr;  // bf16 [num_tokens, num_qo_heads, head_dim], row stride ld_q
  int ld_q = 0;
  const void* kv = nullptr;  // bf16 pool [num_blocks, 2, num_kv_heads, block_size, head_dim]
  void* out = nullptr;       // bf16 [num_tokens, num_qo_heads * head_dim]
  float sm_scale = 0.f;
};

// ---- Batch decode (decode_hd<D>.cu). `plan_info` is DecodePlanInfo::ToVector().
template <int kHeadDim>
std::string DecodePlan(const Workspaces& ws, const StepCsr& csr, int num_qo_heads, int num_kv_heads,
                       int block_size, bool for_graph, cudaStream_t stream, std::vector<int64_t>* plan_info);
template <int kHeadDim>
std::string DecodeRun(const Workspaces& ws, const std::vector<int64_t>& plan_info, const StepCsr& csr,
                      const RunArgs& args, cudaStream_t stream);

// ---- Hopper paged prefill, causal (prefill_sm90_hd<D>.cu). `plan_info` is
// PrefillPlanSM90Info::ToVector().
template <int kHeadDim>
std::string PrefillSm90Plan(const Workspaces& ws, const StepCsr& csr, int num_qo_heads, int num_kv_heads,
                            int block_size, cudaStream_t stream, std::vector<int64_t>* plan_info);
template <int kHeadDim>
std::string PrefillSm90Run(const Workspaces& ws, const std::vector<int64_t>& plan_info, const StepCsr& csr,
                           const RunArgs& args, cudaStream_t stream);

// Query tile of the sm90 kernel for a head_dim (rows per work item; PrefillSM90Plan's cta_tile_q).
constexpr int Sm90CtaTileQ(int head_dim) { return head_dim == 64 ? 192 : 128; }

}  // namespace tandem::kernels::attention_units
