// Small bf16 element-wise ops of the forward pass, each rounding where Hugging Face's bf16 model
// rounds. Launchers return the launch's cudaError_t (cudaErrorInvalidValue on unsupported shapes).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels {

// out[i, :] = src[rows[i], :] for i < m.  src [*, dim], out [m, dim] row-major bf16 (dim % 8 == 0).
// The embedding lookup (src = the table, rows = token ids) and the logits-row gather.
cudaError_t GatherRows(const __nv_bfloat16* src, int dim, const int32_t* rows, int m, __nv_bfloat16* out,
                       cudaStream_t stream);

// out[t, i] = bf16(bf16(silu(gate_up[t, i])) * gate_up[t, inter + i]) (silu in fp32, as torch's bf16
// silu).  gate_up [n, 2 * inter], out [n, inter]; inter % 8 == 0.
cudaError_t SiluMul(const __nv_bfloat16* gate_up, int n, int inter, __nv_bfloat16* out, cudaStream_t stream);

// x[t, 0:dim] = bf16(x[t, 0:dim] + bias[0:dim]) for rows of stride ld (elements).
cudaError_t AddBias(__nv_bfloat16* x, int n, int ld, int dim, const __nv_bfloat16* bias, cudaStream_t stream);

// dst[i] = bf16(src[i]) for i < count (fp32 weights uploaded from the loaders).
cudaError_t F32ToBf16(const float* src, int64_t count, __nv_bfloat16* dst, cudaStream_t stream);

// load_format dummy on the device: dst[i] = bf16(offset + scale * u(i)) for i < count, u(i) the
// splitmix64 uniform that include/tandem/model/dummy_weights.h defines (rows of `cols` elements, a
// stream per rows_per_chunk rows seeded from name_state): bit for bit the host generator's values.
cudaError_t DummyUniformBf16(__nv_bfloat16* dst, int64_t count, uint64_t name_state, int64_t cols,
                             int64_t rows_per_chunk, float scale, float offset, cudaStream_t stream);

}  // namespace tandem::kernels
