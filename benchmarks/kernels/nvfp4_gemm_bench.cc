// NVFP4 weight-only GEMM on Llama-3-8B's layer shapes: time (CUDA events, median), the weight bytes it
// streams per second next to a 1 GiB cudaMemcpy D2D measured in the same run (read + written bytes
// counted, as kernels/norm/NOTES.md does), and the same GEMM two other ways: dequantize to a bf16
// scratch then cuBLASLt (the prefill path), and plain bf16 weights through cuBLASLt.
// Weights rotate through enough copies to exceed twice the L2 cache, so every call reads HBM.
//
//   nvfp4_gemm_bench [--quick]      (--quick: fewer repetitions)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gemm/nvfp4_gemm.cuh"
#include "kernel_bench.h"
#include "tandem/backend/cuda_gemm.h"

namespace {

using tandem::kernels::Nvfp4Part;
using tandem::kernels::Nvfp4Repacked;
using tandem::kernels::Nvfp4Weight;

// Median over `samples` of the mean time of `reps` back-to-back calls (call i gets index i, to rotate
// buffers), in microseconds.
template <typename F>
double MedianUs(F&& fn, int reps, int samples) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  int call = 0;
  for (int i = 0; i < 3; ++i) fn(call++);
  std::vector<double> times;
  for (int s = 0; s < samples; ++s) {
    cudaEventRecord(a);
    for (int r = 0; r < reps; ++r) fn(call++);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    times.push_back(1e3 * ms / reps);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Repetitions so that one sample takes about 2 ms.
int RepsFor(double us_per_call) {
  return std::clamp(static_cast<int>(2000.0 / std::max(us_per_call, 1.0)), 1, 200);
}

struct Shape {
  const char* name;
  int n, k;
};

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int samples = quick ? 5 : 15;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("nvfp4_gemm_bench: no CUDA device, nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));

  const double copy_gbs = tandem::bench::CopyBandwidth() / 1e9;  // 1 GiB device to device, read + write
  auto lt = tandem::backend::cuda::CublasLtGemm::Create();
  if (!lt.ok()) {
    std::fprintf(stderr, "cuBLASLt: %s\n", std::string(lt.status().message()).c_str());
    return 1;
  }
  std::printf("device: %s, %d SMs, L2 %d MB; copy ceiling %.0f GB/s (1 GiB D2D, read + write)\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_gbs);
  std::printf(
      "nvfp4 bytes = n*k*(1/2 + 1/16); floor = those bytes at the copy ceiling; dq+lt = dequantize to a\n"
      "bf16 scratch, then cuBLASLt; bf16 = cuBLASLt on bf16 weights (n*k*2 bytes)\n\n");
  std::printf("%-8s %6s %6s %5s | %9s %7s %6s %8s | %8s %9s | %9s %7s | %s\n", "shape", "n", "k", "m",
              "nvfp4_us", "GB/s", "%copy", "floor_us", "deq_us", "dq+lt_us", "bf16_us", "GB/s", "bf16/nvfp4");

  const Shape shapes[] = {
      {"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}};
  const int ms[] = {1, 2, 4, 8, 16, 32, 64, 128, 512, 4096};
  constexpr int kGemvMaxM = 128;  // timed up to here
  const int max_m = 4096;
  std::mt19937 rng(7);
  for (const Shape& shape : shapes) {
    const int n = shape.n, k = shape.k;
    // Random codes and valid positive E4M3 scales (values do not change the timing).
    std::vector<uint8_t> packed(static_cast<size_t>(n) * k / 2), scales(static_cast<size_t>(n) * k / 16);
    for (auto& b : packed) b = static_cast<uint8_t>(rng());
    for (auto& b : scales) b = static_cast<uint8_t>(0x20 + rng() % 0x30);
    const Nvfp4Part part{packed.data(), scales.data(), 1.f / 2688.f, n};
    Nvfp4Repacked repacked;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string err = tandem::kernels::Nvfp4RepackForGpu(&part, 1, k, &repacked);
    const double repack_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!err.empty()) {
      std::fprintf(stderr, "repack: %s\n", err.c_str());
      return 1;
    }
    const size_t fp4_bytes = repacked.codes.size() + repacked.scales.size();
    const size_t bf16_bytes = static_cast<size_t>(n) * k * 2;
    const size_t rotate = 2 * static_cast<size_t>(prop.l2CacheSize);
    const int fp4_copies = static_cast<int>(std::max<size_t>(1, (rotate + fp4_bytes - 1) / fp4_bytes));
    const int bf16_copies = static_cast<int>(std::max<size_t>(1, (rotate + bf16_bytes - 1) / bf16_bytes));

    std::vector<void*> allocations;
    const auto device_alloc = [&](size_t bytes) -> void* {
      void* p = nullptr;
      if (cudaMalloc(&p, bytes) != cudaSuccess) return nullptr;
      allocations.push_back(p);
      return p;
    };
    std::vector<Nvfp4Weight> fp4(fp4_copies);
    for (int c = 0; c < fp4_copies; ++c) {
      void* codes = device_alloc(repacked.codes.size());
      void* sc = device_alloc(repacked.scales.size());
      if (codes == nullptr || sc == nullptr) {
        std::fprintf(stderr, "out of device memory\n");
        return 1;
      }
      CHECK(cudaMemcpy(codes, repacked.codes.data(), repacked.codes.size(), cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(sc, repacked.scales.data(), repacked.scales.size(), cudaMemcpyHostToDevice));
      fp4[c] = tandem::kernels::Nvfp4DeviceView(repacked, codes, sc);
    }
    std::vector<__nv_bfloat16*> bf16(bf16_copies);
    for (int c = 0; c < bf16_copies; ++c) {
      bf16[c] = static_cast<__nv_bfloat16*>(device_alloc(bf16_bytes));
      if (bf16[c] == nullptr) {
        std::fprintf(stderr, "out of device memory\n");
        return 1;
      }
      CHECK(tandem::kernels::Nvfp4DequantizeToBf16(fp4[c % fp4_copies], bf16[c], nullptr));
    }
    auto* scratch = static_cast<__nv_bfloat16*>(device_alloc(bf16_bytes));
    auto* x = static_cast<__nv_bfloat16*>(device_alloc(static_cast<size_t>(max_m) * k * 2));
    auto* out = static_cast<__nv_bfloat16*>(device_alloc(static_cast<size_t>(max_m) * n * 2));
    if (scratch == nullptr || x == nullptr || out == nullptr) {
      std::fprintf(stderr, "out of device memory\n");
      return 1;
    }
    {
      std::vector<__nv_bfloat16> host(static_cast<size_t>(max_m) * k);
      std::normal_distribution<float> normal(0.f, 1.f);
      for (auto& v : host) v = __float2bfloat16(normal(rng));
      CHECK(cudaMemcpy(x, host.data(), host.size() * 2, cudaMemcpyHostToDevice));
    }
    CHECK(cudaDeviceSynchronize());

    const double deq_us = MedianUs(
        [&](int i) { (void)tandem::kernels::Nvfp4DequantizeToBf16(fp4[i % fp4_copies], scratch, nullptr); },
        3, samples);
    for (const int m : ms) {
      // Check every path once before timing it.
      const bool gemv = m <= kGemvMaxM;
      if (gemv) CHECK(tandem::kernels::Nvfp4Gemm(x, fp4[0], out, m, nullptr));
      if (auto s = (*lt)->Matmul(x, bf16[0], out, false, m, n, k, nullptr); !s.ok()) {
        std::fprintf(stderr, "cuBLASLt m=%d n=%d k=%d: %s\n", m, n, k, std::string(s.message()).c_str());
        return 1;
      }
      CHECK(cudaDeviceSynchronize());

      const auto nvfp4_call = [&](int i) {
        (void)tandem::kernels::Nvfp4Gemm(x, fp4[i % fp4_copies], out, m, nullptr);
      };
      const auto dq_lt_call = [&](int i) {
        (void)tandem::kernels::Nvfp4DequantizeToBf16(fp4[i % fp4_copies], scratch, nullptr);
        (void)(*lt)->Matmul(x, scratch, out, false, m, n, k, nullptr);
      };
      const auto bf16_call = [&](int i) {
        (void)(*lt)->Matmul(x, bf16[i % bf16_copies], out, false, m, n, k, nullptr);
      };
      const double nvfp4_us = gemv ? MedianUs(nvfp4_call, RepsFor(MedianUs(nvfp4_call, 1, 3)), samples) : 0;
      const double dq_lt_us = MedianUs(dq_lt_call, RepsFor(MedianUs(dq_lt_call, 1, 3)), samples);
      const double bf16_us = MedianUs(bf16_call, RepsFor(MedianUs(bf16_call, 1, 3)), samples);
      CHECK(cudaGetLastError());
      const double floor_us = fp4_bytes / (copy_gbs * 1e9) * 1e6;
      const double bf16_gbs = bf16_bytes / (bf16_us * 1e-6) / 1e9;
      if (gemv) {
        const double fp4_gbs = fp4_bytes / (nvfp4_us * 1e-6) / 1e9;
        std::printf("%-8s %6d %6d %5d | %9.2f %7.0f %5.1f%% %8.2f | %8.2f %9.2f | %9.2f %7.0f | %6.2fx\n",
                    shape.name, n, k, m, nvfp4_us, fp4_gbs, 100.0 * fp4_gbs / copy_gbs, floor_us, deq_us,
                    dq_lt_us, bf16_us, bf16_gbs, bf16_us / nvfp4_us);
      } else {  // the GEMV is made for decode; prefill-sized m goes through dq+lt
        std::printf("%-8s %6d %6d %5d | %9s %7s %6s %8.2f | %8.2f %9.2f | %9.2f %7.0f | %6.2fx (dq+lt)\n",
                    shape.name, n, k, m, "-", "-", "-", floor_us, deq_us, dq_lt_us, bf16_us, bf16_gbs,
                    bf16_us / dq_lt_us);
      }
    }
    std::printf("%-8s repack on the host: %.2f s (%.0f M weights/s, one thread)\n", shape.name, repack_s,
                static_cast<double>(n) * k / repack_s / 1e6);
    for (void* p : allocations) CHECK(cudaFree(p));
  }
  return 0;
}
