#include "tandem/model/nvfp4.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::model {
namespace {

constexpr float kE2M1Magnitudes[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
// Model Optimizer's e2m1_bounds: the midpoints between consecutive magnitudes.
constexpr float kE2M1Bounds[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.f};
// At a midpoint the even code wins: bounds 0.75, 1.75 and 3.5 (odd indices) round up, the others down.
constexpr bool kE2M1RoundUpAtBound[7] = {false, true, false, true, false, true, false};

}  // namespace

float E2M1Value(uint8_t code) {
  const float m = kE2M1Magnitudes[code & 7];
  return (code & 8) != 0 ? -m : m;
}

uint8_t E2M1Encode(float v) {
  // _cast_fp4: ord = number of bounds strictly below |v|, plus one at the round-up bounds. NaN compares
  // false everywhere (code 0); +-inf passes every bound (code 7).
  const uint8_t sign = v < 0.f ? 8 : 0;
  const float a = std::fabs(v);
  uint8_t ord = 0;
  for (int i = 0; i < 7; ++i) {
    if (a > kE2M1Bounds[i]) ++ord;
    if (a == kE2M1Bounds[i] && kE2M1RoundUpAtBound[i]) ++ord;
  }
  return static_cast<uint8_t>(sign | ord);
}

float E4M3Value(uint8_t bits) {
  const int exp = (bits >> 3) & 0xF;
  const int mant = bits & 7;
  if (exp == 15 && mant == 7) return std::nanf("");
  const float m = exp == 0 ? std::ldexp(static_cast<float>(mant), -9)
                           : std::ldexp(1.f + static_cast<float>(mant) / 8.f, exp - 7);
  return (bits & 0x80) != 0 ? -m : m;
}

uint8_t E4M3Encode(float v) {
  // PyTorch's fp8e4m3fn_from_fp32_value (c10/util/Float8_e4m3fn.h), saturating instead of NaN.
  uint32_t bits = std::bit_cast<uint32_t>(v);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint8_t result;
  if (bits > 0x7F800000u) {
    result = 0x7F;  // NaN
  } else if (bits >= std::bit_cast<uint32_t>(448.f)) {
    result = 0x7E;  // 448
  } else if (bits < (121u << 23)) {
    // Below 2^-6, the smallest normal: adding 2^14 rounds to a multiple of 2^-9 (the subnormal step)
    // with the FPU's round-to-nearest-even; the low bits are then the subnormal mantissa (8 carries
    // into the exponent field: 2^-6 = 0x08).
    constexpr uint32_t kDenormMagic = 141u << 23;
    const float sum = std::bit_cast<float>(bits) + std::bit_cast<float>(kDenormMagic);
    result = static_cast<uint8_t>(std::bit_cast<uint32_t>(sum) - kDenormMagic);
  } else {
    const uint32_t mant_odd = (bits >> 20) & 1;
    bits += (static_cast<uint32_t>(7 - 127) << 23) + 0x7FFFFu;  // rebias, round half down ...
    bits += mant_odd;                                           // ... or up when that makes it even
    result = static_cast<uint8_t>(bits >> 20);
  }
  return static_cast<uint8_t>(result | (sign >> 24));
}

absl::StatusOr<Nvfp4Tensor> QuantizeNvfp4(const float* w, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0 || cols % kNvfp4GroupSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NVFP4 quantization needs a positive row count and a column count that is a positive multiple "
        "of 16 (one E4M3 scale per 16 inputs); found [",
        rows, ", ", cols, "]"));
  }
  float amax = 0.f;
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return absl::InvalidArgumentError(absl::StrCat("NVFP4 quantization needs finite weights; found ", w[i],
                                                     " at [", i / cols, ", ", i % cols, "]"));
    }
    amax = std::max(amax, std::fabs(w[i]));
  }
  Nvfp4Tensor t;
  t.rows = rows;
  t.cols = cols;
  t.packed.assign(static_cast<size_t>(rows * cols / 2), 0);
  t.scales.assign(static_cast<size_t>(rows * cols / kNvfp4GroupSize), 0);
  t.scale2 = amax / (6.f * 448.f);
  const int64_t groups = cols / kNvfp4GroupSize;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* block = w + r * cols + g * kNvfp4GroupSize;
      float block_amax = 0.f;
      for (int i = 0; i < kNvfp4GroupSize; ++i) block_amax = std::max(block_amax, std::fabs(block[i]));
      const float block_scale = block_amax / 6.f;
      // An all-zero block gets scale 1.0 (Model Optimizer sets it before the cast); 0/0 never happens.
      const uint8_t scale = block_scale == 0.f ? E4M3Encode(1.f) : E4M3Encode(block_scale / t.scale2);
      t.scales[static_cast<size_t>(r * groups + g)] = scale;
      // A zero scale (underflow) divides by zero like Model Optimizer: +-inf -> +-6, 0/0 = NaN -> 0.
      const float denom = E4M3Value(scale) * t.scale2;
      uint8_t* out = t.packed.data() + (r * cols + g * kNvfp4GroupSize) / 2;
      for (int i = 0; i < kNvfp4GroupSize; i += 2) {
        const uint8_t lo = E2M1Encode(block[i] / denom);
        const uint8_t hi = E2M1Encode(block[i + 1] / denom);
        out[i / 2] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
  }
  return t;
}

absl::Status DequantizeNvfp4(const Nvfp4Tensor& t, float* out) { return DequantizeNvfp4Rows(t, 0, t.rows, out); }

absl::Status DequantizeNvfp4Rows(const Nvfp4Tensor& t, int64_t row_begin, int64_t row_end, float* out) {
  if (t.rows <= 0 || t.cols <= 0 || t.cols % kNvfp4GroupSize != 0 ||
      t.packed.size() != static_cast<size_t>(t.rows * t.cols / 2) ||
      t.scales.size() != static_cast<size_t>(t.rows * t.cols / kNvfp4GroupSize)) {
    return absl::InvalidArgumentError(
        absl::StrCat("NVFP4 tensor [", t.rows, ", ", t.cols, "] (columns a positive multiple of 16) expects ",
                     t.rows * t.cols / 2, " packed bytes and ", t.rows * t.cols / kNvfp4GroupSize,
                     " scales; found ", t.packed.size(), " and ", t.scales.size()));
  }
  if (row_begin < 0 || row_end > t.rows || row_begin > row_end) {
    return absl::InvalidArgumentError(
        absl::StrCat("NVFP4 rows [", row_begin, ", ", row_end, ") outside the tensor's ", t.rows, " rows"));
  }
  const int64_t groups = t.cols / kNvfp4GroupSize;
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* row = out + (r - row_begin) * t.cols;
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t scale_bits = t.scales[static_cast<size_t>(r * groups + g)];
      const float scale = E4M3Value(scale_bits);
      if (std::isnan(scale)) {
        return absl::InvalidArgumentError(
            absl::StrCat("NVFP4 scale [", r, ", ", g, "] is NaN (0x", absl::Hex(scale_bits), ")"));
      }
      for (int i = 0; i < kNvfp4GroupSize; ++i) {
        const int64_t c = g * kNvfp4GroupSize + i;
        const uint8_t byte = t.packed[static_cast<size_t>((r * t.cols + c) / 2)];
        const uint8_t code = (c % 2 == 0) ? (byte & 0xF) : (byte >> 4);
        row[c] = E2M1Value(code) * scale * t.scale2;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::model
