// Internal to kernels/attention: FlashInfer's Hopper ("FA3") paged prefill (plan + run) for one
// head_dim, included by prefill_sm90_hd<D>.cu only. bf16, int32 indices, causal mask, no LSE, no
// sliding window, no logits soft cap. Only the per-head schedule (SAME_SCHEDULE_FOR_ALL_HEADS=false)
// is compiled: PrefillSM90Plan switches to one schedule for all heads only past 4096 work tiles per
// head, which PagedAttention::Create rules out, and each variant costs a full FA3 compile.
#pragma once

#include <exception>
#include <flashinfer/attention/hopper/default_params.cuh>
#include <flashinfer/attention/hopper/prefill_sm90.cuh>
#include <flashinfer/attention/hopper/variants.cuh>
#include <flashinfer/attention/mask.cuh>
#include <flashinfer/attention/scheduler.cuh>
#include <flashinfer/cutlass_utils.cuh>
#include <string>
#include <vector>

#include "attention/flashinfer_units.h"
#include "common/cuda_check.cuh"

namespace tandem::kernels::attention_units {
namespace sm90_detail {

using DType = flashinfer::cutlass_dtype_t<nv_bfloat16>;  // cutlass::bfloat16_t, same bits
using Params = flashinfer::BatchPrefillPagedParams<DType, DType, DType, int32_t>;
using Variant = flashinfer::DefaultAttention</*use_logits_soft_cap=*/false>;

}  // namespace sm90_detail

template <int kHeadDim>
std::string PrefillSm90Plan(const Workspaces& ws, const StepCsr& csr, int num_qo_heads, int num_kv_heads,
                            int block_size, cudaStream_t stream, std::vector<int64_t>* plan_info) {
  try {
    flashinfer::PrefillPlanSM90Info info;
    // kv_indptr in blocks (offsets into kv_indices), kv_len in tokens, as FlashInfer's paged wrapper.
    const cudaError_t err = flashinfer::PrefillSM90Plan<int32_t>(
        ws.float_ws, ws.float_bytes, ws.int_ws, ws.int_ws_pinned, ws.int_bytes, info,
        const_cast<int32_t*>(csr.qo_indptr_h), const_cast<int32_t*>(csr.kv_indptr_h),
        const_cast<int32_t*>(csr.kv_len_h), static_cast<uint32_t>(csr.num_tokens),
        static_cast<uint32_t>(csr.num_seqs), static_cast<uint32_t>(num_qo_heads),
        static_cast<uint32_t>(num_kv_heads), kHeadDim, kHeadDim, static_cast<uint32_t>(block_size),
        /*causal=*/true, /*enable_cuda_graph=*/false, /*sizeof_dtype_o=*/2, stream);
    if (err != cudaSuccess) return CudaErrorText(err, "flashinfer::PrefillSM90Plan");
    if (info.same_schedule_for_all_heads) {
      return "flashinfer::PrefillSM90Plan chose one schedule for all heads (more than 4096 query tiles per "
             "head), a variant not compiled; lower max_tokens or max_seqs";
    }
    *plan_info = info.ToVector();
    return "";
  } catch (const std::exception& e) {
    return std::string("flashinfer::PrefillSM90Plan: ") + e.what();
  }
}

template <int kHeadDim>
std::string PrefillSm90Run(const Workspaces& ws, const std::vector<int64_t>& plan_info, const StepCsr& csr,
                           const RunArgs& args, cudaStream_t stream) {
  using namespace sm90_detail;
  try {
    flashinfer::PrefillPlanSM90Info info;
    info.FromVector(plan_info);
    if (info.same_schedule_for_all_heads) return "PrefillSm90Run: plan needs the same-schedule variant";
    // Pool [blocks, 2, H, B, D]: K and V share every stride; V starts H*B*D after K.
    const int64_t head_stride = int64_t{args.block_size} * kHeadDim;
    const int64_t kv_half = int64_t{args.num_kv_heads} * head_stride;
    DType* k = const_cast<DType*>(static_cast<const DType*>(args.kv));

    Params params{};
    params.q_ptr = const_cast<DType*>(static_cast<const DType*>(args.q));
    params.k_ptr = k;
    params.v_ptr = k + kv_half;
    params.o_ptr = static_cast<DType*>(args.out);
    params.lse_ptr = nullptr;
    params.q_stride_n = args.ld_q;
    params.q_stride_h = kHeadDim;
    params.o_stride_n = int64_t{args.num_qo_heads} * kHeadDim;
    params.o_stride_h = kHeadDim;
    params.k_stride_n = kHeadDim;  // token within a block
    params.k_stride_h = head_stride;
    params.v_stride_n = kHeadDim;
    params.v_stride_h = head_stride;
    params.k_page_stride = 2 * kv_half;  // block to block
    params.v_page_stride = 2 * kv_half;
    params.nnz_qo = csr.num_tokens;
    params.num_qo_heads = args.num_qo_heads;
    params.num_kv_heads = args.num_kv_heads;
    params.group_size = args.num_qo_heads / args.num_kv_heads;
    params.page_size = args.block_size;
    params.window_left = -1;
    params.causal = true;
    params.additional_params.logits_soft_cap = 0.f;
    params.additional_params.sm_scale = args.sm_scale;
    params.additional_params.maybe_prefix_len_ptr = nullptr;
    params.additional_params.maybe_token_pos_in_items_ptr = nullptr;
    params.additional_params.token_pos_in_items_len = 0;
    params.additional_params.maybe_max_item_len_ptr = nullptr;
    params.kv_indices = csr.kv_indices_d;
    params.qo_tile_indices =
        flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.qo_tile_indices_offset);
    params.qo_indptr = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.qo_indptr_offset);
    params.kv_indptr = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.kv_indptr_offset);
    params.qo_lens = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.qo_len_offset);
    params.kv_lens = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.kv_len_offset);
    params.head_indices = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.head_indices_offset);
    params.work_indptr = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.work_indptr_offset);
    params.batch_indices = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.batch_indices_offset);

    const cudaError_t err = flashinfer::BatchPrefillWithPagedKVCacheDispatched<
        kHeadDim, kHeadDim, flashinfer::MaskMode::kCausal, /*LEFT_SLIDING_WINDOW=*/false,
        /*SAME_SCHEDULE_FOR_ALL_HEADS=*/false, Variant, Params>(params, /*enable_pdl=*/false, stream);
    return CudaErrorText(err, "flashinfer::BatchPrefillWithPagedKVCacheDispatched (sm90)");
  } catch (const std::exception& e) {
    return std::string("flashinfer::BatchPrefillWithPagedKVCacheDispatched (sm90): ") + e.what();
  }
}

}  // namespace tandem::kernels::attention_units

// Explicit instantiation of both calls for one head_dim, inside namespace
// tandem::kernels::attention_units (the whole content of prefill_sm90_hd<D>.cu).
#define TANDEM_INSTANTIATE_PREFILL_SM90(HEAD_DIM)                                                  \
  template std::string PrefillSm90Plan<HEAD_DIM>(const Workspaces&, const StepCsr&, int, int, int, \
                                                 cudaStream_t, std::vector<int64_t>*);             \
  template std::string PrefillSm90Run<HEAD_DIM>(const Workspaces&, const std::vector<int64_t>&,    \
                                                const StepCsr&, const RunArgs&, cudaStream_t)
