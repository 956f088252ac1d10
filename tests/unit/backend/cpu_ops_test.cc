// Each CPU backend op against a naive double-precision reference, at awkward sizes, with outputs
// poisoned (NaN) first so an element the op forgot to write fails.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/core/tensor.h"
#include "tandem/model/gguf_types.h"

namespace tandem::backend {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::unique_ptr<Backend> MakeBackend(int threads = 0) {
  auto backend = CreateCpuBackend({.num_threads = threads});
  EXPECT_TRUE(backend.ok()) << backend.status();
  return std::move(backend).value();
}

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want, double rel) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 1e-6;
  for (double w : want) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "element " << i << " not written";
    ASSERT_NEAR(got[i], want[i], rel * scale) << "element " << i;
  }
}

class MatMulTest : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(MatMulTest, MatchesNaiveReference) {
  const auto [n, rows, k] = GetParam();
  auto backend = MakeBackend();
  const std::vector<float> x = Random(static_cast<size_t>(n) * k, 1);
  const std::vector<float> w = Random(static_cast<size_t>(rows) * k, 2);
  std::vector<float> out(static_cast<size_t>(n) * rows, kNaN);
  backend->MatMul(x.data(), n, Matrix{w.data(), rows, k}, out.data());
  std::vector<double> want(out.size());
  for (int t = 0; t < n; ++t)
    for (int r = 0; r < rows; ++r) {
      double s = 0;
      for (int i = 0; i < k; ++i) s += double{x[static_cast<size_t>(t) * k + i]} * w[static_cast<size_t>(r) * k + i];
      want[static_cast<size_t>(t) * rows + r] = s;
    }
  ExpectClose(out, want, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(AwkwardSizes, MatMulTest,
                         ::testing::Combine(::testing::Values(1, 2, 3, 17), ::testing::Values(1, 17, 97),
                                            ::testing::Values(1, 17, 97, 576)));

TEST(MatMul, RowBitsDoNotDependOnBatchOrThreads) {
  // The same token row must give the same bits alone, at any position in a batch of any size, and
  // with any thread count.
  const int rows = 97, k = 131;
  const std::vector<float> w = Random(static_cast<size_t>(rows) * k, 3);
  const std::vector<float> batch = Random(static_cast<size_t>(9) * k, 4);
  auto one = MakeBackend(1);
  auto many = MakeBackend(2);
  for (int pos = 0; pos < 9; ++pos) {
    std::vector<float> alone(rows, kNaN);
    one->MatMul(batch.data() + static_cast<size_t>(pos) * k, 1, Matrix{w.data(), rows, k}, alone.data());
    for (int n : {pos + 1, 9}) {
      std::vector<float> out(static_cast<size_t>(n) * rows, kNaN);
      many->MatMul(batch.data(), n, Matrix{w.data(), rows, k}, out.data());
      for (int r = 0; r < rows; ++r) {
        ASSERT_EQ(std::bit_cast<uint32_t>(alone[r]), std::bit_cast<uint32_t>(out[static_cast<size_t>(pos) * rows + r]))
            << "row " << pos << " col " << r << " batch " << n;
      }
    }
  }
}

// Random GGUF blocks (Q4_1 or Q8_0) for a [rows, k] matrix.
std::vector<uint8_t> RandomBlocks(WeightFormat format, int rows, int k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const int64_t row_bytes = WeightRowBytes(format, k);
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes));
  for (int64_t b = 0; b < rows * k / 32; ++b) {
    uint8_t* p = out.data() + b * (format == WeightFormat::kQ4_1 ? 20 : 34);
    const uint16_t d = FloatToHalf(scale(rng)), m = FloatToHalf(scale(rng));
    std::memcpy(p, &d, 2);
    if (format == WeightFormat::kQ4_1) {
      std::memcpy(p + 2, &m, 2);
      for (int j = 0; j < 16; ++j) p[4 + j] = static_cast<uint8_t>(rng());
    } else {
      for (int j = 0; j < 32; ++j) p[2 + j] = static_cast<uint8_t>(rng());
    }
  }
  return out;
}

class QuantMatMulTest : public ::testing::TestWithParam<std::tuple<WeightFormat, int>> {};

TEST_P(QuantMatMulTest, BitwiseEqualToFp32OfTheLoadersDequantization) {
  const auto [format, n] = GetParam();
  auto backend = MakeBackend();
  ASSERT_TRUE(backend->SupportsWeightFormat(WeightFormat::kF32));
  if (!backend->SupportsWeightFormat(format)) GTEST_SKIP() << "portable build: block formats not supported";
  const int rows = 97, k = 576;
  const std::vector<uint8_t> blocks = RandomBlocks(format, rows, k, 21);
  std::vector<float> dequant(static_cast<size_t>(rows) * k);
  const model::GgmlType type = format == WeightFormat::kQ4_1 ? model::GgmlType::kQ4_1 : model::GgmlType::kQ8_0;
  model::DequantizeRow(type, blocks.data(), dequant.data(), static_cast<int64_t>(rows) * k);
  const std::vector<float> x = Random(static_cast<size_t>(n) * k, 22);
  std::vector<float> want(static_cast<size_t>(n) * rows, kNaN), got(want.size(), kNaN);
  backend->MatMul(x.data(), n, Matrix{dequant.data(), rows, k}, want.data());
  Matrix packed{nullptr, rows, k, format, blocks.data()};
  backend->MatMul(x.data(), n, packed, got.data());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i])) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantMatMulTest,
                         ::testing::Combine(::testing::Values(WeightFormat::kQ4_1, WeightFormat::kQ8_0),
                                            ::testing::Values(1, 2, 3, 17)));

TEST(RmsNorm, MatchesReferenceAndFusedAdd) {
  auto backend = MakeBackend();
  for (int dim : {1, 17, 97, 576}) {
    const int n = 3;
    const float eps = 1e-5f;
    std::vector<float> x = Random(static_cast<size_t>(n) * dim, 5);
    const std::vector<float> add = Random(static_cast<size_t>(n) * dim, 6);
    const std::vector<float> w = Random(static_cast<size_t>(dim), 7);
    std::vector<double> want(x.size());
    std::vector<double> summed(x.size());
    for (size_t i = 0; i < x.size(); ++i) summed[i] = double{x[i]} + add[i];
    for (int t = 0; t < n; ++t) {
      double ss = 0;
      for (int i = 0; i < dim; ++i) ss += summed[static_cast<size_t>(t) * dim + i] * summed[static_cast<size_t>(t) * dim + i];
      const double r = 1.0 / std::sqrt(ss / dim + eps);
      for (int i = 0; i < dim; ++i) {
        want[static_cast<size_t>(t) * dim + i] = summed[static_cast<size_t>(t) * dim + i] * r * w[static_cast<size_t>(i)];
      }
    }
    std::vector<float> out(x.size(), kNaN);
    backend->AddRmsNorm(x.data(), add.data(), w.data(), n, dim, eps, out.data());
    ExpectClose(out, want, 1e-5);
    std::vector<double> summed_want(summed.begin(), summed.end());
    ExpectClose(x, summed_want, 1e-6);  // the residual now holds x + add
    std::vector<float> plain(x.size(), kNaN);
    backend->RmsNorm(x.data(), w.data(), n, dim, eps, plain.data());
    ExpectClose(plain, want, 1e-5);
  }
}

TEST(HeadRmsNorm, NormalizesEachHeadInPlace) {
  auto backend = MakeBackend();
  const int n = 2, heads = 3, hd = 16, ld = 64;  // rows are wider than the heads (a fused buffer)
  std::vector<float> x = Random(static_cast<size_t>(n) * ld, 8);
  const std::vector<float> w = Random(hd, 9);
  std::vector<float> before = x;
  backend->HeadRmsNorm(x.data(), n, ld, heads, hd, w.data(), 1e-6f);
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < heads; ++h) {
      const float* src = before.data() + t * ld + h * hd;
      double ss = 0;
      for (int i = 0; i < hd; ++i) ss += double{src[i]} * src[i];
      const double r = 1.0 / std::sqrt(ss / hd + 1e-6);
      for (int i = 0; i < hd; ++i) EXPECT_NEAR(x[t * ld + h * hd + i], src[i] * r * w[i], 1e-5);
    }
    for (int i = heads * hd; i < ld; ++i) EXPECT_EQ(x[t * ld + i], before[t * ld + i]) << "outside the heads";
  }
}

TEST(Rotary, RotateHalfConvention) {
  auto backend = MakeBackend();
  const int n = 3, heads = 2, hd = 8, ld = 20;
  const std::vector<int32_t> positions = {0, 5, 97};
  const std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<float> cos_sin(static_cast<size_t>(n) * hd, kNaN);
  backend->RotaryTable(positions.data(), n, inv_freq.data(), hd, cos_sin.data());
  std::vector<float> x = Random(static_cast<size_t>(n) * ld, 10);
  const std::vector<float> before = x;
  backend->Rotary(x.data(), n, ld, heads, hd, cos_sin.data());
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        const double angle = double{static_cast<float>(positions[t]) * inv_freq[i]};
        const double a = before[t * ld + h * hd + i], b = before[t * ld + h * hd + i + hd / 2];
        EXPECT_NEAR(x[t * ld + h * hd + i], a * std::cos(angle) - b * std::sin(angle), 1e-5);
        EXPECT_NEAR(x[t * ld + h * hd + i + hd / 2], b * std::cos(angle) + a * std::sin(angle), 1e-5);
      }
    }
    for (int i = heads * hd; i < ld; ++i) EXPECT_EQ(x[t * ld + i], before[t * ld + i]);
  }
}

TEST(SiluMul, MatchesReference) {
  auto backend = MakeBackend();
  for (int inter : {1, 17, 97}) {
    const int n = 2;
    const std::vector<float> gu = Random(static_cast<size_t>(n) * 2 * inter, 11, 3.0f);
    std::vector<float> out(static_cast<size_t>(n) * inter, kNaN);
    backend->SiluMul(gu.data(), n, inter, out.data());
    std::vector<double> want(out.size());
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < inter; ++i) {
        const double g = gu[static_cast<size_t>(t) * 2 * inter + i], u = gu[static_cast<size_t>(t) * 2 * inter + inter + i];
        want[static_cast<size_t>(t) * inter + i] = g / (1.0 + std::exp(-g)) * u;
      }
    ExpectClose(out, want, 1e-6);
  }
}

TEST(EmbeddingAndGather, CopyRows) {
  auto backend = MakeBackend();
  const int vocab = 17, dim = 5;
  const std::vector<float> table = Random(static_cast<size_t>(vocab) * dim, 12);
  const std::vector<int32_t> ids = {16, 0, 3, 3};
  std::vector<float> out(ids.size() * dim, kNaN);
  backend->Embedding(ids.data(), 4, table.data(), dim, out.data());
  for (size_t t = 0; t < ids.size(); ++t)
    for (int i = 0; i < dim; ++i) EXPECT_EQ(out[t * dim + i], table[static_cast<size_t>(ids[t]) * dim + i]);
  const std::vector<int32_t> rows = {3, 1};
  std::vector<float> gathered(rows.size() * dim, kNaN);
  backend->GatherRows(out.data(), dim, rows.data(), 2, gathered.data());
  for (size_t r = 0; r < rows.size(); ++r)
    for (int i = 0; i < dim; ++i) EXPECT_EQ(gathered[r * dim + i], out[static_cast<size_t>(rows[r]) * dim + i]);
}

TEST(AddBias, AddsToEveryRowWithStride) {
  auto backend = MakeBackend();
  std::vector<float> x = {1, 2, 3, 100, 4, 5, 6, 200};
  const std::vector<float> bias = {0.5f, -1, 2};
  backend->AddBias(x.data(), 2, 4, 3, bias.data());
  EXPECT_EQ(x, (std::vector<float>{1.5f, 1, 5, 100, 4.5f, 4, 8, 200}));
}

TEST(CpuBackend, RejectsNegativeThreads) {
  EXPECT_ERROR(CreateCpuBackend({.num_threads = -1}), absl::StatusCode::kInvalidArgument,
               "cpu backend: num_threads must be >= 0, got -1");
}

}  // namespace
}  // namespace tandem::backend
