#include "tandem/backend/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cpu_attention.h"
#include "cpu_dot.h"
#include "cpu_matmul.h"
#include "cpu_thread_pool.h"

namespace tandem::backend {
namespace {

class HostBuffer final : public Buffer {
 public:
  HostBuffer(void* data, size_t size) : data_(data), size_(size) {}
  ~HostBuffer() override { std::free(data_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  void* data() override { return data_; }
  const void* data() const override { return data_; }
  size_t size() const override { return size_; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }

 private:
  void* data_;
  size_t size_;
};

// Rows per parallel chunk for the cheap row-wise ops; below this many elements they run on one thread.
constexpr int64_t kParallelElements = 1 << 15;

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int num_threads) : pool_(num_threads) {}

  std::string_view name() const override { return "cpu"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }

  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override {
    const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("cpu backend: cannot allocate ", bytes, " bytes"));
    }
    return std::make_unique<HostBuffer>(p, bytes);
  }
  absl::Status CopyFromHost(void* dst, const void* host_src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, host_src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* host_dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(host_dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  bool SupportsWeightFormat(WeightFormat format) const override {
    switch (format) {
      case WeightFormat::kF32:
        return true;
      case WeightFormat::kQ4_1:
      case WeightFormat::kQ8_0:
        return TANDEM_CPU_AVX2 != 0;
    }
    return false;
  }

  void Embedding(const int32_t* ids, int n, const float* table, int dim, float* out) override {
    for (int t = 0; t < n; ++t) {
      std::memcpy(out + static_cast<int64_t>(t) * dim, table + static_cast<int64_t>(ids[t]) * dim,
                  sizeof(float) * static_cast<size_t>(dim));
    }
  }

  void RmsNorm(const float* x, const float* weight, int n, int dim, float eps, float* out) override {
    Rows(n, dim, [&](int64_t t) { NormRow(x + t * dim, weight, dim, eps, out + t * dim); });
  }

  void AddRmsNorm(float* residual, const float* x, const float* weight, int n, int dim, float eps,
                  float* out) override {
    Rows(n, dim, [&](int64_t t) {
      float* r = residual + t * dim;
      const float* xr = x + t * dim;
      for (int i = 0; i < dim; ++i) r[i] += xr[i];
      NormRow(r, weight, dim, eps, out + t * dim);
    });
  }

  void MatMul(const float* x, int n, const Matrix& w, float* out) override {
    cpu::MatMul(x, n, w, out, pool_);
  }

  void AddBias(float* x, int n, int ld, int dim, const float* bias) override {
    for (int t = 0; t < n; ++t) {
      float* r = x + static_cast<int64_t>(t) * ld;
      for (int i = 0; i < dim; ++i) r[i] += bias[i];
    }
  }

  void HeadRmsNorm(float* x, int n, int ld, int num_heads, int head_dim, const float* weight,
                   float eps) override {
    for (int t = 0; t < n; ++t) {
      for (int h = 0; h < num_heads; ++h) {
        float* v = x + static_cast<int64_t>(t) * ld + static_cast<int64_t>(h) * head_dim;
        NormRow(v, weight, head_dim, eps, v);
      }
    }
  }

  void RotaryTable(const int32_t* positions, int n, const float* inv_freq, int head_dim,
                   float* cos_sin) override {
    const int half = head_dim / 2;
    for (int t = 0; t < n; ++t) {
      float* row = cos_sin + static_cast<int64_t>(t) * head_dim;
      const float pos = static_cast<float>(positions[t]);
      for (int i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];  // fp32, as Hugging Face computes it
        row[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        row[half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
    }
  }

  void Rotary(float* x, int n, int ld, int num_heads, int head_dim, const float* cos_sin) override {
    const int half = head_dim / 2;
    for (int t = 0; t < n; ++t) {
      const float* c = cos_sin + static_cast<int64_t>(t) * head_dim;
      const float* s = c + half;
      for (int h = 0; h < num_heads; ++h) {
        float* v = x + static_cast<int64_t>(t) * ld + static_cast<int64_t>(h) * head_dim;
        for (int i = 0; i < half; ++i) {
          const float a = v[i], b = v[half + i];
          // x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].
          v[i] = a * c[i] - b * s[i];
          v[half + i] = b * c[i] + a * s[i];
        }
      }
    }
  }

  void WriteKv(const float* k, const float* v, int ld, const BatchView& batch, KvPool& cache,
               int layer) override {
    cpu::WriteKv(k, v, ld, batch, cache, layer);
  }

  void PagedAttention(const float* q, int ld_q, const BatchView& batch, const KvPool& cache, int layer,
                      int num_heads, float scale, float* out) override {
    cpu::PagedAttention(q, ld_q, batch, cache, layer, num_heads, scale, out, pool_);
  }

  void SiluMul(const float* gate_up, int n, int inter, float* out) override {
    Rows(n, inter, [&](int64_t t) {
      const float* g = gate_up + t * 2 * inter;
      const float* u = g + inter;
      float* o = out + t * inter;
      for (int i = 0; i < inter; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    });
  }

  void GatherRows(const float* x, int dim, const int32_t* rows, int m, float* out) override {
    for (int i = 0; i < m; ++i) {
      std::memcpy(out + static_cast<int64_t>(i) * dim, x + static_cast<int64_t>(rows[i]) * dim,
                  sizeof(float) * static_cast<size_t>(dim));
    }
  }

 private:
  static void NormRow(const float* x, const float* weight, int dim, float eps, float* out) {
    const float ss = cpu::Dot(x, x, dim);
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (int i = 0; i < dim; ++i) out[i] = weight[i] * (x[i] * r);
  }

  // Runs fn(row) for rows [0, n): on the pool when there is enough work, else inline.
  void Rows(int n, int dim, const std::function<void(int64_t)>& fn) {
    if (static_cast<int64_t>(n) * dim < kParallelElements) {
      for (int64_t t = 0; t < n; ++t) fn(t);
    } else {
      pool_.ParallelFor(n, fn);
    }
  }

  cpu::ThreadPool pool_;
};

}  // namespace

const char* CpuKernelIsa() { return TANDEM_CPU_AVX2 ? "avx2+fma" : "portable"; }

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const CpuBackendOptions& options) {
#if TANDEM_CPU_AVX2
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    return absl::FailedPreconditionError(
        "cpu backend: this build uses AVX2/FMA kernels but the CPU lacks avx2 or fma; rebuild with "
        "-DTANDEM_CPU_AVX2=OFF");
  }
#endif
  int threads = options.num_threads;
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cpu backend: num_threads must be >= 0, got ", threads));
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace tandem::backend
