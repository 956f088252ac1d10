// GGUF (llama architecture) → ModelConfig + fp32 ModelWeights. Quantized tensors are dequantized at
// load; the Q/K row permutation of llama.cpp's converter is undone so the weights use HF's
// rotate_half convention like every other format.
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "load_internal.h"
#include "load_progress.h"
#include "parallel.h"
#include "tandem/core/status.h"
#include "tandem/model/gguf.h"
#include "tandem/model/qk_permute.h"

namespace tandem::model {

namespace {

absl::StatusOr<int> GetIntKey(const GgufFile& f, const std::string& key, std::optional<int> fallback) {
  if (!f.Has(key)) {
    if (fallback.has_value()) return *fallback;
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": required metadata key '", key, "' is missing"));
  }
  TANDEM_ASSIGN_OR_RETURN(uint32_t v, f.GetU32(key));
  if (v > static_cast<uint32_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": metadata key '", key, "': value ", v, " too large"));
  }
  return static_cast<int>(v);
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& f, const GgufMetadata& meta) {
  if (meta.architecture != "llama") {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": general.architecture is '", meta.architecture,
                                                   "', only 'llama' GGUF files are supported"));
  }
  const std::string a = "llama.";
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  TANDEM_ASSIGN_OR_RETURN(c.hidden_size, GetIntKey(f, a + "embedding_length", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.num_layers, GetIntKey(f, a + "block_count", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.intermediate_size, GetIntKey(f, a + "feed_forward_length", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.num_attention_heads, GetIntKey(f, a + "attention.head_count", std::nullopt));
  TANDEM_ASSIGN_OR_RETURN(c.num_kv_heads, GetIntKey(f, a + "attention.head_count_kv", c.num_attention_heads));
  TANDEM_ASSIGN_OR_RETURN(c.max_position_embeddings, GetIntKey(f, a + "context_length", std::nullopt));
  if (c.num_attention_heads <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": llama.attention.head_count must be positive"));
  }
  TANDEM_ASSIGN_OR_RETURN(c.head_dim,
                          GetIntKey(f, a + "attention.key_length", c.hidden_size / c.num_attention_heads));
  TANDEM_ASSIGN_OR_RETURN(int value_length, GetIntKey(f, a + "attention.value_length", c.head_dim));
  if (value_length != c.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": llama.attention.value_length ", value_length,
                                                   " differs from key_length ", c.head_dim,
                                                   " (unsupported)"));
  }
  TANDEM_ASSIGN_OR_RETURN(int rope_dims, GetIntKey(f, a + "rope.dimension_count", c.head_dim));
  if (rope_dims != c.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": llama.rope.dimension_count ", rope_dims,
                                                   " differs from head_dim ", c.head_dim,
                                                   " (partial rotary is not supported)"));
  }
  if (f.Has(a + "rope.scaling.type")) {
    TANDEM_ASSIGN_OR_RETURN(std::string type, f.GetString(a + "rope.scaling.type"));
    if (type != "none") {
      return absl::InvalidArgumentError(
          absl::StrCat(f.path(), ": llama.rope.scaling.type '", type, "' is not supported (only none)"));
    }
  }
  if (f.FindTensor("rope_freqs.weight") != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        f.path(),
        ": tensor 'rope_freqs.weight' (Llama 3.1 rope scaling baked into GGUF) is not supported; "
        "load the Hugging Face checkpoint instead"));
  }
  if (f.Has(a + "rope.freq_base")) {
    TANDEM_ASSIGN_OR_RETURN(float theta, f.GetF32(a + "rope.freq_base"));
    c.rope_theta = theta;
  }
  TANDEM_ASSIGN_OR_RETURN(c.rms_norm_eps, f.GetF32(a + "attention.layer_norm_rms_epsilon"));
  if (f.Has(a + "vocab_size")) {
    TANDEM_ASSIGN_OR_RETURN(c.vocab_size, GetIntKey(f, a + "vocab_size", std::nullopt));
  } else {
    c.vocab_size = static_cast<int>(meta.tokens.size());
  }
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  c.bos_token_id = meta.bos_token_id;
  if (meta.eos_token_id >= 0) c.eos_token_ids.push_back(meta.eos_token_id);
  if (meta.eot_token_id >= 0 && meta.eot_token_id != meta.eos_token_id)
    c.eos_token_ids.push_back(meta.eot_token_id);
  c.name = meta.name.empty() ? f.path() : meta.name;
  TANDEM_RETURN_IF_ERROR(ValidateConfig(c, f.path()));
  return c;
}

// Layer index of "blk.N.something", or -1.
int BlockIndex(absl::string_view name) {
  if (!absl::StartsWith(name, "blk.")) return -1;
  std::vector<absl::string_view> parts = absl::StrSplit(name, '.');
  int n = -1;
  if (parts.size() < 3 || !absl::SimpleAtoi(parts[1], &n)) return -1;
  return n;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadGgufModel(const LoadOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(options.path));
  LoadedModel out;
  TANDEM_ASSIGN_OR_RETURN(GgufMetadata meta, ReadGgufMetadata(*file));
  TANDEM_ASSIGN_OR_RETURN(out.config, ConfigFromGguf(*file, meta));
  const int file_layers = out.config.num_layers;
  TANDEM_RETURN_IF_ERROR(ApplyLayerOverride(options, options.path, &out.config));

  // The last layer must exist before anything is sized by block_count (a corrupt count must not
  // size allocations).
  const std::string last = absl::StrCat("blk.", file_layers - 1, ".attn_norm.weight");
  if (file->FindTensor(last) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(options.path, ": llama.block_count is ", file_layers,
                                                   " but tensor '", last, "' is missing"));
  }
  std::vector<WeightSlot> slots = ListWeightSlots(out.config, &out.weights);
  std::vector<const GgufTensorInfo*> sources(slots.size());
  std::set<std::string> used;
  uint64_t total_bytes = 0;
  for (size_t s = 0; s < slots.size(); ++s) {
    const WeightSlot& slot = slots[s];
    const GgufTensorInfo* t = file->FindTensor(slot.gguf_name);
    if (t == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(options.path, ": tensor '", slot.gguf_name, "' (", slot.hf_name, ") is missing"));
    }
    if (t->shape() != slot.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.path, ": tensor '", slot.gguf_name, "' has shape [", absl::StrJoin(t->shape(), ", "),
          "], the config expects [", absl::StrJoin(slot.shape, ", "), "]"));
    }
    sources[s] = t;
    used.insert(t->name);
    total_bytes += t->nbytes;
  }
  for (const GgufTensorInfo& t : file->tensors()) {
    if (used.count(t.name) != 0) continue;
    const int block = BlockIndex(t.name);
    if (block >= out.config.num_layers && block < file_layers) continue;  // skipped by the layer override
    return absl::InvalidArgumentError(
        absl::StrCat(options.path, ": unexpected tensor '", t.name,
                     "': the llama architecture as tandem implements it has no use "
                     "for it"));
  }

  // Dequantize row chunks in parallel. Every GGUF row (ne[0] elements) is a whole number of blocks,
  // so a chunk of rows starts at a block boundary. keep_16bit: rounded to bf16 chunk by chunk (the
  // values the CUDA runner's upload of the fp32 weights would give; half the host memory).
  const DType dtype = options.keep_16bit ? DType::kBF16 : DType::kF32;
  const std::vector<RowChunk> chunks = AllocateAndChunk(slots, dtype);
  LoadProgress progress(out.config.name, total_bytes, options.show_progress);
  ParallelFor(static_cast<int64_t>(chunks.size()), [&](int64_t i) {
    const RowChunk& c = chunks[static_cast<size_t>(i)];
    const GgufTensorInfo& t = *sources[c.slot];
    const int64_t cols = SlotCols(slots[c.slot]);
    const size_t row_bytes = GgmlRowBytes(t.type, cols);
    const uint8_t* src = t.data + static_cast<size_t>(c.row_begin) * row_bytes;
    const int64_t n = (c.row_end - c.row_begin) * cols;
    if (dtype == DType::kF32) {
      DequantizeRow(t.type, src, slots[c.slot].dst->data<float>() + c.row_begin * cols, n);
    } else {
      std::vector<float> values(static_cast<size_t>(n));
      DequantizeRow(t.type, src, values.data(), n);
      uint16_t* dst = slots[c.slot].dst->data<uint16_t>() + c.row_begin * cols;
      for (int64_t k = 0; k < n; ++k) dst[k] = FloatToBf16(values[static_cast<size_t>(k)]);
    }
    progress.Advance(static_cast<uint64_t>(c.row_end - c.row_begin) * row_bytes);
  });
  ParallelFor(static_cast<int64_t>(slots.size()), [&](int64_t s) {
    const WeightSlot& slot = slots[static_cast<size_t>(s)];
    if (slot.gguf_permute_heads == 0) return;
    if (dtype == DType::kF32) {
      UnpermuteQkRows(slot.dst->data<float>(), slot.shape[0], SlotCols(slot), slot.gguf_permute_heads);
    } else {
      UnpermuteQkRows(slot.dst->data<uint16_t>(), slot.shape[0], SlotCols(slot), slot.gguf_permute_heads);
    }
  });
  progress.Finish();
  TieEmbeddings(out.config, &out.weights);
  out.chat_template = meta.chat_template;
  out.gguf = std::move(meta);
  return out;
}

}  // namespace tandem::model
