// NVFP4 weight-only GEMM against the CPU reference: fp32 dequantized weights (model::DequantizeNvfp4)
// times bf16-rounded activations, accumulated in double. The layout tests at the top run without a
// GPU: they push the repacked bytes through the kernels' own bit tricks (compiled for the host) and
// demand the exact dequantized values.
#include "gemm/nvfp4_gemm.cuh"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gemm/nvfp4_layout.cuh"
#include "gmock/gmock.h"
#include "gpu_test_util.h"
#include "tandem/model/nvfp4.h"

namespace tandem {
namespace {

using kernels::Nvfp4Part;
using kernels::Nvfp4Repacked;
using testing::DeviceBuffer;
using ::testing::HasSubstr;

float Bf16BitsToFloat(uint16_t bits) {
  const uint32_t f = static_cast<uint32_t>(bits) << 16;
  float v;
  std::memcpy(&v, &f, 4);
  return v;
}
uint16_t Half(uint32_t word, int h) { return static_cast<uint16_t>(h == 0 ? word & 0xFFFF : word >> 16); }

// A weight of `rows` x k with blocks of very different magnitudes (normal, subnormal and underflowing
// E4M3 scales) and some all-zero blocks, times `gain` (so parts get different scale2).
std::vector<float> RandomWeight(int rows, int k, float gain, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> log2_scale(-20.f, 2.f);
  std::uniform_int_distribution<int> pick(0, 31);
  std::vector<float> w(static_cast<size_t>(rows) * k);
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < k / 16; ++g) {
      const float scale = pick(rng) == 0 ? 0.f : gain * std::exp2(log2_scale(rng));
      for (int i = 0; i < 16; ++i) w[static_cast<size_t>(r) * k + g * 16 + i] = scale * normal(rng);
    }
  }
  return w;
}

// Quantized parts, their fp32 dequantization concatenated [n, k], and the repacked weight.
struct TestWeight {
  std::vector<model::Nvfp4Tensor> parts;
  std::vector<float> dequantized;  // [n, k]
  Nvfp4Repacked repacked;
  int n = 0, k = 0;
};

TestWeight MakeWeight(const std::vector<int>& part_rows, int k, std::mt19937& rng) {
  TestWeight t;
  t.k = k;
  std::vector<Nvfp4Part> views;
  const float gains[] = {1.f, 8.f, 0.05f, 300.f};
  for (size_t i = 0; i < part_rows.size(); ++i) {
    const std::vector<float> w = RandomWeight(part_rows[i], k, gains[i % 4], rng);
    auto q = model::QuantizeNvfp4(w.data(), part_rows[i], k);
    EXPECT_TRUE(q.ok()) << q.status();
    t.parts.push_back(std::move(*q));
    t.n += part_rows[i];
  }
  t.dequantized.resize(static_cast<size_t>(t.n) * k);
  size_t at = 0;
  for (const auto& part : t.parts) {
    EXPECT_TRUE(model::DequantizeNvfp4(part, t.dequantized.data() + at).ok());
    at += static_cast<size_t>(part.rows) * k;
    views.push_back(
        Nvfp4Part{part.packed.data(), part.scales.data(), part.scale2, static_cast<int>(part.rows)});
  }
  const std::string err =
      kernels::Nvfp4RepackForGpu(views.data(), static_cast<int>(views.size()), k, &t.repacked);
  EXPECT_EQ(err, "");
  return t;
}

// ---------------------------------------------------------------------------------------------------
// Layout (CPU only).

TEST(Nvfp4LayoutTest, CodeBitsCoverTheWordOnce) {
  uint32_t seen = 0;
  for (int reg = 0; reg < 4; ++reg) {
    for (int h = 0; h < 2; ++h) {
      const uint32_t bits = kernels::nvfp4::PlaceCode(reg, h, 15);
      EXPECT_EQ(seen & bits, 0u) << reg << "/" << h;
      seen |= bits;
    }
  }
  EXPECT_EQ(seen, 0xFFFFFFFFu);
}

TEST(Nvfp4LayoutTest, CodeExpansionIsExact) {
  for (int reg = 0; reg < 4; ++reg) {
    for (int h = 0; h < 2; ++h) {
      for (int code = 0; code < 16; ++code) {
        uint32_t out[4];
        kernels::nvfp4::ExpandCodes(kernels::nvfp4::PlaceCode(reg, h, static_cast<uint8_t>(code)), out);
        for (int r = 0; r < 4; ++r) {
          for (int hh = 0; hh < 2; ++hh) {
            const float v = Bf16BitsToFloat(Half(out[r], hh));
            const float want =
                (r == reg && hh == h) ? std::ldexp(model::E2M1Value(static_cast<uint8_t>(code)), -126) : 0.f;
            EXPECT_EQ(v, want) << "code " << code << " placed at " << reg << "/" << h << ", read at " << r
                               << "/" << hh;
            EXPECT_EQ(std::signbit(v), r == reg && hh == h && code >= 8);
          }
        }
      }
    }
  }
}

TEST(Nvfp4LayoutTest, ScaleCodesAreExact) {
  std::mt19937 rng(5);
  for (int b = 1; b < 0x7F; ++b) {
    const uint8_t u = kernels::nvfp4::ScaleCode(static_cast<uint8_t>(b));
    for (int j = 0; j < 8; ++j) {
      uint32_t words[2] = {0, 0};
      for (int other = 0; other < 8; ++other) {
        kernels::nvfp4::PlaceScaleCode(words, other, other == j ? u : static_cast<uint8_t>(rng() % 0xF0 + 1));
      }
      uint32_t lo, hi;
      kernels::nvfp4::ExpandScales(words[j / 4], &lo, &hi);
      const uint32_t reg = (j % 4) < 2 ? lo : hi;
      const float v = Bf16BitsToFloat(Half(reg, j % 2));
      EXPECT_EQ(v, std::ldexp(model::E4M3Value(static_cast<uint8_t>(b)), 119))
          << "e4m3 " << b << " tile " << j;
    }
  }
  EXPECT_EQ(kernels::nvfp4::ScaleCode(0x00), 0);
  EXPECT_EQ(kernels::nvfp4::ScaleCode(0x80), 0);
}

// Decodes every lane of every chunk of the repacked weight the way the kernel does (codes times scales
// as exact products, then scale2 * 2^7 in fp32) and compares with the dequantized checkpoint values;
// padding (rows past n, inputs past k) must decode to zero.
TEST(Nvfp4LayoutTest, RepackedTilesDecodeToTheDequantizedWeight) {
  std::mt19937 rng(11);
  const int k = 336;  // 5.25 chunks: the last chunk and the second scale record are partly padding
  TestWeight t = MakeWeight({7, 20, 3}, k, rng);  // n = 30: two row tiles, three parts
  const Nvfp4Repacked& r = t.repacked;
  ASSERT_EQ(r.n, 30);
  ASSERT_EQ(r.codes.size(), 2u * 6 * 512);
  ASSERT_EQ(r.scales.size(), 2u * 2 * 256);
  EXPECT_EQ(r.part_begin[1], 7);
  EXPECT_EQ(r.part_begin[2], 27);
  int zero_scales = 0, subnormal_scales = 0;
  for (const auto& part : t.parts) {
    for (uint8_t sc : part.scales) {
      zero_scales += sc == 0;
      subnormal_scales += sc > 0 && sc < 8;
    }
  }
  EXPECT_GT(zero_scales, 0) << "the weight should have blocks whose scale underflowed";
  EXPECT_GT(subnormal_scales, 0);
  int checked = 0;
  for (int tile = 0; tile < 2; ++tile) {
    for (int chunk = 0; chunk < 6; ++chunk) {
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, tq = lane % 4;
        uint32_t words[4], scale_words[2];
        std::memcpy(words, r.codes.data() + (static_cast<size_t>(tile) * 6 + chunk) * 512 + lane * 16, 16);
        std::memcpy(scale_words, r.scales.data() + (static_cast<size_t>(tile) * 2 + chunk / 4) * 256 + lane * 8, 8);
        uint32_t sc[2];
        kernels::nvfp4::ExpandScales(scale_words[(chunk % 4) / 2], &sc[0], &sc[1]);
        for (int i = 0; i < 4; ++i) {
          uint32_t e[4];
          kernels::nvfp4::ExpandCodes(words[i], e);
          for (int reg = 0; reg < 4; ++reg) {
            const int row = tile * 16 + g + 8 * (reg % 2);
            const float scale = Bf16BitsToFloat(Half(sc[chunk % 2], reg % 2));
            for (int h = 0; h < 2; ++h) {
              const int kk = chunk * 64 + 16 * tq + 4 * i + 2 * (reg / 2) + h;
              const kernels::nvfp4::CodeSlot slot = kernels::nvfp4::CodeSlotOf(row % 16, kk % 64);
              EXPECT_TRUE(slot.lane == lane && slot.word == i && slot.reg == reg && slot.half == h);
              const float product = Bf16BitsToFloat(Half(e[reg], h)) * scale;  // exact, as the bf16 multiply
              if (row >= r.n || kk >= k) {
                EXPECT_EQ(product, 0.f) << "padding [" << row << ", " << kk << "]";
                continue;
              }
              const int part = row >= r.part_begin[2] ? 2 : row >= r.part_begin[1] ? 1 : 0;
              const float got = product * (r.part_scale2[part] * kernels::nvfp4::kKernelScale);
              const float want = t.dequantized[static_cast<size_t>(row) * k + kk];
              EXPECT_EQ(got, want) << "[" << row << ", " << kk << "]";
              EXPECT_EQ(std::signbit(got), std::signbit(want)) << "[" << row << ", " << kk << "]";
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 30 * k);
}

TEST(Nvfp4LayoutTest, RepackRejectsBadInput) {
  std::vector<uint8_t> packed(64 * 8, 0), scales(64, 0x38);
  Nvfp4Part part{packed.data(), scales.data(), 0.5f, 4};
  Nvfp4Repacked out;
  EXPECT_THAT(kernels::Nvfp4RepackForGpu(&part, 1, 40, &out),
              HasSubstr("multiple of 16 (one E4M3 scale per 16 inputs); found 40"));
  EXPECT_THAT(kernels::Nvfp4RepackForGpu(&part, 0, 32, &out), HasSubstr("expected 1 to 4 parts; found 0"));
  scales[5] = 0x7F;  // row 2, group 1 of k = 32
  EXPECT_THAT(kernels::Nvfp4RepackForGpu(&part, 1, 32, &out),
              HasSubstr("part 0 row 2 group 1 has scale byte 127 (NaN)"));
  scales[5] = 0xB8;  // -1.0
  EXPECT_THAT(kernels::Nvfp4RepackForGpu(&part, 1, 32, &out), HasSubstr("(negative)"));
  scales[5] = 0x38;
  part.scale2 = -1.f;
  EXPECT_THAT(kernels::Nvfp4RepackForGpu(&part, 1, 32, &out), HasSubstr("has scale2 -1"));
  part.scale2 = 0.5f;
  EXPECT_EQ(kernels::Nvfp4RepackForGpu(&part, 1, 32, &out), "");
}

// ---------------------------------------------------------------------------------------------------
// GPU.

struct DeviceWeight {
  explicit DeviceWeight(const Nvfp4Repacked& r) : codes(r.codes.size()), scales(r.scales.size()) {
    ok =
        codes.ok() && scales.ok() &&
        cudaMemcpy(codes.as<void>(), r.codes.data(), r.codes.size(), cudaMemcpyHostToDevice) == cudaSuccess &&
        cudaMemcpy(scales.as<void>(), r.scales.data(), r.scales.size(), cudaMemcpyHostToDevice) ==
            cudaSuccess;
    view = kernels::Nvfp4DeviceView(r, codes.as<void>(), scales.as<void>());
  }
  DeviceBuffer codes, scales;
  kernels::Nvfp4Weight view;
  bool ok = false;
};

struct GemmCase {
  int m;
  std::vector<int> part_rows;  // n = their sum
  int k;
};

std::string CaseName(const ::testing::TestParamInfo<GemmCase>& info) {
  std::string name = "m";
  name += std::to_string(info.param.m);
  name += "_n";
  for (size_t i = 0; i < info.param.part_rows.size(); ++i) {
    if (i > 0) name += "p";
    name += std::to_string(info.param.part_rows[i]);
  }
  name += "_k";
  name += std::to_string(info.param.k);
  return name;
}

class Nvfp4GemmTest : public ::testing::TestWithParam<GemmCase> {};

// Tolerance per element: |got - ref| <= |ref| / 256 (bf16 output rounding, half an ulp of 8 significant
// bits) + 1e-4 * sum_k |x w| (fp32 accumulation over up to 257 mma steps, split-K and cross-warp sums,
// rounding or truncating; a wrong scale on a single 16-input group moves a k = 4112 result by ~4e-3 of
// that sum, so the check still sees one). Plus the relative L2 error of everything checked < 3e-3.
TEST_P(Nvfp4GemmTest, MatchesReference) {
  TANDEM_REQUIRE_GPU();
  const GemmCase& c = GetParam();
  std::mt19937 rng(1000 + c.m * 7 + c.k);
  TestWeight w = MakeWeight(c.part_rows, c.k, rng);
  const int m = c.m, n = w.n, k = c.k;
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<__nv_bfloat16> x(static_cast<size_t>(m) * k);
  for (auto& v : x) v = __float2bfloat16(normal(rng));

  DeviceWeight dw(w.repacked);
  ASSERT_TRUE(dw.ok);
  DeviceBuffer dx(x.size() * 2), dout(static_cast<size_t>(m) * n * 2);
  ASSERT_TRUE(dx.ok() && dout.ok());
  TANDEM_CUDA_ASSERT(cudaMemcpy(dx.as<void>(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  TANDEM_CUDA_ASSERT(cudaMemset(dout.as<void>(), 0xFF, static_cast<size_t>(m) * n * 2));  // poison: NaN

  TANDEM_CUDA_ASSERT(kernels::Nvfp4Gemm(dx.as<__nv_bfloat16>(), dw.view, dout.as<__nv_bfloat16>(), m, nullptr));
  TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
  std::vector<uint16_t> got(static_cast<size_t>(m) * n);
  TANDEM_CUDA_ASSERT(cudaMemcpy(got.data(), dout.as<void>(), got.size() * 2, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(Bf16BitsToFloat(got[i]))) << "out[" << i / n << ", " << i % n << "] not written";
  }

  // Rows to check: all, or for large problems the block edges and a random sample.
  std::vector<int> rows;
  if (static_cast<double>(m) * n * k <= 4e9) {
    for (int r = 0; r < m; ++r) rows.push_back(r);
  } else {
    std::set<int> pick = {0, 1, 15, 16, 17, 63, 64, m / 2, m - 65, m - 64, m - 2, m - 1};
    std::uniform_int_distribution<int> any(0, m - 1);
    while (pick.size() < 40) pick.insert(any(rng));
    rows.assign(pick.begin(), pick.end());
  }
  double err2 = 0, ref2 = 0;
  int bad = 0;
  std::vector<float> xf(k);
  for (int r : rows) {
    for (int i = 0; i < k; ++i) xf[i] = __bfloat162float(x[static_cast<size_t>(r) * k + i]);
    for (int col = 0; col < n; ++col) {
      const float* wr = w.dequantized.data() + static_cast<size_t>(col) * k;
      double ref = 0, sum_abs = 0;
      for (int i = 0; i < k; ++i) {
        const double p = static_cast<double>(xf[i]) * wr[i];
        ref += p;
        sum_abs += std::fabs(p);
      }
      const double g = Bf16BitsToFloat(got[static_cast<size_t>(r) * n + col]);
      const double tol = std::fabs(ref) / 256 + 1e-4 * sum_abs;
      err2 += (g - ref) * (g - ref);
      ref2 += ref * ref;
      if (std::fabs(g - ref) > tol && ++bad <= 10) {
        ADD_FAILURE() << "out[" << r << ", " << col << "] = " << g << ", reference " << ref << " (tolerance "
                      << tol << ")";
      }
    }
  }
  EXPECT_EQ(bad, 0);
  EXPECT_LT(std::sqrt(err2 / std::max(ref2, 1e-30)), 3e-3);

  // A second launch gives the same bits: the warps' sums meet in a fixed order.
  TANDEM_CUDA_ASSERT(cudaMemset(dout.as<void>(), 0xFF, static_cast<size_t>(m) * n * 2));
  TANDEM_CUDA_ASSERT(kernels::Nvfp4Gemm(dx.as<__nv_bfloat16>(), dw.view, dout.as<__nv_bfloat16>(), m, nullptr));
  std::vector<uint16_t> again(got.size());
  TANDEM_CUDA_ASSERT(cudaMemcpy(again.data(), dout.as<void>(), again.size() * 2, cudaMemcpyDeviceToHost));
  EXPECT_TRUE(again == got) << "second launch differs";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Nvfp4GemmTest,
    ::testing::Values(GemmCase{1, {4100}, 4112},        // n and k not tile multiples (k: 64.25 chunks)
                      GemmCase{3, {64}, 16},            // one scale group
                      GemmCase{1, {28672}, 64},         // many row tiles, one chunk
                      GemmCase{7, {96, 32, 40}, 2064},  // fused q/k/v-like parts, each its own scale2
                      GemmCase{8, {4096}, 14336},       // down_proj-like: 56 scale records
                      GemmCase{16, {4100}, 4112}, GemmCase{17, {200}, 4112},  // two and four n8 tiles
                      GemmCase{32, {130, 130}, 1040},
                      GemmCase{33, {130}, 64}, GemmCase{64, {6144}, 4096},  // eight n8 tiles
                      GemmCase{65, {100}, 1024},  // two blocks along m, the second with one row
                      GemmCase{128, {4100}, 512}, GemmCase{4096, {72}, 272},
                      GemmCase{4096, {4100}, 4112}),  // sampled rows
    CaseName);

// The prefill path dequantizes into bf16: bit-identical to the CPU's fp32 dequantization rounded to
// bf16, signed zeros included (a zero-scale block keeps its codes' signs).
TEST(Nvfp4GemmTest, DequantizeToBf16IsExact) {
  TANDEM_REQUIRE_GPU();
  std::mt19937 rng(21);
  TestWeight w = MakeWeight({2050, 2050}, 4112, rng);  // gate/up-like: two parts, k off the chunks
  DeviceWeight dw(w.repacked);
  ASSERT_TRUE(dw.ok);
  const size_t count = static_cast<size_t>(w.n) * w.k;
  DeviceBuffer out(count * 2);
  ASSERT_TRUE(out.ok());
  TANDEM_CUDA_ASSERT(cudaMemset(out.as<void>(), 0xFF, count * 2));
  TANDEM_CUDA_ASSERT(kernels::Nvfp4DequantizeToBf16(dw.view, out.as<__nv_bfloat16>(), nullptr));
  TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
  std::vector<uint16_t> got(count);
  TANDEM_CUDA_ASSERT(cudaMemcpy(got.data(), out.as<void>(), count * 2, cudaMemcpyDeviceToHost));
  int bad = 0;
  for (size_t i = 0; i < count; ++i) {
    const __nv_bfloat16 want = __float2bfloat16(w.dequantized[i]);
    uint16_t want_bits;
    std::memcpy(&want_bits, &want, 2);
    if (got[i] != want_bits && ++bad <= 10) {
      ADD_FAILURE() << "[" << i / w.k << ", " << i % w.k << "]: got bits " << got[i] << ", want " << want_bits
                    << " (" << w.dequantized[i] << ")";
    }
  }
  EXPECT_EQ(bad, 0);
}

// Decode steps are replayed from CUDA graphs: a captured GEMM must give what a direct launch gives.
TEST(Nvfp4GemmTest, CapturedInACudaGraph) {
  TANDEM_REQUIRE_GPU();
  std::mt19937 rng(3);
  TestWeight w = MakeWeight({4096}, 4096, rng);
  const int m = 1;
  DeviceWeight dw(w.repacked);
  ASSERT_TRUE(dw.ok);
  std::vector<__nv_bfloat16> x(w.k);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (auto& v : x) v = __float2bfloat16(normal(rng));
  DeviceBuffer dx(x.size() * 2), direct(w.n * 2), captured(w.n * 2);
  ASSERT_TRUE(dx.ok() && direct.ok() && captured.ok());
  TANDEM_CUDA_ASSERT(cudaMemcpy(dx.as<void>(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  TANDEM_CUDA_ASSERT(kernels::Nvfp4Gemm(dx.as<__nv_bfloat16>(), dw.view, direct.as<__nv_bfloat16>(), m, nullptr));

  cudaStream_t stream;
  TANDEM_CUDA_ASSERT(cudaStreamCreate(&stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  TANDEM_CUDA_ASSERT(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));  // as the runner
  const cudaError_t launch =
      kernels::Nvfp4Gemm(dx.as<__nv_bfloat16>(), dw.view, captured.as<__nv_bfloat16>(), m, stream);
  TANDEM_CUDA_ASSERT(cudaStreamEndCapture(stream, &graph));
  TANDEM_CUDA_ASSERT(launch);
  TANDEM_CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < 3; ++i) {
    TANDEM_CUDA_ASSERT(cudaMemsetAsync(captured.as<void>(), 0xFF, w.n * 2, stream));
    TANDEM_CUDA_ASSERT(cudaGraphLaunch(exec, stream));
  }
  TANDEM_CUDA_ASSERT(cudaStreamSynchronize(stream));
  std::vector<uint16_t> a(w.n), b(w.n);
  TANDEM_CUDA_ASSERT(cudaMemcpy(a.data(), direct.as<void>(), w.n * 2, cudaMemcpyDeviceToHost));
  TANDEM_CUDA_ASSERT(cudaMemcpy(b.data(), captured.as<void>(), w.n * 2, cudaMemcpyDeviceToHost));
  EXPECT_TRUE(a == b);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(Nvfp4GemmTest, RejectsUnsupportedArguments) {
  TANDEM_REQUIRE_GPU();
  std::mt19937 rng(4);
  TestWeight w = MakeWeight({4096}, 4096, rng);
  DeviceWeight dw(w.repacked);
  ASSERT_TRUE(dw.ok);
  DeviceBuffer x(4096 * 2 * 2), out(4096 * 2 * 2);
  ASSERT_TRUE(x.ok() && out.ok());
  // x not 16-byte aligned.
  EXPECT_EQ(kernels::Nvfp4Gemm(x.as<__nv_bfloat16>() + 1, dw.view, out.as<__nv_bfloat16>(), 1, nullptr),
            cudaErrorInvalidValue);
  kernels::Nvfp4Weight bad = dw.view;
  bad.k = 4104;
  EXPECT_EQ(kernels::Nvfp4Gemm(x.as<__nv_bfloat16>(), bad, out.as<__nv_bfloat16>(), 1, nullptr),
            cudaErrorInvalidValue);
  bad = dw.view;
  bad.codes += 8;  // not 16-byte aligned
  EXPECT_EQ(kernels::Nvfp4Gemm(x.as<__nv_bfloat16>(), bad, out.as<__nv_bfloat16>(), 1, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::Nvfp4Gemm(x.as<__nv_bfloat16>(), dw.view, out.as<__nv_bfloat16>(), -1, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(kernels::Nvfp4Gemm(x.as<__nv_bfloat16>(), dw.view, out.as<__nv_bfloat16>(), 0, nullptr),
            cudaSuccess);  // m = 0: nothing to do
}

}  // namespace
}  // namespace tandem
