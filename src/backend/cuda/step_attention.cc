#include "step_attention.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/paged_attention.cuh"
#include "tandem/backend/cuda_handles.h"

namespace tandem::backend::cuda {
namespace {

class ReferenceAttention final : public StepAttention {
 public:
  explicit ReferenceAttention(const AttentionSetup& setup) : setup_(setup) {}
  const char* name() const override { return "reference"; }
  absl::Status Plan(const BatchPlan& plan, int graph_seqs, cudaStream_t stream) override {
    (void)plan;
    (void)graph_seqs;
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

// FlashInfer's batch decode (decode steps) and sm90 paged prefill kernels (kernels/attention/).
class FlashInferAttention final : public StepAttention {
 public:
  FlashInferAttention(const AttentionSetup& setup, std::unique_ptr<kernels::PagedAttention> kernel)
      : setup_(setup), kernel_(std::move(kernel)) {}
  const char* name() const override { return "flashinfer"; }

  absl::Status Plan(const BatchPlan& plan, int graph_seqs, cudaStream_t stream) override {
    const int b = setup_.block_size;
    const int seqs = graph_seqs > 0 ? graph_seqs : plan.num_seqs;
    qo_indptr_.assign(1, 0);
    kv_indptr_.assign(1, 0);
    kv_indices_.clear();
    last_page_len_.clear();
    for (int s = 0; s < seqs; ++s) {
      if (s < plan.num_seqs) {
        const int kv_len = plan.context_lens[static_cast<size_t>(s)];
        const int blocks = (kv_len + b - 1) / b;
        const int32_t* table = plan.block_tables.data() + static_cast<int64_t>(s) * plan.max_blocks_per_seq;
        kv_indices_.insert(kv_indices_.end(), table, table + blocks);
        qo_indptr_.push_back(plan.seq_token_start[static_cast<size_t>(s) + 1]);
        kv_indptr_.push_back(kv_indptr_.back() + blocks);
        last_page_len_.push_back(kv_len - (blocks - 1) * b);
      } else {  // padding row of a decode graph: one query over one token of block 0
        kv_indices_.push_back(0);
        qo_indptr_.push_back(qo_indptr_.back() + 1);
        kv_indptr_.push_back(kv_indptr_.back() + 1);
        last_page_len_.push_back(1);
      }
    }
    const std::string err = kernel_->Plan(qo_indptr_.data(), kv_indptr_.data(), kv_indices_.data(),
                                          last_page_len_.data(), seqs, graph_seqs > 0, stream);
    if (!err.empty()) return absl::InternalError(absl::StrCat("attention plan: ", err));
    return absl::OkStatus();
  }

  absl::Status Run(const __nv_bfloat16* q, int ld_q, int n, const __nv_bfloat16* kv_layer, __nv_bfloat16* out,
                   float scale, cudaStream_t stream) override {
    if (n != kernel_->planned_num_tokens()) {
      return absl::InternalError(absl::StrCat("attention: run over ", n, " query rows, the plan has ",
                                              kernel_->planned_num_tokens()));
    }
    const std::string err = kernel_->Run(q, ld_q, kv_layer, out, scale, stream);
    if (!err.empty()) return absl::InternalError(absl::StrCat("attention run: ", err));
    return absl::OkStatus();
  }

 private:
  AttentionSetup setup_;
  std::unique_ptr<kernels::PagedAttention> kernel_;
  std::vector<int32_t> qo_indptr_, kv_indptr_, kv_indices_, last_page_len_;  // the step's CSR, reused
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
  const int group = setup.num_q_heads / setup.num_kv_heads;
  const bool flashinfer_geometry = (setup.head_dim == 64 || setup.head_dim == 128) &&
                                   (group == 1 || group == 2 || group == 3 || group == 4 || group == 6 ||
                                    group == 8 || group == 16) &&
                                   setup.block_size <= 256;
  if (!flashinfer_geometry) return CreateReferenceAttention(setup);
  std::unique_ptr<kernels::PagedAttention> kernel;
  const kernels::AttentionGeometry geometry{setup.num_q_heads, setup.num_kv_heads, setup.head_dim, setup.block_size};
  const std::string err = kernels::PagedAttention::Create(geometry, setup.max_num_tokens, setup.max_num_seqs,
                                                          setup.max_num_seqs * setup.max_blocks_per_seq, &kernel);
  if (!err.empty()) return absl::InternalError(absl::StrCat("attention: ", err));
  kernel->set_prefill_only(setup.batch_invariant);
  return std::unique_ptr<StepAttention>(new FlashInferAttention(setup, std::move(kernel)));
}

}  // namespace tandem::backend::cuda
