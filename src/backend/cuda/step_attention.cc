#include "step_attention.h"

#include "absl/strings/str_cat.h"
#include "tandem/backend/cuda_handles.h"

namespace tandem::backend::cuda {
namespace {

class ReferenceAttention final : public StepAttention {
 public:
  explicit ReferenceAttention(const AttentionSetup& setup) : setup_(setup) {}
  const char* name() const override { return "reference"; }
  absl::Status Plan(const BatchPlan& plan, bool for_graph, cudaStream_t stream) override {
    (void)plan;
    (void)for_graph;
    (void)stream;
    return absl::OkStatus();  // reads positions, token_seq and block tables straight from the step's buffers
  }
  absl::Status Run(const __nv_bfloat16* q, int ld_q, int n, const __nv_bfloat16* kv_layer, __nv_bfloat16* out,
                   float scale, cudaStream_t stream) override {
    const kernels::KvPoolLayout layout{setup_.num_kv_heads, setup_.block_size, setup_.head_dim};
    TANDEM_CUDA_CHECK(kernels::ReferencePagedAttention(q, ld_q, n, setup_.num_q_heads, setup_.batch, layout, kv_layer,
                                                       scale, out, stream));
    return absl::OkStatus();
  }

 private:
  AttentionSetup setup_;
};

}  // namespace

std::unique_ptr<StepAttention> CreateReferenceAttention(const AttentionSetup& setup) {
  return std::make_unique<ReferenceAttention>(setup);
}

absl::StatusOr<std::unique_ptr<StepAttention>> CreateStepAttention(const AttentionSetup& setup) {
  if (setup.num_kv_heads <= 0 || setup.num_q_heads % setup.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("attention: expected num_q_heads a multiple of num_kv_heads, found ",
                                                   setup.num_q_heads, " and ", setup.num_kv_heads));
  }
  if (setup.head_dim > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention: expected head_dim at most 256, found ", setup.head_dim));
  }
  return CreateReferenceAttention(setup);
}

}  // namespace tandem::backend::cuda
