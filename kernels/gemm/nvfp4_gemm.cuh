// Weight-only NVFP4 GEMM for Hopper (sm_90a): out [m, n] bf16 = x [m, k] bf16 @ W [n, k]^T with W in
// NVFP4 (include/tandem/model/nvfp4.h: E2M1 codes, one E4M3 scale per 16 inputs, an fp32 scale2 per
// tensor), fp32 accumulation. Hopper has no FP4 tensor cores; decode is bound by memory bandwidth, so
// the weights stay 4.5 bits per value in HBM and become bf16 in registers (Marlin's idea, tandem's
// own kernel): mma.sync m16n8k16 bf16, where one k-step is exactly one 16-input scale group. E4M3
// scales become bf16 exactly, the codes are expanded with shifts and masks (no lookups in memory),
// code * scale is one exact bf16 multiply, and scale2 goes into the epilogue.
//
// Use:
//   1. Once at load, on the host: Nvfp4RepackForGpu (one tensor, or the parts of a fused projection
//      such as q/k/v, each keeping its own scale2) -> Nvfp4Repacked; upload codes and scales as they
//      are (16-byte aligned, e.g. cudaMalloc); Nvfp4DeviceView names the device copies.
//   2. Workspace: Nvfp4GemmWorkspaceSize(largest m, n, k) bytes of device memory, zeroed once after
//      allocation (the split-K counters; every launch leaves them zero again). One workspace per
//      stream and per (n, k): two GEMMs in flight must not share one, and neither may two shapes
//      (the partial sums start after the counters, whose size depends on n, so one shape's partial
//      sums would overwrite another's counters: a runner that did this got wrong outputs).
//   3. Per step: Nvfp4Gemm. Host work: integer arithmetic and cudaGetDevice (the SM count and the
//      kernels' shared-memory attribute are set up on a device's first call); capturable in a CUDA
//      graph.
//   For large m the alternative is Nvfp4DequantizeToBf16 into a bf16 [n, k] scratch and a bf16 GEMM
//   (cuBLASLt); benchmarks/kernels/nvfp4_gemm_bench.cc measures both (kernels/gemm/NOTES.md).
//
// Shapes: k a positive multiple of 16 (one scale per 16 inputs); n any positive value up to 4194240
// (the last 64-column tile is padded); m >= 0 any value. Row strides are k (x) and n (out).
// Configurations (nvfp4_gemm.cu): m <= 16 (decode: one 16-row tile, 8 warps sharing each 64-column
// tile's k-steps), m <= 32 (two 16-row tiles) and larger m (64-row blocks, 4 warps); split-K across
// blocks when the column tiles cannot fill one wave of resident blocks. kernels/gemm/NOTES.md has
// the design, the floor and the measurements.
// Errors: launchers return cudaError_t, cudaErrorInvalidValue for any shape, alignment or workspace
// they do not support (never a silent fallback); Nvfp4RepackForGpu returns a message.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::kernels {

inline constexpr int kNvfp4MaxParts = 4;

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
  std::vector<uint8_t> codes;   // [ceil(n / 64)][k / 16][512]
  std::vector<uint8_t> scales;  // [ceil(n / 64)][k / 16][64]
  int num_parts = 0;
  int part_begin[kNvfp4MaxParts] = {};     // first output column of each part
  float part_scale2[kNvfp4MaxParts] = {};  // its scale2
};

// Concatenates parts along n (part i's rows become output columns part_begin[i] ...) and re-lays
// them out for the kernel. A block whose scale is zero gets zero codes. Returns "" or what is wrong
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

// Device workspace (bytes) that Nvfp4Gemm needs for any m up to max_m on the current device; 0 when
// no such m splits k across blocks. cudaErrorInvalidValue for unsupported shapes.
cudaError_t Nvfp4GemmWorkspaceSize(int max_m, int n, int k, size_t* bytes);

// out [m, n] = x [m, k] @ dequant(W)^T. x 16-byte aligned; workspace as above (may be null when
// Nvfp4GemmWorkspaceSize gave 0 for this m), 256-byte aligned.
cudaError_t Nvfp4Gemm(const __nv_bfloat16* x, const Nvfp4Weight& w, __nv_bfloat16* out, int m,
                      void* workspace, size_t workspace_bytes, cudaStream_t stream);

// out [n, k] bf16 row-major = bf16(e2m1 * scale * scale2), bit-identical to rounding
// tandem::model::DequantizeNvfp4's fp32 values to bf16. out 4-byte aligned.
cudaError_t Nvfp4DequantizeToBf16(const Nvfp4Weight& w, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace tandem::kernels
