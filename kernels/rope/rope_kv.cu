#include "rope/rope_kv.cuh"

#include "common/pdl.cuh"

namespace tandem::kernels {
namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ float RoundBf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// grid (n tokens, item blocks): the items of a token are its (q or k head, rotation pair) pairs,
// then its v elements; each thread takes one. Spreading one token over many blocks matters at decode
// batch sizes (one block per token left a single SM doing a whole step's rotations: 17 us per layer
// at batch 1 on an H200; this layout: one item per thread).
__global__ void __launch_bounds__(kThreads)
    RopeKvKernel(__nv_bfloat16* __restrict__ qkv, int ld, int nq, int nkv, int hd, const int32_t* __restrict__ positions,
                 const float* __restrict__ inv_freq, const int64_t* __restrict__ slot_mapping, int block_size,
                 __nv_bfloat16* __restrict__ kv) {
  PdlTrigger();
  PdlWait();  // q/k/v come from the GEMM before
  const int64_t t = blockIdx.x;
  const int half = hd / 2;
  const int rot_items = (nq + nkv) * half;
  const int item = blockIdx.y * kThreads + threadIdx.x;
  if (item >= rot_items + nkv * hd) return;
  __nv_bfloat16* row = qkv + t * ld;
  const int64_t slot = slot_mapping[t];
  const int64_t block = slot >= 0 ? slot / block_size : 0;
  const int offset = slot >= 0 ? static_cast<int>(slot % block_size) : 0;
  const int64_t head_stride = static_cast<int64_t>(block_size) * hd;  // one head of one block
  __nv_bfloat16* k_base = kv + block * 2 * nkv * head_stride + static_cast<int64_t>(offset) * hd;
  if (item >= rot_items) {  // v element
    if (slot < 0) return;
    const int v_item = item - rot_items;
    k_base[(nkv + v_item / hd) * head_stride + v_item % hd] = row[(nq + nkv) * hd + v_item];
    return;
  }
  const int head = item / half;
  const int i = item % half;
  __nv_bfloat16* x = row + head * hd;
  float s, c;
  sincosf(static_cast<float>(positions[t]) * inv_freq[i], &s, &c);
  c = RoundBf16(c);
  s = RoundBf16(s);
  const float x0 = __bfloat162float(x[i]);
  const float x1 = __bfloat162float(x[i + half]);
  const __nv_bfloat16 y0 = __float2bfloat16_rn(RoundBf16(x0 * c) + RoundBf16(-x1 * s));
  const __nv_bfloat16 y1 = __float2bfloat16_rn(RoundBf16(x1 * c) + RoundBf16(x0 * s));
  x[i] = y0;
  x[i + half] = y1;
  if (head >= nq && slot >= 0) {
    __nv_bfloat16* k = k_base + (head - nq) * head_stride;
    k[i] = y0;
    k[i + half] = y1;
  }
}

}  // namespace

cudaError_t RopeAndWriteKv(__nv_bfloat16* qkv, int n, int ld, int num_q_heads, const int32_t* positions,
                           const float* inv_freq, const int64_t* slot_mapping, const KvPoolLayout& layout,
                           __nv_bfloat16* kv_layer, cudaStream_t stream) {
  const int hd = layout.head_dim;
  if (n < 0 || hd <= 0 || hd % 2 != 0 || hd > 512 || layout.num_kv_heads <= 0 || layout.block_size <= 0 ||
      num_q_heads <= 0 || ld < (num_q_heads + 2 * layout.num_kv_heads) * hd) {
    return cudaErrorInvalidValue;
  }
  if (n == 0) return cudaSuccess;
  const int items = (num_q_heads + layout.num_kv_heads) * (hd / 2) + layout.num_kv_heads * hd;
  if ((items + kThreads - 1) / kThreads > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>((items + kThreads - 1) / kThreads));
  return LaunchPdl(RopeKvKernel, grid, dim3(kThreads), 0, stream, qkv, ld, num_q_heads, layout.num_kv_heads, hd,
                   positions, inv_freq, slot_mapping, layout.block_size, kv_layer);
}

}  // namespace tandem::kernels
