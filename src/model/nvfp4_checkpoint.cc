#include "tandem/model/nvfp4_checkpoint.h"

#include <fnmatch.h>

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tandem/core/file.h"
#include "tandem/core/status.h"
#include "tandem/model/loader.h"
#include "tandem/model/safetensors.h"
#include "weight_slots.h"

namespace tandem::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The quantization object Model Optimizer writes (both files carry the same keys).
json QuantizationJson(const std::vector<std::string>& exclude) {
  return json{{"quant_algo", "NVFP4"}, {"kv_cache_quant_algo", nullptr}, {"group_size", 16},
              {"exclude_modules", exclude}};
}

}  // namespace

absl::StatusOr<std::optional<Nvfp4CheckpointConfig>> ParseNvfp4QuantConfig(const std::string& json_text,
                                                                           const std::string& source_name) {
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(source_name, ": not a JSON object"));
  }
  // hf_quant_config.json nests the keys under "quantization"; config.json under "quantization_config".
  const char* key = j.contains("quantization") ? "quantization" : "quantization_config";
  auto q = j.find(key);
  if (q == j.end() || q->is_null()) return std::nullopt;
  auto bad = [&](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": ", key, ".", field, ": ", why));
  };
  if (!q->is_object()) return bad("", "expected an object");
  if (auto m = q->find("quant_method"); m != q->end() && !m->is_null()) {
    if (!m->is_string() || absl::AsciiStrToLower(m->get<std::string>()) != "modelopt") {
      return bad("quant_method", absl::StrCat("only NVIDIA Model Optimizer checkpoints (\"modelopt\") are "
                                              "supported, found ", m->dump()));
    }
  }
  auto algo = q->find("quant_algo");
  if (algo == q->end() || !algo->is_string() || algo->get<std::string>() != "NVFP4") {
    return bad("quant_algo", absl::StrCat("only NVFP4 is supported, found ",
                                          algo == q->end() ? std::string("nothing") : algo->dump()));
  }
  if (auto g = q->find("group_size"); g != q->end() && !g->is_null()) {
    if (!g->is_number_integer() || g->get<int64_t>() != 16) {
      return bad("group_size", absl::StrCat("NVFP4 has one scale per 16 inputs, found ", g->dump()));
    }
  }
  if (auto kv = q->find("kv_cache_quant_algo"); kv != q->end() && !kv->is_null()) {
    return bad("kv_cache_quant_algo",
               absl::StrCat("a quantized KV cache in the checkpoint is not supported, found ", kv->dump()));
  }
  Nvfp4CheckpointConfig out;
  if (auto ex = q->find("exclude_modules"); ex != q->end() && !ex->is_null()) {
    if (!ex->is_array()) return bad("exclude_modules", "expected a list of module name patterns");
    for (const json& e : *ex) {
      if (!e.is_string()) return bad("exclude_modules", absl::StrCat("expected strings, found ", e.dump()));
      out.exclude_modules.push_back(e.get<std::string>());
    }
  }
  return out;
}

absl::StatusOr<std::optional<Nvfp4CheckpointConfig>> ReadNvfp4CheckpointConfig(const std::string& dir) {
  std::error_code ec;
  for (const char* name : {"hf_quant_config.json", "config.json"}) {
    const std::string path = (fs::path(dir) / name).string();
    if (!fs::exists(path, ec)) continue;
    TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    return ParseNvfp4QuantConfig(text, path);
  }
  return std::nullopt;
}

bool ModuleExcluded(absl::string_view module, const std::vector<std::string>& patterns) {
  const std::string m(module);
  for (const std::string& p : patterns) {
    if (fnmatch(p.c_str(), m.c_str(), 0) == 0) return true;
  }
  return false;
}

absl::Status WriteNvfp4Checkpoint(LoadedModel& model, const std::string& out_dir) {
  if (model.format != LoadFormat::kSafetensors || model.model_dir.empty()) {
    return absl::InvalidArgumentError(
        "an NVFP4 checkpoint is written from a Hugging Face directory (config.json, tokenizer files); "
        "quantize a GGUF file at load instead (model.quantization: nvfp4)");
  }
  if (model.nvfp4.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(model.model_dir, ": no linear weight was quantized to NVFP4"));
  }
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_empty(out_dir, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(out_dir, ": exists and is not empty; choose a new directory"));
  }
  if (fs::equivalent(out_dir, model.model_dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(out_dir, ": is the source directory"));
  }
  fs::create_directories(out_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));

  // The source's config.json must describe the model as loaded (a layer override would not).
  const std::string src_config = (fs::path(model.model_dir) / "config.json").string();
  TANDEM_ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(src_config));
  json config = json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::DataLossError(absl::StrCat(src_config, ": not a JSON object"));
  }
  if (config.value("num_hidden_layers", -1) != model.config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("the model was loaded with ", model.config.num_layers,
                                                   " layers, its config.json says ", config.value("num_hidden_layers", -1),
                                                   "; write the whole model"));
  }

  std::vector<SafetensorsWriteEntry> entries;
  std::vector<std::vector<uint16_t>> bf16_copies;  // alive until the write
  bf16_copies.reserve(model.weights.layers.size() * 16 + 4);
  for (const WeightSlot& slot : ListWeightSlots(model.config, &model.weights)) {
    auto q = model.nvfp4.find(slot.hf_name);
    if (q != model.nvfp4.end()) {
      const Nvfp4Tensor& t = q->second;
      const std::string module = slot.module();
      entries.push_back({slot.hf_name, DType::kU8, {t.rows, t.cols / 2}, t.packed.data(), t.packed.size()});
      entries.push_back({module + ".weight_scale", DType::kF8E4M3, {t.rows, t.cols / kNvfp4GroupSize},
                         t.scales.data(), t.scales.size()});
      entries.push_back({module + ".weight_scale_2", DType::kF32, {}, &t.scale2, sizeof(float)});
      continue;
    }
    const Tensor& w = *slot.dst;
    const float* data = w.data<float>();
    const size_t n = static_cast<size_t>(w.numel());
    std::vector<uint16_t> bf16(n);
    bool exact = true;
    for (size_t i = 0; i < n && exact; ++i) {
      bf16[i] = FloatToBf16(data[i]);
      exact = Bf16ToFloat(bf16[i]) == data[i] || (data[i] != data[i]);
    }
    if (exact) {
      bf16_copies.push_back(std::move(bf16));
      entries.push_back({slot.hf_name, DType::kBF16, slot.shape, bf16_copies.back().data(), n * 2});
    } else {
      entries.push_back({slot.hf_name, DType::kF32, slot.shape, data, n * 4});
    }
  }
  TANDEM_RETURN_IF_ERROR(WriteSafetensors((fs::path(out_dir) / "model.safetensors").string(), std::move(entries)));

  const json quant = QuantizationJson(model.nvfp4_exclude_modules);
  json hf_quant = {{"producer", {{"name", "tandem"}, {"version", "quantize"}}}, {"quantization", quant}};
  TANDEM_RETURN_IF_ERROR(WriteStringToFile((fs::path(out_dir) / "hf_quant_config.json").string(), hf_quant.dump(2) + "\n"));
  config["quantization_config"] = quant;
  config["quantization_config"]["quant_method"] = "modelopt";
  TANDEM_RETURN_IF_ERROR(WriteStringToFile((fs::path(out_dir) / "config.json").string(), config.dump(2) + "\n"));

  // Everything else the directory holds for the model (tokenizer, generation config, chat template).
  for (const fs::directory_entry& e : fs::directory_iterator(model.model_dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const std::string name = e.path().filename().string();
    if (name == "config.json" || name == "hf_quant_config.json" || name == "model.safetensors.index.json" ||
        absl::EndsWith(name, ".safetensors")) {
      continue;
    }
    fs::copy_file(e.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::DataLossError(absl::StrCat("copying ", e.path().string(), ": ", ec.message()));
  }
  if (ec) return absl::DataLossError(absl::StrCat(model.model_dir, ": cannot list: ", ec.message()));
  return absl::OkStatus();
}

}  // namespace tandem::model
