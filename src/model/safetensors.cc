#include "tandem/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "mapped_file.h"
#include "nlohmann/json.hpp"
#include "tandem/core/status.h"

namespace tandem::model {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the safetensors format's own limit

absl::StatusOr<DType> ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  if (s == "I32") return DType::kI32;
  if (s == "I64") return DType::kI64;
  if (s == "U8") return DType::kU8;
  if (s == "F8_E4M3") return DType::kF8E4M3;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported dtype '", s, "' (expected F32, F16 or BF16 for weights; I32, I64, U8, F8_E4M3 otherwise)"));
}

const char* SafetensorsDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kU8:
      return "U8";
    case DType::kF8E4M3:
      return "F8_E4M3";
  }
  return "?";
}

}  // namespace

SafetensorsFile::~SafetensorsFile() = default;

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  using nlohmann::json;
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  TANDEM_ASSIGN_OR_RETURN(f->file_, MappedFile::Open(path));
  const uint64_t size = f->file_->size();
  if (size < 8) {
    return absl::DataLossError(absl::StrCat(path, ": ", size, " bytes, too short for a safetensors header"));
  }
  uint64_t header_len;
  std::memcpy(&header_len, f->file_->data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return absl::DataLossError(
        absl::StrCat(path, ": header length ", header_len, " exceeds the file (", size,
                     " bytes) or the 100 MiB limit; truncated or not a safetensors file"));
  }
  const char* hdr = reinterpret_cast<const char*>(f->file_->data() + 8);
  json j = json::parse(hdr, hdr + header_len, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": header is not a valid JSON object"));
  }
  const uint64_t data_begin = 8 + header_len;
  const uint64_t data_size = size - data_begin;
  const uint8_t* data = f->file_->data() + data_begin;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    auto bad = [&](absl::string_view what) {
      return absl::DataLossError(absl::StrCat(path, ": tensor '", name, "': ", what));
    };
    const json& e = it.value();
    if (!e.is_object()) return bad("entry is not an object");
    auto dt = e.find("dtype");
    auto sh = e.find("shape");
    auto off = e.find("data_offsets");
    if (dt == e.end() || !dt->is_string()) return bad("missing or non-string dtype");
    if (sh == e.end() || !sh->is_array()) return bad("missing or non-list shape");
    if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      return bad("data_offsets must be [begin, end]");
    }
    SafetensorsTensorInfo info;
    info.name = name;
    auto dtype = ParseDType(dt->get<std::string>());
    if (!dtype.ok()) return bad(dtype.status().message());
    info.dtype = *dtype;
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned()) return bad(absl::StrCat("shape entry ", d.dump(), " is not a size"));
      const uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v > 0 && numel > (1ull << 50) / v)) return bad("implausible shape");
      numel *= v;
      info.shape.push_back(static_cast<int64_t>(v));
    }
    const uint64_t begin = (*off)[0].get<uint64_t>();
    const uint64_t end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return bad(absl::StrCat("data_offsets [", begin, ", ", end, ") outside the data section of ", data_size,
                              " bytes (file truncated?)"));
    }
    if (end - begin != numel * DTypeSize(info.dtype)) {
      return bad(absl::StrCat("data_offsets span ", end - begin, " bytes but shape and dtype need ",
                              numel * DTypeSize(info.dtype)));
    }
    info.data = data + begin;
    info.nbytes = end - begin;
    f->tensors_.emplace(name, std::move(info));
  }
  return f;
}

const SafetensorsTensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<Tensor> ToFloat32(const SafetensorsTensorInfo& info) {
  Tensor out = Tensor::Empty(DType::kF32, info.shape);
  float* dst = out.data<float>();
  const int64_t n = out.numel();
  switch (info.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(dst, info.data, static_cast<size_t>(n) * 4);
      return out;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, info.data + 2 * i, 2);
        dst[i] = HalfToFloat(h);
      }
      return out;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, info.data + 2 * i, 2);
        dst[i] = Bf16ToFloat(b);
      }
      return out;
    case DType::kI32:
    case DType::kI64:
    case DType::kU8:
    case DType::kF8E4M3:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("tensor '", info.name, "' has dtype ", DTypeName(info.dtype),
                                                 ", expected F32, F16 or BF16"));
}

absl::Status WriteSafetensors(const std::string& path, std::vector<SafetensorsWriteEntry> tensors) {
  using nlohmann::ordered_json;
  std::sort(tensors.begin(), tensors.end(),
            [](const SafetensorsWriteEntry& a, const SafetensorsWriteEntry& b) { return a.name < b.name; });
  ordered_json header = ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsWriteEntry& t = tensors[i];
    if (i > 0 && tensors[i - 1].name == t.name) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name, "' given twice"));
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name, "' has a negative dimension"));
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * DTypeSize(t.dtype) != t.nbytes || (t.nbytes > 0 && t.data == nullptr)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name, "' has ", t.nbytes,
                                                     " bytes, its shape and dtype need ", numel * DTypeSize(t.dtype)));
    }
    header[t.name] = {{"dtype", SafetensorsDTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create"));
  const uint64_t len = text.size();
  char len_bytes[8];
  std::memcpy(len_bytes, &len, 8);  // little-endian hosts only (x86-64, aarch64)
  out.write(len_bytes, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const SafetensorsWriteEntry& t : tensors) {
    out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(t.nbytes));
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed (disk full?)"));
  return absl::OkStatus();
}

}  // namespace tandem::model
