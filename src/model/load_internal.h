// The per-format loaders behind LoadModel, and the chunked conversion they share. Internal.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/model/loader.h"
#include "weight_slots.h"

namespace tandem::model {

absl::StatusOr<LoadedModel> LoadSafetensorsModel(const LoadOptions& options);
absl::StatusOr<LoadedModel> LoadGgufModel(const LoadOptions& options);
absl::StatusOr<LoadedModel> LoadDummyModel(const LoadOptions& options);

// Applies options.num_layers to a config: N in [1, config->num_layers] → config->num_layers = N.
absl::Status ApplyLayerOverride(const LoadOptions& options, absl::string_view source, ModelConfig* config);

// A row range of one slot's tensor: the unit of parallel conversion work.
struct RowChunk {
  size_t slot = 0;
  int64_t row_begin = 0;
  int64_t row_end = 0;
};

// Allocates the destination of every slot not marked in `skip` (empty: none skipped) in `dtype` and
// splits the work into row chunks of about 256K elements each (deterministic: depends only on the
// shapes).
std::vector<RowChunk> AllocateAndChunk(const std::vector<WeightSlot>& slots, DType dtype = DType::kF32,
                                       const std::vector<bool>& skip = {});

// Elements per row of a slot (product of all dimensions but the first; 1 for vectors).
int64_t SlotCols(const WeightSlot& slot);

// Rows per chunk of AllocateAndChunk for a slot (about 256K elements; at least 1).
int64_t RowsPerChunk(const WeightSlot& slot);

}  // namespace tandem::model
