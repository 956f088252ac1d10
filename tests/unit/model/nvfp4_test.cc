// NVFP4 quantizer: E2M1 / E4M3 rounding at their ties, Model Optimizer's block rules on hand-built
// vectors (exact bytes and scales), exact dequantization, and the format's error bound on random data.
#include "tandem/model/nvfp4.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::model {
namespace {

using ::testing::HasSubstr;

TEST(Nvfp4Test, E2M1Values) {
  const float want[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int c = 0; c < 16; ++c) EXPECT_EQ(E2M1Value(static_cast<uint8_t>(c)), want[c]) << c;
  EXPECT_TRUE(std::signbit(E2M1Value(8)));
}

TEST(Nvfp4Test, E2M1RoundsToNearestTiesToEvenCode) {
  // Exact magnitudes map to themselves.
  for (int c = 0; c < 16; ++c) {
    if (c == 8) continue;  // -0 encodes as +0 (not < 0)
    EXPECT_EQ(E2M1Encode(E2M1Value(static_cast<uint8_t>(c))), c) << c;
  }
  // The ties: the even code wins.
  EXPECT_EQ(E2M1Encode(0.25f), 0);  // 0 | 0.5
  EXPECT_EQ(E2M1Encode(0.75f), 2);  // 0.5 | 1
  EXPECT_EQ(E2M1Encode(1.25f), 2);  // 1 | 1.5
  EXPECT_EQ(E2M1Encode(1.75f), 4);  // 1.5 | 2
  EXPECT_EQ(E2M1Encode(2.5f), 4);   // 2 | 3
  EXPECT_EQ(E2M1Encode(3.5f), 6);   // 3 | 4
  EXPECT_EQ(E2M1Encode(5.f), 6);    // 4 | 6
  EXPECT_EQ(E2M1Encode(-0.75f), 10);
  EXPECT_EQ(E2M1Encode(-5.f), 14);
  // Just past the ties.
  EXPECT_EQ(E2M1Encode(std::nextafter(0.25f, 1.f)), 1);
  EXPECT_EQ(E2M1Encode(std::nextafter(0.75f, 0.f)), 1);
  EXPECT_EQ(E2M1Encode(std::nextafter(5.f, 6.f)), 7);
  // Clamping, the sign of values that round to zero, and Model Optimizer's inf / NaN outcomes.
  EXPECT_EQ(E2M1Encode(6.5f), 7);
  EXPECT_EQ(E2M1Encode(-100.f), 15);
  EXPECT_EQ(E2M1Encode(-0.1f), 8);
  EXPECT_EQ(E2M1Encode(0.1f), 0);
  EXPECT_EQ(E2M1Encode(std::numeric_limits<float>::infinity()), 7);
  EXPECT_EQ(E2M1Encode(-std::numeric_limits<float>::infinity()), 15);
  EXPECT_EQ(E2M1Encode(std::nanf("")), 0);
}

TEST(Nvfp4Test, E4M3ValuesAndRoundTrip) {
  EXPECT_EQ(E4M3Value(0x38), 1.f);
  EXPECT_EQ(E4M3Value(0x7E), 448.f);
  EXPECT_EQ(E4M3Value(0x01), std::ldexp(1.f, -9));
  EXPECT_EQ(E4M3Value(0x07), 7 * std::ldexp(1.f, -9));
  EXPECT_EQ(E4M3Value(0x08), std::ldexp(1.f, -6));
  EXPECT_EQ(E4M3Value(0xC0), -2.f);
  EXPECT_TRUE(std::isnan(E4M3Value(0x7F)));
  EXPECT_TRUE(std::isnan(E4M3Value(0xFF)));
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7F) == 0x7F) continue;
    EXPECT_EQ(E4M3Encode(E4M3Value(static_cast<uint8_t>(b))), b) << b;
  }
}

TEST(Nvfp4Test, E4M3RoundsToNearestEven) {
  const float sub = std::ldexp(1.f, -9);    // subnormal step
  EXPECT_EQ(E4M3Encode(0.5f * sub), 0x00);  // tie 0 | 2^-9 -> 0 (underflow)
  EXPECT_EQ(E4M3Encode(0.75f * sub), 0x01);
  EXPECT_EQ(E4M3Encode(1.5f * sub), 0x02);  // tie 1 | 2 -> 2
  EXPECT_EQ(E4M3Encode(2.5f * sub), 0x02);  // tie 2 | 3 -> 2
  EXPECT_EQ(E4M3Encode(7.5f * sub), 0x08);  // tie 7 | 8 -> 8 = 2^-6, the smallest normal
  EXPECT_EQ(E4M3Encode(1.0625f), 0x38);     // tie 1 | 1.125 -> 1
  EXPECT_EQ(E4M3Encode(1.1875f), 0x3A);     // tie 1.125 | 1.25 -> 1.25
  EXPECT_EQ(E4M3Encode(std::nextafter(1.0625f, 2.f)), 0x39);
  EXPECT_EQ(E4M3Encode(432.f), 0x7E);  // tie 416 | 448 -> 448
  EXPECT_EQ(E4M3Encode(420.f), 0x7D);  // 416
  EXPECT_EQ(E4M3Encode(448.f), 0x7E);
  EXPECT_EQ(E4M3Encode(1e6f), 0x7E);  // saturates
  EXPECT_EQ(E4M3Encode(-3.f), 0xC4);
  EXPECT_EQ(E4M3Encode(-0.f), 0x80);
  EXPECT_EQ(E4M3Encode(std::nanf("")), 0x7F);
}

// One row, six blocks, scale2 = 2688 / 2688 = 1 exactly, so each block's scale is amax_block / 6.
TEST(Nvfp4Test, KnownBlocksGiveExactBytesAndScales) {
  std::vector<float> w(96, 0.f);
  std::vector<uint8_t> want_codes(96, 0);
  const auto set = [&](int col, float v, uint8_t code) {
    w[col] = v;
    want_codes[col] = code;
  };
  // Block 0: the tensor's max, scale 448; values at every E2M1 tie (in units of 448).
  set(0, 2688.f, 7);
  set(1, -1344.f, 13);  // -3
  set(2, 224.f, 1);     // 0.5
  set(3, 336.f, 2);     // 0.75 -> 1
  set(4, 560.f, 2);     // 1.25 -> 1
  set(5, 784.f, 4);     // 1.75 -> 2
  set(6, 1120.f, 4);    // 2.5 -> 2
  set(7, 1568.f, 6);    // 3.5 -> 4
  set(8, 2240.f, 6);    // 5 -> 4
  set(9, 112.f, 0);     // 0.25 -> 0
  set(10, -44.8f, 8);   // -0.1 -> -0
  set(11, -2688.f, 15);
  // Block 1 (cols 16..31): all zero -> scale 1.0, codes 0.
  // Block 2: amax 6 * 2^-10 -> block scale exactly 2^-10, the E4M3 tie between 0 and 2^-9: rounds to
  // 0, so the block dequantizes to zero; Model Optimizer's x / 0 leaves +-6 codes, 0 for zeros.
  const float tiny = 6.f * std::ldexp(1.f, -10);
  set(32, tiny, 7);
  set(33, -0.5f * tiny, 15);
  set(34, 0.f, 0);
  // Block 3: amax 6.375 -> block scale 1.0625, the E4M3 tie between 1 and 1.125: rounds to 1.0, so
  // 6.375 clamps to 6.
  set(48, 6.375f, 7);
  set(49, 3.f, 5);
  set(50, -1.f, 10);
  // Block 4: a subnormal scale, 3 * 2^-9.
  const float sub3 = 3.f * std::ldexp(1.f, -9);
  set(64, 6.f * sub3, 7);
  set(65, 1.5f * sub3, 3);
  set(66, -0.5f * sub3, 9);
  // Block 5: block scale 1.5 * 2^-10 rounds up to 2^-9.
  const float sub1 = std::ldexp(1.f, -9);
  set(80, 9.f * std::ldexp(1.f, -10), 6);  // 4.5 units of 2^-9 -> 4
  set(81, -0.75f * sub1, 10);              // -0.75 -> -1

  auto q = QuantizeNvfp4(w.data(), 1, 96);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->scale2, 1.f);
  EXPECT_EQ(q->scales, (std::vector<uint8_t>{0x7E, 0x38, 0x00, 0x38, 0x03, 0x01}));
  ASSERT_EQ(q->packed.size(), 48u);
  for (int c = 0; c < 96; c += 2) {
    EXPECT_EQ(q->packed[c / 2], want_codes[c] | (want_codes[c + 1] << 4)) << "columns " << c << ", " << c + 1;
  }

  std::vector<float> back(96);
  ASSERT_TRUE(DequantizeNvfp4(*q, back.data()).ok());
  EXPECT_EQ(back[0], 2688.f);
  EXPECT_EQ(back[3], 448.f);
  EXPECT_EQ(back[10], -0.f);
  EXPECT_EQ(back[32], 0.f);  // underflowed block
  EXPECT_EQ(back[33], -0.f);
  EXPECT_EQ(back[48], 6.f);
  EXPECT_EQ(back[49], 3.f);
  EXPECT_EQ(back[65], 1.5f * sub3);
  EXPECT_EQ(back[80], 4.f * sub1);
  for (int c = 16; c < 32; ++c) EXPECT_EQ(back[c], 0.f);
}

TEST(Nvfp4Test, MaxValueAndAllZeroTensor) {
  std::vector<float> w = {0.1f, -0.37f, 1.f,  0.f,  0.25f, 0.5f, -0.9f, 0.3f,
                          0.2f, 0.4f,   0.6f, 0.7f, -1.f,  0.f,  0.f,   0.05f};
  auto q = QuantizeNvfp4(w.data(), 1, 16);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->scale2, 1.f / 2688.f);
  EXPECT_EQ(q->scales[0], 0x7E);  // the block holding amax always gets 448
  EXPECT_EQ(q->packed[1] & 0xF, 7);
  EXPECT_EQ(q->packed[6] & 0xF, 15);
  std::vector<float> back(16);
  ASSERT_TRUE(DequantizeNvfp4(*q, back.data()).ok());
  EXPECT_NEAR(back[2], 1.f, 1.2e-7f);  // 2688 * fl(1/2688)
  EXPECT_EQ(back[12], -back[2]);

  std::vector<float> zeros(32, 0.f);
  auto z = QuantizeNvfp4(zeros.data(), 2, 16);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->scale2, 0.f);
  EXPECT_EQ(z->scales, (std::vector<uint8_t>{0x38, 0x38}));
  EXPECT_EQ(z->packed, std::vector<uint8_t>(16, 0));
}

// Quantize -> dequantize on random rows whose blocks span 2^-16 .. 2^4 in magnitude (so the scales
// cover normal and subnormal E4M3, and some underflow), plus all-zero blocks. Per element, with S the
// block's effective scale fp32(scale) * scale2 and a = |w| / S: the error is at most half the E2M1
// step around a (0.25 S below 2, 0.5 S below 4, 1 S up to 6) or a - 6 (in units of S) past 6 (the
// E4M3 scale rounded down); a block whose scale underflowed holds only values below 6 * 2^-10 * scale2.
TEST(Nvfp4Test, RandomRoundTripWithinTheFormatBound) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> log2_scale(-16.f, 4.f);
  const int64_t rows = 37, cols = 272;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols / 16; ++g) {
      const bool zero_block = (r * 7 + g) % 11 == 0;
      const float scale = std::exp2(log2_scale(rng));
      for (int i = 0; i < 16; ++i) w[r * cols + g * 16 + i] = zero_block ? 0.f : scale * normal(rng);
    }
  }
  auto q = QuantizeNvfp4(w.data(), rows, cols);
  ASSERT_TRUE(q.ok());
  std::vector<float> back(w.size());
  ASSERT_TRUE(DequantizeNvfp4(*q, back.data()).ok());
  int underflowed = 0, subnormal = 0;
  double err2 = 0, ref2 = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols / 16; ++g) {
      const uint8_t s = q->scales[static_cast<size_t>(r * (cols / 16) + g)];
      const float scale = E4M3Value(s) * q->scale2;
      if (s == 0) ++underflowed;
      if (s > 0 && s < 8) ++subnormal;
      for (int i = 0; i < 16; ++i) {
        const size_t at = static_cast<size_t>(r * cols + g * 16 + i);
        const float v = w[at];
        const double err = std::fabs(static_cast<double>(back[at]) - v);
        err2 += err * err;
        ref2 += static_cast<double>(v) * v;
        if (s == 0) {
          EXPECT_EQ(back[at], 0.f);
          EXPECT_LE(std::fabs(v), 6.0001f * std::ldexp(1.f, -10) * q->scale2)
              << "[" << r << ", " << g * 16 + i << "]";
          continue;
        }
        const double a = std::fabs(v) / scale;
        const double half_step = a < 2 ? 0.25 : a < 4 ? 0.5 : 1.0;
        const double bound = (a > 6 ? a - 6 : half_step) * scale;
        // Slack: the fp32 quotient near a tie, and the one rounding of the dequantized value.
        EXPECT_LE(err, bound * (1 + 1e-6) + 1e-6 * scale) << "[" << r << ", " << g * 16 + i << "] w=" << v;
      }
    }
  }
  EXPECT_GT(underflowed, 0);
  EXPECT_GT(subnormal, 0);
  // Overall: E2M1 with per-16 scales keeps the relative RMS error near 10% on Gaussian blocks.
  EXPECT_LT(std::sqrt(err2 / ref2), 0.15);
}

TEST(Nvfp4Test, RejectsBadShapesAndValues) {
  std::vector<float> w(200, 1.f);
  auto bad_cols = QuantizeNvfp4(w.data(), 2, 100);
  ASSERT_FALSE(bad_cols.ok());
  EXPECT_EQ(bad_cols.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_cols.status().message(), HasSubstr("multiple of 16"));
  EXPECT_THAT(bad_cols.status().message(), HasSubstr("found [2, 100]"));

  w[37] = std::numeric_limits<float>::infinity();
  auto inf = QuantizeNvfp4(w.data(), 2, 96);
  ASSERT_FALSE(inf.ok());
  EXPECT_THAT(inf.status().message(), HasSubstr("at [0, 37]"));

  Nvfp4Tensor t;
  t.rows = 1;
  t.cols = 32;
  t.packed.assign(16, 0);
  t.scales = {0x38, 0x7F};
  std::vector<float> out(32);
  const absl::Status nan_scale = DequantizeNvfp4(t, out.data());
  EXPECT_EQ(nan_scale.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nan_scale.message(), HasSubstr("scale [0, 1] is NaN (0x7f)"));
  t.scales.pop_back();
  EXPECT_THAT(DequantizeNvfp4(t, out.data()).message(), HasSubstr("found 16 and 1"));
}

}  // namespace
}  // namespace tandem::model
