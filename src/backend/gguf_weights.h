// Keeping GGUF block-quantized matrices packed for the backend (internal to src/backend).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tandem/backend/backend.h"
#include "tandem/core/tensor.h"
#include "tandem/model/gguf.h"

namespace tandem::backend {

// One part of a (possibly fused) matrix: its GGUF tensor name, the fp32 weights the loader made of
// it, and, for Q/K projections, the head count whose llama.cpp row permutation to undo (0: none).
struct GgufMatrixPart {
  std::string name;
  const Tensor* fp32 = nullptr;
  int64_t permute_heads = 0;
};

struct PackedMatrix {
  WeightFormat format = WeightFormat::kF32;
  std::vector<uint8_t> rows;  // parts' rows concatenated, HF row order
};

// The parts' rows in their GGUF block format when every part is stored as the same format in
// `supported`, and each row dequantizes (by the loader's own DequantizeRow) to exactly the fp32 row;
// nullopt otherwise (the caller keeps fp32).
std::optional<PackedMatrix> PackGgufMatrix(const model::GgufFile& file, const std::vector<GgufMatrixPart>& parts,
                                           const std::vector<WeightFormat>& supported);

}  // namespace tandem::backend
