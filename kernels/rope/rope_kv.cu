#include "rope/rope_kv.cuh"

namespace tandem::kernels {
namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ float RoundBf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// One block per token: every (head, pair) of q and k is rotated, then k and v go to the cache.
__global__ void __launch_bounds__(kThreads)
    RopeKvKernel(__nv_bfloat16* __restrict__ qkv, int ld, int nq, int nkv, int hd, const int32_t* __restrict__ positions,
                 const float* __restrict__ inv_freq, const int64_t* __restrict__ slot_mapping, int block_size,
                 __nv_bfloat16* __restrict__ kv) {
  const int64_t t = blockIdx.x;
  const int half = hd / 2;
  __nv_bfloat16* row = qkv + t * ld;
  const float pos = static_cast<float>(positions[t]);
  const int64_t slot = slot_mapping[t];
  const int64_t block = slot >= 0 ? slot / block_size : 0;
  const int offset = slot >= 0 ? static_cast<int>(slot % block_size) : 0;
  const int64_t head_stride = static_cast<int64_t>(block_size) * hd;  // one head of one block
  __nv_bfloat16* k_base = kv + block * 2 * nkv * head_stride + static_cast<int64_t>(offset) * hd;
  __nv_bfloat16* v_base = k_base + nkv * head_stride;

  const int rot_items = (nq + nkv) * half;
  for (int item = threadIdx.x; item < rot_items; item += kThreads) {
    const int head = item / half;
    const int i = item % half;
    __nv_bfloat16* x = row + head * hd;
    float s, c;
    sincosf(pos * inv_freq[i], &s, &c);
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
  if (slot < 0) return;
  const __nv_bfloat16* v_row = row + (nq + nkv) * hd;
  for (int item = threadIdx.x; item < nkv * hd; item += kThreads) {
    const int head = item / hd;
    const int d = item % hd;
    v_base[head * head_stride + d] = v_row[item];
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
  RopeKvKernel<<<n, kThreads, 0, stream>>>(qkv, ld, num_q_heads, layout.num_kv_heads, hd, positions, inv_freq,
                                            slot_mapping, layout.block_size, kv_layer);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
