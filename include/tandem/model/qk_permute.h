// llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders the rows of the Q and K
// projection weights of each head from HF's rotate_half layout (rotary pairs (i, i + hd/2)) to the
// interleaved layout ggml's rope uses (pairs (2i, 2i + 1)):
//   w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols)
// i.e. GGUF row h*hd + 2*j + a holds HF row h*hd + a*hd/2 + j (a in {0, 1}, j < hd/2).
// n_head is num_attention_heads for Q and num_kv_heads for K.
#pragma once

#include <cstdint>

namespace tandem::model {

// HF layout → GGUF layout (what the converter does); used by tests.
void PermuteQkRows(float* w, int64_t rows, int64_t cols, int64_t n_head);
// GGUF layout → HF layout (what the GGUF loader does). Works on biases too (cols = 1).
void UnpermuteQkRows(float* w, int64_t rows, int64_t cols, int64_t n_head);
// The same on 16-bit elements (bf16 bits: weights loaded with LoadOptions::keep_16bit).
void UnpermuteQkRows(uint16_t* w, int64_t rows, int64_t cols, int64_t n_head);

}  // namespace tandem::model
