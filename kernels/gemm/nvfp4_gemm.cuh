// Weight-only NVFP4 GEMM for Hopper (sm_90a): out [m, n] bf16 = x [m, k] bf16 @ W [n, k]^T with W in
// NVFP4 (include/tandem/model/nvfp4.h: E2M1 codes, one E4M3 scale per 16 inputs, an fp32 scale2 per
// tensor), fp32 accumulation. Hopper has no FP4 tensor cores; decode is bound by memory bandwidth, so
// the weights stay 4.5 bits per value in HBM and become bf16 in registers: a tensor-core GEMV with W as
// the A operand of mma.sync m16n8k16 bf16 (16 rows of W per block, x as B, one n8 tile per 8 rows of
// x), where a lane's 16-byte load of codes is exactly its A fragments for four k-steps of one scale
// group. E4M3 scales become bf16 exactly, the codes are expanded with shifts and masks (no lookups in
// memory), code * scale is one exact bf16 multiply, and scale2 goes into the epilogue.
//
// Use:
//   1. Once at load, on the host: Nvfp4RepackForGpu (one tensor, or the parts of a fused projection
//      such as q/k/v, each keeping its own scale2) -> Nvfp4Repacked; upload codes and scales as they
//      are (16-byte aligned, e.g. cudaMalloc); Nvfp4DeviceView names the device copies.
//   2. Per step: Nvfp4Gemm. No workspace, no host work beyond the launch; capturable in a CUDA graph.
//   Any m up to kNvfp4MaxM is computed, but the kernel is made for decode (m <= 16-32: it re-reads
//   x from L2 for every 16 rows of W); for prefill-sized m the alternative is Nvfp4DequantizeToBf16
//   into a bf16 [n, k] scratch and a bf16 GEMM (cuBLASLt). benchmarks/kernels/nvfp4_gemm_bench.cc
//   measures both (kernels/gemm/NOTES.md), and the model runner picks by m.
//
// Shapes: k a positive multiple of 16 (one scale per 16 inputs), padded inside to 64 (codes) and 256
// (scales); 1 <= n <= kNvfp4MaxN, padded to 16; 0 <= m <= kNvfp4MaxM. Row strides are k (x) and n (out).
// Errors: launchers return cudaError_t, cudaErrorInvalidValue for any shape or alignment they do not
// support (never a silent fallback); Nvfp4RepackForGpu returns a message.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::kernels {

inline constexpr int kNvfp4MaxParts = 4;
inline constexpr int kNvfp4MaxN = 1 << 30;  // rows of a (fused) weight
inline constexpr int kNvfp4MaxM = 1 << 20;  // rows of x per launch

// One NVFP4 tensor in Model Optimizer's layout, in host memory (tandem::model::Nvfp4Tensor's fields).
struct Nvfp4Part {
  const uint8_t* packed = nullptr;  // [rows, k / 2], the low nibble holds the even column
  const uint8_t* scales = nullptr;  // [rows, k / 16] float8_e4m3fn, non-negative
  float scale2 = 0.f;               // weight_scale_2
  int rows = 0;
};

// The repacked weight on the host (layout: kernels/gemm/nvfp4_layout.cuh), ready to upload as is.
struct Nvfp4Repacked {
  int n = 0;  // total rows of all parts (output columns of the GEMM)
  int k = 0;
  std::vector<uint8_t> codes;   // [ceil(n / 16)][ceil(k / 64)][512]
  std::vector<uint8_t> scales;  // [ceil(n / 16)][ceil(k / 256)][256]
  int num_parts = 0;
  int part_begin[kNvfp4MaxParts] = {};     // first output column of each part
  float part_scale2[kNvfp4MaxParts] = {};  // its scale2
};

// Concatenates parts along n (part i's rows become output columns part_begin[i] ...) and re-lays
// them out for the kernel. A block whose scale is zero keeps only its codes' signs. Returns "" or what is wrong
// (k not a positive multiple of 16, no or too many parts, an empty part, a NaN or negative scale
// naming part, row and group, a non-finite or negative scale2). Throughput on one core: see NOTES.md.
std::string Nvfp4RepackForGpu(const Nvfp4Part* parts, int num_parts, int k, Nvfp4Repacked* out);

// Device view of a repacked weight: what the launchers take.
struct Nvfp4Weight {
  const uint8_t* codes = nullptr;   // device copy of Nvfp4Repacked::codes, 16-byte aligned
  const uint8_t* scales = nullptr;  // device copy of Nvfp4Repacked::scales, 16-byte aligned
  int n = 0;
  int k = 0;
  int num_parts = 0;
  int part_begin[kNvfp4MaxParts] = {};
  float part_scale2[kNvfp4MaxParts] = {};
};
Nvfp4Weight Nvfp4DeviceView(const Nvfp4Repacked& repacked, const void* device_codes,
                            const void* device_scales);

// out [m, n] = x [m, k] @ dequant(W)^T. x 16-byte aligned, out 2-byte aligned.
cudaError_t Nvfp4Gemm(const __nv_bfloat16* x, const Nvfp4Weight& w, __nv_bfloat16* out, int m,
                      cudaStream_t stream);

// out [n, k] bf16 row-major = bf16(e2m1 * scale * scale2), bit-identical to rounding
// tandem::model::DequantizeNvfp4's fp32 values to bf16 (signed zeros included). out 16-byte aligned.
cudaError_t Nvfp4DequantizeToBf16(const Nvfp4Weight& w, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace tandem::kernels
