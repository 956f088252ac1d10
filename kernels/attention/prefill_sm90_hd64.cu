// FlashInfer Hopper paged prefill for head_dim 64 (SmolLM2-135M). See prefill_sm90_impl.cuh.
#include "attention/prefill_sm90_impl.cuh"

namespace tandem::kernels::attention_units {
TANDEM_INSTANTIATE_PREFILL_SM90(64);
}  // namespace tandem::kernels::attention_units
