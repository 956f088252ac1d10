// Rotary embedding of q and k, fused with the write of the new tokens' K and V into the paged cache.
// bf16, rounding as Hugging Face's bf16 Llama: angle = fp32(pos) * inv_freq[i] in fp32, cos/sin
// rounded to bf16, x' = bf16(bf16(x * cos) + bf16(rotate_half(x) * sin)) (rotate_half pairs (i, i + hd/2)).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels {

// Shapes of one layer's paged KV pool: [num_blocks, 2 (K, V), num_kv_heads, block_size, head_dim] bf16.
struct KvPoolLayout {
  int num_kv_heads = 0;
  int block_size = 0;
  int head_dim = 0;
};

// qkv: [n, ld] bf16 rows holding q (cols [0, nq*hd)), k ([nq*hd, (nq+nkv)*hd)) and v (the next nkv*hd).
// Rotates q and k in place by positions[t], then writes k and v of token t into `kv_layer` at slot
// slot_mapping[t] (block = slot / block_size, offset = slot % block_size); a negative slot is a padding
// row and writes nothing. inv_freq: [hd / 2] fp32. hd even and at most 512.
cudaError_t RopeAndWriteKv(__nv_bfloat16* qkv, int n, int ld, int num_q_heads, const int32_t* positions,
                           const float* inv_freq, const int64_t* slot_mapping, const KvPoolLayout& layout,
                           __nv_bfloat16* kv_layer, cudaStream_t stream);

}  // namespace tandem::kernels
