// NVFP4: 4-bit float weights with one FP8 scale per 16 inputs and one fp32 scale per tensor, exactly as
// NVIDIA Model Optimizer exports it (issue 13). For a weight W [rows = N out, cols = K in]:
//
//   packed  uint8 [N, K/2]    two E2M1 codes per byte, the LOW nibble holds the EVEN column
//   scales  uint8 [N, K/16]   float8_e4m3fn, one per 16 consecutive inputs of a row ("weight_scale")
//   scale2  fp32              per tensor ("weight_scale_2")
//   W[n, k] = e2m1(code[n, k]) * fp32(scales[n, k/16]) * scale2     (in that order, in fp32)
//
// E2M1 codes: bit 3 is the sign, bits 2..0 index the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6.
// E4M3 (fn): bias 7, 3 mantissa bits, subnormals m * 2^-9, no infinities, 0x7F/0xFF are NaN, max 448.
//
// Quantization follows Model Optimizer's NVFP4QTensor (quantize / get_weights_scaling_factor /
// _cast_fp4), step for step in fp32 so that the bytes match:
//   scale2      = amax(|W|) / (6 * 448)
//   block scale = e4m3((amax(|block|) / 6) / scale2), round-to-nearest-even; an all-zero block gets 1.0
//   code        = e2m1(W / (fp32(block scale) * scale2)): the nearest magnitude, ties to the even code
//                 (0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4), above 6 -> 6;
//                 the sign bit is set for every negative input, so -0.1 becomes code 8 (-0).
// A block whose scale underflows E4M3 (at most 2^-10 before rounding) gets scale 0 and dequantizes to 0;
// its codes are what Model Optimizer's division by zero leaves: +-6 (code 7 / 15) for nonzero
// inputs, 0 for zeros.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::model {

inline constexpr int kNvfp4GroupSize = 16;  // inputs per E4M3 scale

// Value of an E2M1 code (only the low 4 bits are read).
float E2M1Value(uint8_t code);
// Model Optimizer's _cast_fp4 for one value (already divided by its block's scale): sign bit iff v < 0,
// magnitude to the nearest E2M1 value with ties to the even code, clamped to 6; NaN -> 0, +-inf -> +-6.
uint8_t E2M1Encode(float v);

// Value of a float8_e4m3fn byte; NaN for 0x7F and 0xFF.
float E4M3Value(uint8_t bits);
// fp32 -> float8_e4m3fn, round-to-nearest-even as PyTorch's conversion does, except that magnitudes
// from 448 up saturate to 448 (PyTorch gives NaN from 464 up; quantization never gets there:
// block scales are at most 448 by construction). NaN -> 0x7F.
uint8_t E4M3Encode(float v);

// One NVFP4 tensor in Model Optimizer's layout (see the top of this file).
struct Nvfp4Tensor {
  int64_t rows = 0;             // N (output features)
  int64_t cols = 0;             // K (input features), a multiple of 16
  std::vector<uint8_t> packed;  // [rows, cols / 2]
  std::vector<uint8_t> scales;  // [rows, cols / 16] float8_e4m3fn
  float scale2 = 0.f;
};

// Quantizes w [rows, cols] row-major (fp32). cols must be a positive multiple of 16 and every value
// finite; errors say which.
absl::StatusOr<Nvfp4Tensor> QuantizeNvfp4(const float* w, int64_t rows, int64_t cols);

// out [rows, cols] = e2m1 * fp32(scale) * scale2, exactly (the first product is exact in fp32, so the
// only rounding is the multiply by scale2). Fails on inconsistent sizes or a NaN scale byte, naming it.
absl::Status DequantizeNvfp4(const Nvfp4Tensor& t, float* out);
// Rows [row_begin, row_end) of the same into out [row_end - row_begin, cols] (the loaders' chunks).
absl::Status DequantizeNvfp4Rows(const Nvfp4Tensor& t, int64_t row_begin, int64_t row_end, float* out);

}  // namespace tandem::model
