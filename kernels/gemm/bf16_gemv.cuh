// bf16 GEMV for decode steps (m <= 8 rows): out [m, n] = x [m, k] @ W [n, k]^T (nn.Linear layout),
// fp32 accumulation, bf16 or fp32 output. At decode the GEMMs are bound by reading W once from HBM;
// cuBLASLt's kernels for m = 1..8 reach 2.9 TB/s on Llama-3-8B's q/k/v and o shapes (70 % of copy
// bandwidth, benchmarks/results/cuda_model_h200.md) and add split-K reduce launches. Here each block
// owns 4 rows of W and its 8 warps split k in chunks of 256 inputs (one 16-byte load per row and lane,
// two chunks in flight per warp), so every byte of W is loaded once, streaming, with many loads in
// flight and no second kernel; x is read through L1, each 16-byte load of it serving the block's 4 rows.
// CublasLtGemm::Tune times it against cuBLASLt's candidates per shape and keeps the faster
// (kernels/gemm/NOTES.md has the measurements).
//
// Shapes: 1 <= m <= kBf16GemvMaxM, k a positive multiple of 8, n >= 1; x and W 16-byte aligned with
// row strides k; out row stride n. Launchers return cudaErrorInvalidValue for anything else.
// Capturable in a CUDA graph (no host work beyond the launch).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace tandem::kernels {

inline constexpr int kBf16GemvMaxM = 8;

bool Bf16GemvSupported(int m, int n, int k);

cudaError_t Bf16Gemv(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m, int n, int k,
                     cudaStream_t stream);

// The tensor-core variant (mma.sync with W as the A operand), m <= kBf16GemvTcMaxM; same contract.
inline constexpr int kBf16GemvTcMaxM = 16;

bool Bf16GemvTcSupported(int m, int n, int k);

cudaError_t Bf16GemvTc(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m, int n,
                       int k, cudaStream_t stream);

}  // namespace tandem::kernels
