// Block layouts and dequantization follow ggml (ggml-common.h block_* structs and ggml-quants.c
// dequantize_row_*) exactly, including the order of floating-point operations.
#include "tandem/model/gguf_types.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "tandem/core/tensor.h"

namespace tandem::model {

namespace {

constexpr int64_t kQK = 32;    // elements per block of the legacy quants
constexpr int64_t kQKK = 256;  // elements per K-quant super-block

inline float ReadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return HalfToFloat(h);
}

// ggml's get_scale_min_k4: 8 six-bit scales and 8 six-bit mins packed into 12 bytes.
inline void ScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// block_q4_0 { half d; uint8 qs[16]; }  18 bytes
void DequantQ4_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 18, y += kQK) {
    const float d = ReadHalf(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

// block_q4_1 { half d; half m; uint8 qs[16]; }  20 bytes
void DequantQ4_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 20, y += kQK) {
    const float d = ReadHalf(src);
    const float m = ReadHalf(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
      y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }  22 bytes
void DequantQ5_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 22, y += kQK) {
    const float d = ReadHalf(src);
    uint32_t qh;
    std::memcpy(&qh, src + 2, 4);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = static_cast<uint8_t>(((qh >> (j + 0)) << 4) & 0x10);
      const uint8_t xh1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      const int32_t x0 = ((qs[j] & 0x0F) | xh0) - 16;
      const int32_t x1 = ((qs[j] >> 4) | xh1) - 16;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

// block_q5_1 { half d; half m; uint8 qh[4]; uint8 qs[16]; }  24 bytes
void DequantQ5_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 24, y += kQK) {
    const float d = ReadHalf(src);
    const float m = ReadHalf(src + 2);
    uint32_t qh;
    std::memcpy(&qh, src + 4, 4);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = static_cast<uint8_t>(((qh >> (j + 0)) << 4) & 0x10);
      const uint8_t xh1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      const int32_t x0 = (qs[j] & 0x0F) | xh0;
      const int32_t x1 = (qs[j] >> 4) | xh1;
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

// block_q8_0 { half d; int8 qs[32]; }  34 bytes
void DequantQ8_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 34, y += kQK) {
    const float d = ReadHalf(src);
    const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// The scales and mins of sub-blocks `is` and `is + 1` of a Q4_K / Q5_K super-block.
struct KScales {
  float d1, m1, d2, m2;
};
KScales KScalePair(float d, float min, const uint8_t* scales, int is) {
  uint8_t sc1, m1, sc2, m2;
  ScaleMinK4(is, scales, &sc1, &m1);
  ScaleMinK4(is + 1, scales, &sc2, &m2);
  return {d * sc1, min * m1, d * sc2, min * m2};
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }  144 bytes
void DequantQ4_K(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 144) {
    const float d = ReadHalf(src);
    const float min = ReadHalf(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* q = src + 16;
    int is = 0;
    for (int j = 0; j < kQKK; j += 64) {
      const auto [d1, m1, d2, m2] = KScalePair(d, min, scales, is);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }  176 bytes
void DequantQ5_K(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 176) {
    const float d = ReadHalf(src);
    const float min = ReadHalf(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qh = src + 16;
    const uint8_t* ql = src + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < kQKK; j += 64) {
      const auto [d1, m1, d2, m2] = KScalePair(d, min, scales, is);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      ql += 32;
      is += 2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }  210 bytes
void DequantQ6_K(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += 210) {
    const float d = ReadHalf(src + 208);
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
    for (int n = 0; n < kQKK; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int8_t q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int8_t q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void DequantF32(const uint8_t* src, float* y, int64_t n) { std::memcpy(y, src, static_cast<size_t>(n) * 4); }

void DequantF16(const uint8_t* src, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = ReadHalf(src + 2 * i);
}

void DequantBF16(const uint8_t* src, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, src + 2 * i, 2);
    y[i] = Bf16ToFloat(b);
  }
}

// Every supported type: its number in GGUF files, its name, elements and bytes per block, and the
// dequantization of `nb` blocks.
struct TypeInfo {
  GgmlType type;
  uint32_t raw;
  const char* name;
  int64_t block_size;
  size_t block_bytes;
  void (*dequant)(const uint8_t* src, float* y, int64_t nb);
};

constexpr TypeInfo kTypes[] = {
    {GgmlType::kF32, 0, "F32", 1, 4, DequantF32},           {GgmlType::kF16, 1, "F16", 1, 2, DequantF16},
    {GgmlType::kQ4_0, 2, "Q4_0", kQK, 18, DequantQ4_0},     {GgmlType::kQ4_1, 3, "Q4_1", kQK, 20, DequantQ4_1},
    {GgmlType::kQ5_0, 6, "Q5_0", kQK, 22, DequantQ5_0},     {GgmlType::kQ5_1, 7, "Q5_1", kQK, 24, DequantQ5_1},
    {GgmlType::kQ8_0, 8, "Q8_0", kQK, 34, DequantQ8_0},     {GgmlType::kQ4_K, 12, "Q4_K", kQKK, 144, DequantQ4_K},
    {GgmlType::kQ5_K, 13, "Q5_K", kQKK, 176, DequantQ5_K},  {GgmlType::kQ6_K, 14, "Q6_K", kQKK, 210, DequantQ6_K},
    {GgmlType::kBF16, 30, "BF16", 1, 2, DequantBF16},
};

const TypeInfo* Find(GgmlType type) {
  for (const TypeInfo& t : kTypes) {
    if (t.type == type) return &t;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<GgmlType> GgmlTypeFromRaw(uint32_t raw) {
  std::string known;
  for (const TypeInfo& t : kTypes) {
    if (t.raw == raw) return t.type;
    absl::StrAppend(&known, known.empty() ? "" : ", ", t.name, " (", t.raw, ")");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported ggml tensor type ", raw, ": expected one of ", known));
}

const char* GgmlTypeName(GgmlType type) {
  const TypeInfo* t = Find(type);
  return t == nullptr ? "?" : t->name;
}

int64_t GgmlBlockSize(GgmlType type) {
  const TypeInfo* t = Find(type);
  return t == nullptr ? 1 : t->block_size;
}

size_t GgmlBlockBytes(GgmlType type) {
  const TypeInfo* t = Find(type);
  return t == nullptr ? 0 : t->block_bytes;
}

size_t GgmlRowBytes(GgmlType type, int64_t n) {
  return static_cast<size_t>(n / GgmlBlockSize(type)) * GgmlBlockBytes(type);
}

void DequantizeRow(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  if (const TypeInfo* t = Find(type); t != nullptr) t->dequant(src, dst, n / t->block_size);
}

}  // namespace tandem::model
