#include "gguf_weights.h"

#include <algorithm>
#include <cstring>

#include "tandem/model/gguf_types.h"

namespace tandem::backend {
namespace {

std::optional<WeightFormat> FormatOf(model::GgmlType type) {
  switch (type) {
    case model::GgmlType::kQ4_1:
      return WeightFormat::kQ4_1;
    case model::GgmlType::kQ8_0:
      return WeightFormat::kQ8_0;
    case model::GgmlType::kF32:
    case model::GgmlType::kF16:
    case model::GgmlType::kQ4_0:
    case model::GgmlType::kQ5_0:
    case model::GgmlType::kQ5_1:
    case model::GgmlType::kQ4_K:
    case model::GgmlType::kQ5_K:
    case model::GgmlType::kQ6_K:
    case model::GgmlType::kBF16:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::optional<PackedMatrix> PackGgufMatrix(const model::GgufFile& file, const std::vector<GgufMatrixPart>& parts,
                                           const std::vector<WeightFormat>& supported) {
  PackedMatrix packed;
  std::optional<WeightFormat> format;
  for (const GgufMatrixPart& part : parts) {
    const model::GgufTensorInfo* info = file.FindTensor(part.name);
    if (info == nullptr || part.fp32 == nullptr || part.fp32->ndim() != 2) return std::nullopt;
    const std::optional<WeightFormat> f = FormatOf(info->type);
    if (!f.has_value() || (format.has_value() && *format != *f)) return std::nullopt;
    if (std::find(supported.begin(), supported.end(), *f) == supported.end()) return std::nullopt;
    format = f;
    const int64_t rows = part.fp32->dim(0), cols = part.fp32->dim(1);
    if (cols % 32 != 0 || info->shape() != std::vector<int64_t>{rows, cols}) return std::nullopt;
    const int64_t row_bytes = WeightRowBytes(*f, cols);
    if (static_cast<uint64_t>(rows * row_bytes) != info->nbytes) return std::nullopt;
    const int64_t heads = part.permute_heads;
    if (heads > 0 && rows % heads != 0) return std::nullopt;
    const int64_t hd = heads > 0 ? rows / heads : 0;
    const size_t start = packed.rows.size();
    packed.rows.resize(start + static_cast<size_t>(rows * row_bytes));
    std::vector<float> check(static_cast<size_t>(cols));
    const float* want = part.fp32->data<float>();
    for (int64_t r = 0; r < rows; ++r) {
      // HF row h*hd + a*hd/2 + j is GGUF row h*hd + 2j + a (llama.cpp's converter permutation).
      int64_t src = r;
      if (heads > 0) {
        const int64_t h = r / hd, within = r % hd, a = within / (hd / 2), j = within % (hd / 2);
        src = h * hd + 2 * j + a;
      }
      const uint8_t* row = info->data + src * row_bytes;
      model::DequantizeRow(info->type, row, check.data(), cols);
      if (std::memcmp(check.data(), want + r * cols, sizeof(float) * static_cast<size_t>(cols)) != 0) {
        return std::nullopt;
      }
      std::memcpy(packed.rows.data() + start + r * row_bytes, row, static_cast<size_t>(row_bytes));
    }
  }
  if (!format.has_value()) return std::nullopt;
  packed.format = *format;
  return packed;
}

}  // namespace tandem::backend
