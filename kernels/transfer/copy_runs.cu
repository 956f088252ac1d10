#include <algorithm>

#include "transfer/copy_runs.cuh"

namespace tandem::kernels {
namespace {

struct CopyBatch {
  CopyRun runs[kMaxCopyRunsPerLaunch];
};

// grid: (x: blocks per run, y: run). Each block strides over its run's 16-byte vectors.
__global__ void CopyRunsKernel(CopyBatch batch, int num_runs) {
  const int r = blockIdx.y;
  if (r >= num_runs) return;
  const CopyRun run = batch.runs[r];
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (((run.src | run.dst | run.bytes) & 15) == 0) {
    const uint4* src = reinterpret_cast<const uint4*>(run.src);
    uint4* dst = reinterpret_cast<uint4*>(run.dst);
    const uint64_t n = run.bytes / 16;
    for (uint64_t i = first; i < n; i += stride) dst[i] = src[i];
  } else {
    const unsigned char* src = reinterpret_cast<const unsigned char*>(run.src);
    unsigned char* dst = reinterpret_cast<unsigned char*>(run.dst);
    for (uint64_t i = first; i < run.bytes; i += stride) dst[i] = src[i];
  }
}

}  // namespace

cudaError_t CopyRuns(const CopyRun* runs, int num_runs, cudaStream_t stream) {
  constexpr int kThreads = 256;
  constexpr uint64_t kBytesPerBlock = kThreads * 16 * 8;  // 32 KiB: eight vectors per thread
  for (int begin = 0; begin < num_runs; begin += kMaxCopyRunsPerLaunch) {
    const int n = std::min(kMaxCopyRunsPerLaunch, num_runs - begin);
    CopyBatch batch{};
    uint64_t largest = 0;
    for (int i = 0; i < n; ++i) {
      batch.runs[i] = runs[begin + i];
      largest = std::max(largest, runs[begin + i].bytes);
    }
    if (largest == 0) continue;
    const unsigned blocks_x = static_cast<unsigned>(std::min<uint64_t>((largest + kBytesPerBlock - 1) / kBytesPerBlock, 1024));
    CopyRunsKernel<<<dim3(blocks_x, n), kThreads, 0, stream>>>(batch, n);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace tandem::kernels
