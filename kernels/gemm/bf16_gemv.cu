#include <cstdint>

#include "gemm/bf16_gemv.cuh"
#include "common/mma.cuh"
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
        ToFloat8(LoadAfterWait(x + static_cast<size_t>(m) * k + c), xf);
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

// The tensor-core GEMV (m <= 16): out^T [n, m] = W [n, k] x^T [k, m] as mma.sync m16n8k16 with W as the
// A operand (16 rows of W per block) and x^T as B (one n8 tile per 8 rows of x). The k order inside a
// 32-input chunk is permuted the same way for A and B (a dot product does not care): lane (g, t) loads
// 16 bytes, inputs 8t..8t+7 of the chunk, of W rows g and g+8 and of x row g, and these are exactly its
// A and B fragments for two k16 steps — no shared memory, no shuffles, every byte of W loaded once by
// one 16-byte streaming load. The block's 8 warps take interleaved chunks; their partial sums meet in
// shared memory in a fixed order (the same bits for a row of x whatever m is).
constexpr int kTcRows = 16;
constexpr int kTcWarps = 8;
constexpr int kTcChunk = 32;
constexpr int kTcUnroll = 4;  // chunks a warp has in flight (8 loads of W per lane)

template <int kTiles, bool kFp32Out>
__global__ void __launch_bounds__(kTcWarps * 32) Bf16GemvTcKernel(const __nv_bfloat16* __restrict__ x,
                                                                  const __nv_bfloat16* __restrict__ w,
                                                                  void* __restrict__ out, int m, int n, int k) {
  PdlTrigger();
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = static_cast<int>(blockIdx.x) * kTcRows;
  const __nv_bfloat16* w_lo = w + static_cast<size_t>(min(row0 + g, n - 1)) * k + t * 8;
  const __nv_bfloat16* w_hi = w + static_cast<size_t>(min(row0 + g + 8, n - 1)) * k + t * 8;
  const __nv_bfloat16* x_rows[kTiles];
  bool x_valid[kTiles];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) {
    x_valid[i] = i * 8 + g < m;
    x_rows[i] = x + static_cast<size_t>(x_valid[i] ? i * 8 + g : 0) * k + t * 8;
  }
  float acc[kTiles][4];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

  const int chunks = (k + kTcChunk - 1) / kTcChunk;
  bool waited = false;
  for (int c0 = warp; c0 < chunks; c0 += kTcWarps * kTcUnroll) {
    uint4 lo[kTcUnroll], hi[kTcUnroll];
#pragma unroll
    for (int u = 0; u < kTcUnroll; ++u) {
      const int at = (c0 + u * kTcWarps) * kTcChunk;
      const bool in = at + t * 8 < k;
      lo[u] = in ? LoadStreaming(w_lo + at) : make_uint4(0, 0, 0, 0);
      hi[u] = in ? LoadStreaming(w_hi + at) : make_uint4(0, 0, 0, 0);
    }
    if (!waited) {  // the first weights are on their way while the kernel before finishes; x is its output
      PdlWait();
      waited = true;
    }
#pragma unroll
    for (int u = 0; u < kTcUnroll; ++u) {
      const int at = (c0 + u * kTcWarps) * kTcChunk;
      const bool in = at + t * 8 < k;
      const uint32_t a0[4] = {lo[u].x, hi[u].x, lo[u].y, hi[u].y};
      const uint32_t a1[4] = {lo[u].z, hi[u].z, lo[u].w, hi[u].w};
#pragma unroll
      for (int i = 0; i < kTiles; ++i) {
        const uint4 b = in && x_valid[i] ? LoadAfterWait(x_rows[i] + at) : make_uint4(0, 0, 0, 0);
        MmaBf16(acc[i], a0, b.x, b.y);
        MmaBf16(acc[i], a1, b.z, b.w);
      }
    }
  }

  PdlWait();  // before any write (a warp with no chunk of k has not waited yet)
  constexpr int kCols = kTiles * 8;
  __shared__ float partial[kTcWarps][kCols][kTcRows + 1];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) {
    partial[warp][i * 8 + 2 * t][g] = acc[i][0];
    partial[warp][i * 8 + 2 * t + 1][g] = acc[i][1];
    partial[warp][i * 8 + 2 * t][g + 8] = acc[i][2];
    partial[warp][i * 8 + 2 * t + 1][g + 8] = acc[i][3];
  }
  __syncthreads();
  for (int e = static_cast<int>(threadIdx.x); e < kCols * kTcRows; e += kTcWarps * 32) {
    const int col = e / kTcRows, r = e % kTcRows;
    if (col >= m || row0 + r >= n) continue;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kTcWarps; ++i) sum += partial[i][col][r];
    const size_t at = static_cast<size_t>(col) * n + row0 + r;
    if constexpr (kFp32Out) {
      static_cast<float*>(out)[at] = sum;
    } else {
      static_cast<__nv_bfloat16*>(out)[at] = __float2bfloat16(sum);
    }
  }
}

template <int kTiles>
cudaError_t LaunchTc(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m, int n, int k,
                     cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((n + kTcRows - 1) / kTcRows));
  if (out_fp32) {
    return LaunchPdl(Bf16GemvTcKernel<kTiles, true>, grid, dim3(kTcWarps * 32), 0, stream, x, w, out, m, n, k);
  }
  return LaunchPdl(Bf16GemvTcKernel<kTiles, false>, grid, dim3(kTcWarps * 32), 0, stream, x, w, out, m, n, k);
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

bool Bf16GemvTcSupported(int m, int n, int k) {
  return m >= 1 && m <= kBf16GemvTcMaxM && n >= 1 && k >= 8 && k % 8 == 0 &&
         (n + kTcRows - 1) / kTcRows <= 0x7fffffff;
}

cudaError_t Bf16GemvTc(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m, int n, int k,
                       cudaStream_t stream) {
  if (!Bf16GemvTcSupported(m, n, k) || !Aligned16(x) || !Aligned16(w) || out == nullptr) {
    return cudaErrorInvalidValue;
  }
  if (m <= 8) return LaunchTc<1>(x, w, out, out_fp32, m, n, k, stream);
  return LaunchTc<2>(x, w, out, out_fp32, m, n, k, stream);
}

}  // namespace tandem::kernels
