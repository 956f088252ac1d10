// NVFP4 checkpoints in NVIDIA Model Optimizer's layout (issue 13), read by the safetensors loader and
// written by `tandem quantize`. Per quantized linear layer, next to each other in the safetensors files:
//
//   <module>.weight          U8       [N, K/2]    two E2M1 codes per byte (nvfp4.h)
//   <module>.weight_scale    F8_E4M3  [N, K/16]   one scale per 16 inputs
//   <module>.weight_scale_2  F32      []          per tensor
//   <module>.input_scale     F32      []          optional (activation scale; weight-only here, unused)
//
// and the description in hf_quant_config.json:
//   {"producer": {...}, "quantization": {"quant_algo": "NVFP4", "group_size": 16,
//                                        "exclude_modules": ["lm_head", ...], "kv_cache_quant_algo": null}}
// or the same keys in config.json's "quantization_config" (with "quant_method": "modelopt").
// Modules matching an exclude pattern (fnmatch-style: '*' any run, '?' one character) keep a
// floating-point weight.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::model {

struct LoadedModel;

struct Nvfp4CheckpointConfig {
  std::vector<std::string> exclude_modules;  // patterns over module names ("lm_head", "model.layers.0.*")
};

// Parses the quantization description: `json_text` is hf_quant_config.json (its "quantization" object
// is read) or config.json (its "quantization_config"). nullopt when the file describes no
// quantization; an error naming the key when it describes anything but NVFP4 with group size 16.
absl::StatusOr<std::optional<Nvfp4CheckpointConfig>> ParseNvfp4QuantConfig(const std::string& json_text,
                                                                           const std::string& source_name);

// The checkpoint in `dir`: hf_quant_config.json when present, else config.json's quantization_config.
absl::StatusOr<std::optional<Nvfp4CheckpointConfig>> ReadNvfp4CheckpointConfig(const std::string& dir);

// Whether `module` (a tensor name without its ".weight") matches one of `patterns`.
bool ModuleExcluded(absl::string_view module, const std::vector<std::string>& patterns);

// Writes `model` (loaded from a Hugging Face directory, its linear weights in model.nvfp4) to the new
// directory `out_dir` in Model Optimizer's layout: model.safetensors (NVFP4 triples for the quantized
// linears; every other tensor in bf16 where that is exact, else f32), hf_quant_config.json, config.json
// with the same quantization_config, and every other file of the source directory (tokenizer,
// generation config, chat template) copied. Loading `out_dir` gives back the same NVFP4 bytes and
// the same fp32 weights. `out_dir` must not exist or be empty.
absl::Status WriteNvfp4Checkpoint(LoadedModel& model, const std::string& out_dir);

}  // namespace tandem::model
