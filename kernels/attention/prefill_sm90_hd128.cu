// FlashInfer Hopper paged prefill for head_dim 128 (Llama-3-8B). See prefill_sm90_impl.cuh.
#include "attention/prefill_sm90_impl.cuh"

namespace tandem::kernels::attention_units {
TANDEM_INSTANTIATE_PREFILL_SM90(128);
}  // namespace tandem::kernels::attention_units
