// Loading a model: its config, fp32 weights in the layout of weights.h, and what the tokenizer module
// needs (GGUF tokenizer metadata, or the paths of an HF directory's tokenizer files).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tandem/model/gguf.h"
#include "tandem/model/model_config.h"
#include "tandem/model/weights.h"

namespace tandem::model {

enum class LoadFormat {
  kAuto,         // a .gguf file → kGguf; a directory (or .safetensors file) → kSafetensors
  kSafetensors,  // HF directory: config.json + model.safetensors or model.safetensors.index.json
  kGguf,         // one .gguf file (llama architecture)
  kDummy,        // seeded random weights at the shapes of dummy_config; nothing read from path
};

// "auto" | "safetensors" | "gguf" | "dummy" (the deployment file's model.load_format).
absl::StatusOr<LoadFormat> ParseLoadFormat(absl::string_view name);
const char* LoadFormatName(LoadFormat format);

struct LoadOptions {
  std::string path;  // HF directory, .gguf file; for kDummy optional (a directory with config.json)
  LoadFormat format = LoadFormat::kAuto;
  uint64_t seed = 0;  // dummy weights only
  // Dummy only: a config.json path, a directory holding one, or a preset name (PresetConfig). When
  // empty, `path` is used as the config source.
  std::string dummy_config;
  // When set, only the first N layers are built (dummy) or loaded (safetensors/GGUF), and
  // config.num_layers is N: benchmarks at real shapes without 70B parameters in memory.
  std::optional<int> num_layers;
  // Progress display: a single updating line on a terminal (stderr isatty), else log lines; only
  // for loads that take over ~1 s. false silences it.
  bool show_progress = true;
};

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
  // Set for GGUF files: the tokenizer vocabulary, merges, special ids and chat template.
  std::optional<GgufMetadata> gguf;
  // HF directories: paths of the tokenizer files when they exist (empty otherwise), and the chat
  // template from tokenizer_config.json ("chat_template") when present. For GGUF the chat template
  // is gguf->chat_template.
  std::string model_dir;
  std::string tokenizer_json_path;         // <dir>/tokenizer.json
  std::string tokenizer_config_json_path;  // <dir>/tokenizer_config.json
  std::string chat_template;
  LoadFormat format = LoadFormat::kAuto;  // the format actually used
  double load_seconds = 0.0;
};

absl::StatusOr<LoadedModel> LoadModel(const LoadOptions& options);

}  // namespace tandem::model
