#include "sampling/argmax.cuh"

namespace tandem::kernels {
namespace {

constexpr int kThreads = 1024;

// (value, index) with the larger value first, the lower index on ties.
__device__ __forceinline__ void Better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// One block per row.
__global__ void __launch_bounds__(kThreads) ArgmaxKernel(const float* __restrict__ x, int cols, int32_t* __restrict__ out) {
  const float* row = x + static_cast<int64_t>(blockIdx.x) * cols;
  float best = -INFINITY;
  int best_i = cols;  // "none yet": loses every tie against a real index
  for (int i = threadIdx.x; i < cols; i += kThreads) Better(best, best_i, row[i], i);
  for (int o = 16; o > 0; o >>= 1) {
    Better(best, best_i, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, best_i, o));
  }
  __shared__ float warp_best[kThreads / 32];
  __shared__ int warp_i[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_i[warp] = best_i;
  }
  __syncthreads();
  if (warp == 0) {
    best = warp_best[lane];
    best_i = warp_i[lane];
    for (int o = 16; o > 0; o >>= 1) {
      Better(best, best_i, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, best_i, o));
    }
    if (lane == 0) out[blockIdx.x] = best_i < cols ? best_i : 0;  // an all-NaN or all -inf row gives 0
  }
}

}  // namespace

cudaError_t ArgmaxRows(const float* x, int rows, int cols, int32_t* out, cudaStream_t stream) {
  if (rows < 0 || cols <= 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  ArgmaxKernel<<<rows, kThreads, 0, stream>>>(x, cols, out);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
