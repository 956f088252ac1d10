// FlashInfer batch decode for head_dim 128 (Llama-3-8B). See decode_impl.cuh.
#include "attention/decode_impl.cuh"

namespace tandem::kernels::attention_units {
TANDEM_INSTANTIATE_DECODE(128);
}  // namespace tandem::kernels::attention_units
