#include "elementwise/elementwise.cuh"

#include "common/pdl.cuh"

namespace tandem::kernels {
namespace {

constexpr int kThreads = 256;

struct alignas(16) Bf16x8 {
  __nv_bfloat162 v[4];
};

// One block per output row, 16-byte accesses.
__global__ void GatherRowsKernel(const __nv_bfloat16* __restrict__ src, int vecs, const int32_t* __restrict__ rows,
                                 __nv_bfloat16* __restrict__ out) {
  PdlTrigger();
  PdlWait();
  const int64_t i = blockIdx.x;
  const Bf16x8* s = reinterpret_cast<const Bf16x8*>(src) + static_cast<int64_t>(rows[i]) * vecs;
  Bf16x8* o = reinterpret_cast<Bf16x8*>(out) + i * vecs;
  for (int j = threadIdx.x; j < vecs; j += blockDim.x) o[j] = s[j];
}

__global__ void SiluMulKernel(const __nv_bfloat16* __restrict__ gate_up, int inter, __nv_bfloat16* __restrict__ out) {
  PdlTrigger();
  PdlWait();  // gate/up come from the GEMM before
  const int64_t t = blockIdx.y;
  const int vecs = inter / 8;
  const Bf16x8* g = reinterpret_cast<const Bf16x8*>(gate_up + t * 2 * inter);
  const Bf16x8* u = g + vecs;
  Bf16x8* o = reinterpret_cast<Bf16x8*>(out + t * inter);
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < vecs; j += gridDim.x * blockDim.x) {
    const Bf16x8 gv = g[j];
    const Bf16x8 uv = u[j];
    Bf16x8 r;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 a = __bfloat1622float2(gv.v[k]);
      const float2 b = __bfloat1622float2(uv.v[k]);
      const float2 s = __bfloat1622float2(
          __floats2bfloat162_rn(a.x / (1.0f + __expf(-a.x)), a.y / (1.0f + __expf(-a.y))));
      r.v[k] = __floats2bfloat162_rn(s.x * b.x, s.y * b.y);
    }
    o[j] = r;
  }
}

__global__ void AddBiasKernel(__nv_bfloat16* __restrict__ x, int ld, int dim, const __nv_bfloat16* __restrict__ bias) {
  const int64_t t = blockIdx.y;
  __nv_bfloat16* row = x + t * ld;
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < dim; j += gridDim.x * blockDim.x) {
    row[j] = __float2bfloat16_rn(__bfloat162float(row[j]) + __bfloat162float(bias[j]));
  }
}

__global__ void F32ToBf16Kernel(const float* __restrict__ src, int64_t count, __nv_bfloat16* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = __float2bfloat16_rn(src[i]);
  }
}

__device__ __forceinline__ uint64_t SplitMixFinalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void DummyUniformKernel(__nv_bfloat16* __restrict__ dst, int64_t count, uint64_t name_state, int64_t cols,
                                   int64_t rows_per_chunk, float scale, float offset) {
  constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ull;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / cols;
    const int64_t row_begin = row - row % rows_per_chunk;
    const uint64_t chunk_state = SplitMixFinalize(name_state + kGamma) ^ static_cast<uint64_t>(row_begin);
    const uint64_t k = static_cast<uint64_t>(i - row_begin * cols);
    const uint64_t z = SplitMixFinalize(chunk_state + (k + 1) * kGamma);
    const float u = static_cast<float>(static_cast<int32_t>(z >> 40) - (1 << 23)) * (1.0f / (1 << 23));
    dst[i] = __float2bfloat16_rn(__fadd_rn(offset, __fmul_rn(scale, u)));  // no FMA: the host's two roundings
  }
}

int BlocksFor(int64_t work, int per_block, int cap) {
  const int64_t b = (work + per_block - 1) / per_block;
  return static_cast<int>(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace

cudaError_t GatherRows(const __nv_bfloat16* src, int dim, const int32_t* rows, int m, __nv_bfloat16* out,
                       cudaStream_t stream) {
  if (dim % 8 != 0 || m < 0) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  const int vecs = dim / 8;
  return LaunchPdl(GatherRowsKernel, dim3(m), dim3(vecs < kThreads ? ((vecs + 31) / 32) * 32 : kThreads), 0, stream,
                   src, vecs, rows, out);
}

cudaError_t SiluMul(const __nv_bfloat16* gate_up, int n, int inter, __nv_bfloat16* out, cudaStream_t stream) {
  if (inter % 8 != 0 || n < 0 || n > 65535 * 64) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  // y = tokens (at most 65535 per launch), x = column blocks of the row.
  for (int begin = 0; begin < n; begin += 65535) {
    const int rows = n - begin < 65535 ? n - begin : 65535;
    const dim3 grid(BlocksFor(inter / 8, kThreads, 64), rows);
    const cudaError_t e = LaunchPdl(SiluMulKernel, grid, dim3(kThreads), 0, stream,
                                    gate_up + static_cast<int64_t>(begin) * 2 * inter, inter,
                                    out + static_cast<int64_t>(begin) * inter);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t AddBias(__nv_bfloat16* x, int n, int ld, int dim, const __nv_bfloat16* bias, cudaStream_t stream) {
  if (n < 0 || dim > ld) return cudaErrorInvalidValue;
  for (int begin = 0; begin < n; begin += 65535) {
    const int rows = n - begin < 65535 ? n - begin : 65535;
    const dim3 grid(BlocksFor(dim, kThreads, 64), rows);
    AddBiasKernel<<<grid, kThreads, 0, stream>>>(x + static_cast<int64_t>(begin) * ld, ld, dim, bias);
  }
  return cudaGetLastError();
}

cudaError_t DummyUniformBf16(__nv_bfloat16* dst, int64_t count, uint64_t name_state, int64_t cols,
                             int64_t rows_per_chunk, float scale, float offset, cudaStream_t stream) {
  if (count < 0 || cols <= 0 || rows_per_chunk <= 0 || (count > 0 && dst == nullptr)) return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  DummyUniformKernel<<<BlocksFor(count, kThreads, 65536), kThreads, 0, stream>>>(dst, count, name_state, cols,
                                                                               rows_per_chunk, scale, offset);
  return cudaGetLastError();
}

cudaError_t F32ToBf16(const float* src, int64_t count, __nv_bfloat16* dst, cudaStream_t stream) {
  if (count < 0) return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  F32ToBf16Kernel<<<BlocksFor(count, kThreads, 65536), kThreads, 0, stream>>>(src, count, dst);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
