#include "attention/reference_attention.cuh"

namespace tandem::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // head_dim <= 256

__global__ void __launch_bounds__(kWarps * 32)
    ReferenceAttentionKernel(const __nv_bfloat16* __restrict__ q, int ld_q, int n, int nq, int nkv, int hd,
                             int block_size, PagedBatchDevice batch, const __nv_bfloat16* __restrict__ kv,
                             float scale, __nv_bfloat16* __restrict__ out) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (item >= static_cast<int64_t>(n) * nq) return;
  const int lane = threadIdx.x % 32;
  const int t = static_cast<int>(item / nq);
  const int h = static_cast<int>(item % nq);
  const int kvh = h / (nq / nkv);
  const int pos = batch.positions[t];
  const int32_t* table = batch.block_tables + static_cast<int64_t>(batch.token_seq[t]) * batch.max_blocks_per_seq;
  const __nv_bfloat16* q_row = q + static_cast<int64_t>(t) * ld_q + h * hd;
  float qv[kMaxPerLane];
  float acc[kMaxPerLane];
#pragma unroll
  for (int j = 0; j < kMaxPerLane; ++j) {
    const int d = lane + 32 * j;
    qv[j] = d < hd ? __bfloat162float(q_row[d]) : 0.f;
    acc[j] = 0.f;
  }
  const int64_t head_stride = static_cast<int64_t>(block_size) * hd;
  float running_max = -INFINITY;
  float denom = 0.f;
  for (int p = 0; p <= pos; ++p) {
    const int64_t block = table[p / block_size];
    const __nv_bfloat16* k = kv + (block * 2 * nkv + kvh) * head_stride + static_cast<int64_t>(p % block_size) * hd;
    const __nv_bfloat16* v = k + nkv * head_stride;
    float dot = 0.f;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) dot += qv[j] * __bfloat162float(k[d]);
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float s = dot * scale;
    const float new_max = fmaxf(running_max, s);
    const float correction = __expf(running_max - new_max);
    const float w = __expf(s - new_max);
    denom = denom * correction + w;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) acc[j] = acc[j] * correction + w * __bfloat162float(v[d]);
    }
    running_max = new_max;
  }
  __nv_bfloat16* o_row = out + static_cast<int64_t>(t) * nq * hd + h * hd;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; ++j) {
    const int d = lane + 32 * j;
    if (d < hd) o_row[d] = __float2bfloat16_rn(acc[j] / denom);
  }
}

}  // namespace

cudaError_t ReferencePagedAttention(const __nv_bfloat16* q, int ld_q, int n, int num_q_heads,
                                    const PagedBatchDevice& batch, const KvPoolLayout& layout,
                                    const __nv_bfloat16* kv_layer, float scale, __nv_bfloat16* out,
                                    cudaStream_t stream) {
  const int nkv = layout.num_kv_heads;
  if (n < 0 || layout.head_dim <= 0 || layout.head_dim > 32 * kMaxPerLane || nkv <= 0 || num_q_heads % nkv != 0 ||
      layout.block_size <= 0 || ld_q < num_q_heads * layout.head_dim) {
    return cudaErrorInvalidValue;
  }
  if (n == 0) return cudaSuccess;
  const int64_t items = static_cast<int64_t>(n) * num_q_heads;
  const int blocks = static_cast<int>((items + kWarps - 1) / kWarps);
  ReferenceAttentionKernel<<<blocks, kWarps * 32, 0, stream>>>(q, ld_q, n, num_q_heads, nkv, layout.head_dim,
                                                               layout.block_size, batch, kv_layer, scale, out);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
