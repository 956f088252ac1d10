// load_format: dummy — seeded random weights at a config's shapes, no files. Values depend only on
// (seed, tensor name, element index), never on thread count or platform: a splitmix64 stream per
// chunk of rows, seeded from the seed, an FNV-1a hash of the tensor's HF name and the chunk's row.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "load_internal.h"
#include "load_progress.h"
#include "parallel.h"
#include "tandem/core/status.h"

namespace tandem::model {

namespace {

namespace fs = std::filesystem;

uint64_t SplitMix64(uint64_t& state) { return SplitMixFinalize(state += kSplitMixGamma); }

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Uniform in [-1, 1), exactly representable (24 random bits).
inline float UniformPm1(uint64_t& state) {
  return static_cast<float>(static_cast<int32_t>(SplitMix64(state) >> 40) - (1 << 23)) * (1.0f / (1 << 23));
}

// A slot's generator (model/dummy_weights.h): norms near 1, biases small, and linear weights
// variance-preserving for y = x W^T: uniform(-a, a) with a = sqrt(3 / in_features).
DummyFill FillOf(const WeightSlot& slot, uint64_t seed, int64_t rows_per_chunk) {
  DummyFill f;
  uint64_t state = seed;
  f.name_state = SplitMix64(state) ^ Fnv1a(slot.hf_name);
  f.cols = SlotCols(slot);
  f.rows_per_chunk = rows_per_chunk;
  if (slot.is_norm) {
    f.offset = 1.0f;
    f.scale = 0.125f;
  } else if (slot.shape.size() == 1) {
    f.scale = 0.03125f;
  } else {
    f.scale = std::sqrt(3.0f / static_cast<float>(f.cols));
  }
  return f;
}

absl::StatusOr<ModelConfig> DummyConfig(const LoadOptions& options) {
  const std::string& source = options.dummy_config.empty() ? options.path : options.dummy_config;
  if (source.empty()) {
    return absl::InvalidArgumentError(
        "dummy weights need a config: set dummy_config to a preset name (llama-3-8b, llama-3-70b, "
        "smollm2-135m, "
        "tiny-llama), a config.json path or a model directory");
  }
  std::error_code ec;
  if (fs::is_directory(source, ec)) return LoadHfConfigFromDir(source);
  if (absl::EndsWith(source, ".json")) {
    if (!fs::exists(source, ec)) return absl::NotFoundError(absl::StrCat(source, ": no such file"));
    // A config.json next to generation_config.json reads like a directory.
    if (fs::path(source).filename() == "config.json")
      return LoadHfConfigFromDir(fs::path(source).parent_path().string());
    std::ifstream in(source, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return ParseHfConfig(text, source);
  }
  return PresetConfig(source);
}

}  // namespace

absl::StatusOr<LoadedModel> LoadDummyModel(const LoadOptions& options) {
  LoadedModel out;
  TANDEM_ASSIGN_OR_RETURN(out.config, DummyConfig(options));
  TANDEM_RETURN_IF_ERROR(ApplyLayerOverride(options, out.config.name, &out.config));
  out.config.name = absl::StrCat(out.config.name, " (dummy weights, seed ", options.seed, ")");

  const std::vector<WeightSlot> slots = ListWeightSlots(out.config, &out.weights);
  if (options.dummy_on_device) {  // shapes only; the backend generates the values
    for (const WeightSlot& s : slots) {
      *s.dst = Tensor::Wrap(DType::kBF16, s.shape, nullptr, nullptr);
      out.dummy[s.hf_name] = FillOf(s, options.seed, RowsPerChunk(s));
    }
    TieEmbeddings(out.config, &out.weights);
    return out;
  }
  // keep_16bit: the same values rounded to bf16 (as the CUDA runner's upload would), half the memory.
  const DType dtype = options.keep_16bit ? DType::kBF16 : DType::kF32;
  const std::vector<RowChunk> chunks = AllocateAndChunk(slots, dtype);
  uint64_t total_bytes = 0;
  for (const WeightSlot& s : slots) total_bytes += static_cast<uint64_t>(s.dst->numel()) * DTypeSize(dtype);
  std::vector<DummyFill> fills;
  for (const WeightSlot& s : slots) fills.push_back(FillOf(s, options.seed, RowsPerChunk(s)));

  LoadProgress progress(out.config.name, total_bytes, options.show_progress);
  ParallelFor(static_cast<int64_t>(chunks.size()), [&](int64_t i) {
    const RowChunk& c = chunks[static_cast<size_t>(i)];
    const DummyFill& f = fills[c.slot];
    const WeightSlot& slot = slots[c.slot];
    uint64_t state = f.name_state;
    state = SplitMix64(state) ^ static_cast<uint64_t>(c.row_begin);
    const int64_t first = c.row_begin * f.cols;
    const int64_t n = (c.row_end - c.row_begin) * f.cols;
    if (dtype == DType::kF32) {
      float* dst = slot.dst->data<float>() + first;
      for (int64_t k = 0; k < n; ++k) dst[k] = f.offset + f.scale * UniformPm1(state);
    } else {
      uint16_t* dst = slot.dst->data<uint16_t>() + first;
      for (int64_t k = 0; k < n; ++k) dst[k] = FloatToBf16(f.offset + f.scale * UniformPm1(state));
    }
    progress.Advance(static_cast<uint64_t>(n) * DTypeSize(dtype));
  });
  progress.Finish();
  TieEmbeddings(out.config, &out.weights);
  return out;
}

float DummyValue(const DummyFill& fill, int64_t index) {
  const int64_t row = index / fill.cols;
  const int64_t row_begin = row - row % fill.rows_per_chunk;
  uint64_t state = fill.name_state;
  state = SplitMix64(state) ^ static_cast<uint64_t>(row_begin);
  state += static_cast<uint64_t>(index - row_begin * fill.cols) * kSplitMixGamma;  // skip to this element
  return fill.offset + fill.scale * UniformPm1(state);
}

std::unordered_map<const Tensor*, DummyFill> DummyFillsByTensor(const ModelConfig& config,
                                                                 const ModelWeights& weights,
                                                                 const std::map<std::string, DummyFill>& fills) {
  std::unordered_map<const Tensor*, DummyFill> out;
  if (fills.empty()) return out;
  // ListWeightSlots only takes the tensors' addresses here; nothing is written.
  for (const WeightSlot& slot : ListWeightSlots(config, const_cast<ModelWeights*>(&weights))) {
    auto it = fills.find(slot.hf_name);
    if (it != fills.end() && slot.dst->raw_data() == nullptr) out[slot.dst] = it->second;
  }
  return out;
}

}  // namespace tandem::model
