// Loading a model: its config, fp32 weights in the layout of weights.h, and what the tokenizer module
// needs (GGUF tokenizer metadata, or the paths of an HF directory's tokenizer files).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tandem/model/dummy_weights.h"
#include "tandem/model/gguf.h"
#include "tandem/model/model_config.h"
#include "tandem/model/nvfp4.h"
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
  // Quantize every linear weight to NVFP4 at load (model.quantization: nvfp4), except the modules
  // matching nvfp4_exclude_modules (see nvfp4_checkpoint.h; lm_head by default, as Model Optimizer
  // does). A tied lm_head is the embedding table and always stays as loaded. A checkpoint already in
  // NVFP4 is taken as it is.
  bool quantize_nvfp4 = false;
  std::vector<std::string> nvfp4_exclude_modules = {"lm_head"};
  // Weights stay 16-bit on the host, for a backend that converts them on upload (the CUDA runner):
  // a bf16/fp16 safetensors tensor becomes a view of the mapped file (no copy: the runner streams it
  // to the device tensor by tensor, so a 70B checkpoint needs no 280 GB of fp32 host memory), dummy
  // weights are generated in bf16 and GGUF weights dequantized to bf16 (the same values rounded as
  // the upload would). The CPU backend needs fp32: leave false for it.
  bool keep_16bit = false;
  // Dummy only: no host data at all — every tensor gets its shape and dtype bf16 but no storage
  // (data() is null), and LoadedModel::dummy says how to generate its values, for a backend that
  // generates them on its device (the CUDA runner). For one runner holding the whole model (not
  // tensor parallelism, not quantize_nvfp4: both need the values on the host).
  bool dummy_on_device = false;
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
  // NVFP4 linear weights by Hugging Face tensor name ("model.layers.0.mlp.down_proj.weight"), read
  // from a Model Optimizer checkpoint or quantized at load. `weights` holds their exact
  // dequantization (what the CPU backend computes with: the reference); a backend with an NVFP4
  // GEMM takes these instead. Empty for an unquantized model.
  std::map<std::string, Nvfp4Tensor> nvfp4;
  std::vector<std::string> nvfp4_exclude_modules;  // the checkpoint's or the quantizer's patterns
  // LoadOptions::dummy_on_device: each tensor's generator by Hugging Face name (model/dummy_weights.h).
  std::map<std::string, DummyFill> dummy;
};

absl::StatusOr<LoadedModel> LoadModel(const LoadOptions& options);

}  // namespace tandem::model
