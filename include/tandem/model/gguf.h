// GGUF v3 reader (llama.cpp's file format): header, metadata key/values and tensor infos parsed from a
// memory-mapped file with every length and offset bounds-checked; tensor data stays in the mapping.
// Format: magic "GGUF", u32 version (2 or 3), u64 tensor_count, u64 kv_count, the key/values, the
// tensor infos (name, n_dims, dims[] fastest-first, ggml type, offset), then padding to
// general.alignment (default 32) and the data section. All little-endian.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tandem/model/gguf_types.h"

namespace tandem::model {

class MappedFile;

// Metadata value types, numbered as in the file.
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
const char* GgufValueTypeName(GgufValueType type);

// An array value. Integers and bools land in `ints`, floats in `floats`, strings in `strings`
// (only the vector matching elem_type is filled). Nested arrays are kept as a count only.
struct GgufArray {
  GgufValueType elem_type = GgufValueType::kU8;
  uint64_t size = 0;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
};

// A metadata value: the file's type plus the value. Unsigned and signed integers are held as
// uint64_t / int64_t, f32/f64 as double.
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml dims, fastest-varying first: a [rows, cols] matrix has ne = {cols, rows}
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;            // from the start of the data section
  uint64_t nbytes = 0;            // bytes of data, from ne and type
  const uint8_t* data = nullptr;  // into the mapping; valid while the GgufFile lives

  int64_t numel() const;
  // Row-major shape as HF / tandem write it: ne reversed ([rows, cols]).
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  // Maps and parses `path`. Any structural problem (bad magic, unsupported version, a length or
  // offset past the end of the file, an unknown value or tensor type, tensor data overlapping or out
  // of bounds) is an error naming the file and, where it applies, the key or tensor.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const;

  // Metadata. Getters return NotFound for a missing key and InvalidArgument for a type that does
  // not convert (integers convert between widths when the value fits; f32 and f64 convert to float).
  bool Has(absl::string_view key) const;
  const GgufValue* Find(absl::string_view key) const;
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<uint32_t> GetU32(absl::string_view key) const;
  absl::StatusOr<uint64_t> GetU64(absl::string_view key) const;
  absl::StatusOr<int64_t> GetI64(absl::string_view key) const;
  absl::StatusOr<float> GetF32(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(absl::string_view key) const;
  absl::StatusOr<std::vector<float>> GetF32Array(absl::string_view key) const;
  absl::StatusOr<std::vector<int32_t>> GetI32Array(absl::string_view key) const;
  // Array length without copying it (e.g. the vocabulary size from tokenizer.ggml.tokens).
  absl::StatusOr<uint64_t> GetArraySize(absl::string_view key) const;

  // Tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(absl::string_view name) const;

 private:
  GgufFile() = default;
  absl::Status Parse();

  std::string path_;
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// What the tokenizer module needs from a GGUF file, under the key names llama.cpp writes.
struct GgufMetadata {
  std::string architecture;  // general.architecture, e.g. "llama"
  std::string name;          // general.name (may be empty)

  // tokenizer.ggml.model: "gpt2" = byte-level BPE (tokens are GPT-2 byte-to-unicode strings, merges
  // given); "llama" = SentencePiece BPE (scores given, "▁" for spaces, <0xNN> byte tokens).
  std::string tokenizer_model;
  // tokenizer.ggml.pre: the pre-tokenizer family for gpt2 vocabularies ("smollm", "llama-bpe",
  // "qwen2", "default", ...). Empty when absent.
  std::string tokenizer_pre;
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens: id -> token text
  std::vector<float> scores;        // tokenizer.ggml.scores: id -> score (empty when absent)
  // tokenizer.ggml.token_type: id -> 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
  // 6 byte (empty when absent).
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;  // tokenizer.ggml.merges: "left right", rank = index (gpt2 only)

  // Special token ids; -1 when the file does not give one.
  int32_t bos_token_id = -1;  // tokenizer.ggml.bos_token_id
  int32_t eos_token_id = -1;  // tokenizer.ggml.eos_token_id
  int32_t unk_token_id = -1;  // tokenizer.ggml.unknown_token_id
  int32_t pad_token_id = -1;  // tokenizer.ggml.padding_token_id
  int32_t eot_token_id = -1;  // tokenizer.ggml.eot_token_id (end of turn, when distinct from eos)
  // tokenizer.ggml.add_bos_token / add_eos_token; nullopt when the file does not say.
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::string chat_template;  // tokenizer.chat_template (Jinja); empty when absent
};

// Reads GgufMetadata from an opened file. tokenizer.ggml.model and tokenizer.ggml.tokens are
// required; everything else is optional. scores / token_type, when present, must have one entry
// per token.
absl::StatusOr<GgufMetadata> ReadGgufMetadata(const GgufFile& file);

}  // namespace tandem::model
