// Hugging Face safetensors reader: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section. Memory-mapped; every entry is validated (dtype known, offsets inside the
// data section, end - begin == numel * dtype size) when the file is opened.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tandem/core/tensor.h"

namespace tandem::model {

class MappedFile;

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::kF32;  // F32, F16, BF16 (also I32/I64/U8 for non-weight tensors)
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping; valid while the file lives
  uint64_t nbytes = 0;
};

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsTensorInfo, std::less<>>& tensors() const { return tensors_; }
  const SafetensorsTensorInfo* Find(absl::string_view name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, SafetensorsTensorInfo, std::less<>> tensors_;
};

// Converts a safetensors tensor (F32, F16 or BF16) to a new fp32 Tensor of the same shape.
absl::StatusOr<Tensor> ToFloat32(const SafetensorsTensorInfo& info);

// One tensor for WriteSafetensors: `nbytes` bytes at `data` (little-endian elements of `dtype`), which
// must stay valid until the write returns.
struct SafetensorsWriteEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // [] for a scalar
  const void* data = nullptr;
  uint64_t nbytes = 0;
};

// Writes a safetensors file that SafetensorsFile::Open (and Hugging Face's reader) accepts: the
// header's entries in name order, the data in the same order, the header padded with spaces to a
// multiple of 8 bytes, metadata {"format": "pt"}. Fails on a size that does not match shape and
// dtype, a repeated name, or an I/O error, naming the path.
absl::Status WriteSafetensors(const std::string& path, std::vector<SafetensorsWriteEntry> tensors);

}  // namespace tandem::model
