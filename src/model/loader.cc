#include "tandem/model/loader.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "load_internal.h"
#include "parallel.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/model/nvfp4_checkpoint.h"

namespace tandem::model {

absl::StatusOr<LoadFormat> ParseLoadFormat(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "auto") return LoadFormat::kAuto;
  if (n == "safetensors") return LoadFormat::kSafetensors;
  if (n == "gguf") return LoadFormat::kGguf;
  if (n == "dummy") return LoadFormat::kDummy;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown load format '", name, "': expected auto, safetensors, gguf or dummy"));
}

const char* LoadFormatName(LoadFormat format) {
  switch (format) {
    case LoadFormat::kAuto:
      return "auto";
    case LoadFormat::kSafetensors:
      return "safetensors";
    case LoadFormat::kGguf:
      return "gguf";
    case LoadFormat::kDummy:
      return "dummy";
  }
  return "?";
}

absl::Status ApplyLayerOverride(const LoadOptions& options, absl::string_view source, ModelConfig* config) {
  if (!options.num_layers.has_value()) return absl::OkStatus();
  const int n = *options.num_layers;
  if (n < 1 || n > config->num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": num_layers override ", n, " outside [1, ",
                                                   config->num_layers, "] (the model's layer count)"));
  }
  config->num_layers = n;
  return absl::OkStatus();
}

int64_t SlotCols(const WeightSlot& slot) {
  int64_t cols = 1;
  for (size_t i = 1; i < slot.shape.size(); ++i) cols *= slot.shape[i];
  return cols;
}

int64_t RowsPerChunk(const WeightSlot& slot) {
  constexpr int64_t kChunkElements = 1 << 18;
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(SlotCols(slot), 1));
}

std::vector<RowChunk> AllocateAndChunk(const std::vector<WeightSlot>& slots, DType dtype,
                                       const std::vector<bool>& skip) {
  std::vector<RowChunk> chunks;
  for (size_t s = 0; s < slots.size(); ++s) {
    if (!skip.empty() && skip[s]) continue;
    *slots[s].dst = Tensor::Empty(dtype, slots[s].shape);
    const int64_t rows = slots[s].shape.empty() ? 1 : slots[s].shape[0];
    const int64_t rows_per_chunk = RowsPerChunk(slots[s]);
    for (int64_t r = 0; r < rows; r += rows_per_chunk) {
      chunks.push_back(RowChunk{s, r, std::min(rows, r + rows_per_chunk)});
    }
  }
  return chunks;
}

namespace {

// options.quantize_nvfp4: every linear weight not excluded to NVFP4, its fp32 tensor replaced by the
// exact dequantization (so every backend computes with the quantized weights).
absl::Status QuantizeAtLoad(const LoadOptions& options, LoadedModel* model) {
  if (!options.quantize_nvfp4) return absl::OkStatus();
  if (!model->nvfp4.empty()) {
    TLOG_INFO("{}: already an NVFP4 checkpoint; taken as it is", model->config.name);
    return absl::OkStatus();
  }
  const auto start = std::chrono::steady_clock::now();
  model->nvfp4_exclude_modules = options.nvfp4_exclude_modules;
  std::vector<WeightSlot> targets;
  for (WeightSlot& slot : ListWeightSlots(model->config, &model->weights)) {
    if (slot.is_linear && !ModuleExcluded(slot.module(), options.nvfp4_exclude_modules)) targets.push_back(slot);
  }
  std::vector<absl::StatusOr<Nvfp4Tensor>> quantized(targets.size(), absl::UnknownError("not run"));
  ParallelFor(static_cast<int64_t>(targets.size()), [&](int64_t i) {
    const WeightSlot& slot = targets[static_cast<size_t>(i)];
    absl::StatusOr<Nvfp4Tensor>& q = quantized[static_cast<size_t>(i)];
    if (slot.dst->dtype() == DType::kF32) {
      q = QuantizeNvfp4(slot.dst->data<float>(), slot.shape[0], slot.shape[1]);
      if (q.ok()) {
        if (absl::Status s = DequantizeNvfp4(*q, slot.dst->data<float>()); !s.ok()) q = s;
      }
      return;
    }
    // 16-bit weights (keep_16bit) may view a read-only mapped file: quantize an fp32 copy and keep
    // the dequantization as a new bf16 tensor (a backend with an NVFP4 GEMM reads `nvfp4` instead).
    const std::vector<float> values = ToFloat32(*slot.dst);
    q = QuantizeNvfp4(values.data(), slot.shape[0], slot.shape[1]);
    if (!q.ok()) return;
    std::vector<float> dequantized(values.size());
    if (absl::Status s = DequantizeNvfp4(*q, dequantized.data()); !s.ok()) {
      q = s;
      return;
    }
    Tensor t = Tensor::Empty(DType::kBF16, slot.shape);
    for (size_t k = 0; k < dequantized.size(); ++k) t.data<uint16_t>()[k] = FloatToBf16(dequantized[k]);
    *slot.dst = std::move(t);
  });
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!quantized[i].ok()) {
      return absl::InvalidArgumentError(absl::StrCat("quantizing ", targets[i].hf_name,
                                                     " to NVFP4: ", quantized[i].status().message()));
    }
    model->nvfp4.emplace(targets[i].hf_name, *std::move(quantized[i]));
  }
  TLOG_INFO("quantized {} linear weights of {} to NVFP4 in {:.2f}s", targets.size(), model->config.name,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const LoadOptions& options) {
  namespace fs = std::filesystem;
  LoadFormat format = options.format;
  if (format == LoadFormat::kAuto) {
    if (options.path.empty()) {
      return absl::InvalidArgumentError("model path is empty (set model.path, or load_format: dummy)");
    }
    std::error_code ec;
    if (fs::is_directory(options.path, ec)) {
      format = LoadFormat::kSafetensors;
    } else if (absl::EndsWithIgnoreCase(options.path, ".gguf")) {
      format = LoadFormat::kGguf;
    } else if (absl::EndsWithIgnoreCase(options.path, ".safetensors")) {
      format = LoadFormat::kSafetensors;
    } else if (!fs::exists(options.path, ec)) {
      return absl::NotFoundError(absl::StrCat(options.path, ": no such file or directory"));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          options.path, ": cannot tell the format: expected a directory (safetensors) or a .gguf file"));
    }
  }
  if (options.dummy_on_device && options.quantize_nvfp4) {
    return absl::InvalidArgumentError(
        "dummy weights generated on the device cannot be quantized to NVFP4 at load (the quantizer needs "
        "their values on the host)");
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<LoadedModel> loaded;
  switch (format) {
    case LoadFormat::kSafetensors:
      loaded = LoadSafetensorsModel(options);
      break;
    case LoadFormat::kGguf:
      loaded = LoadGgufModel(options);
      break;
    case LoadFormat::kDummy:
      loaded = LoadDummyModel(options);
      break;
    case LoadFormat::kAuto:
      return absl::InternalError("load format still auto after detection");
  }
  if (!loaded.ok()) return loaded.status();
  loaded->format = format;
  loaded->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  TANDEM_RETURN_IF_ERROR(ValidateWeights(loaded->config, loaded->weights, loaded->config.name));
  TANDEM_RETURN_IF_ERROR(QuantizeAtLoad(options, &*loaded));
  TLOG_INFO("loaded {} ({} {}, {} layers, {:.1f}M parameters) in {:.2f}s", loaded->config.name,
            LoadFormatName(format), ArchitectureName(loaded->config.architecture), loaded->config.num_layers,
            static_cast<double>(NumParameters(loaded->weights)) / 1e6, loaded->load_seconds);
  return loaded;
}

}  // namespace tandem::model
