// kernels::PagedAttention: decode against the measured copy ceiling (KV bytes read per second next
// to a 1 GiB cudaMemcpy D2D, read + written bytes counted), causal prefill against the measured
// tensor-core ceiling (an 8192^3 bf16 cuBLAS GEMM with fp32 accumulation). Pools hold a constant bf16
// pattern (timing does not depend on values); block tables are a random permutation of the pool.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention/paged_attention.cuh"
#include "kernel_bench.h"

#define CHECK_STR(expr)                                                             \
  do {                                                                              \
    const std::string e = (expr);                                                   \
    if (!e.empty()) {                                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, e.c_str()); \
      return 1;                                                                     \
    }                                                                               \
  } while (0)

namespace {

using tandem::kernels::AttentionGeometry;
using tandem::kernels::PagedAttention;

struct Case {
  const char* model;
  AttentionGeometry g;
  int batch;
  int qo_len;  // 1: decode
  int kv_len;
};

// Plans and times one case; prints a row. Returns 0 on success.
int RunCase(const Case& c, double copy_gbs, double gemm_tflops) {
  const AttentionGeometry& g = c.g;
  const int blocks_per_seq = (c.kv_len + g.block_size - 1) / g.block_size;
  const int num_blocks = c.batch * blocks_per_seq;
  const int num_tokens = c.batch * c.qo_len;
  const size_t pool_elems = size_t{2} * num_blocks * g.num_kv_heads * g.block_size * g.head_dim;
  const int ld_q = g.num_qo_heads * g.head_dim;
  const size_t q_elems = size_t(num_tokens) * ld_q;

  std::vector<int32_t> qo_indptr{0}, kv_indptr{0}, kv_indices(static_cast<size_t>(num_blocks)), last_page_len;
  std::iota(kv_indices.begin(), kv_indices.end(), 0);
  std::mt19937 rng(11);
  std::shuffle(kv_indices.begin(), kv_indices.end(), rng);
  for (int s = 0; s < c.batch; ++s) {
    qo_indptr.push_back(qo_indptr.back() + c.qo_len);
    kv_indptr.push_back(kv_indptr.back() + blocks_per_seq);
    last_page_len.push_back(c.kv_len - (blocks_per_seq - 1) * g.block_size);
  }

  __nv_bfloat16 *pool = nullptr, *q = nullptr, *out = nullptr;
  CHECK(cudaMalloc(&pool, pool_elems * 2));
  CHECK(cudaMalloc(&q, q_elems * 2));
  CHECK(cudaMalloc(&out, q_elems * 2));
  CHECK(cudaMemset(pool, 0x3C, pool_elems * 2));  // bf16 0x3C3C ~ 0.0115
  CHECK(cudaMemset(q, 0x3C, q_elems * 2));

  std::unique_ptr<PagedAttention> attn;
  CHECK_STR(PagedAttention::Create(g, std::max(num_tokens, 1), c.batch, num_blocks, &attn));
  const float scale = 1.f / std::sqrt(static_cast<float>(g.head_dim));
  const bool decode = c.qo_len == 1;
  // Decode shapes run five ways: tandem's decode kernel and FlashInfer's, each with the eager plan and
  // the graph plan, and the sm90 prefill kernel (what engine.batch_invariant uses for decode steps).
  for (int mode = 0; mode < (decode ? 5 : 1); ++mode) {
    const bool graph_mode = mode == 1 || mode == 3;
    attn->set_flashinfer_decode(mode == 2 || mode == 3);
    attn->set_prefill_only(mode == 4);
    // Host time of Plan (validation, copies, FlashInfer's scheduler), median of 20.
    std::vector<double> plan_us;
    for (int i = 0; i < 20; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      CHECK_STR(attn->Plan(qo_indptr.data(), kv_indptr.data(), kv_indices.data(), last_page_len.data(),
                           c.batch, graph_mode, nullptr));
      plan_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(plan_us.begin(), plan_us.end());
    CHECK(cudaDeviceSynchronize());
    std::string err;
    const float ms = tandem::bench::MedianMs([&] { err = attn->Run(q, ld_q, pool, out, scale, nullptr); }, 30);
    CHECK_STR(err);
    CHECK(cudaDeviceSynchronize());
    const char* kernel = tandem::kernels::AttentionKernelName(attn->planned_kernel());
    if (decode) {
      const double bytes = double(c.batch) * c.kv_len * 2.0 * g.num_kv_heads * g.head_dim * 2.0;
      const double gbs = bytes / (ms * 1e-3) / 1e9;
      std::printf("%-10s %-13s %5d %6d %6d %-5s %9.1f %9.1f %9.0f GB/s %6.1f%%\n", c.model, kernel, c.batch,
                  c.qo_len, c.kv_len, graph_mode ? "graph" : "-", plan_us[plan_us.size() / 2], ms * 1e3, gbs,
                  100.0 * gbs / copy_gbs);
    } else {
      // Causal: row i of a sequence attends to kv_len - qo_len + i + 1 keys; 2 matmuls, 2 FLOP/MAC.
      double keys = 0;
      for (int i = 0; i < c.qo_len; ++i) keys += c.kv_len - c.qo_len + i + 1;
      const double flops = 4.0 * c.batch * g.num_qo_heads * g.head_dim * keys;
      const double tflops = flops / (ms * 1e-3) / 1e12;
      std::printf("%-10s %-13s %5d %6d %6d %-5s %9.1f %9.1f %9.1f TF/s %6.1f%%\n", c.model, kernel, c.batch,
                  c.qo_len, c.kv_len, "-", plan_us[plan_us.size() / 2], ms * 1e3, tflops,
                  100.0 * tflops / gemm_tflops);
    }
  }
  attn.reset();
  CHECK(cudaFree(pool));
  CHECK(cudaFree(q));
  CHECK(cudaFree(out));
  return 0;
}

// TFLOP/s of an n^3 bf16 GEMM (fp32 accumulation) through cuBLAS, or -1 on error.
double GemmCeiling(int n) {
  cublasHandle_t handle = nullptr;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) return -1;
  __nv_bfloat16 *a = nullptr, *b = nullptr, *c = nullptr;
  const size_t bytes = size_t(n) * n * 2;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess ||
      cudaMalloc(&c, bytes) != cudaSuccess) {
    return -1;
  }
  cudaMemset(a, 0x3C, bytes);
  cudaMemset(b, 0x3C, bytes);
  const float alpha = 1.f, beta = 0.f;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  const float ms = tandem::bench::MedianMs(
      [&] {
        status =
            cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF,
                         n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      },
      10);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cublasDestroy(handle);
  if (status != CUBLAS_STATUS_SUCCESS) return -1;
  return 2.0 * n * n * double(n) / (ms * 1e-3) / 1e12;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("attention_bench: no CUDA device, nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbs = tandem::bench::CopyBandwidth() / 1e9;
  const double gemm_tflops = GemmCeiling(8192);
  std::printf(
      "device: %s, copy ceiling %.0f GB/s (1 GiB D2D, read+write), bf16 GEMM ceiling %.1f TFLOP/s "
      "(cuBLAS 8192^3)\n",
      prop.name, copy_gbs, gemm_tflops);
  std::printf("%-10s %-13s %5s %6s %6s %-5s %9s %9s %14s %7s\n", "model", "kernel", "batch", "qo", "kv",
              "plan", "plan_us", "run_us", "achieved", "%ceil");

  const AttentionGeometry llama{32, 8, 128, 16}, smollm{9, 3, 64, 16};
  const Case cases[] = {
      {"llama3-8b", llama, 64, 1, 4096},  // the decode yardstick: 1 GiB of KV per layer
      {"llama3-8b", llama, 1, 1, 4096},    {"llama3-8b", llama, 8, 1, 32768},
      {"llama3-8b", llama, 256, 1, 1024},  {"llama3-8b", llama, 64, 1, 1024},
      {"llama3-8b", llama, 8, 1, 1024},    {"llama3-8b", llama, 1, 1, 1024},
      {"smollm2", smollm, 64, 1, 4096},
      {"llama3-8b", llama, 1, 8192, 8192},  // the prefill yardstick: causal 8K
      {"llama3-8b", llama, 4, 2048, 2048}, {"llama3-8b", llama, 1, 512, 8192},  // a chunk on a long cache
      {"smollm2", smollm, 1, 8192, 8192},
  };
  for (const Case& c : cases) {
    if (RunCase(c, copy_gbs, gemm_tflops) != 0) return 1;
  }
  return 0;
}
