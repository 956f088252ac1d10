// Internal to kernels/attention: FlashInfer's batch decode (plan + run) for one head_dim, included by
// decode_hd<D>.cu only. bf16 q/kv/out, int32 indices, no positional encoding in the kernel (rotary is
// applied before K is written), no mask (a decode row sees its whole sequence), no LSE output.
#pragma once

#include <exception>
#include <flashinfer/attention/decode.cuh>
#include <flashinfer/attention/default_decode_params.cuh>
#include <flashinfer/attention/scheduler.cuh>
#include <flashinfer/attention/variants.cuh>
#include <string>
#include <vector>

#include "attention/flashinfer_units.h"
#include "common/cuda_check.cuh"
#include "common/pdl.cuh"

namespace tandem::kernels::attention_units {
namespace decode_detail {

using DType = nv_bfloat16;
using Params = flashinfer::BatchDecodeParams<DType, DType, DType, int32_t>;
using Variant = flashinfer::DefaultAttention</*use_custom_mask=*/false, /*use_sliding_window=*/false,
                                             /*use_logits_soft_cap=*/false, /*use_alibi=*/false>;
constexpr auto kPosEncoding = flashinfer::PosEncodingMode::kNone;

}  // namespace decode_detail

template <int kHeadDim>
std::string DecodePlan(const Workspaces& ws, const StepCsr& csr, int num_qo_heads, int num_kv_heads,
                       int block_size, bool for_graph, cudaStream_t stream, std::vector<int64_t>* plan_info) {
  using namespace decode_detail;
  try {
    flashinfer::DecodePlanInfo info;
    cudaError_t err = cudaSuccess;
    // Throws flashinfer::Error for a group size it has no kernel for (Create checked it already).
    DISPATCH_GQA_GROUP_SIZE(num_qo_heads / num_kv_heads, GROUP_SIZE, {
      auto work_estimation =
          flashinfer::BatchDecodeWithPagedKVCacheWorkEstimationDispatched<GROUP_SIZE, kHeadDim, kPosEncoding,
                                                                          Variant, Params>;
      err = flashinfer::DecodePlan<kHeadDim, kPosEncoding, Variant, Params>(
          ws.float_ws, ws.float_bytes, ws.int_ws, ws.int_ws_pinned, ws.int_bytes, info,
          const_cast<int32_t*>(csr.kv_indptr_h), static_cast<uint32_t>(csr.num_seqs),
          static_cast<uint32_t>(num_qo_heads), static_cast<uint32_t>(block_size), for_graph, stream,
          work_estimation);
    });
    if (err != cudaSuccess) return CudaErrorText(err, "flashinfer::DecodePlan");
    *plan_info = info.ToVector();
    return "";
  } catch (const std::exception& e) {
    return std::string("flashinfer::DecodePlan: ") + e.what();
  }
}

template <int kHeadDim>
std::string DecodeRun(const Workspaces& ws, const std::vector<int64_t>& plan_info, const StepCsr& csr,
                      const RunArgs& args, cudaStream_t stream) {
  using namespace decode_detail;
  try {
    flashinfer::DecodePlanInfo info;
    info.FromVector(plan_info);
    // Pool [blocks, 2, H, B, D]: K and V of a block share every stride; V starts H*B*D after K.
    const int64_t head_stride = int64_t{args.block_size} * kHeadDim;
    const int64_t kv_half = int64_t{args.num_kv_heads} * head_stride;
    const int64_t strides[4] = {2 * kv_half, head_stride, kHeadDim, 1};  // [page, head, token, dim]
    DType* k = const_cast<DType*>(static_cast<const DType*>(args.kv));
    flashinfer::paged_kv_t<DType, int32_t> paged_kv(
        static_cast<uint32_t>(args.num_kv_heads), static_cast<uint32_t>(args.block_size), kHeadDim,
        static_cast<uint32_t>(csr.num_seqs), flashinfer::QKVLayout::kHND, k, k + kv_half, strides, strides,
        csr.kv_indices_d, csr.kv_indptr_d, csr.kv_last_page_len_d);

    Params params(const_cast<DType*>(static_cast<const DType*>(args.q)), /*q_rope_offset=*/nullptr, paged_kv,
                  static_cast<DType*>(args.out), /*lse=*/nullptr, /*maybe_alibi_slopes=*/nullptr,
                  static_cast<uint32_t>(args.num_qo_heads), /*q_stride_n=*/args.ld_q, /*q_stride_h=*/kHeadDim,
                  /*window_left=*/-1, /*logits_soft_cap=*/0.f, args.sm_scale, /*rope_scale=*/1.f,
                  /*rope_theta=*/1e4f);
    params.request_indices =
        flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.request_indices_offset);
    params.kv_tile_indices =
        flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.kv_tile_indices_offset);
    params.o_indptr = flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.o_indptr_offset);
    params.kv_chunk_size_ptr =
        flashinfer::GetPtrFromBaseOffset<int32_t>(ws.int_ws, info.kv_chunk_size_ptr_offset);
    params.padded_batch_size = static_cast<uint32_t>(info.padded_batch_size);
    DType* tmp_v = nullptr;
    float* tmp_s = nullptr;
    if (info.split_kv) {
      tmp_v = flashinfer::GetPtrFromBaseOffset<DType>(ws.float_ws, info.v_offset);
      tmp_s = flashinfer::GetPtrFromBaseOffset<float>(ws.float_ws, info.s_offset);
      if (info.enable_cuda_graph) {
        params.block_valid_mask =
            flashinfer::GetPtrFromBaseOffset<bool>(ws.int_ws, info.block_valid_mask_offset);
      }
    }
    const cudaError_t err =
        flashinfer::BatchDecodeWithPagedKVCacheDispatched<kHeadDim, kPosEncoding, Variant>(
            params, tmp_v, tmp_s, /*enable_pdl=*/PdlEnabled(), stream);
    return CudaErrorText(err, "flashinfer::BatchDecodeWithPagedKVCacheDispatched");
  } catch (const std::exception& e) {
    return std::string("flashinfer::BatchDecodeWithPagedKVCacheDispatched: ") + e.what();
  }
}

}  // namespace tandem::kernels::attention_units

// Explicit instantiation of both calls for one head_dim, inside namespace
// tandem::kernels::attention_units (the whole content of decode_hd<D>.cu).
#define TANDEM_INSTANTIATE_DECODE(HEAD_DIM)                                                                \
  template std::string DecodePlan<HEAD_DIM>(const Workspaces&, const StepCsr&, int, int, int, bool,        \
                                            cudaStream_t, std::vector<int64_t>*);                          \
  template std::string DecodeRun<HEAD_DIM>(const Workspaces&, const std::vector<int64_t>&, const StepCsr&, \
                                           const RunArgs&, cudaStream_t)
