// Hugging Face directory → ModelConfig + fp32 ModelWeights: config.json (+ generation_config.json),
// model.safetensors or model.safetensors.index.json with its shards, tokenizer file paths. NVFP4
// linear weights of a Model Optimizer checkpoint (nvfp4_checkpoint.h) are kept in LoadedModel::nvfp4
// and dequantized exactly into the fp32 weights.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "load_internal.h"
#include "load_progress.h"
#include "nlohmann/json.hpp"
#include "parallel.h"
#include "tandem/core/file.h"
#include "tandem/core/status.h"
#include "tandem/model/nvfp4_checkpoint.h"
#include "tandem/model/safetensors.h"

namespace tandem::model {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The shard files named by model.safetensors.index.json's weight_map, in sorted order.
absl::StatusOr<std::vector<std::string>> ShardsFromIndex(const std::string& index_path,
                                                         const std::string& dir) {
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::DataLossError(absl::StrCat(index_path, ": not a JSON object"));
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) {
    return absl::DataLossError(absl::StrCat(index_path, ": missing weight_map object"));
  }
  std::set<std::string> files;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) {
      return absl::DataLossError(
          absl::StrCat(index_path, ": weight_map entry for '", it.key(), "' is not a file name"));
    }
    const std::string name = it->get<std::string>();
    if (name.empty() || absl::StrContains(name, "/") || name == "..") {
      return absl::DataLossError(
          absl::StrCat(index_path, ": weight_map names a bad shard file '", name, "'"));
    }
    files.insert(name);
  }
  std::vector<std::string> paths;
  for (const std::string& f : files) paths.push_back((fs::path(dir) / f).string());
  return paths;
}

bool IgnorableExtraTensor(absl::string_view name, const ModelConfig& config, int file_layers) {
  if (absl::EndsWith(name, "rotary_emb.inv_freq")) return true;
  if (name == "lm_head.weight" && config.tie_word_embeddings) return true;  // HF ties it anyway
  if (absl::StartsWith(name, "model.layers.")) {
    std::vector<absl::string_view> parts = absl::StrSplit(name, '.');
    int layer = -1;
    if (parts.size() > 3 && absl::SimpleAtoi(parts[2], &layer)) {
      return layer >= config.num_layers && layer < file_layers;  // skipped by the layer override
    }
  }
  return false;
}

std::string ChatTemplateFrom(const std::string& tokenizer_config_path) {
  auto text = ReadFileToString(tokenizer_config_path);
  if (!text.ok()) return "";
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return "";
  auto ct = j.find("chat_template");
  if (ct == j.end()) return "";
  if (ct->is_string()) return ct->get<std::string>();
  if (ct->is_array()) {  // [{"name": "default", "template": "..."}, ...]
    for (const json& e : *ct) {
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
          e["template"].is_string()) {
        return e["template"].get<std::string>();
      }
    }
  }
  return "";
}

using TensorIndex = std::map<std::string, std::pair<const SafetensorsTensorInfo*, const SafetensorsFile*>, std::less<>>;

// The NVFP4 triple of the linear layer whose packed weight is `weight` (U8 [N, K/2]) for `slot`
// ([N, K]); the names it took go into `used`. Scales are checked for NaN so dequantization cannot fail.
absl::StatusOr<Nvfp4Tensor> ReadNvfp4Linear(const TensorIndex& all, const WeightSlot& slot,
                                            const SafetensorsTensorInfo& weight, const std::string& file,
                                            std::set<std::string, std::less<>>& used) {
  const std::string module = slot.module();
  const int64_t rows = slot.shape[0], cols = slot.shape[1];
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": NVFP4 layer '", module, "': ", what));
  };
  if (cols % kNvfp4GroupSize != 0) {
    return bad(absl::StrCat("the config's ", cols, " inputs are not a multiple of 16"));
  }
  if (weight.shape != std::vector<int64_t>{rows, cols / 2}) {
    return bad(absl::StrCat("weight has shape [", absl::StrJoin(weight.shape, ", "), "], expected [", rows, ", ",
                            cols / 2, "] (two 4-bit codes per byte)"));
  }
  auto find = [&](const std::string& name) -> const SafetensorsTensorInfo* {
    auto it = all.find(name);
    return it == all.end() ? nullptr : it->second.first;
  };
  const SafetensorsTensorInfo* scale = find(module + ".weight_scale");
  const SafetensorsTensorInfo* scale2 = find(module + ".weight_scale_2");
  if (scale == nullptr || scale2 == nullptr) {
    return bad("weight is U8 (NVFP4) but weight_scale or weight_scale_2 is missing");
  }
  if (scale->dtype != DType::kF8E4M3 || scale->shape != std::vector<int64_t>{rows, cols / kNvfp4GroupSize}) {
    return bad(absl::StrCat("weight_scale is ", DTypeName(scale->dtype), " [", absl::StrJoin(scale->shape, ", "),
                            "], expected F8_E4M3 [", rows, ", ", cols / kNvfp4GroupSize, "]"));
  }
  if (scale2->dtype != DType::kF32 || scale2->nbytes != 4) {
    return bad(absl::StrCat("weight_scale_2 is ", DTypeName(scale2->dtype), " [", absl::StrJoin(scale2->shape, ", "),
                            "], expected one F32"));
  }
  Nvfp4Tensor t;
  t.rows = rows;
  t.cols = cols;
  t.packed.assign(weight.data, weight.data + weight.nbytes);
  t.scales.assign(scale->data, scale->data + scale->nbytes);
  std::memcpy(&t.scale2, scale2->data, 4);
  if (!std::isfinite(t.scale2)) return bad(absl::StrCat("weight_scale_2 is ", t.scale2));
  for (size_t i = 0; i < t.scales.size(); ++i) {
    if ((t.scales[i] & 0x7F) == 0x7F) {
      return bad(absl::StrCat("weight_scale [", i / static_cast<size_t>(cols / kNvfp4GroupSize), ", ",
                              i % static_cast<size_t>(cols / kNvfp4GroupSize), "] is NaN"));
    }
  }
  used.insert(slot.hf_name);
  used.insert(module + ".weight_scale");
  used.insert(module + ".weight_scale_2");
  if (const SafetensorsTensorInfo* in = find(module + ".input_scale"); in != nullptr) {
    if (in->dtype != DType::kF32 || in->nbytes != 4) return bad("input_scale is not one F32");
    used.insert(module + ".input_scale");  // activation scale: unused by a weight-only GEMM
  }
  return t;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadSafetensorsModel(const LoadOptions& options) {
  std::error_code ec;
  std::string dir = options.path;
  std::vector<std::string> shard_paths;
  if (!fs::is_directory(dir, ec)) {
    if (!absl::EndsWith(options.path, ".safetensors")) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.path, ": expected a Hugging Face model directory or a .safetensors file"));
    }
    std::string parent = fs::path(options.path).parent_path().string();
    dir = parent.empty() ? std::string(".") : std::move(parent);
    shard_paths.push_back(options.path);
  }

  LoadedModel out;
  out.model_dir = dir;
  TANDEM_ASSIGN_OR_RETURN(out.config, LoadHfConfigFromDir(dir));
  const int file_layers = out.config.num_layers;
  TANDEM_RETURN_IF_ERROR(ApplyLayerOverride(options, dir, &out.config));

  if (shard_paths.empty()) {
    const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
    const std::string single = (fs::path(dir) / "model.safetensors").string();
    if (fs::exists(index, ec)) {
      TANDEM_ASSIGN_OR_RETURN(shard_paths, ShardsFromIndex(index, dir));
    } else if (fs::exists(single, ec)) {
      shard_paths.push_back(single);
    } else {
      return absl::NotFoundError(
          absl::StrCat(dir, ": neither model.safetensors nor model.safetensors.index.json is present"));
    }
  }

  TANDEM_ASSIGN_OR_RETURN(std::optional<Nvfp4CheckpointConfig> quant, ReadNvfp4CheckpointConfig(dir));
  if (quant.has_value()) out.nvfp4_exclude_modules = quant->exclude_modules;

  // The open shards, shared: with keep_16bit, weight tensors view the mapped files and keep them open.
  std::map<const SafetensorsFile*, std::shared_ptr<SafetensorsFile>> file_of;
  TensorIndex all;
  for (const std::string& p : shard_paths) {
    TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> f, SafetensorsFile::Open(p));
    file_of[f.get()] = f;
    for (const auto& [name, info] : f->tensors()) {
      auto [it, inserted] = all.emplace(name, std::pair{&info, f.get()});
      if (!inserted) {
        return absl::DataLossError(
            absl::StrCat("tensor '", name, "' appears in both ", it->second.second->path(), " and ", p));
      }
    }
  }

  // The last layer must exist before anything is sized by num_hidden_layers.
  const std::string last = absl::StrCat("model.layers.", file_layers - 1, ".input_layernorm.weight");
  if (all.find(last) == all.end()) {
    return absl::NotFoundError(absl::StrCat(dir, ": config.json says num_hidden_layers ", file_layers,
                                            " but tensor '", last, "' is missing"));
  }
  std::vector<WeightSlot> slots = ListWeightSlots(out.config, &out.weights);
  std::vector<const SafetensorsTensorInfo*> sources(slots.size());
  std::vector<const Nvfp4Tensor*> nvfp4_sources(slots.size(), nullptr);
  std::vector<bool> viewed(slots.size(), false);  // keep_16bit: the tensor views the mapped file
  std::set<std::string, std::less<>> used;
  uint64_t total_bytes = 0;
  for (size_t s = 0; s < slots.size(); ++s) {
    const WeightSlot& slot = slots[s];
    auto it = all.find(slot.hf_name);
    if (it == all.end()) {
      return absl::NotFoundError(absl::StrCat(dir, ": tensor '", slot.hf_name,
                                              "' is missing (expected shape [",
                                              absl::StrJoin(slot.shape, ", "), "])"));
    }
    const SafetensorsTensorInfo& info = *it->second.first;
    const std::string& file = it->second.second->path();
    if (info.dtype == DType::kU8 && slot.is_linear) {
      if (!quant.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": tensor '", slot.hf_name, "' is U8 (an NVFP4 weight?) but neither ", dir,
                         "/hf_quant_config.json nor config.json's quantization_config describes a quantization"));
      }
      TANDEM_ASSIGN_OR_RETURN(Nvfp4Tensor t, ReadNvfp4Linear(all, slot, info, file, used));
      total_bytes += t.packed.size() + t.scales.size();
      nvfp4_sources[s] = &out.nvfp4.emplace(slot.hf_name, std::move(t)).first->second;
      continue;
    }
    if (info.dtype != DType::kF32 && info.dtype != DType::kF16 && info.dtype != DType::kBF16) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", slot.hf_name, "' has dtype ",
                                                     DTypeName(info.dtype), ", expected F32, F16 or BF16"));
    }
    if (info.shape != slot.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": tensor '", slot.hf_name, "' has shape [", absl::StrJoin(info.shape, ", "),
                       "], the config expects [", absl::StrJoin(slot.shape, ", "), "]"));
    }
    sources[s] = &info;
    used.insert(slot.hf_name);
    if (options.keep_16bit && (info.dtype == DType::kBF16 || info.dtype == DType::kF16)) {
      // The mapping is read-only; nothing writes weights after loading except QuantizeAtLoad, which
      // replaces a 16-bit tensor instead of writing into it.
      std::shared_ptr<void> owner = file_of[it->second.second];
      *slot.dst = Tensor::Wrap(info.dtype, slot.shape, const_cast<uint8_t*>(info.data), std::move(owner));
      viewed[s] = true;
      continue;
    }
    total_bytes += info.nbytes;
  }
  for (const auto& [name, src] : all) {
    if (used.count(name) != 0 || IgnorableExtraTensor(name, out.config, file_layers)) continue;
    return absl::InvalidArgumentError(
        absl::StrCat(src.second->path(), ": unexpected tensor '", name, "': the config (",
                     ArchitectureName(out.config.architecture), ") has no use for it"));
  }

  const std::vector<RowChunk> chunks = AllocateAndChunk(slots, DType::kF32, viewed);
  LoadProgress progress(out.config.name, total_bytes, options.show_progress);
  ParallelFor(static_cast<int64_t>(chunks.size()), [&](int64_t i) {
    const RowChunk& c = chunks[static_cast<size_t>(i)];
    const int64_t cols = SlotCols(slots[c.slot]);
    float* dst = slots[c.slot].dst->data<float>() + c.row_begin * cols;
    const int64_t n = (c.row_end - c.row_begin) * cols;
    if (const Nvfp4Tensor* q = nvfp4_sources[c.slot]; q != nullptr) {
      // Sizes and scales were checked when it was read: this cannot fail.
      (void)DequantizeNvfp4Rows(*q, c.row_begin, c.row_end, dst);
      progress.Advance(static_cast<uint64_t>(n) * 9 / 16);
      return;
    }
    const SafetensorsTensorInfo& info = *sources[c.slot];
    const size_t esize = DTypeSize(info.dtype);
    const uint8_t* src = info.data + static_cast<size_t>(c.row_begin * cols) * esize;
    switch (info.dtype) {
      case DType::kF32:
        std::memcpy(dst, src, static_cast<size_t>(n) * 4);
        break;
      case DType::kF16:
        for (int64_t k = 0; k < n; ++k) {
          uint16_t h;
          std::memcpy(&h, src + 2 * k, 2);
          dst[k] = HalfToFloat(h);
        }
        break;
      case DType::kBF16:
        for (int64_t k = 0; k < n; ++k) {
          uint16_t b;
          std::memcpy(&b, src + 2 * k, 2);
          dst[k] = Bf16ToFloat(b);
        }
        break;
      case DType::kI32:
      case DType::kI64:
      case DType::kU8:
      case DType::kF8E4M3:
        break;  // rejected above
    }
    progress.Advance(static_cast<uint64_t>(n) * esize);
  });
  progress.Finish();
  TieEmbeddings(out.config, &out.weights);

  const std::string tok = (fs::path(dir) / "tokenizer.json").string();
  const std::string tok_cfg = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(tok, ec)) out.tokenizer_json_path = tok;
  if (fs::exists(tok_cfg, ec)) {
    out.tokenizer_config_json_path = tok_cfg;
    out.chat_template = ChatTemplateFrom(tok_cfg);
  }
  const std::string jinja = (fs::path(dir) / "chat_template.jinja").string();
  if (out.chat_template.empty() && fs::exists(jinja, ec)) {
    auto text = ReadFileToString(jinja);
    if (text.ok()) out.chat_template = *text;
  }
  return out;
}

}  // namespace tandem::model
