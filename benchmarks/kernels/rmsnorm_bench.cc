// Fused add + RMSNorm: achieved bandwidth next to the measured device-to-device copy ceiling.
// Bytes counted as the floor: read x, read residual, write residual, write out (weight is tiny).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "kernel_bench.h"
#include "norm/rmsnorm.cuh"


int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("rmsnorm_bench: no CUDA device, nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  // Copy ceiling: 1 GiB device-to-device, bytes read + written.
  const double ceiling = tandem::bench::CopyBandwidth() / 1e9;

  std::printf("device: %s, copy ceiling %.0f GB/s\n", prop.name, ceiling);
  std::printf("%8s %7s %10s %10s %9s\n", "tokens", "hidden", "time_us", "GB/s", "%ceiling");
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.f, 1.f);
  const int shapes[][2] = {{1, 4096}, {64, 4096}, {512, 4096}, {4096, 4096}, {16384, 4096}, {4096, 8192}, {4096, 576}};
  for (const auto& s : shapes) {
    const int tokens = s[0], hidden = s[1];
    const size_t n = size_t(tokens) * hidden;
    std::vector<__nv_bfloat16> host(n);
    for (auto& v : host) v = __float2bfloat16(dist(rng));
    __nv_bfloat16 *x, *res, *w, *out;
    CHECK(cudaMalloc(&x, n * 2));
    CHECK(cudaMalloc(&res, n * 2));
    CHECK(cudaMalloc(&w, hidden * 2));
    CHECK(cudaMalloc(&out, n * 2));
    CHECK(cudaMemcpy(x, host.data(), n * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(res, host.data(), n * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(w, host.data(), hidden * 2, cudaMemcpyHostToDevice));
    CHECK(tandem::kernels::FusedAddRmsNorm(x, res, w, out, tokens, hidden, 1e-5f, nullptr));
    const float ms = tandem::bench::MedianMs(
        [&] { tandem::kernels::FusedAddRmsNorm(x, res, w, out, tokens, hidden, 1e-5f, nullptr); }, 50);
    CHECK(cudaGetLastError());
    const double gbs = 4.0 * n * 2 / (ms * 1e-3) / 1e9;
    std::printf("%8d %7d %10.2f %10.0f %8.1f%%\n", tokens, hidden, ms * 1e3, gbs, 100.0 * gbs / ceiling);
    CHECK(cudaFree(x));
    CHECK(cudaFree(res));
    CHECK(cudaFree(w));
    CHECK(cudaFree(out));
  }
  return 0;
}
