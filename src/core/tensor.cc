#include "tandem/core/tensor.h"

#include <cstdio>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem {

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kI32:
      return "i32";
    case DType::kI64:
      return "i64";
    case DType::kU8:
      return "u8";
    case DType::kF8E4M3:
      return "f8_e4m3";
  }
  return "?";
}

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
      return 2;
    case DType::kBF16:
      return 2;
    case DType::kI32:
      return 4;
    case DType::kI64:
      return 8;
    case DType::kU8:
    case DType::kF8E4M3:
      return 1;
  }
  return 0;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      // Subnormal: value = mant * 2^-24, exact in fp32.
      float f = static_cast<float>(mant) * 5.9604644775390625e-8f;
      std::memcpy(&bits, &f, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

float Bf16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

uint16_t FloatToHalf(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65536: inf
  if (abs < 0x38800000u) {
    // Result is subnormal (or zero) in fp16: value / 2^-24 rounded to nearest even.
    float a;
    std::memcpy(&a, &abs, 4);
    const float scaled = a * 16777216.0f;  // exact: power of two scaling
    uint32_t m = static_cast<uint32_t>(scaled);
    const float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  // Normal: rebias exponent and round the 13 dropped mantissa bits to nearest even.
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
}

namespace {

struct AlignedDeleter {
  void operator()(void* p) const { ::operator delete (p, std::align_val_t{64}); }
};

int64_t ShapeNumel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

int64_t Tensor::numel() const {
  if (!defined()) return 0;
  return ShapeNumel(shape_);
}

Tensor Tensor::Empty(DType dtype, std::vector<int64_t> shape) {
  for (int64_t d : shape) {
    if (d < 0) {
      std::fprintf(stderr, "tandem::Tensor::Empty: negative dimension %lld\n", static_cast<long long>(d));
      std::abort();
    }
  }
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  const size_t bytes = static_cast<size_t>(ShapeNumel(t.shape_)) * DTypeSize(dtype);
  if (bytes > 0) {
    void* p = ::operator new (bytes, std::align_val_t{64});
    t.storage_ = std::shared_ptr<void>(p, AlignedDeleter());
    t.data_ = p;
  }
  return t;
}

Tensor Tensor::Zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t = Empty(dtype, std::move(shape));
  if (t.data_ != nullptr) std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::Wrap(DType dtype, std::vector<int64_t> shape, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.storage_ = std::move(owner);
  return t;
}

Tensor Tensor::Clone() const {
  if (!defined()) return Tensor();
  Tensor t = Empty(dtype_, shape_);
  if (t.data_ != nullptr) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::Reshape(std::vector<int64_t> shape) const {
  if (ShapeNumel(shape) != numel()) {
    std::fprintf(stderr, "tandem::Tensor::Reshape: %s cannot become a shape of %lld elements\n",
                 DebugString().c_str(), static_cast<long long>(ShapeNumel(shape)));
    std::abort();
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

std::string Tensor::DebugString() const {
  if (!defined()) return "undefined";
  return absl::StrCat(std::string(DTypeName(dtype_)), "[", absl::StrJoin(shape_, ", "), "]");
}

void ToFloat32(const Tensor& t, int64_t begin, int64_t count, float* out) {
  switch (t.dtype()) {
    case DType::kF32:
      std::memcpy(out, t.data<float>() + begin, static_cast<size_t>(count) * sizeof(float));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < count; ++i) out[i] = Bf16ToFloat(t.data<uint16_t>()[begin + i]);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < count; ++i) out[i] = HalfToFloat(t.data<uint16_t>()[begin + i]);
      return;
    default:
      std::fprintf(stderr, "tandem::ToFloat32: tensor %s is not f32, bf16 or f16\n", t.DebugString().c_str());
      std::abort();
  }
}

std::vector<float> ToFloat32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  ToFloat32(t, 0, t.numel(), out.data());
  return out;
}

void Tensor::TypeMismatch(size_t requested_size) const {
  std::fprintf(stderr, "tandem::Tensor::data<T>(): element type of size %zu does not match tensor %s\n",
               requested_size, DebugString().c_str());
  std::abort();
}

}  // namespace tandem
