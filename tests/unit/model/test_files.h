// Test helpers: a scratch directory, and writers for safetensors and GGUF files built byte by byte
// from the format specifications (independently of the readers under test).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tandem/core/tensor.h"

namespace tandem::model::testing {

// A fresh directory under the system temp dir, removed when the object goes away.
class ScratchDir {
 public:
  ScratchDir() {
    static int counter = 0;
    // Memory-backed when available: the corruption tests write thousands of small files.
    std::error_code ec;
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
            ? std::filesystem::path("/dev/shm")
            : std::filesystem::temp_directory_path();
    path_ = base / ("tandem-model-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Path(const std::string& name = "") const {
    return name.empty() ? path_.string() : (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- safetensors ----

struct StTensor {
  std::string dtype;  // "F32", "F16", "BF16"
  std::vector<int64_t> shape;
  std::vector<float> values;  // stored rounded to dtype
};

// Encodes values into bytes of `dtype`.
inline std::string EncodeValues(const std::string& dtype, const std::vector<float>& values) {
  std::string out;
  for (float v : values) {
    if (dtype == "F32") {
      out.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      const uint16_t h = dtype == "F16" ? FloatToHalf(v) : FloatToBf16(v);
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return out;
}

inline std::string BuildSafetensors(const std::map<std::string, StTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& [name, t] : tensors) {
    const std::string bytes = EncodeValues(t.dtype, t.values);
    header[name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h += ' ';
  const uint64_t n = h.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + h + data;
}

// ---- GGUF ----

class GgufBuilder {
 public:
  void U32(const std::string& key, uint32_t v) { Kv(key, 4, Pod(v)); }
  void I32(const std::string& key, int32_t v) { Kv(key, 5, Pod(v)); }
  void F32(const std::string& key, float v) { Kv(key, 6, Pod(v)); }
  void Bool(const std::string& key, bool v) { Kv(key, 7, std::string(1, v ? 1 : 0)); }
  void Str(const std::string& key, const std::string& v) { Kv(key, 8, String(v)); }
  void StrArray(const std::string& key, const std::vector<std::string>& v) {
    std::string body = Pod(uint32_t{8}) + Pod(uint64_t{v.size()});
    for (const auto& s : v) body += String(s);
    Kv(key, 9, body);
  }
  void F32Array(const std::string& key, const std::vector<float>& v) {
    std::string body = Pod(uint32_t{6}) + Pod(uint64_t{v.size()});
    for (float x : v) body += Pod(x);
    Kv(key, 9, body);
  }
  void I32Array(const std::string& key, const std::vector<int32_t>& v) {
    std::string body = Pod(uint32_t{5}) + Pod(uint64_t{v.size()});
    for (int32_t x : v) body += Pod(x);
    Kv(key, 9, body);
  }
  // ne: ggml order (fastest first); bytes: the raw tensor data.
  void Tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, const std::string& bytes) {
    tensors_.push_back({name, std::move(ne), type, bytes});
  }
  std::string Build() const {
    std::string out = "GGUF";
    out += Pod(uint32_t{3}) + Pod(uint64_t{tensors_.size()}) + Pod(uint64_t{n_kv_});
    out += kvs_;
    std::string data;
    for (const auto& t : tensors_) {
      while (data.size() % 32 != 0) data += '\0';
      out += String(t.name) + Pod(uint32_t(t.ne.size()));
      for (uint64_t d : t.ne) out += Pod(d);
      out += Pod(t.type) + Pod(uint64_t{data.size()});
      data += t.bytes;
    }
    while (out.size() % 32 != 0) out += '\0';
    return out + data;
  }

  template <typename T>
  static std::string Pod(T v) {
    return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static std::string String(const std::string& s) { return Pod(uint64_t{s.size()}) + s; }

 private:
  void Kv(const std::string& key, uint32_t type, const std::string& value) {
    kvs_ += String(key) + Pod(type) + value;
    ++n_kv_;
  }
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string bytes;
  };
  std::string kvs_;
  uint64_t n_kv_ = 0;
  std::vector<T> tensors_;
};

inline std::string F32Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// Deterministic test values.
inline std::vector<float> RandomValues(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = scale * (static_cast<float>(rng() % 20001) / 10000.0f - 1.0f);
  return v;
}

}  // namespace tandem::model::testing
