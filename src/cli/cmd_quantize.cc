// `tandem quantize`: writes an NVFP4 checkpoint in NVIDIA Model Optimizer's layout from a Hugging Face
// directory (nvfp4_checkpoint.h), which tandem and the engines that read that layout load.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "commands.h"
#include "flags.h"
#include "tandem/model/loader.h"
#include "tandem/model/nvfp4_checkpoint.h"

namespace tandem::cli {
namespace {

const std::vector<FlagSpec>& QuantizeFlags() {
  static const std::vector<FlagSpec> kSpecs = {
      {"model", "a Hugging Face model directory (bf16, fp16 or fp32 safetensors)", true, false, "m"},
      {"format", "the output format: nvfp4 (the only one)"},
      {"out", "the new directory to write (must not exist or be empty)", true, false, "o"},
      {"exclude", "comma-separated module name patterns kept unquantized (default lm_head)"},
  };
  return kSpecs;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "tandem quantize: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "tandem quantize: %s\n", message.c_str());
  return 2;
}

}  // namespace

int RunQuantize(const Args& args) {
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp("tandem quantize --model DIR --format nvfp4 --out DIR [--exclude lm_head,...]",
                                 "Quantize a model's linear weights to NVFP4 and write a checkpoint in NVIDIA Model "
                                 "Optimizer's layout (config and tokenizer files copied).",
                                 QuantizeFlags())
                          .c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, QuantizeFlags());
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (!flags->positional().empty()) return Usage("unexpected argument '" + flags->positional()[0] + "'");
  if (!flags->Has("model")) return Usage("--model is required");
  if (!flags->Has("out")) return Usage("--out is required");
  const std::string format = flags->Get("format", "nvfp4");
  if (format != "nvfp4") return Usage(absl::StrCat("--format: expected nvfp4, found '", format, "'"));

  model::LoadOptions load;
  load.path = flags->Get("model");
  if (absl::EndsWithIgnoreCase(load.path, ".gguf")) {
    return Usage("--model: a GGUF file has no Hugging Face config and tokenizer files to write; serve it with "
                 "model.quantization: nvfp4 (quantized at load) instead");
  }
  load.format = model::LoadFormat::kSafetensors;
  load.quantize_nvfp4 = true;
  if (flags->Has("exclude")) {
    load.nvfp4_exclude_modules = absl::StrSplit(flags->Get("exclude"), ',', absl::SkipEmpty());
  }
  auto loaded = model::LoadModel(load);
  if (!loaded.ok()) return Fail(loaded.status());
  const std::string out = flags->Get("out");
  if (absl::Status s = model::WriteNvfp4Checkpoint(*loaded, out); !s.ok()) return Fail(s);
  std::printf("wrote %s: %zu linear weights in NVFP4 (excluded: %s)\n", out.c_str(), loaded->nvfp4.size(),
              loaded->nvfp4_exclude_modules.empty() ? "none"
                                                    : absl::StrJoin(loaded->nvfp4_exclude_modules, ", ").c_str());
  return 0;
}

}  // namespace tandem::cli
