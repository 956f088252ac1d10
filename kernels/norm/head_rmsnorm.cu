#include "norm/rmsnorm.cuh"

namespace tandem::kernels {
namespace {

constexpr int kWarpsPerBlock = 4;

// One warp per (token, head); lane l holds elements l, l + 32, ... (at most kMaxPerLane) in registers.
constexpr int kMaxPerLane = 8;

__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    HeadRmsNormKernel(__nv_bfloat16* __restrict__ x, int64_t rows, int ld, int num_heads, int hd,
                      const __nv_bfloat16* __restrict__ weight, float eps) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (item >= rows * num_heads) return;
  const int lane = threadIdx.x % 32;
  __nv_bfloat16* h = x + (item / num_heads) * ld + (item % num_heads) * hd;
  float v[kMaxPerLane];
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; ++j) {
    const int d = lane + 32 * j;
    v[j] = d < hd ? __bfloat162float(h[d]) : 0.f;
    sum += v[j] * v[j];
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float inv = rsqrtf(sum / static_cast<float>(hd) + eps);
#pragma unroll
  for (int j = 0; j < kMaxPerLane; ++j) {
    const int d = lane + 32 * j;
    if (d >= hd) break;
    const float n = __bfloat162float(__float2bfloat16_rn(v[j] * inv));
    h[d] = __float2bfloat16_rn(n * __bfloat162float(weight[d]));
  }
}

}  // namespace

cudaError_t HeadRmsNorm(__nv_bfloat16* x, int num_tokens, int ld, int num_heads, int head_dim,
                        const __nv_bfloat16* weight, float eps, cudaStream_t stream) {
  if (num_tokens < 0 || num_heads <= 0 || ld < num_heads * head_dim) return cudaErrorInvalidValue;
  if (num_tokens == 0) return cudaSuccess;
  const int64_t items = static_cast<int64_t>(num_tokens) * num_heads;
  const int blocks = static_cast<int>((items + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (head_dim <= 0 || head_dim > 32 * kMaxPerLane) return cudaErrorInvalidValue;
  HeadRmsNormKernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(x, num_tokens, ld, num_heads, head_dim, weight, eps);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
