// What the kernel benchmarks share: a CUDA check that returns 1 from main, the median time of a
// launch sequence on the default stream, and the device-to-device copy ceiling they quote figures to.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#define CHECK(expr)                                                                             \
  do {                                                                                          \
    cudaError_t e = (expr);                                                                     \
    if (e != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e)); \
      return 1;                                                                                 \
    }                                                                                           \
  } while (0)

namespace tandem::bench {

// Median milliseconds of `reps` timed calls of fn after `warmup` untimed ones (events on stream 0).
template <typename F>
float MedianMs(F&& fn, int reps, int warmup = 3) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> times;
  for (int i = 0; i < warmup; ++i) fn();
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a);
    fn();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    times.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Bytes per second of a 1 GiB device-to-device copy, read plus written (median of 20); 0 on error.
inline double CopyBandwidth() {
  const size_t bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMalloc(&dst, bytes) != cudaSuccess ||
      cudaMemset(src, 1, bytes) != cudaSuccess) {
    cudaFree(src);
    return 0.0;
  }
  const float ms = MedianMs([&] { cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice); }, 20);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3);
}

}  // namespace tandem::bench
