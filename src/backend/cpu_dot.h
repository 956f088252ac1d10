// The one reduction order every CPU kernel uses for a dot product of length k, so that a value does
// not depend on which kernel, tile shape or thread computed it:
//   eight lane accumulators over k rounded down to a multiple of 8 (lane l sums elements l, l+8, ...
//   in increasing order with fused multiply-add on AVX2/FMA builds, multiply-then-add otherwise),
//   then the lanes summed as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), then the tail elements added in
//   order. Internal to src/backend.
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TANDEM_CPU_AVX2 1
#else
#define TANDEM_CPU_AVX2 0
#endif

namespace tandem::backend::cpu {

#if TANDEM_CPU_AVX2
inline float Hsum8(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // l0+l4 .. l3+l7
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));                                     // (0+4)+(2+6), (1+5)+(3+7)
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}
#endif

// Portable lane sum in the same order as Hsum8.
inline float Hsum8(const float* l) {
  const float a0 = l[0] + l[4], a1 = l[1] + l[5], a2 = l[2] + l[6], a3 = l[3] + l[7];
  return (a0 + a2) + (a1 + a3);
}

inline float Dot(const float* a, const float* b, int64_t k) {
  const int64_t k8 = k & ~int64_t{7};
  float s;
#if TANDEM_CPU_AVX2
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < k8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  s = Hsum8(acc);
#else
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < k8; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  s = Hsum8(acc);
#endif
  for (int64_t i = k8; i < k; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace tandem::backend::cpu
