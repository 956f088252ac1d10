// Dequantization of each ggml block type against values worked out by hand from the block layouts
// in ggml-common.h (the encoders here follow the layout descriptions, not the decoder's code).
#include <array>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "tandem/core/tensor.h"
#include "tandem/model/gguf_types.h"

namespace tandem::model {
namespace {

void PutHalf(std::vector<uint8_t>& b, size_t at, uint16_t h) { std::memcpy(b.data() + at, &h, 2); }

std::vector<float> Dequant(GgmlType type, const std::vector<uint8_t>& bytes, int64_t n) {
  EXPECT_EQ(GgmlRowBytes(type, n), bytes.size());
  std::vector<float> out(static_cast<size_t>(n), -999.0f);
  DequantizeRow(type, bytes.data(), out.data(), n);
  return out;
}

TEST(GgufDequantTest, BlockSizes) {
  EXPECT_EQ(GgmlBlockBytes(GgmlType::kQ4_0), 18u);
  EXPECT_EQ(GgmlBlockBytes(GgmlType::kQ4_1), 20u);
  EXPECT_EQ(GgmlBlockBytes(GgmlType::kQ8_0), 34u);
  EXPECT_EQ(GgmlBlockBytes(GgmlType::kQ4_K), 144u);
  EXPECT_EQ(GgmlBlockBytes(GgmlType::kQ6_K), 210u);
  EXPECT_EQ(GgmlBlockSize(GgmlType::kQ4_K), 256);
  EXPECT_EQ(GgmlRowBytes(GgmlType::kQ4_1, 576), 18u * 20u);
  EXPECT_ERROR(GgmlTypeFromRaw(16), absl::StatusCode::kInvalidArgument,
               "unsupported ggml tensor type 16:");  // IQ2_XXS: not supported
  EXPECT_EQ(*GgmlTypeFromRaw(30), GgmlType::kBF16);
}

TEST(GgufDequantTest, F32F16Bf16) {
  std::vector<uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00};  // 1, -2, 65504, 2^-24
  auto y = Dequant(GgmlType::kF16, f16, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], 65504.0f);
  EXPECT_EQ(y[3], 5.9604644775390625e-8f);
  std::vector<uint8_t> bf16 = {0x80, 0x3F, 0x40, 0xC0};  // 1, -3
  auto z = Dequant(GgmlType::kBF16, bf16, 2);
  EXPECT_EQ(z[0], 1.0f);
  EXPECT_EQ(z[1], -3.0f);
}

TEST(GgufDequantTest, Q4_0) {
  std::vector<uint8_t> b(18);
  PutHalf(b, 0, 0x3800);  // d = 0.5
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y = Dequant(GgmlType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(y[16 + j], 0.5f * static_cast<float>(7 - j)) << j;
  }
  EXPECT_EQ(y[0], -4.0f);
  EXPECT_EQ(y[31], -4.0f);
  EXPECT_EQ(y[15], 3.5f);
}

TEST(GgufDequantTest, Q4_1) {
  std::vector<uint8_t> b(40);  // two blocks
  PutHalf(b, 0, 0x3400);       // d = 0.25
  PutHalf(b, 2, 0xBC00);       // m = -1
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  PutHalf(b, 20, 0x4000);                         // d = 2
  PutHalf(b, 22, 0x3C00);                         // m = 1
  for (int j = 0; j < 16; ++j) b[24 + j] = 0x51;  // low 1, high 5
  auto y = Dequant(GgmlType::kQ4_1, b, 64);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * static_cast<float>(j) - 1.0f);
    EXPECT_EQ(y[16 + j], 0.25f * static_cast<float>(15 - j) - 1.0f);
    EXPECT_EQ(y[32 + j], 3.0f);
    EXPECT_EQ(y[48 + j], 11.0f);
  }
}

TEST(GgufDequantTest, Q5_0AndQ5_1) {
  std::vector<uint8_t> b(22);
  PutHalf(b, 0, 0x3C00);  // d = 1
  const uint32_t qh = 0xAAAA5555u;
  std::memcpy(b.data() + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | (j << 4));
  auto y = Dequant(GgmlType::kQ5_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], static_cast<float>(static_cast<int>(j | (((qh >> j) & 1) << 4)) - 16)) << j;
    EXPECT_EQ(y[16 + j], static_cast<float>(static_cast<int>(j | (((qh >> (16 + j)) & 1) << 4)) - 16)) << j;
  }
  EXPECT_EQ(y[0], 0.0f);    // qh bit 0 set: q = 0 | 16, minus 16
  EXPECT_EQ(y[1], -15.0f);  // qh bit 1 clear: q = 1, minus 16
  std::vector<uint8_t> c(24);
  PutHalf(c, 0, 0x3800);  // d = 0.5
  PutHalf(c, 2, 0xC000);  // m = -2
  std::memcpy(c.data() + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) c[8 + j] = static_cast<uint8_t>(j | (j << 4));
  auto z = Dequant(GgmlType::kQ5_1, c, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(z[j], 0.5f * static_cast<float>(j | (((qh >> j) & 1) << 4)) - 2.0f) << j;
    EXPECT_EQ(z[16 + j], 0.5f * static_cast<float>(j | (((qh >> (16 + j)) & 1) << 4)) - 2.0f) << j;
  }
}

TEST(GgufDequantTest, Q8_0) {
  std::vector<uint8_t> b(34);
  PutHalf(b, 0, 0x3000);  // d = 0.125
  for (int j = 0; j < 32; ++j) {
    const int8_t q = static_cast<int8_t>(8 * j - 128);
    std::memcpy(b.data() + 2 + j, &q, 1);
  }
  auto y = Dequant(GgmlType::kQ8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>(j - 16)) << j;
}

// Q4_K super-block: 8 sub-blocks of 32 with 6-bit scale sc[s] and min m[s]; value = d*sc*q - dmin*m.
// Scales packing (ggml get_scale_min_k4): s < 4: sc in bytes[s] & 63, m in bytes[s+4] & 63;
// s >= 4: low 4 bits in bytes[s+4] (sc low nibble, m high nibble), high 2 bits in the top bits of
// bytes[s-4] (sc) and bytes[s] (m). Quants: sub-blocks 2p and 2p+1 share qs[32p..32p+31], low
// nibbles for 2p, high for 2p+1.
TEST(GgufDequantTest, Q4_K) {
  std::array<int, 8> sc, mn;
  for (int s = 0; s < 8; ++s) {
    sc[s] = s * 7 + 3;
    mn[s] = 60 - s * 5;
  }
  std::vector<uint8_t> b(144, 0);
  PutHalf(b, 0, 0x4000);  // d = 2
  PutHalf(b, 2, 0x3800);  // dmin = 0.5
  uint8_t* scales = b.data() + 4;
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  uint8_t* qs = b.data() + 16;
  for (int k = 0; k < 128; ++k) qs[k] = static_cast<uint8_t>((k % 16) | (((k * 3) % 16) << 4));
  auto y = Dequant(GgmlType::kQ4_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, l = e % 32, p = s / 2;
    const int byte = qs[32 * p + l];
    const int q = (s % 2 == 0) ? (byte & 0xF) : (byte >> 4);
    const float expected =
        2.0f * static_cast<float>(sc[s]) * static_cast<float>(q) - 0.5f * static_cast<float>(mn[s]);
    ASSERT_EQ(y[e], expected) << "element " << e;
  }
  // Two spot values by hand: e=0: s=0 (sc 3, m 60), q = 0 → -30; e=255: s=7 (sc 52, m 25),
  // byte qs[127] = 15 | (381%16=13)<<4 → q = 13 → 2*52*13 - 12.5 = 1339.5.
  EXPECT_EQ(y[0], -30.0f);
  EXPECT_EQ(y[255], 1339.5f);
}

// Q6_K super-block: 16 int8 scales (one per 16 values), value = d*sc*(q-32), q 6 bits.
// Element e: half n = e/128, r = e%128, group g = r/32, l = r%32. Low 4 bits: ql[64n + l + 32*(g&1)],
// low nibble for g < 2, high nibble for g >= 2; high 2 bits: qh[32n + l] bits 2g..2g+1;
// scale: scales[8n + l/16 + 2g]. d is the f16 at the end (byte 208).
TEST(GgufDequantTest, Q6_K) {
  std::vector<uint8_t> b(210, 0);
  std::array<int, 256> q;
  std::array<int8_t, 16> sc;
  for (int e = 0; e < 256; ++e) q[e] = (e * 5 + 1) % 64;
  for (int k = 0; k < 16; ++k) sc[k] = static_cast<int8_t>(k * 3 - 20);
  uint8_t* ql = b.data();
  uint8_t* qh = b.data() + 128;
  std::memcpy(b.data() + 192, sc.data(), 16);
  PutHalf(b, 208, 0x3800);  // d = 0.5
  for (int e = 0; e < 256; ++e) {
    const int n = e / 128, r = e % 128, g = r / 32, l = r % 32;
    uint8_t& low = ql[64 * n + l + 32 * (g & 1)];
    low = static_cast<uint8_t>(low | ((q[e] & 0xF) << (g < 2 ? 0 : 4)));
    uint8_t& high = qh[32 * n + l];
    high = static_cast<uint8_t>(high | ((q[e] >> 4) << (2 * g)));
  }
  auto y = Dequant(GgmlType::kQ6_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int n = e / 128, r = e % 128, g = r / 32, l = r % 32;
    const float expected =
        0.5f * static_cast<float>(sc[8 * n + l / 16 + 2 * g]) * static_cast<float>(q[e] - 32);
    ASSERT_EQ(y[e], expected) << "element " << e;
  }
  // By hand: e=0: q=1, scale index 0 (-20) → 0.5*-20*(1-32) = 310.
  EXPECT_EQ(y[0], 310.0f);
}

}  // namespace
}  // namespace tandem::model
