// FlashInfer batch decode for head_dim 64 (SmolLM2-135M). See decode_impl.cuh.
#include "attention/decode_impl.cuh"

namespace tandem::kernels::attention_units {
TANDEM_INSTANTIATE_DECODE(64);
}  // namespace tandem::kernels::attention_units
