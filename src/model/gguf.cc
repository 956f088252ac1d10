#include "tandem/model/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "mapped_file.h"
#include "tandem/core/status.h"

namespace tandem::model {

const char* GgufValueTypeName(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8:
      return "u8";
    case GgufValueType::kI8:
      return "i8";
    case GgufValueType::kU16:
      return "u16";
    case GgufValueType::kI16:
      return "i16";
    case GgufValueType::kU32:
      return "u32";
    case GgufValueType::kI32:
      return "i32";
    case GgufValueType::kF32:
      return "f32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kU64:
      return "u64";
    case GgufValueType::kI64:
      return "i64";
    case GgufValueType::kF64:
      return "f64";
  }
  return "?";
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;

// A bounds-checked little-endian cursor over the mapping.
class Reader {
 public:
  Reader(const uint8_t* data, uint64_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  absl::Status Need(uint64_t n, absl::string_view what) const {
    if (n > remaining()) {
      return absl::DataLossError(absl::StrCat(path_, ": truncated at byte ", pos_, " reading ", what,
                                              ": need ", n, " bytes, ", remaining(), " left in a file of ",
                                              size_));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    TANDEM_RETURN_IF_ERROR(Need(sizeof(T), what));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  absl::StatusOr<std::string> ReadString(absl::string_view what) {
    TANDEM_ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(what));
    TANDEM_RETURN_IF_ERROR(Need(len, what));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }

  absl::Status Skip(uint64_t n, absl::string_view what) {
    TANDEM_RETURN_IF_ERROR(Need(n, what));
    pos_ += n;
    return absl::OkStatus();
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

absl::StatusOr<GgufValueType> ValueTypeFromRaw(uint32_t raw, const std::string& path, absl::string_view key) {
  if (raw > static_cast<uint32_t>(GgufValueType::kF64)) {
    return absl::DataLossError(absl::StrCat(path, ": metadata key '", key, "': unknown value type ", raw));
  }
  return static_cast<GgufValueType>(raw);
}

size_t ScalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
    case GgufValueType::kString:  // at least its u64 length
      return 8;
    case GgufValueType::kArray:
      return 12;  // at least type + count
  }
  return 1;
}

// Reads one scalar of type t into a variant-compatible form.
absl::StatusOr<GgufValue> ReadScalar(Reader& r, GgufValueType t, absl::string_view what) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::kU8: {
      TANDEM_ASSIGN_OR_RETURN(uint8_t x, r.Read<uint8_t>(what));
      v.value = static_cast<uint64_t>(x);
      break;
    }
    case GgufValueType::kI8: {
      TANDEM_ASSIGN_OR_RETURN(int8_t x, r.Read<int8_t>(what));
      v.value = static_cast<int64_t>(x);
      break;
    }
    case GgufValueType::kU16: {
      TANDEM_ASSIGN_OR_RETURN(uint16_t x, r.Read<uint16_t>(what));
      v.value = static_cast<uint64_t>(x);
      break;
    }
    case GgufValueType::kI16: {
      TANDEM_ASSIGN_OR_RETURN(int16_t x, r.Read<int16_t>(what));
      v.value = static_cast<int64_t>(x);
      break;
    }
    case GgufValueType::kU32: {
      TANDEM_ASSIGN_OR_RETURN(uint32_t x, r.Read<uint32_t>(what));
      v.value = static_cast<uint64_t>(x);
      break;
    }
    case GgufValueType::kI32: {
      TANDEM_ASSIGN_OR_RETURN(int32_t x, r.Read<int32_t>(what));
      v.value = static_cast<int64_t>(x);
      break;
    }
    case GgufValueType::kF32: {
      TANDEM_ASSIGN_OR_RETURN(float x, r.Read<float>(what));
      v.value = static_cast<double>(x);
      break;
    }
    case GgufValueType::kBool: {
      TANDEM_ASSIGN_OR_RETURN(uint8_t x, r.Read<uint8_t>(what));
      v.value = x != 0;
      break;
    }
    case GgufValueType::kString: {
      TANDEM_ASSIGN_OR_RETURN(std::string s, r.ReadString(what));
      v.value = std::move(s);
      break;
    }
    case GgufValueType::kU64: {
      TANDEM_ASSIGN_OR_RETURN(uint64_t x, r.Read<uint64_t>(what));
      v.value = x;
      break;
    }
    case GgufValueType::kI64: {
      TANDEM_ASSIGN_OR_RETURN(int64_t x, r.Read<int64_t>(what));
      v.value = x;
      break;
    }
    case GgufValueType::kF64: {
      TANDEM_ASSIGN_OR_RETURN(double x, r.Read<double>(what));
      v.value = x;
      break;
    }
    case GgufValueType::kArray:
      return absl::InternalError("ReadScalar called for an array");
  }
  return v;
}

absl::StatusOr<GgufArray> ReadArray(Reader& r, const std::string& path, absl::string_view key, int depth) {
  TANDEM_ASSIGN_OR_RETURN(uint32_t raw_type, r.Read<uint32_t>(key));
  TANDEM_ASSIGN_OR_RETURN(GgufValueType elem, ValueTypeFromRaw(raw_type, path, key));
  TANDEM_ASSIGN_OR_RETURN(uint64_t count, r.Read<uint64_t>(key));
  if (count > r.remaining() / ScalarSize(elem)) {
    return absl::DataLossError(absl::StrCat(path, ": metadata key '", key, "': array of ", count, " ",
                                            GgufValueTypeName(elem), " does not fit in the ", r.remaining(),
                                            " bytes left"));
  }
  GgufArray a;
  a.elem_type = elem;
  a.size = count;
  switch (elem) {
    case GgufValueType::kString:
      a.strings.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        TANDEM_ASSIGN_OR_RETURN(std::string s, r.ReadString(key));
        a.strings.push_back(std::move(s));
      }
      break;
    case GgufValueType::kArray:
      if (depth > 4)
        return absl::DataLossError(absl::StrCat(path, ": metadata key '", key, "': arrays nested too deep"));
      for (uint64_t i = 0; i < count; ++i) {
        TANDEM_RETURN_IF_ERROR(ReadArray(r, path, key, depth + 1).status());
      }
      break;
    case GgufValueType::kF32:
    case GgufValueType::kF64:
      a.floats.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        TANDEM_ASSIGN_OR_RETURN(GgufValue v, ReadScalar(r, elem, key));
        a.floats.push_back(std::get<double>(v.value));
      }
      break;
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kU16:
    case GgufValueType::kI16:
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kBool:
    case GgufValueType::kU64:
    case GgufValueType::kI64:
      a.ints.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        TANDEM_ASSIGN_OR_RETURN(GgufValue v, ReadScalar(r, elem, key));
        if (const auto* u = std::get_if<uint64_t>(&v.value)) {
          a.ints.push_back(static_cast<int64_t>(*u));
        } else if (const auto* s = std::get_if<int64_t>(&v.value)) {
          a.ints.push_back(*s);
        } else {
          a.ints.push_back(std::get<bool>(v.value) ? 1 : 0);
        }
      }
      break;
  }
  return a;
}

absl::Status TypeError(const std::string& path, absl::string_view key, const GgufValue& v,
                       absl::string_view wanted) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": metadata key '", key, "' has type ",
                                                 GgufValueTypeName(v.type), ", expected ", wanted));
}

}  // namespace

GgufFile::~GgufFile() = default;

uint64_t GgufFile::file_size() const { return file_ ? file_->size() : 0; }

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  TANDEM_ASSIGN_OR_RETURN(f->file_, MappedFile::Open(path));
  TANDEM_RETURN_IF_ERROR(f->Parse());
  return f;
}

absl::Status GgufFile::Parse() {
  Reader r(file_->data(), file_->size(), path_);
  TANDEM_ASSIGN_OR_RETURN(uint32_t magic, r.Read<uint32_t>("magic"));
  if (magic != kGgufMagic) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": not a GGUF file (magic 0x", absl::Hex(magic),
                                                   ", expected 0x", absl::Hex(kGgufMagic), " \"GGUF\")"));
  }
  TANDEM_ASSIGN_OR_RETURN(version_, r.Read<uint32_t>("version"));
  if (version_ != 2 && version_ != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": unsupported GGUF version ", version_, " (expected 3, or 2)"));
  }
  TANDEM_ASSIGN_OR_RETURN(uint64_t n_tensors, r.Read<uint64_t>("tensor count"));
  TANDEM_ASSIGN_OR_RETURN(uint64_t n_kv, r.Read<uint64_t>("metadata count"));
  // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info at least 8 + 4 + 4
  // + 8.
  if (n_kv > r.remaining() / 13 || n_tensors > r.remaining() / 24) {
    return absl::DataLossError(absl::StrCat(path_, ": header claims ", n_kv, " metadata entries and ",
                                            n_tensors, " tensors, more than the file's ", file_->size(),
                                            " bytes can hold"));
  }

  for (uint64_t i = 0; i < n_kv; ++i) {
    TANDEM_ASSIGN_OR_RETURN(std::string key, r.ReadString(absl::StrCat("metadata key #", i)));
    TANDEM_ASSIGN_OR_RETURN(uint32_t raw_type, r.Read<uint32_t>(key));
    TANDEM_ASSIGN_OR_RETURN(GgufValueType type, ValueTypeFromRaw(raw_type, path_, key));
    GgufValue value;
    if (type == GgufValueType::kArray) {
      TANDEM_ASSIGN_OR_RETURN(GgufArray a, ReadArray(r, path_, key, 0));
      value.type = GgufValueType::kArray;
      value.value = std::move(a);
    } else {
      TANDEM_ASSIGN_OR_RETURN(value, ReadScalar(r, type, key));
    }
    if (metadata_.count(key) != 0) {
      return absl::DataLossError(absl::StrCat(path_, ": metadata key '", key, "' appears twice"));
    }
    metadata_.emplace(std::move(key), std::move(value));
  }

  if (Has("general.alignment")) {
    TANDEM_ASSIGN_OR_RETURN(uint32_t align, GetU32("general.alignment"));
    if (align == 0 || (align & (align - 1)) != 0) {
      return absl::DataLossError(
          absl::StrCat(path_, ": general.alignment ", align, " is not a power of two"));
    }
    alignment_ = align;
  }

  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    TANDEM_ASSIGN_OR_RETURN(t.name, r.ReadString(absl::StrCat("name of tensor #", i)));
    TANDEM_ASSIGN_OR_RETURN(uint32_t n_dims, r.Read<uint32_t>(t.name));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return absl::DataLossError(absl::StrCat(path_, ": tensor '", t.name, "': ", n_dims,
                                              " dimensions (expected 1 to ", kMaxDims, ")"));
    }
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      TANDEM_ASSIGN_OR_RETURN(uint64_t ne, r.Read<uint64_t>(t.name));
      if (ne > (1ull << 40) || (ne > 0 && static_cast<uint64_t>(numel) > (1ull << 50) / ne)) {
        return absl::DataLossError(
            absl::StrCat(path_, ": tensor '", t.name, "': implausible dimension ", ne));
      }
      numel *= static_cast<int64_t>(ne);
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    TANDEM_ASSIGN_OR_RETURN(uint32_t raw_type, r.Read<uint32_t>(t.name));
    auto type = GgmlTypeFromRaw(raw_type);
    if (!type.ok()) return Annotate(type.status(), absl::StrCat(path_, ": tensor '", t.name, "'"));
    t.type = *type;
    TANDEM_ASSIGN_OR_RETURN(t.offset, r.Read<uint64_t>(t.name));
    if (t.ne[0] % GgmlBlockSize(t.type) != 0) {
      return absl::DataLossError(absl::StrCat(path_, ": tensor '", t.name, "': row length ", t.ne[0],
                                              " is not a multiple of the ", GgmlTypeName(t.type),
                                              " block size ", GgmlBlockSize(t.type)));
    }
    t.nbytes = GgmlRowBytes(t.type, t.ne[0]) * static_cast<uint64_t>(numel / std::max<int64_t>(t.ne[0], 1));
    if (t.ne[0] == 0) t.nbytes = 0;
    if (tensor_index_.count(t.name) != 0) {
      return absl::DataLossError(absl::StrCat(path_, ": tensor '", t.name, "' appears twice"));
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  const uint64_t data_start = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t data_size = data_start <= file_->size() ? file_->size() - data_start : 0;
  // Check every tensor lies inside the data section and that no two overlap.
  std::vector<const GgufTensorInfo*> by_offset;
  for (GgufTensorInfo& t : tensors_) {
    if (t.offset % alignment_ != 0) {
      return absl::DataLossError(absl::StrCat(path_, ": tensor '", t.name, "': offset ", t.offset,
                                              " is not a multiple of the alignment ", alignment_));
    }
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return absl::DataLossError(absl::StrCat(path_, ": tensor '", t.name, "': data [", t.offset, ", ",
                                              t.offset + t.nbytes, ") lies outside the data section of ",
                                              data_size, " bytes (file truncated?)"));
    }
    t.data = file_->data() + data_start + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->offset + by_offset[i - 1]->nbytes > by_offset[i]->offset) {
      return absl::DataLossError(absl::StrCat(path_, ": tensors '", by_offset[i - 1]->name, "' and '",
                                              by_offset[i]->name, "' overlap"));
    }
  }
  return absl::OkStatus();
}

bool GgufFile::Has(absl::string_view key) const { return metadata_.find(key) != metadata_.end(); }

const GgufValue* GgufFile::Find(absl::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  return TypeError(path_, key, *v, "string");
}

absl::StatusOr<int64_t> GgufFile::GetI64(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  if (const auto* u = std::get_if<uint64_t>(&v->value)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": metadata key '", key, "': value ", *u, " too large"));
    }
    return static_cast<int64_t>(*u);
  }
  if (const auto* s = std::get_if<int64_t>(&v->value)) return *s;
  return TypeError(path_, key, *v, "an integer");
}

absl::StatusOr<uint64_t> GgufFile::GetU64(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  if (const auto* u = std::get_if<uint64_t>(&v->value)) return *u;
  if (const auto* s = std::get_if<int64_t>(&v->value)) {
    if (*s < 0)
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": metadata key '", key, "': negative value ", *s));
    return static_cast<uint64_t>(*s);
  }
  return TypeError(path_, key, *v, "an unsigned integer");
}

absl::StatusOr<uint32_t> GgufFile::GetU32(absl::string_view key) const {
  TANDEM_ASSIGN_OR_RETURN(uint64_t v, GetU64(key));
  if (v > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": metadata key '", key, "': value ", v, " exceeds u32"));
  }
  return static_cast<uint32_t>(v);
}

absl::StatusOr<float> GgufFile::GetF32(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  if (const auto* d = std::get_if<double>(&v->value)) return static_cast<float>(*d);
  return TypeError(path_, key, *v, "f32 or f64");
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  return TypeError(path_, key, *v, "bool");
}

absl::StatusOr<uint64_t> GgufFile::GetArraySize(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  if (const auto* a = std::get_if<GgufArray>(&v->value)) return a->size;
  return TypeError(path_, key, *v, "array");
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  const auto* a = std::get_if<GgufArray>(&v->value);
  if (a == nullptr || a->elem_type != GgufValueType::kString)
    return TypeError(path_, key, *v, "array of string");
  return a->strings;
}

absl::StatusOr<std::vector<float>> GgufFile::GetF32Array(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  const auto* a = std::get_if<GgufArray>(&v->value);
  if (a == nullptr || (a->elem_type != GgufValueType::kF32 && a->elem_type != GgufValueType::kF64)) {
    return TypeError(path_, key, *v, "array of f32");
  }
  return std::vector<float>(a->floats.begin(), a->floats.end());
}

absl::StatusOr<std::vector<int32_t>> GgufFile::GetI32Array(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": metadata key '", key, "' is missing"));
  const auto* a = std::get_if<GgufArray>(&v->value);
  if (a == nullptr || a->elem_type == GgufValueType::kString || a->elem_type == GgufValueType::kArray ||
      a->elem_type == GgufValueType::kF32 || a->elem_type == GgufValueType::kF64) {
    return TypeError(path_, key, *v, "array of integers");
  }
  std::vector<int32_t> out;
  out.reserve(a->ints.size());
  for (int64_t x : a->ints) {
    if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": metadata key '", key, "': element ", x, " exceeds i32"));
    }
    out.push_back(static_cast<int32_t>(x));
  }
  return out;
}

absl::StatusOr<GgufMetadata> ReadGgufMetadata(const GgufFile& file) {
  GgufMetadata m;
  auto optional_string = [&](absl::string_view key, std::string* out) -> absl::Status {
    if (!file.Has(key)) return absl::OkStatus();
    TANDEM_ASSIGN_OR_RETURN(*out, file.GetString(key));
    return absl::OkStatus();
  };
  auto optional_id = [&](absl::string_view key, int32_t* out) -> absl::Status {
    if (!file.Has(key)) return absl::OkStatus();
    TANDEM_ASSIGN_OR_RETURN(int64_t id, file.GetI64(key));
    if (id < -1 || id > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": metadata key '", key, "': bad token id ", id));
    }
    *out = static_cast<int32_t>(id);
    return absl::OkStatus();
  };
  auto optional_bool = [&](absl::string_view key, std::optional<bool>* out) -> absl::Status {
    if (!file.Has(key)) return absl::OkStatus();
    TANDEM_ASSIGN_OR_RETURN(bool b, file.GetBool(key));
    *out = b;
    return absl::OkStatus();
  };
  TANDEM_RETURN_IF_ERROR(optional_string("general.architecture", &m.architecture));
  TANDEM_RETURN_IF_ERROR(optional_string("general.name", &m.name));
  TANDEM_ASSIGN_OR_RETURN(m.tokenizer_model, file.GetString("tokenizer.ggml.model"));
  TANDEM_RETURN_IF_ERROR(optional_string("tokenizer.ggml.pre", &m.tokenizer_pre));
  TANDEM_ASSIGN_OR_RETURN(m.tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  if (file.Has("tokenizer.ggml.scores")) {
    TANDEM_ASSIGN_OR_RETURN(m.scores, file.GetF32Array("tokenizer.ggml.scores"));
    if (m.scores.size() != m.tokens.size()) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tokenizer.ggml.scores has ",
                                                     m.scores.size(), " entries, expected one per token (",
                                                     m.tokens.size(), ")"));
    }
  }
  if (file.Has("tokenizer.ggml.token_type")) {
    TANDEM_ASSIGN_OR_RETURN(m.token_types, file.GetI32Array("tokenizer.ggml.token_type"));
    if (m.token_types.size() != m.tokens.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": tokenizer.ggml.token_type has ", m.token_types.size(),
                       " entries, expected one per token (", m.tokens.size(), ")"));
    }
  }
  if (file.Has("tokenizer.ggml.merges")) {
    TANDEM_ASSIGN_OR_RETURN(m.merges, file.GetStringArray("tokenizer.ggml.merges"));
  }
  TANDEM_RETURN_IF_ERROR(optional_id("tokenizer.ggml.bos_token_id", &m.bos_token_id));
  TANDEM_RETURN_IF_ERROR(optional_id("tokenizer.ggml.eos_token_id", &m.eos_token_id));
  TANDEM_RETURN_IF_ERROR(optional_id("tokenizer.ggml.unknown_token_id", &m.unk_token_id));
  TANDEM_RETURN_IF_ERROR(optional_id("tokenizer.ggml.padding_token_id", &m.pad_token_id));
  TANDEM_RETURN_IF_ERROR(optional_id("tokenizer.ggml.eot_token_id", &m.eot_token_id));
  TANDEM_RETURN_IF_ERROR(optional_bool("tokenizer.ggml.add_bos_token", &m.add_bos_token));
  TANDEM_RETURN_IF_ERROR(optional_bool("tokenizer.ggml.add_eos_token", &m.add_eos_token));
  TANDEM_RETURN_IF_ERROR(optional_string("tokenizer.chat_template", &m.chat_template));
  const int64_t n = static_cast<int64_t>(m.tokens.size());
  for (auto [key, id] : {std::pair{"bos", m.bos_token_id}, std::pair{"eos", m.eos_token_id},
                         std::pair{"unknown", m.unk_token_id}, std::pair{"padding", m.pad_token_id},
                         std::pair{"eot", m.eot_token_id}}) {
    if (id >= n) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tokenizer.ggml.", key, "_token_id ", id,
                                                     " is outside the vocabulary of ", n, " tokens"));
    }
  }
  return m;
}

}  // namespace tandem::model
