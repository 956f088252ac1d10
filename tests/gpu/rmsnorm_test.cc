// RMSNorm kernels against a CPU reference in double that rounds where the kernel must (bf16 storage).
#include <cuda_bf16.h>

#include <cmath>
#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "norm/rmsnorm.cuh"

namespace tandem {
namespace {

using testing::DeviceBuffer;

float Bf16Round(float v) { return __bfloat162float(__float2bfloat16(v)); }

std::vector<__nv_bfloat16> RandomBf16(std::size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<__nv_bfloat16> out(n);
  for (auto& v : out) v = __float2bfloat16(dist(rng));
  return out;
}

// Returns (out, updated residual) on the CPU.
void Reference(const std::vector<__nv_bfloat16>& x, std::vector<__nv_bfloat16>* residual,
               const std::vector<__nv_bfloat16>& w, std::vector<float>* out, int tokens, int hidden, float eps) {
  out->assign(static_cast<std::size_t>(tokens) * hidden, 0.f);
  for (int t = 0; t < tokens; ++t) {
    std::vector<float> h(hidden);
    double sum_sq = 0;
    for (int i = 0; i < hidden; ++i) {
      const std::size_t k = static_cast<std::size_t>(t) * hidden + i;
      float v = __bfloat162float(x[k]);
      if (residual != nullptr) {
        v = Bf16Round(v + __bfloat162float((*residual)[k]));
        (*residual)[k] = __float2bfloat16(v);
      }
      h[i] = v;
      sum_sq += static_cast<double>(v) * v;
    }
    const double inv_rms = 1.0 / std::sqrt(sum_sq / hidden + eps);
    for (int i = 0; i < hidden; ++i) {
      const float n = Bf16Round(static_cast<float>(h[i] * inv_rms));
      (*out)[static_cast<std::size_t>(t) * hidden + i] = n * __bfloat162float(w[i]);
    }
  }
}

class RmsNormTest : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(RmsNormTest, MatchesReference) {
  TANDEM_REQUIRE_GPU();
  const auto [tokens, hidden, fused] = GetParam();
  const float eps = 1e-5f;
  std::mt19937 rng(1234 + tokens * 31 + hidden);
  const std::size_t n = static_cast<std::size_t>(tokens) * hidden;
  auto x = RandomBf16(n, rng, 2.f);
  auto residual = RandomBf16(n, rng, 1.f);
  auto w = RandomBf16(hidden, rng, 1.f);

  DeviceBuffer dx(n * 2), dres(n * 2), dw(hidden * 2), dout(n * 2);
  ASSERT_TRUE(dx.ok() && dres.ok() && dw.ok() && dout.ok());
  TANDEM_CUDA_ASSERT(cudaMemcpy(dx.as<void>(), x.data(), n * 2, cudaMemcpyHostToDevice));
  TANDEM_CUDA_ASSERT(cudaMemcpy(dres.as<void>(), residual.data(), n * 2, cudaMemcpyHostToDevice));
  TANDEM_CUDA_ASSERT(cudaMemcpy(dw.as<void>(), w.data(), hidden * 2, cudaMemcpyHostToDevice));
  TANDEM_CUDA_ASSERT(cudaMemset(dout.as<void>(), 0xFF, n * 2));  // poison: NaN bf16

  if (fused) {
    TANDEM_CUDA_ASSERT(kernels::FusedAddRmsNorm(dx.as<__nv_bfloat16>(), dres.as<__nv_bfloat16>(),
                                                dw.as<__nv_bfloat16>(), dout.as<__nv_bfloat16>(), tokens, hidden,
                                                eps, nullptr));
  } else {
    TANDEM_CUDA_ASSERT(kernels::RmsNorm(dx.as<__nv_bfloat16>(), dw.as<__nv_bfloat16>(), dout.as<__nv_bfloat16>(),
                                        tokens, hidden, eps, nullptr));
  }
  TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
  std::vector<__nv_bfloat16> got(n), got_res(n);
  TANDEM_CUDA_ASSERT(cudaMemcpy(got.data(), dout.as<void>(), n * 2, cudaMemcpyDeviceToHost));
  TANDEM_CUDA_ASSERT(cudaMemcpy(got_res.data(), dres.as<void>(), n * 2, cudaMemcpyDeviceToHost));

  std::vector<float> want;
  Reference(x, fused ? &residual : nullptr, w, &want, tokens, hidden, eps);
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float g = __bfloat162float(got[i]);
    ASSERT_FALSE(std::isnan(g)) << "element " << i << " not written";
    err += (g - want[i]) * (g - want[i]);
    ref += want[i] * want[i];
    if (fused) {
      ASSERT_EQ(__bfloat162float(got_res[i]), __bfloat162float(residual[i])) << "residual " << i;
    }
  }
  // bf16 output rounding only: relative L2 error well under 1e-2.
  EXPECT_LT(std::sqrt(err / ref), 4e-3) << tokens << "x" << hidden;
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormTest,
                         ::testing::Combine(::testing::Values(1, 17, 97), ::testing::Values(8, 576, 4096, 8200),
                                            ::testing::Bool()));

TEST(RmsNormTest, RejectsUnsupportedHidden) {
  TANDEM_REQUIRE_GPU();
  DeviceBuffer buf(4096);
  EXPECT_EQ(kernels::RmsNorm(buf.as<__nv_bfloat16>(), buf.as<__nv_bfloat16>(), buf.as<__nv_bfloat16>(), 1, 12, 1e-5f,
                             nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace tandem
