#include "norm/rmsnorm.cuh"

#include <cstdint>

#include "common/pdl.cuh"

namespace tandem::kernels {
namespace {

constexpr int kVec = 8;  // bf16 values per 16-byte access
constexpr int kThreads = 256;

// 8 bf16 values moved as one 16-byte load/store.
struct alignas(16) Bf16x8 {
  __nv_bfloat162 v[4];
};

__device__ __forceinline__ float BlockSum(float value) {
  __shared__ float partial[kThreads / 32];
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  float total = 0.f;
  if (threadIdx.x < 32) {
    total = lane < kThreads / 32 ? partial[lane] : 0.f;
    for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xffffffffu, total, offset);
    if (lane == 0) partial[0] = total;
  }
  __syncthreads();
  return partial[0];
}

// One block per token. kAdd: h = bf16(x + residual), stored back to residual; else h = x.
// Pass 1 sums h^2 in fp32; pass 2 re-reads h (L1/L2-resident) and writes the normalized row.
template <bool kAdd>
__global__ void __launch_bounds__(kThreads)
    RmsNormKernel(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ residual,
                  const __nv_bfloat16* __restrict__ weight, __nv_bfloat16* __restrict__ out, int hidden, float eps) {
  PdlTrigger();
  PdlWait();  // x and residual come from the kernel before
  const int64_t row = blockIdx.x;
  const int vecs = hidden / kVec;
  const Bf16x8* x_row = reinterpret_cast<const Bf16x8*>(x + row * hidden);
  Bf16x8* res_row = reinterpret_cast<Bf16x8*>(kAdd ? residual + row * hidden : nullptr);
  const Bf16x8* h_row = kAdd ? res_row : x_row;

  float sum_sq = 0.f;
  for (int i = threadIdx.x; i < vecs; i += kThreads) {
    Bf16x8 h = x_row[i];
    if constexpr (kAdd) {
      const Bf16x8 r = res_row[i];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 a = __bfloat1622float2(h.v[j]);
        const float2 b = __bfloat1622float2(r.v[j]);
        h.v[j] = __floats2bfloat162_rn(a.x + b.x, a.y + b.y);
      }
      res_row[i] = h;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(h.v[j]);
      sum_sq += f.x * f.x + f.y * f.y;
    }
  }
  const float inv_rms = rsqrtf(BlockSum(sum_sq) / static_cast<float>(hidden) + eps);

  const Bf16x8* w_row = reinterpret_cast<const Bf16x8*>(weight);
  Bf16x8* out_row = reinterpret_cast<Bf16x8*>(out + row * hidden);
  for (int i = threadIdx.x; i < vecs; i += kThreads) {
    const Bf16x8 h = h_row[i];
    const Bf16x8 w = w_row[i];
    Bf16x8 o;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(h.v[j]);
      // HF: weight * hidden.to(bf16): round the normalized value to bf16 before the weight multiply.
      const float2 n = __bfloat1622float2(__floats2bfloat162_rn(f.x * inv_rms, f.y * inv_rms));
      const float2 g = __bfloat1622float2(w.v[j]);
      o.v[j] = __floats2bfloat162_rn(n.x * g.x, n.y * g.y);
    }
    out_row[i] = o;
  }
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

cudaError_t RmsNorm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int num_tokens,
                    int hidden, float eps, cudaStream_t stream) {
  if (num_tokens < 0 || hidden <= 0 || hidden % kVec != 0 || !Aligned16(x) || !Aligned16(weight) ||
      !Aligned16(out)) {
    return cudaErrorInvalidValue;
  }
  if (num_tokens == 0) return cudaSuccess;
  return LaunchPdl(RmsNormKernel<false>, dim3(num_tokens), dim3(kThreads), 0, stream, x,
                   static_cast<__nv_bfloat16*>(nullptr), weight, out, hidden, eps);
}

cudaError_t FusedAddRmsNorm(const __nv_bfloat16* x, __nv_bfloat16* residual, const __nv_bfloat16* weight,
                            __nv_bfloat16* out, int num_tokens, int hidden, float eps, cudaStream_t stream) {
  if (num_tokens < 0 || hidden <= 0 || hidden % kVec != 0 || !Aligned16(x) || !Aligned16(residual) ||
      !Aligned16(weight) || !Aligned16(out)) {
    return cudaErrorInvalidValue;
  }
  if (num_tokens == 0) return cudaSuccess;
  return LaunchPdl(RmsNormKernel<true>, dim3(num_tokens), dim3(kThreads), 0, stream, x, residual, weight, out,
                   hidden, eps);
}

}  // namespace tandem::kernels
