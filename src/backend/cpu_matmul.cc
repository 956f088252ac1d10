#include "cpu_matmul.h"


#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu_dot.h"

namespace tandem::backend::cpu {
namespace {

// R weight rows x T tokens of fp32 weights, each element exactly Dot(w_row, x_row, k).
template <int R, int T>
void TileF32(const float* x, int64_t ldx, const float* w, int64_t k, float* out, int64_t ldo) {
  const int64_t k8 = k & ~int64_t{7};
#if TANDEM_CPU_AVX2
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  // Prefetch the rows two tiles ahead (contiguous, R * k floats), spread over the iterations.
  const char* ahead = reinterpret_cast<const char*>(w + 2 * R * k);
  for (int64_t i = 0; i < k8; i += 8) {
    for (int64_t off = 0; off < R * 32; off += 64) _mm_prefetch(ahead + i * R * 4 + off, _MM_HINT_T0);
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * ldx + i);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * k + i);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float s = Hsum8(acc[r][t]);
      for (int64_t i = k8; i < k; ++i) s += w[r * k + i] * x[t * ldx + i];
      out[t * ldo + r] = s;
    }
  }
#else
  float acc[R][T][8] = {};
  for (int64_t i = 0; i < k8; i += 8) {
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t)
        for (int l = 0; l < 8; ++l) acc[r][t][l] += w[r * k + i + l] * x[t * ldx + i + l];
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float s = Hsum8(acc[r][t]);
      for (int64_t i = k8; i < k; ++i) s += w[r * k + i] * x[t * ldx + i];
      out[t * ldo + r] = s;
    }
  }
#endif
}

#if TANDEM_CPU_AVX2
inline float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// The 32 weights of one block as four vectors of 8 consecutive columns.
template <WeightFormat F>
inline void DequantBlock(const uint8_t* b, __m256 w[4]) {
  if constexpr (F == WeightFormat::kQ4_1) {
    const __m256 d = _mm256_set1_ps(Half(b)), m = _mm256_set1_ps(Half(b + 2));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(qs, mask);                     // columns 0..15
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);  // columns 16..31
    w[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), d, m);
    w[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), d, m);
    w[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), d, m);
    w[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), d, m);
  } else {
    const __m256 d = _mm256_set1_ps(Half(b));
    for (int s = 0; s < 4; ++s) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * s));
      w[s] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    }
  }
}

// R rows x T tokens of block-quantized weights (k a multiple of 32): the same reduction as TileF32
// over the dequantized values.
template <WeightFormat F, int R, int T>
void TileQuant(const float* x, int64_t ldx, const uint8_t* w, int64_t row_bytes, int64_t k, float* out,
               int64_t ldo) {
  constexpr int64_t kBlockBytes = F == WeightFormat::kQ4_1 ? 20 : 34;
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  // The R rows are one contiguous run of R * row_bytes; software-prefetch the run two tiles ahead,
  // spread over the block iterations (the hardware prefetcher alone leaves decode latency-bound).
  const uint8_t* ahead = w + 2 * R * row_bytes;
  const int64_t ahead_step = R * kBlockBytes;
  for (int64_t blk = 0, i = 0; i < k; ++blk, i += 32) {
    for (int64_t off = 0; off < ahead_step; off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + blk * ahead_step + off), _MM_HINT_T0);
    }
    for (int r = 0; r < R; ++r) {
      __m256 wv[4];
      DequantBlock<F>(w + r * row_bytes + blk * kBlockBytes, wv);
      for (int s = 0; s < 4; ++s) {
        for (int t = 0; t < T; ++t) {
          acc[r][t] = _mm256_fmadd_ps(wv[s], _mm256_loadu_ps(x + t * ldx + i + 8 * s), acc[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * ldo + r] = Hsum8(acc[r][t]);
}
#endif

template <int T>
void RowsForTokens(const float* x, const Matrix& w, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  constexpr int R = T == 1 ? 8 : 4;
  const int64_t k = w.cols;
  int64_t r = r0;
  switch (w.format) {
    case WeightFormat::kF32:
      for (; r + R <= r1; r += R) TileF32<R, T>(x, k, w.data + r * k, k, out + r, ldo);
      for (; r < r1; ++r) TileF32<1, T>(x, k, w.data + r * k, k, out + r, ldo);
      return;
    case WeightFormat::kQ4_1:
    case WeightFormat::kQ8_0:
#if TANDEM_CPU_AVX2
    {
      const int64_t rb = WeightRowBytes(w.format, k);
      if (w.format == WeightFormat::kQ4_1) {
        for (; r + R <= r1; r += R) TileQuant<WeightFormat::kQ4_1, R, T>(x, k, w.blocks + r * rb, rb, k, out + r, ldo);
        for (; r < r1; ++r) TileQuant<WeightFormat::kQ4_1, 1, T>(x, k, w.blocks + r * rb, rb, k, out + r, ldo);
      } else {
        for (; r + R <= r1; r += R) TileQuant<WeightFormat::kQ8_0, R, T>(x, k, w.blocks + r * rb, rb, k, out + r, ldo);
        for (; r < r1; ++r) TileQuant<WeightFormat::kQ8_0, 1, T>(x, k, w.blocks + r * rb, rb, k, out + r, ldo);
      }
    }
#endif
      // Without AVX2 the backend reports these formats unsupported and never receives them.
      return;
  }
}

#if TANDEM_CPU_AVX2
// Dequantizes rows [r0, r1) of a block-quantized matrix into dst [r1 - r0, k] (exact values).
template <WeightFormat F>
void DequantRows(const Matrix& w, int64_t r0, int64_t r1, float* dst) {
  constexpr int64_t kBlockBytes = F == WeightFormat::kQ4_1 ? 20 : 34;
  const int64_t k = w.cols, rb = WeightRowBytes(F, k);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.blocks + r * rb;
    float* out = dst + (r - r0) * k;
    for (int64_t blk = 0; blk < k / 32; ++blk) {
      __m256 v[4];
      DequantBlock<F>(row + blk * kBlockBytes, v);
      for (int s = 0; s < 4; ++s) _mm256_storeu_ps(out + blk * 32 + 8 * s, v[s]);
    }
  }
}
// Rows [0, rows) of an fp32 matrix whose first row is `w` (k columns), for all n tokens.
void F32RowBlock(const float* x, int n, const float* w, int64_t k, int64_t rows, float* out, int64_t ldo) {
  const Matrix block{w, rows, k};
  int t = 0;
  for (; t + 2 <= n; t += 2) RowsForTokens<2>(x + t * k, block, 0, rows, out + t * ldo, ldo);
  if (t < n) RowsForTokens<1>(x + t * k, block, 0, rows, out + t * ldo, ldo);
}

#endif

void MatMulRows(const float* x, int n, const Matrix& w, int64_t row_begin, int64_t row_end, float* out) {
  // A block of weight rows stays in cache while every token tile passes over it.
  constexpr int64_t kRowBlock = 32;
  const int64_t k = w.cols, ldo = w.rows;
#if TANDEM_CPU_AVX2
  // With several tokens, block-quantized rows are dequantized once per row block into a scratch
  // buffer (the values are exact, so the fp32 tiles give the same bits as the quantized ones).
  if (w.format != WeightFormat::kF32 && n >= 4) {
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(kRowBlock * k));
    for (int64_t rb = row_begin; rb < row_end; rb += kRowBlock) {
      const int64_t re = std::min(rb + kRowBlock, row_end);
      if (w.format == WeightFormat::kQ4_1) {
        DequantRows<WeightFormat::kQ4_1>(w, rb, re, scratch.data());
      } else {
        DequantRows<WeightFormat::kQ8_0>(w, rb, re, scratch.data());
      }
      F32RowBlock(x, n, scratch.data(), k, re - rb, out + rb, ldo);
    }
    return;
  }
#endif
  for (int64_t rb = row_begin; rb < row_end; rb += kRowBlock) {
    const int64_t re = std::min(rb + kRowBlock, row_end);
    int t = 0;
    for (; t + 2 <= n; t += 2) RowsForTokens<2>(x + t * k, w, rb, re, out + t * ldo, ldo);
    if (t < n) RowsForTokens<1>(x + t * k, w, rb, re, out + t * ldo, ldo);
  }
}

}  // namespace

void MatMul(const float* x, int n, const Matrix& w, float* out, ThreadPool& pool) {
  const int64_t rows = w.rows;
  if (n <= 0 || rows <= 0) return;
  // Chunks of whole row blocks; each output element is computed within one chunk in the fixed order.
  constexpr int64_t kChunkRows = 32;
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  pool.ParallelFor(chunks, [&](int64_t c) {
    MatMulRows(x, n, w, c * kChunkRows, std::min(rows, (c + 1) * kChunkRows), out);
  });
}

}  // namespace tandem::backend::cpu
