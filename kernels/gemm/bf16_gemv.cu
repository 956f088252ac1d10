#include <cstdint>

#include "gemm/bf16_gemv.cuh"
#include "common/pdl.cuh"

namespace tandem::kernels {
namespace {

constexpr int kRows = 4;          // rows of W per block
constexpr int kWarps = 8;         // warps per block, splitting k
constexpr int kChunk = 32 * 8;    // inputs per warp and step: 32 lanes x one 16-byte load (8 bf16)
constexpr int kUnroll = 2;        // chunks a warp has in flight

__device__ __forceinline__ uint4 LoadStreaming(const __nv_bfloat16* p) {
  return __ldcs(reinterpret_cast<const uint4*>(p));
}

// Eight bf16 in a uint4 as floats.
__device__ __forceinline__ void ToFloat8(const uint4& v, float* f) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(words[i] << 16);
    f[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

template <int M, bool kFp32Out>
__global__ void __launch_bounds__(kWarps * 32) Bf16GemvKernel(const __nv_bfloat16* __restrict__ x,
                                                              const __nv_bfloat16* __restrict__ w,
                                                              void* __restrict__ out, int n, int k) {
  PdlTrigger();
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int row0 = static_cast<int>(blockIdx.x) * kRows;
  float acc[M][kRows];
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[m][r] = 0.0f;
  }
  const __nv_bfloat16* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = w + static_cast<size_t>(min(row0 + r, n - 1)) * k;

  constexpr int kStride = kWarps * kChunk;
  bool waited = false;
  for (int base = warp * kChunk + lane * 8; base < k; base += kUnroll * kStride) {
    uint4 wv[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = base + u * kStride;
#pragma unroll
      for (int r = 0; r < kRows; ++r) wv[u][r] = c < k ? LoadStreaming(rows[r] + c) : make_uint4(0, 0, 0, 0);
    }
    if (!waited) {  // the first weights are on their way while the kernel before finishes; x is its output
      PdlWait();
      waited = true;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = base + u * kStride;
      if (c >= k) break;
      float wf[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) ToFloat8(wv[u][r], wf[r]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[8];
        ToFloat8(__ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * k + c)), xf);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[m][r] = fmaf(xf[i], wf[r][i], acc[m][r]);
        }
      }
    }
  }

  PdlWait();  // before any write (a thread with no chunk of k has not waited yet)
  __shared__ float partial[kWarps][M * kRows];
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float v = acc[m][r];
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
      if (lane == 0) partial[warp][m * kRows + r] = v;
    }
  }
  __syncthreads();
  const int t = static_cast<int>(threadIdx.x);
  if (t < M * kRows) {
    const int m = t / kRows, r = t % kRows;
    if (row0 + r < n) {
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < kWarps; ++i) sum += partial[i][t];
      const size_t at = static_cast<size_t>(m) * n + row0 + r;
      if constexpr (kFp32Out) {
        static_cast<float*>(out)[at] = sum;
      } else {
        static_cast<__nv_bfloat16*>(out)[at] = __float2bfloat16(sum);
      }
    }
  }
}

template <int M>
cudaError_t Launch(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int n, int k,
                   cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((n + kRows - 1) / kRows));
  if (out_fp32) return LaunchPdl(Bf16GemvKernel<M, true>, grid, dim3(kWarps * 32), 0, stream, x, w, out, n, k);
  return LaunchPdl(Bf16GemvKernel<M, false>, grid, dim3(kWarps * 32), 0, stream, x, w, out, n, k);
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool Bf16GemvSupported(int m, int n, int k) {
  return m >= 1 && m <= kBf16GemvMaxM && n >= 1 && k >= 8 && k % 8 == 0 && (n + kRows - 1) / kRows <= 0x7fffffff;
}

cudaError_t Bf16Gemv(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m, int n, int k,
                     cudaStream_t stream) {
  if (!Bf16GemvSupported(m, n, k) || !Aligned16(x) || !Aligned16(w) || out == nullptr) return cudaErrorInvalidValue;
  switch (m) {
    case 1:
      return Launch<1>(x, w, out, out_fp32, n, k, stream);
    case 2:
      return Launch<2>(x, w, out, out_fp32, n, k, stream);
    case 3:
      return Launch<3>(x, w, out, out_fp32, n, k, stream);
    case 4:
      return Launch<4>(x, w, out, out_fp32, n, k, stream);
    case 5:
      return Launch<5>(x, w, out, out_fp32, n, k, stream);
    case 6:
      return Launch<6>(x, w, out, out_fp32, n, k, stream);
    case 7:
      return Launch<7>(x, w, out, out_fp32, n, k, stream);
    default:
      return Launch<8>(x, w, out, out_fp32, n, k, stream);
  }
}

}  // namespace tandem::kernels
