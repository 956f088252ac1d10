// RMSNorm, plain and with the residual add fused in (the layer's two norms), bf16 in and out with
// fp32 arithmetic, rounding where Hugging Face's bf16 Llama rounds:
//   residual = bf16(x + residual)                       (fused variant only)
//   out      = bf16(weight * bf16(h * rsqrt(mean(h^2) + eps)))   with h = residual (or x)
// Launchers return the launch's cudaError_t and fail with cudaErrorInvalidValue on shapes the
// kernels do not support (hidden must be a multiple of 8, for 16-byte vector access).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace tandem::kernels {

// x, out: [num_tokens, hidden] row-major bf16; weight: [hidden].
cudaError_t RmsNorm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int num_tokens,
                    int hidden, float eps, cudaStream_t stream);

// x: [num_tokens, hidden]; residual: [num_tokens, hidden], updated in place to x + residual;
// out: [num_tokens, hidden] = RMSNorm(updated residual) * weight.
cudaError_t FusedAddRmsNorm(const __nv_bfloat16* x, __nv_bfloat16* residual, const __nv_bfloat16* weight,
                            __nv_bfloat16* out, int num_tokens, int hidden, float eps, cudaStream_t stream);

// Per-head RMSNorm in place (Qwen3 q_norm / k_norm): each head_dim slice of x[t, 0:num_heads*head_dim]
// (rows of stride ld elements) becomes bf16(weight * bf16(h * rsqrt(mean(h^2) + eps))). weight: [head_dim].
// head_dim at most 256 (head_rmsnorm.cu); cudaErrorInvalidValue otherwise.
cudaError_t HeadRmsNorm(__nv_bfloat16* x, int num_tokens, int ld, int num_heads, int head_dim,
                        const __nv_bfloat16* weight, float eps, cudaStream_t stream);

}  // namespace tandem::kernels
