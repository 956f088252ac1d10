// ggml tensor types as numbered in GGUF files, their block layouts, and dequantization to fp32
// (bit-exact with ggml's reference dequantize_row_* functions).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::model {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,   // blocks of 32: f16 d, 16 bytes of nibbles; x = d * (q - 8)
  kQ4_1 = 3,   // blocks of 32: f16 d, f16 m, 16 bytes of nibbles; x = d * q + m
  kQ5_0 = 6,   // blocks of 32: f16 d, u32 high bits, 16 bytes of nibbles; x = d * (q - 16)
  kQ5_1 = 7,   // blocks of 32: f16 d, f16 m, u32 high bits, 16 bytes of nibbles; x = d * q + m
  kQ8_0 = 8,   // blocks of 32: f16 d, 32 int8; x = d * q
  kQ4_K = 12,  // super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes nibbles
  kQ5_K = 13,  // super-blocks of 256: as Q4_K plus 32 bytes of high bits
  kQ6_K = 14,  // super-blocks of 256: 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, f16 d
  kBF16 = 30,
};

// Returns the type for a raw number from a file, or InvalidArgument for types tandem does not read.
absl::StatusOr<GgmlType> GgmlTypeFromRaw(uint32_t raw);
const char* GgmlTypeName(GgmlType type);  // "F32", "Q4_K", ...
// Elements per block (1 for F32/F16/BF16).
int64_t GgmlBlockSize(GgmlType type);
// Bytes per block.
size_t GgmlBlockBytes(GgmlType type);
// Bytes of `n` elements; n must be a multiple of the block size (check with GgmlBlockSize).
size_t GgmlRowBytes(GgmlType type, int64_t n);

// Dequantizes `n` elements (a multiple of the block size) from `src` into `dst`.
void DequantizeRow(GgmlType type, const uint8_t* src, float* dst, int64_t n);

}  // namespace tandem::model
