#include "tandem/model/qk_permute.h"

#include <cstring>
#include <vector>

namespace tandem::model {

namespace {

// Within each head of hd rows: hf row a*hd/2 + j  <->  gguf row 2*j + a.
template <typename T>
void Reorder(T* w, int64_t rows, int64_t cols, int64_t n_head, bool to_gguf) {
  const int64_t hd = rows / n_head;
  const int64_t half = hd / 2;
  const size_t row_bytes = static_cast<size_t>(cols) * sizeof(T);
  std::vector<T> tmp(static_cast<size_t>(hd * cols));
  for (int64_t h = 0; h < n_head; ++h) {
    T* head = w + h * hd * cols;
    std::memcpy(tmp.data(), head, static_cast<size_t>(hd) * row_bytes);
    for (int64_t a = 0; a < 2; ++a) {
      for (int64_t j = 0; j < half; ++j) {
        const int64_t hf_row = a * half + j;
        const int64_t gguf_row = 2 * j + a;
        const int64_t dst = to_gguf ? gguf_row : hf_row;
        const int64_t src = to_gguf ? hf_row : gguf_row;
        std::memcpy(head + dst * cols, tmp.data() + src * cols, row_bytes);
      }
    }
  }
}

}  // namespace

void PermuteQkRows(float* w, int64_t rows, int64_t cols, int64_t n_head) {
  Reorder(w, rows, cols, n_head, true);
}

void UnpermuteQkRows(float* w, int64_t rows, int64_t cols, int64_t n_head) {
  Reorder(w, rows, cols, n_head, false);
}

void UnpermuteQkRows(uint16_t* w, int64_t rows, int64_t cols, int64_t n_head) {
  Reorder(w, rows, cols, n_head, false);
}

}  // namespace tandem::model
