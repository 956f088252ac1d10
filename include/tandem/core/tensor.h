// Host tensors: a dtype, a row-major shape and shared owning storage. Plain on purpose: no strides,
// no views; copying a Tensor shares its storage (that is how tied embeddings share one buffer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"

namespace tandem {

enum class DType {
  kF32,
  kF16,
  kBF16,
  kI32,
  kI64,
  kU8,
  kF8E4M3,  // float8_e4m3fn (NVFP4 block scales), stored as uint8_t
};

// "f32", "f16", "bf16", "i32", "i64", "u8", "f8_e4m3".
const char* DTypeName(DType dtype);
// Bytes per element.
size_t DTypeSize(DType dtype);

// fp16 / bf16 bit patterns (stored as uint16_t) to and from fp32. Conversions to 16 bits round to
// nearest even; NaN stays NaN.
float HalfToFloat(uint16_t h);
float Bf16ToFloat(uint16_t b);
uint16_t FloatToHalf(float f);
uint16_t FloatToBf16(float f);

// The element type data<T>() expects for a dtype: float for kF32, uint16_t for kF16 and kBF16 (raw
// bits), int32_t, int64_t, uint8_t.
template <typename T>
bool DTypeMatches(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return std::is_same_v<T, float>;
    case DType::kF16:
    case DType::kBF16:
      return std::is_same_v<T, uint16_t>;
    case DType::kI32:
      return std::is_same_v<T, int32_t>;
    case DType::kI64:
      return std::is_same_v<T, int64_t>;
    case DType::kU8:
    case DType::kF8E4M3:
      return std::is_same_v<T, uint8_t>;
  }
  return false;
}

class Tensor {
 public:
  // An empty (undefined) tensor: defined() is false, numel() is 0.
  Tensor() = default;

  // Uninitialised storage, 64-byte aligned. A shape with a zero dimension gives a defined tensor
  // with no elements.
  static Tensor Empty(DType dtype, std::vector<int64_t> shape);
  // Zero-filled storage.
  static Tensor Zeros(DType dtype, std::vector<int64_t> shape);
  // Wraps existing memory; `owner` keeps it alive (may be null for memory that outlives the tensor).
  static Tensor Wrap(DType dtype, std::vector<int64_t> shape, void* data, std::shared_ptr<void> owner);

  bool defined() const { return data_ != nullptr || !shape_.empty(); }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // Size of dimension `i`; negative counts from the end.
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i < 0 ? i + ndim() : i)]; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }

  // Typed element access; aborts if T does not match dtype() (see DTypeMatches).
  template <typename T>
  T* data() {
    CheckType<T>();
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    CheckType<T>();
    return static_cast<const T*>(data_);
  }
  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }

  // True when both tensors point at the same buffer (e.g. tied embeddings and lm_head).
  bool SharesStorageWith(const Tensor& other) const { return data_ != nullptr && data_ == other.data_; }
  // A deep copy with its own storage.
  Tensor Clone() const;
  // Same storage, new shape with the same numel; aborts otherwise.
  Tensor Reshape(std::vector<int64_t> shape) const;

  // "f32[576, 49152]".
  std::string DebugString() const;

 private:
  template <typename T>
  void CheckType() const {
    if (!DTypeMatches<T>(dtype_)) TypeMismatch(sizeof(T));
  }
  [[noreturn]] void TypeMismatch(size_t requested_size) const;

  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
  void* data_ = nullptr;
  std::shared_ptr<void> storage_;
};

// Elements [begin, begin + count) of an f32, bf16 or f16 tensor as fp32, into out[0, count); aborts
// for other dtypes.
void ToFloat32(const Tensor& t, int64_t begin, int64_t count, float* out);
// The whole tensor.
std::vector<float> ToFloat32(const Tensor& t);

}  // namespace tandem
