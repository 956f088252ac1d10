// Warp-level tensor-core MMA shared by the GEMM kernels (sm_80 and up; tandem builds sm_90a).
#pragma once

#include <cstdint>

namespace tandem::kernels {

// c += a [16 x 16, row] * b [16 x 8, col], bf16 in, fp32 accumulate (mma.sync m16n8k16). Fragments as
// the PTX ISA lays them out: with g = lane / 4 and t = lane % 4, a = {(g, 2t..2t+1), (g+8, 2t..2t+1),
// (g, 2t+8..2t+9), (g+8, 2t+8..2t+9)}, b01 = (k 2t..2t+1, n g), b23 = (k 2t+8..2t+9, n g),
// c = {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
__device__ __forceinline__ void MmaBf16(float c[4], const uint32_t a[4], uint32_t b01, uint32_t b23) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b01), "r"(b23));
}

}  // namespace tandem::kernels
